//! The Kubernetes manifests (`deploy/kustomization.yaml` and
//! `deploy/kubernetes/`) cannot be applied here (no cluster), so these
//! tests validate every resource against the Kubernetes schemas offline
//! (`kubernetes-validate`, strict) and hold the manifests to the config
//! they mount and to the `Dockerfile`: ports, user, grace period, volumes,
//! the secrets they read, a worker per node that needs one.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;
use steward_tests::workspace;

use super::deploy::strings;
use steward_worker::config::{self, Config};

/// The Kubernetes version the manifests are validated against: the oldest
/// still supported upstream when they were written.
const KUBERNETES: &str = "1.30.0";

fn deploy() -> PathBuf {
    workspace().join("deploy")
}

fn kustomization() -> Value {
    let text = std::fs::read_to_string(deploy().join("kustomization.yaml"))
        .expect("deploy/kustomization.yaml");
    serde_yaml::from_str(&text).expect("the kustomization is YAML")
}

/// Every resource the kustomization lists, with the file it is in.
fn resources() -> Vec<(PathBuf, Value)> {
    let mut all = Vec::new();
    for file in strings(&kustomization()["resources"]) {
        let path = deploy().join(&file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        for doc in text.split("\n---\n") {
            let value: Value = serde_yaml::from_str(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !value.is_null() {
                all.push((path.clone(), value));
            }
        }
    }
    all
}

fn resource(kind: &str, name: &str) -> Value {
    resources()
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} in the kustomization"))
}

/// The one container of a Deployment's or a Job's pod.
fn container(workload: &Value) -> &Value {
    let containers = workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "{workload:?}");
    &containers[0]
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"] == name)
}

fn env_value<'a>(container: &'a Value, name: &str) -> &'a str {
    env(container, name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("{name} is set in {container:?}"))
}

/// The config the kustomization makes into the ConfigMap, and its path.
fn mounted_config() -> (PathBuf, Config) {
    let generated = &kustomization()["configMapGenerator"][0];
    assert_eq!(generated["name"], "steward-config");
    let file = strings(&generated["files"])
        .into_iter()
        .next()
        .expect("the config file");
    let (key, source) = file.split_once('=').expect("steward.toml=<file>");
    assert_eq!(key, "steward.toml");
    let path = deploy().join(source);
    let text = std::fs::read_to_string(&path).unwrap();
    let loaded = config::parse(&text, Path::new("/etc/steward/steward.toml"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, loaded.config)
}

/// The runtime user the Dockerfile runs as.
fn image_user() -> u64 {
    let text = std::fs::read_to_string(workspace().join("Dockerfile")).unwrap();
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the image names its user");
    user.trim().parse().expect("a numeric user")
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let bin = workspace().join(".venv/bin/kubernetes-validate");
    assert!(
        bin.exists(),
        "{} is missing: run ./scripts/setup (it installs kubernetes-validate into .venv)",
        bin.display()
    );
    let files: Vec<String> = strings(&kustomization()["resources"]);
    let mut listed: Vec<String> = files.clone();
    listed.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(deploy().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("kubernetes/{n}"))
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk, "the kustomization lists every manifest");
    let out = Command::new(&bin)
        .args(["--kubernetes-version", KUBERNETES, "--strict"])
        .args(files.iter().map(|f| deploy().join(f)))
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert_eq!(
        report.matches(" passed for resource ").count(),
        resources().len(),
        "every resource was validated: {report}"
    );
}

