//! The compose deployment cannot run here (no Docker engine), so these
//! tests hold `docker-compose.yml`, the `Dockerfile` and
//! `deploy/steward.toml` to each other and to the worker's config loader:
//! service names, ports, environment, volumes and shutdown timing.

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

fn strings(v: &Value) -> Vec<String> {
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
        "temporal",
        "temporal-ui",
        "steward",
        "steward-schedules",
    ] {
        service(&doc, name);
    }
    for name in ["postgresql", "temporal", "steward"] {
        let test = strings(&service(&doc, name)["healthcheck"]["test"]);
        assert_eq!(test.first().map(String::as_str), Some("CMD"), "{name}");
    }
    for (name, needs) in [
        ("temporal", "postgresql"),
        ("steward", "temporal"),
        ("steward", "postgresql"),
        ("steward-schedules", "temporal"),
        ("temporal-ui", "temporal"),
    ] {
        assert_eq!(
            service(&doc, name)["depends_on"][needs]["condition"].as_str(),
            Some("service_healthy"),
            "{name} waits for a healthy {needs}"
        );
    }
    assert!(
        service(&doc, "temporal")["image"]
            .as_str()
            .unwrap()
            .starts_with("temporalio/auto-setup:"),
        "the official auto-setup image"
    );
    assert_eq!(
        env(service(&doc, "temporal"), "DB"),
        "postgres12",
        "Temporal on PostgreSQL"
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
    let probe = strings(&steward["healthcheck"]["test"]).join(" ");
    assert!(probe.contains(&format!(":{port}/metrics")), "{probe}");

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
    assert!(runtime_stage.contains("USER steward"), "not root");
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
