//! Alerts into a real Alertmanager (Debian `prometheus-alertmanager`)
//! routing to a webhook receiver the test reads: delivered through the
//! outbox, retried while Alertmanager is down without failing the raise,
//! grouped by Alertmanager, and resolved when their condition ends.

use std::time::Duration;

use steward_activities::alertmanager::Links;
use steward_activities::alerts::AlertSink;
use steward_proto::v1::Alert;
use steward_tests::{Alertmanager, free_port, temp_dir, wait_for};

fn drill_alert(backup: &str) -> Alert {
    Alert {
        id: format!("drill-{backup}"),
        severity: "critical".into(),
        kind: "restore.failed".into(),
        subject: format!("/backups/{backup}.age"),
        message: format!("restore drill mismatch: the backup {backup} did not restore as taken"),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        detail_json: String::new(),
        workflow_id: "restore-drill-manual-1".into(),
        run_id: "0195f3a2-0000-7000-8000-000000000001".into(),
    }
}

fn delivery(sink: &AlertSink) -> Vec<String> {
    sink.list()
        .iter()
        .map(|a| {
            a["delivery"]["alertmanager"]["state"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn alerts_reach_alertmanager_grouped_retried_while_it_is_down_and_resolved_when_over() {
    let dir = temp_dir();
    let alerts = dir.path().join("alerts");
    let links = Links {
        page: Some("https://steward.example/".into()),
        temporal_ui: Some(("http://127.0.0.1:8080".into(), "default".into())),
    };

    // Alertmanager is down: raising still succeeds, and each alert says
    // why it is not delivered yet.
    let down = AlertSink::new(alerts.clone(), None).with_alertmanager(
        vec![format!("http://127.0.0.1:{}", free_port())],
        links.clone(),
    );
    for backup in ["a", "b"] {
        down.raise(&drill_alert(backup)).await.unwrap();
    }
    for a in down.list() {
        let d = &a["delivery"]["alertmanager"];
        assert_eq!(d["state"], "failing", "{a}");
        assert_eq!(d["attempts"], 1, "{a}");
        assert!(
            d["last_error"].as_str().unwrap().contains("/api/v2/alerts"),
            "{a}"
        );
    }

    // It comes up: a later pass hands both over, and Alertmanager groups
    // them (by alertname) into one notification.
    let am = Alertmanager::start(&["alertname"]).await;
    let sink = AlertSink::new(alerts.clone(), None).with_alertmanager(vec![am.url.clone()], links);
    wait_for("both delivered", Duration::from_secs(30), || async {
        sink.deliver().await;
        delivery(&sink)
            .iter()
            .all(|s| s == "delivered")
            .then_some(())
    })
    .await
    .unwrap();
    let firing = am
        .notified("one notification with both", |n| {
            n["status"] == "firing" && n["alerts"].as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
    assert_eq!(
        firing["groupLabels"]["alertname"], "restore.failed",
        "{firing}"
    );
    let first = &firing["alerts"][0];
    assert_eq!(first["labels"]["severity"], "critical", "{first}");
    assert_eq!(first["labels"]["workflow"], "restore", "{first}");
    assert!(
        first["labels"]["backup"]
            .as_str()
            .is_some_and(|b| b.starts_with("/backups/")),
        "{first}"
    );
    assert_eq!(
        first["annotations"]["workflow_id"], "restore-drill-manual-1",
        "{first}"
    );
    assert!(
        first["annotations"]["temporal_ui"]
            .as_str()
            .unwrap()
            .contains("/namespaces/default/workflows/restore-drill-manual-1/"),
        "{first}"
    );
    assert_eq!(first["generatorURL"], "https://steward.example/", "{first}");

    // The condition ends (a drill verified): both resolve, in
    // Alertmanager too.
    assert_eq!(sink.resolve("restore.failed", "").await, 2);
    am.notified("both resolved", |n| {
        n["status"] == "resolved" && n["alerts"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    for a in sink.list() {
        assert!(a["resolved_at"].is_string(), "{a}");
        assert_eq!(a["delivery"]["alertmanager"]["state"], "delivered", "{a}");
    }
    assert_eq!(sink.resolve("restore.failed", "").await, 0, "resolved once");
}