#[test]
fn the_manifests_agree_with_the_config_and_the_image() {
    let (path, cfg) = mounted_config();
    assert!(
        cfg.database_url.is_none(),
        "the store URL comes from the Secret"
    );
    for repo in &cfg.repos {
        assert!(
            repo.url.is_some(),
            "{}: pods share no disk, so repos are given by url ({})",
            repo.name,
            path.display()
        );
    }
    let compose = config::parse(
        &std::fs::read_to_string(deploy().join("steward.toml")).unwrap(),
        Path::new("/etc/steward/steward.toml"),
    )
    .unwrap()
    .config;
    assert_eq!(cfg.task_queue, compose.task_queue);
    assert_eq!(cfg.data_dir, compose.data_dir);
    assert_eq!(format!("{:?}", cfg.worker), format!("{:?}", compose.worker));
    assert_eq!(
        format!("{:?}", cfg.temporal),
        format!("{:?}", compose.temporal)
    );

    let dockerfile = std::fs::read_to_string(workspace().join("Dockerfile")).unwrap();
    let uid = image_user();
    let workloads = ["steward-worker", "steward-worker-db1", "steward-api"]
        .map(|n| resource("Deployment", n))
        .into_iter()
        .chain([resource("Job", "steward-schedules-sync")]);
    for w in workloads {
        let name = w["metadata"]["name"].as_str().unwrap().to_string();
        let pod = &w["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["runAsUser"].as_u64(),
            Some(uid),
            "{name}"
        );
        let c = container(&w);
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{name}"
        );
        for bound in ["requests", "limits"] {
            assert!(
                c["resources"][bound]["cpu"].is_string()
                    && c["resources"][bound]["memory"].is_string(),
                "{name}: {bound}"
            );
        }
        // The config where the image looks for it, from the ConfigMap.
        let config_at = env_value(c, "STEWARD_CONFIG");
        assert!(
            dockerfile.contains(&format!("ENV STEWARD_CONFIG={config_at}")),
            "{name}"
        );
        let mounts = c["volumeMounts"].as_sequence().unwrap();
        let config_mount = mounts
            .iter()
            .find(|m| {
                m["mountPath"].as_str() == Path::new(config_at).parent().and_then(Path::to_str)
            })
            .unwrap_or_else(|| panic!("{name} mounts its config"));
        let volume = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == config_mount["name"])
            .unwrap();
        assert_eq!(volume["configMap"]["name"], "steward-config", "{name}");
        // The store's URL, with its password, from the Secret.
        let url = &env(c, config::DATABASE_URL_ENV).unwrap()["valueFrom"]["secretKeyRef"];
        assert_eq!(
            (url["name"].as_str(), url["key"].as_str()),
            (Some("steward"), Some("database-url")),
            "{name}"
        );
        assert!(
            env_value(c, "TEMPORAL_ADDRESS").ends_with(":7233"),
            "{name}"
        );
        // Writable only where steward writes: its data dir and /tmp.
        if name != "steward-schedules-sync" {
            assert!(
                mounts
                    .iter()
                    .any(|m| m["mountPath"].as_str() == cfg.data_dir.to_str()),
                "{name} has its data dir"
            );
        }
    }

    // The worker: replicas sharing the queue, kept by a disruption budget,
    // given longer than its graceful shutdown, probed where it serves.
    let worker = resource("Deployment", "steward-worker");
    assert!(worker["spec"]["replicas"].as_u64().unwrap() >= 2);
    let pdb = resource("PodDisruptionBudget", "steward-worker");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        worker["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(pdb["spec"]["minAvailable"].as_u64(), Some(1));
    let grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(grace > cfg.worker.graceful_shutdown_seconds);
    let c = container(&worker);
    assert_eq!(strings(&c["args"]), ["worker"]);
    let port_of = |addr: &Option<String>| -> u64 {
        addr.as_deref()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .expect("an address in the config")
    };
    let port_named = |name: &Value| -> Option<u64> {
        c["ports"]
            .as_sequence()?
            .iter()
            .find(|p| &p["name"] == name)?["containerPort"]
            .as_u64()
    };
    let metrics = &Value::from("metrics");
    assert_eq!(port_named(metrics), Some(port_of(&cfg.worker.metrics_addr)));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(
            port_named(&c[probe]["httpGet"]["port"]),
            Some(port_of(&cfg.worker.health_addr)),
            "{probe} where the config serves the probes"
        );
    }

    // A worker per node that needs one: on that node, named after it.
    let db1 = resource("Deployment", "steward-worker-db1");
    let host = env_value(container(&db1), "STEWARD_HOST");
    assert!(config::valid_host(host), "{host}");
    assert_eq!(
        db1["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"].as_str(),
        Some(host)
    );
    assert_eq!(db1["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(container(&db1)["image"], c["image"], "the same image");
    assert!(
        env(c, "STEWARD_HOST").is_none(),
        "the shared workers take no host's steps"
    );

    // The API: two replicas behind the Service, on the port it listens on.
    let api = resource("Deployment", "steward-api");
    assert!(api["spec"]["replicas"].as_u64().unwrap() >= 2);
    let a = container(&api);
    let args = strings(&a["args"]);
    assert_eq!(args[..2], ["api", "--listen"]);
    let port: u64 = args[2].rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(a["ports"][0]["containerPort"].as_u64(), Some(port));
    let service = resource("Service", "steward-api");
    assert_eq!(
        service["spec"]["selector"],
        api["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(port));
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"],
        a["ports"][0]["name"]
    );
    assert_eq!(a["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(a["livenessProbe"]["httpGet"]["path"], "/healthz");
    let key = &env(a, "STEWARD_API_SIGNING_KEY").unwrap()["valueFrom"]["secretKeyRef"];
    assert_eq!(key["name"], "steward");

    // The schedules sync: a Job of the same image.
    let job = resource("Job", "steward-schedules-sync");
    assert_eq!(strings(&container(&job)["args"]), ["schedules", "sync"]);
    assert_eq!(container(&job)["image"], c["image"]);
}
