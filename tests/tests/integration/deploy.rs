//! The compose deployment cannot run here (no Docker engine), so these
//! tests parse `docker-compose.yml` with a real compose implementation
//! (Debian's `docker-compose`), hold it, the `Dockerfile` and
//! `deploy/steward.toml` to each other and to the worker's config loader
//! (service names, ports, environment, volumes, shutdown timing, retention,
//! the programs the image must carry), and run the namespace setup script
//! against a real dev server.

use std::path::Path;

use serde_yaml::Value;
use steward_tests::workspace;
use steward_worker::config;

fn compose() -> Value {
    let text = std::fs::read_to_string(workspace().join("docker-compose.yml"))
        .expect("docker-compose.yml at the top of the workspace");
    let mut doc: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    doc.apply_merge().expect("YAML merge keys resolve");
    doc
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["services"][name];
    assert!(s.is_mapping(), "service `{name}` exists");
    s
}

fn env<'a>(service: &'a Value, key: &str) -> &'a str {
    service["environment"][key]
        .as_str()
        .unwrap_or_else(|| panic!("environment {key} is set: {service:?}"))
}

/// The strings of a YAML sequence (none when it is not one).
pub(super) fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `${VAR:?msg}` and `${VAR:-default}` as compose expands them, with every
/// required variable set to `value`.
fn expand(text: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${...}") + start;
        let inner = &rest[start + 2..end];
        match inner.split_once(":-") {
            Some((_, default)) => out.push_str(default),
            None => out.push_str(value),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The config file the worker service mounts at STEWARD_CONFIG.
fn mounted_config(doc: &Value) -> std::path::PathBuf {
    let steward = service(doc, "steward");
    let target = env(steward, "STEWARD_CONFIG");
    let mount = strings(&steward["volumes"])
        .into_iter()
        .find(|v| v.split(':').nth(1) == Some(target))
        .expect("the config is mounted where STEWARD_CONFIG points");
    let source = mount.split(':').next().unwrap();
    workspace().join(source.trim_start_matches("./"))
}

#[test]
fn every_service_is_there_with_health_checks_and_healthy_dependencies() {
    let doc = compose();
    for name in [
        "postgresql",
        "temporal-setup",
        "temporal",
        "temporal-namespace",
        "temporal-ui",
        "steward",
        "steward-schedules",
        "steward-api",
    ] {
        service(&doc, name);
    }
    for name in ["postgresql", "temporal", "steward", "steward-api"] {
        let test = strings(&service(&doc, name)["healthcheck"]["test"]);
        assert_eq!(test.first().map(String::as_str), Some("CMD"), "{name}");
    }
    for (name, needs, condition) in [
        ("temporal-setup", "postgresql", "service_healthy"),
        (
            "temporal",
            "temporal-setup",
            "service_completed_successfully",
        ),
        ("temporal-namespace", "temporal", "service_healthy"),
        ("steward", "postgresql", "service_healthy"),
        (
            "steward",
            "temporal-namespace",
            "service_completed_successfully",
        ),
        (
            "steward-schedules",
            "temporal-namespace",
            "service_completed_successfully",
        ),
        ("steward-api", "postgresql", "service_healthy"),
        (
            "steward-api",
            "temporal-namespace",
            "service_completed_successfully",
        ),
        ("temporal-ui", "temporal", "service_healthy"),
    ] {
        assert_eq!(
            service(&doc, name)["depends_on"][needs]["condition"].as_str(),
            Some(condition),
            "{name} waits for {needs}"
        );
    }
    // The official images, none deprecated (auto-setup is), each pinned
    // to a version.
    for name in [
        "temporal-setup",
        "temporal",
        "temporal-namespace",
        "temporal-ui",
        "postgresql",
    ] {
        let image = service(&doc, name)["image"].as_str().unwrap();
        let (repo, tag) = image.split_once(':').expect("an image with a tag");
        assert!(
            tag.chars().next().is_some_and(|c| c.is_ascii_digit()) && tag != "latest",
            "{name}: {image} is pinned"
        );
        assert_ne!(repo, "temporalio/auto-setup", "deprecated by Temporal");
    }
    assert_eq!(
        service(&doc, "temporal")["image"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("temporalio/server")
    );
    assert_eq!(
        env(service(&doc, "temporal"), "DB"),
        "postgres12",
        "Temporal on PostgreSQL"
    );
    // The API: the worker's image and config, listening where it is
    // published and probed.
    let api = service(&doc, "steward-api");
    assert_eq!(api["image"], service(&doc, "steward")["image"]);
    assert_eq!(
        strings(&api["command"]),
        ["api", "--listen", "0.0.0.0:8234"],
        "the API listens beyond the container's loopback"
    );
    assert!(strings(&api["ports"]).contains(&"8234:8234".to_string()));
    assert!(
        strings(&api["healthcheck"]["test"])
            .join(" ")
            .contains("127.0.0.1:8234/readyz")
    );
    assert_eq!(
        env(api, "STEWARD_CONFIG"),
        env(service(&doc, "steward"), "STEWARD_CONFIG")
    );
    let replicas = service(&doc, "steward")["deploy"]["replicas"]
        .as_u64()
        .unwrap();
    assert!(replicas >= 2, "several workers share the task queue");
    for volume in ["postgres-data", "steward-data", "repos"] {
        assert!(doc["volumes"][volume].is_null() || doc["volumes"][volume].is_mapping());
        assert!(
            doc["volumes"].as_mapping().unwrap().contains_key(volume),
            "volume {volume} is declared"
        );
    }
}

#[test]
fn the_worker_config_loads_and_agrees_with_the_compose_services() {
    let doc = compose();
    let steward = service(&doc, "steward");
    let path = mounted_config(&doc);
    let text = std::fs::read_to_string(&path).expect("deploy config exists");
    let loaded = config::parse(&text, Path::new("/etc/steward/steward.toml"))
        .expect("deploy/steward.toml is a valid config");
    assert!(
        loaded.config.database_url.is_none(),
        "the state store URL (with its password) comes from the environment"
    );

    // The state store: the compose PostgreSQL, its port, its database.
    let pg = service(&doc, "postgresql");
    let url = expand(env(steward, config::DATABASE_URL_ENV), "secret");
    let expected = format!(
        "postgres://{}:secret@postgresql:5432/{}",
        env(pg, "POSTGRES_USER"),
        env(pg, "POSTGRES_DB")
    );
    assert_eq!(url, expected);
    assert!(
        !text.contains("secret") && !env(pg, "POSTGRES_PASSWORD").contains("temporal"),
        "no password is written into the files"
    );

    // The Temporal frontend: the service name and the port it publishes.
    let temporal = service(&doc, "temporal");
    assert_eq!(env(steward, "TEMPORAL_ADDRESS"), "temporal:7233");
    assert!(
        strings(&temporal["ports"])
            .iter()
            .any(|p| p.ends_with(":7233"))
    );
    assert_eq!(
        env(service(&doc, "temporal-ui"), "TEMPORAL_ADDRESS"),
        "temporal:7233"
    );

    // The data dir is a volume.
    let data_dir = loaded.config.data_dir.display().to_string();
    assert!(
        strings(&steward["volumes"])
            .iter()
            .any(|v| v.split(':').nth(1) == Some(data_dir.as_str())),
        "{data_dir} is a volume"
    );
    // Every repo lives on the repos volume.
    let repos_mount = strings(&steward["volumes"])
        .into_iter()
        .find(|v| v.starts_with("repos:"))
        .expect("repos volume mounted");
    let repos_dir = repos_mount.split(':').nth(1).unwrap().to_string();
    for repo in &loaded.config.repos {
        assert!(repo.path.starts_with(&repos_dir), "{:?}", repo.path);
    }

    // Metrics: the address the worker serves is the one exposed and probed.
    let metrics = env(steward, "STEWARD_METRICS_ADDR");
    assert_eq!(
        loaded.config.worker.metrics_addr.as_deref(),
        Some(metrics),
        "config and compose agree on the metrics address"
    );
    let port = metrics.rsplit(':').next().unwrap();
    assert!(strings(&steward["expose"]).contains(&port.to_string()));
    // The probe: the worker's readiness, where the config serves it.
    let health = loaded
        .config
        .worker
        .health_addr
        .as_deref()
        .expect("the worker serves its probes");
    let health_port = health.rsplit(':').next().unwrap();
    assert!(strings(&steward["expose"]).contains(&health_port.to_string()));
    let probe = strings(&steward["healthcheck"]["test"]).join(" ");
    assert!(
        probe.contains(&format!("127.0.0.1:{health_port}/readyz")),
        "{probe}"
    );

    // Shutdown: compose waits longer than the worker's grace period.
    let grace = steward["stop_grace_period"].as_str().unwrap();
    let grace: u64 = grace.trim_end_matches('s').parse().unwrap();
    assert!(grace > loaded.config.worker.graceful_shutdown_seconds);
    assert_eq!(steward["stop_signal"].as_str(), Some("SIGTERM"));

    // The schedules job runs the same image with the same config.
    let schedules = service(&doc, "steward-schedules");
    assert_eq!(strings(&schedules["command"]), ["schedules", "sync"]);
    assert_eq!(schedules["image"], steward["image"]);
    assert_eq!(
        env(schedules, "STEWARD_CONFIG"),
        env(steward, "STEWARD_CONFIG")
    );
}

#[test]
fn the_host_worker_is_the_worker_with_a_host_of_its_own_and_its_own_data() {
    let doc = compose();
    let (steward, db1) = (service(&doc, "steward"), service(&doc, "steward-db1"));
    assert_eq!(
        strings(&db1["profiles"]),
        ["hosts"],
        "started only when asked for"
    );
    let host = env(db1, "STEWARD_HOST");
    assert!(config::valid_host(host), "{host}");
    for key in [
        "image",
        "command",
        "stop_signal",
        "stop_grace_period",
        "healthcheck",
    ] {
        assert_eq!(db1[key], steward[key], "{key} as the shared workers'");
    }
    for key in ["STEWARD_CONFIG", "STEWARD_METRICS_ADDR", "TEMPORAL_ADDRESS"] {
        assert_eq!(env(db1, key), env(steward, key), "{key}");
    }
    let data_dir = config::parse(
        &std::fs::read_to_string(mounted_config(&doc)).unwrap(),
        Path::new("/etc/steward/steward.toml"),
    )
    .unwrap()
    .config
    .data_dir
    .display()
    .to_string();
    let volume_at = |s: &Value| {
        strings(&s["volumes"])
            .into_iter()
            .find(|v| v.split(':').nth(1) == Some(data_dir.as_str()))
            .and_then(|v| v.split(':').next().map(str::to_string))
    };
    let own = volume_at(db1).expect("its data dir is a volume");
    assert_ne!(Some(own.clone()), volume_at(steward), "its own data");
    assert!(
        doc["volumes"]
            .as_mapping()
            .unwrap()
            .contains_key(own.as_str())
    );
    assert!(
        !strings(&db1["volumes"])
            .iter()
            .any(|v| v.starts_with("repos:")),
        "the shared workers' repos are not on its host"
    );
}

#[test]
fn the_dockerfile_builds_the_worker_in_stages_with_what_it_needs() {
    let text = std::fs::read_to_string(workspace().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(froms[0].contains(" AS build"));
    let build_stage = &text[..text.find(froms[1]).unwrap()];
    let runtime_stage = &text[text.find(froms[1]).unwrap()..];
    assert!(
        build_stage.contains("protobuf-compiler"),
        "the SDK needs protoc"
    );
    assert!(build_stage.contains("cargo build --release --locked --bin steward"));
    assert!(runtime_stage.contains(" git "), "the sweep runs git");
    assert!(
        runtime_stage.contains(" curl"),
        "the health check uses curl"
    );
    assert!(
        runtime_stage
            .contains("COPY --from=build /src/target/release/steward /usr/local/bin/steward")
    );
    assert!(
        runtime_stage.contains("USER 10001"),
        "not root, by number (Kubernetes checks runAsNonRoot on it)"
    );
    assert!(runtime_stage.contains("ENTRYPOINT [\"steward\"]"));

    // The Rust image is at least the workspace's rust-version.
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let wanted = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let image = froms[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches("rust:");
    let version = |v: &str| -> Vec<u32> {
        v.split(['.', '-'])
            .take(2)
            .map(|p| p.parse().unwrap())
            .collect()
    };
    assert!(version(image) >= version(wanted), "{image} < {wanted}");

    // The compose file's image data dir is the Dockerfile's home.
    let doc = compose();
    let loaded = config::parse(
        &std::fs::read_to_string(mounted_config(&doc)).unwrap(),
        Path::new("/etc/steward/steward.toml"),
    )
    .unwrap();
    assert!(runtime_stage.contains(&format!("--home-dir {}", loaded.config.data_dir.display())));
    let ignore = std::fs::read_to_string(workspace().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target"),
        "target/ stays out of the build context"
    );
}

#[test]
fn the_namespace_setup_keeps_runs_as_long_as_the_config_says_with_stewards_search_attributes() {
    let doc = compose();
    let namespace = service(&doc, "temporal-namespace");
    let loaded = config::parse(
        &std::fs::read_to_string(mounted_config(&doc)).unwrap(),
        Path::new("/etc/steward/steward.toml"),
    )
    .unwrap();
    assert_eq!(
        env(namespace, "STEWARD_RETENTION_DAYS"),
        loaded.config.temporal.retention_days.to_string(),
        "the setup step applies the config's retention"
    );
    assert_eq!(
        env(namespace, "STEWARD_NAMESPACE"),
        env(service(&doc, "steward"), "TEMPORAL_NAMESPACE")
    );
    let script = std::fs::read_to_string(workspace().join("deploy/temporal-namespace.sh")).unwrap();
    for (name, kind) in steward_proto::names::SEARCH_ATTRIBUTES {
        assert!(
            script.contains(&format!("{name}={kind}")),
            "the setup registers {name} as {kind}"
        );
    }
    let entry = strings(&namespace["entrypoint"]).join(" ");
    assert!(entry.ends_with("/steward/temporal-namespace.sh"), "{entry}");
}

#[tokio::test]
async fn the_namespace_setup_script_applies_retention_and_search_attributes_on_a_real_server() {
    let dir = steward_tests::temp_dir();
    let server = steward_tests::Server::start(dir.path()).await;
    let bin_dir = steward_tests::temporal_bin()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = workspace().join("deploy/temporal-namespace.sh");
    for days in ["90", "30"] {
        let out = std::process::Command::new("sh")
            .arg(&script)
            .env("PATH", &path)
            .env("TEMPORAL_ADDRESS", &server.address)
            .env("STEWARD_NAMESPACE", "audited")
            .env("STEWARD_RETENTION_DAYS", days)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client = steward_worker::connect::to_address(
            &server.address,
            "audited",
            config::GrpcCompression::None,
        )
        .await
        .unwrap();
        let retention = steward_worker::namespace::retention(&client).await.unwrap();
        assert_eq!(retention.as_secs(), days.parse::<u64>().unwrap() * 86_400);
        assert!(
            steward_worker::namespace::ensure_search_attributes(&client)
                .await
                .unwrap()
                .is_empty(),
            "the script registered every search attribute"
        );
    }
}

#[test]
fn a_real_compose_implementation_parses_the_deployment() {
    let run = |password: Option<&str>| {
        let mut cmd = std::process::Command::new("docker-compose");
        cmd.arg("--file")
            .arg(workspace().join("docker-compose.yml"))
            .arg("config")
            .env_remove("POSTGRES_PASSWORD");
        if let Some(p) = password {
            cmd.env("POSTGRES_PASSWORD", p);
        }
        cmd.output().unwrap_or_else(|e| {
            panic!("docker-compose (Debian's package) is required: {e}; run ./scripts/setup")
        })
    };
    let ok = run(Some("s3cret"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let resolved: Value = serde_yaml::from_slice(&ok.stdout).unwrap();
    assert_eq!(
        resolved["services"]["steward"]["environment"]["STEWARD_DATABASE_URL"]
            .as_str()
            .unwrap(),
        "postgres://temporal:s3cret@postgresql:5432/steward"
    );
    let missing = run(None);
    assert!(!missing.status.success(), "a password is required");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("POSTGRES_PASSWORD"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// The programs steward's own code runs (argv\[0\] literals in the
/// activities), with the Debian package that carries each.
const PROGRAMS: [(&str, &str); 3] = [
    ("git", "git"),
    ("pg_dump", "postgresql-client"),
    ("psql", "postgresql-client"),
];

fn programs_in(dir: &Path, found: &mut std::collections::BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            programs_in(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for marker in ["Command::new(\"", "program(\"", "program(\n"] {
            let mut rest = text.as_str();
            while let Some(i) = rest.find(marker) {
                rest = &rest[i + marker.len()..];
                let literal = rest.trim_start().trim_start_matches('"');
                let name: String = literal
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                if !name.is_empty() && !["sh"].contains(&name.as_str()) {
                    found.insert(name);
                }
            }
        }
    }
}

#[test]
fn the_image_carries_every_program_stewards_activities_run() {
    let mut found = std::collections::BTreeSet::new();
    programs_in(&workspace().join("activities/src"), &mut found);
    let known: std::collections::BTreeSet<String> =
        PROGRAMS.iter().map(|(p, _)| p.to_string()).collect();
    assert!(
        found.contains("git") && found.contains("pg_dump") && found.contains("psql"),
        "{found:?}"
    );
    assert_eq!(
        found, known,
        "a program steward runs is missing from PROGRAMS (and maybe the image)"
    );
    let text = std::fs::read_to_string(workspace().join("Dockerfile")).unwrap();
    let runtime = &text[text.rfind("\nFROM ").unwrap()..];
    let installed: Vec<&str> = runtime
        .lines()
        .filter(|l| l.contains("apt-get install"))
        .flat_map(|l| l.split_whitespace())
        .collect();
    for (program, package) in PROGRAMS {
        assert!(
            installed.contains(&package),
            "the runtime image lacks {package} (for {program}): {installed:?}"
        );
    }
}

#[test]
fn the_compose_prometheus_scrapes_every_worker_and_the_api_with_stewards_rules() {
    let doc = compose();
    let prometheus = service(&doc, "prometheus");
    let mounts = strings(&prometheus["volumes"]);
    let mounted = |file: &str| {
        mounts
            .iter()
            .find_map(|m| {
                let (from, rest) = m.split_once(':')?;
                (from == format!("./deploy/prometheus/{file}"))
                    .then(|| rest.split(':').next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("{file} is mounted: {mounts:?}"))
    };
    let config_at = mounted("prometheus.yml");
    let rules_at = mounted("steward-rules.yml");
    assert_eq!(config_at, "/etc/prometheus/prometheus.yml");
    // The config names the rules where they are mounted, and loads in
    // promtool with them (the path rewritten to the file in deploy/).
    let dir = workspace().join("deploy/prometheus");
    let text = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    assert!(text.contains(&rules_at), "{text}");
    let scratch = steward_tests::temp_dir();
    let local = scratch.path().join("prometheus.yml");
    std::fs::write(
        &local,
        text.replace(
            &rules_at,
            &dir.join("steward-rules.yml").display().to_string(),
        ),
    )
    .unwrap();
    let (ok, said) = steward_tests::run_promtool(
        scratch.path(),
        &["check", "config", local.to_str().unwrap()],
        None,
    );
    assert!(ok, "{said}");
    // The jobs scrape the worker's metrics port and the API's.
    let config: Value = serde_yaml::from_str(&text).unwrap();
    let jobs = config["scrape_configs"].as_sequence().unwrap();
    let job = |name: &str| {
        jobs.iter()
            .find(|j| j["job_name"] == name)
            .unwrap_or_else(|| panic!("job {name}"))
    };
    let worker_port = env(service(&doc, "steward"), "STEWARD_METRICS_ADDR")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let worker = job("steward-worker");
    assert_eq!(worker["dns_sd_configs"][0]["names"][0], "steward");
    assert_eq!(
        worker["dns_sd_configs"][0]["port"]
            .as_u64()
            .unwrap()
            .to_string(),
        worker_port
    );
    let api_listen = strings(&service(&doc, "steward-api")["command"]).join(" ");
    let api_target = job("steward-api")["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap()
        .to_string();
    let api_port = api_target.rsplit(':').next().unwrap();
    assert!(
        api_target.starts_with("steward-api:") && api_listen.contains(&format!(":{api_port}")),
        "{api_target} vs {api_listen}"
    );
    // Prometheus and the workers send their alerts to the compose file's
    // Alertmanager, whose config Alertmanager's own checker accepts.
    let am = service(&doc, "alertmanager");
    let am_port = strings(&am["ports"])
        .first()
        .and_then(|p| p.rsplit(':').next().map(str::to_string))
        .unwrap();
    assert_eq!(
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
        format!("alertmanager:{am_port}").as_str()
    );
    let loaded = config::load(&mounted_config(&doc)).unwrap();
    assert_eq!(
        loaded.config.alerts.alertmanager,
        vec![format!("http://alertmanager:{am_port}")]
    );
    let checked = std::process::Command::new("amtool")
        .args(["check-config"])
        .arg(dir.join("alertmanager.yml"))
        .output()
        .expect("amtool (Debian prometheus-alertmanager): run ./scripts/setup");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
}
