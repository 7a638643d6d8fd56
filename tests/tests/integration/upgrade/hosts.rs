//! An app pinned to its host (`runs_on`) with two workers on two hosts,
//! each with its own data folder, sharing a PostgreSQL store: the app's
//! steps run on its host only, and wait for it when its worker is gone.

use futures::StreamExt as _;
use steward_tests::{Steward, read};

use super::*;

/// The app pinned to host `app1`, whose worker (the harness's) says it runs
/// there, and a second worker on host `other` with its own data folder.
async fn two_hosts(test: &str, wait_alert: &str) -> (App, Steward) {
    let top = format!("[worker]\nhost = \"app1\"\nhost_wait_alert = \"{wait_alert}\"\n");
    let app = App::on(
        Backend::Postgres,
        test,
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        "runs_on = \"app1\"\n\n[[repos]]\nname = \"far\"\npath = \"{root}/far\"\nruns_on = \"far\"\n",
        &top,
    )
    .await;
    let text = read(&app.config);
    assert!(text.contains("steward-data") && text.contains("host = \"app1\""));
    let other = app.root.join("other.toml");
    std::fs::write(
        &other,
        text.replace("steward-data", "other-data")
            .replace("host = \"app1\"", "host = \"other\""),
    )
    .unwrap();
    let other = Steward::worker(&other, &app.server.address);
    (app, other)
}

/// The `upgrade.host-wait` alerts both hosts wrote: a host writes the
/// alerts its worker raises into its own data folder (gather them on one
/// host with `[alerts] webhook`).
fn host_wait_alerts(app: &App) -> Vec<serde_json::Value> {
    let other = app.root.join("other.toml");
    let (code, out, err) = steward_tests::run_steward(
        &other,
        &app.server.address,
        &["alerts", "list", "--limit", "1000"],
    );
    assert_eq!(code, 0, "{err}");
    let mut all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    all.extend(app.alerts());
    all.retain(|a| a["kind"] == "upgrade.host-wait");
    all
}

/// `steward workers`, once a worker of each host polls.
async fn workers_of_both_hosts(app: &App) -> serde_json::Value {
    wait_for(
        "workers of both hosts polling",
        Duration::from_secs(60),
        || async {
            let w = app.ok(&["workers"]);
            let shared: Vec<&str> = w["workers"]
                .as_array()?
                .iter()
                .filter_map(|p| p["identity"].as_str())
                .collect();
            let app1 = w["hosts"]
                .as_array()?
                .iter()
                .find(|h| h["host"] == "app1")?;
            let on_app1 = app1["workers"].as_array()?;
            (shared.iter().any(|i| i.ends_with("host other"))
                && shared.iter().any(|i| i.ends_with("host app1"))
                && !on_app1.is_empty())
            .then(|| w.clone())
        },
    )
    .await
    .unwrap()
}

