//! What an ops team's Prometheus and Grafana load from `deploy/`: the
//! rules pass `promtool check rules` and their unit tests in `promtool
//! test rules`, every alert has a test, and every query of the rules and
//! the dashboard names a metric steward exports (or a series the rules
//! record).

use std::collections::BTreeSet;

use steward_tests::{metrics_in, run_promtool, workspace};

fn rules() -> serde_yaml::Value {
    serde_yaml::from_str(
        &std::fs::read_to_string(workspace().join("deploy/prometheus/steward-rules.yml")).unwrap(),
    )
    .unwrap()
}

/// Every rule of the rules file: (record or alert name, expression).
fn rule_list() -> Vec<(String, String)> {
    let rules = rules();
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .unwrap()
                .to_string();
            out.push((name, rule["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn the_rules_load_and_every_alert_passes_its_tests_in_promtool() {
    let dir = workspace().join("deploy/prometheus");
    let (ok, said) = run_promtool(&dir, &["check", "rules", "steward-rules.yml"], None);
    assert!(ok, "{said}");
    let (ok, said) = run_promtool(&dir, &["test", "rules", "steward-rules.test.yml"], None);
    assert!(ok, "{said}");
    let tests = std::fs::read_to_string(dir.join("steward-rules.test.yml")).unwrap();
    let alerts: Vec<String> = rule_list()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| n.starts_with("Steward"))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no test in steward-rules.test.yml"
        );
    }
}

#[test]
fn every_query_of_the_rules_and_the_dashboard_names_a_metric_steward_exports() {
    let rules = rule_list();
    let mut known: BTreeSet<String> = steward_activities::metrics::EXPORTED
        .iter()
        .chain(steward_worker::api::EXPORTED)
        .map(|s| s.to_string())
        .collect();
    known.extend(
        rules
            .iter()
            .filter(|(name, _)| name.starts_with("steward:"))
            .map(|(name, _)| name.clone()),
    );
    // Prometheus' own: whether it could scrape the worker.
    known.insert("up".into());
    let family = |name: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| known.contains(*base))
            .unwrap_or(name)
            .to_string()
    };
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("deploy/grafana/steward-dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let mut queries: Vec<(String, String)> = rules.clone();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push((
                panel["title"].as_str().unwrap().to_string(),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert!(queries.len() > 25, "{queries:?}");
    let mut used = BTreeSet::new();
    for (what, expr) in &queries {
        let named = metrics_in(expr);
        assert!(!named.is_empty(), "{what}: `{expr}` names no metric");
        for name in named {
            let name = family(&name);
            assert!(
                known.contains(&name),
                "{what}: `{expr}` names `{name}`, which steward does not export"
            );
            used.insert(name);
        }
    }
    // The dashboard shows what the operators watch.
    for wanted in [
        "steward_sweeps_total",
        "steward_findings_open",
        "steward_backfill_rows_per_second",
        "steward_backfill_lag_seconds",
        "steward_upgrades_total",
        "steward_restore_drills_total",
        "steward_failover_drills_total",
        "steward_disk_free_bytes",
        "steward_backfill_validation_value",
    ] {
        assert!(used.contains(wanted), "nothing queries {wanted}");
    }
}