/// The app's steps in its upgrade's history: (activity, worker).
fn steps_and_workers(app: &App) -> Vec<(String, String)> {
    let timeline = app.ok(&["history", &sso(), "--json"]);
    timeline
        .as_array()
        .expect("a timeline")
        .iter()
        .filter(|e| e["kind"] == "activity")
        .filter(|e| {
            let name = e["name"].as_str().unwrap_or_default();
            name == steward_proto::names::UPGRADE_INSPECT
                || name == steward_proto::names::UPGRADE_STEP
        })
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e["detail"]["worker"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_app_pinned_to_its_host_runs_every_step_there_and_workers_lists_both_hosts() {
    let (app, _other) = two_hosts("hosts-pinned", "5m").await;
    let w = workers_of_both_hosts(&app).await;
    let app1 = w["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "app1")
        .unwrap();
    assert_eq!(
        app1["pinned"],
        serde_json::json!(["apps[0].runs_on"]),
        "{w}"
    );
    assert!(
        app1["task_queue"].as_str().unwrap().ends_with("@app1"),
        "{w}"
    );
    for p in app1["workers"].as_array().unwrap() {
        assert!(
            p["identity"].as_str().unwrap().ends_with("host app1"),
            "only app1's workers poll its queue: {w}"
        );
        assert!(!p["last_poll"].as_str().unwrap().is_empty(), "{w}");
    }

    let r = app.run(&["--reason", "pinned to its host"]);
    assert_eq!(r.outcome, "upgraded", "{r:?}");
    assert_eq!(app.serving(), "1.1.0+5.1.0");
    let steps = steps_and_workers(&app);
    assert!(
        steps.len() >= 5,
        "inspect, undeploy, snapshot, deploy, health: {steps:?}"
    );
    for (step, worker) in &steps {
        assert!(
            worker.ends_with("host app1"),
            "{step} ran on `{worker}`, not on the app's host: {steps:?}"
        );
    }
    let (code, out, err) = app.cli(&["check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("app1") && out.contains("far"),
        "check-config names the hosts: {out}"
    );
    // No worker runs on `far`, where a repo is pinned: each worker's poll
    // check says so once; a worker never warns about its own host.
    let warning = "no worker polls host `far`";
    wait_for(
        "the poll check's warning",
        Duration::from_secs(30),
        || async { app.worker_log().contains(warning).then_some(()) },
    )
    .await
    .unwrap();
    let log = app.worker_log();
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    assert!(log.contains("repos[0].runs_on"), "{log}");
    assert!(!log.contains("no worker polls host `app1`"), "{log}");
}

#[tokio::test]
async fn a_step_whose_host_lost_its_worker_waits_alerts_and_runs_when_the_worker_returns() {
    let (mut app, _other) = two_hosts("hosts-wait", "3s").await;
    workers_of_both_hosts(&app).await;
    app.start_and_reach("health_gate").await;
    app.worker().kill9();

    // The heartbeat notices the killed step in 10 s; its retry is for app1
    // only, and no worker of app1 takes it within 3 s.
    let alert = wait_for("the host-wait alert", Duration::from_secs(90), || async {
        host_wait_alerts(&app).into_iter().next()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; the run so far:\n{}", app.cli(&["history", &sso()]).1));
    assert_eq!(alert["subject"], "sso", "{alert}");
    assert!(
        alert["message"].as_str().unwrap().contains("host `app1`"),
        "{alert}"
    );
    let inbox = wait_for("the run in the inbox", Duration::from_secs(30), || async {
        let inbox = app.ok(&["inbox"]);
        inbox["runs"]
            .as_array()?
            .iter()
            .any(|r| {
                r["workflow_id"] == sso() && r["waiting_for_hosts"] == serde_json::json!(["app1"])
            })
            .then_some(inbox)
    })
    .await
    .unwrap();
    let status = app.status().await.expect("the run answers while it waits");
    assert_eq!(
        status.phase, "health_gate",
        "nothing ran elsewhere: {inbox}"
    );
    let metadata = Command::new(steward_tests::temporal_bin())
        .args([
            "workflow",
            "metadata",
            "--workflow-id",
            &sso(),
            "--output",
            "json",
        ])
        .args(["--address", &app.server.address, "--namespace", "default"])
        .output()
        .unwrap();
    let metadata = String::from_utf8_lossy(&metadata.stdout);
    assert!(
        metadata.contains("waiting for a worker on host app1"),
        "the run's details say why it waits: {metadata}"
    );

    app.worker().restart();
    wait_for("the run to end", Duration::from_secs(120), || async {
        let phase = app.status().await.map(|s| s.phase).unwrap_or_default();
        (phase == "upgraded").then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; the run so far:\n{}\nthe worker of app1:\n{}",
            app.cli(&["history", &sso()]).1,
            app.worker_log()
        )
    });
    app.assert_lost_nothing("app1's worker killed in the health gate", "upgraded")
        .await;
    // The run no longer says it waits: the attribute was removed, not
    // left behind on the closed run.
    let query = format!(
        "WorkflowId = '{}' AND {} IS NOT NULL",
        sso(),
        steward_proto::names::SA_HOST_WAIT
    );
    let still: Vec<_> = app
        .client
        .list_workflows(query.clone(), Default::default())
        .collect()
        .await;
    assert!(still.is_empty(), "{query}: {still:?}");
    let all: Vec<_> = app
        .client
        .list_workflows(format!("WorkflowId = '{}'", sso()), Default::default())
        .collect()
        .await;
    assert_eq!(all.len(), 1, "the run is in visibility");
    assert_eq!(host_wait_alerts(&app).len(), 1, "one alert for one wait");
}
