//! `FailoverDrill` on a real PostgreSQL primary and streaming standby that
//! each test makes from Debian's PostgreSQL (`pg_basebackup`, two clusters
//! on their own ports), with a real promotion as the trigger.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use steward_proto::v1::{FailoverDrillResult, FailoverStatus};
use steward_tests::{
    Backend, Harness, PgPair, database, task_queue, temp_dir, wait_for, write_config,
};
use steward_workflows::FailoverDrill;

struct Env {
    h: Harness,
    pair: PgPair,
}

steward_tests::derefs_to_harness!(Env);

/// A worker whose config drills `pair` with `trigger` (and `extra` keys).
async fn env(test: &str, pair: PgPair, trigger: &[&str], extra: &str) -> Env {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let store = database(Backend::Sqlite, &root).await;
    let trigger: Vec<String> = trigger.iter().map(|a| format!("{a:?}")).collect();
    let config = write_config(
        &root,
        &store,
        &task_queue(test),
        &[],
        &format!(
            r#"
[[drills]]
name = "statehub-db"
url = "{url}"
trigger = [{trigger}]
trigger_note = "crashes the primary (pg_ctl stop -m immediate) and promotes the standby"
rto_seconds = 20
baseline_seconds = 2
observe_seconds = 30
{extra}
"#,
            url = pair.service_url(),
            trigger = trigger.join(", "),
        ),
    );
    Env {
        h: Harness::with_worker(dir, config).await,
        pair,
    }
}

impl Env {
    /// `steward drill failover run statehub-db`: exit code and result.
    fn drill(&self) -> (i32, FailoverDrillResult) {
        let (code, out, err) = self.cli(&[
            "drill",
            "failover",
            "run",
            "statehub-db",
            "--reason",
            "quarterly drill",
        ]);
        let result = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        (code, result)
    }

    fn alerts_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["kind"] == kind)
            .collect()
    }
}

fn roles(r: &FailoverDrillResult) -> Vec<(String, String)> {
    r.measured
        .as_ref()
        .unwrap()
        .hosts
        .iter()
        .map(|h| (h.host.clone(), h.role.clone()))
        .collect()
}

#[tokio::test]
async fn a_promotion_fails_over_within_the_targets_keeps_every_acknowledged_write_and_says_what_it_left()
 {
    let pair = PgPair::start(true).await;
    let trigger = pair.failover_script();
    let rebuild = pair.rebuild_script();
    let e = env(
        "failover",
        pair,
        &["sh", trigger.to_str().unwrap()],
        &format!("recovery = [\"sh\", \"{}\"]", rebuild.display()),
    )
    .await;
    let (primary, standby) = (e.pair.primary.host(), e.pair.standby.host());
    let (code, r) = e.drill();
    assert_eq!((code, r.outcome.as_str()), (0, "passed"), "{r:#?}");
    let m = r.measured.clone().unwrap();
    assert!(m.rto_seconds > 0.0 && m.rto_seconds < 20.0, "{m:#?}");
    assert!(!m.first_failed_write.is_empty() && !m.first_write_after.is_empty());
    assert_eq!(
        m.lost_writes, 0,
        "synchronous replication loses nothing: {m:#?}"
    );
    assert!(m.writes_failed > 0, "the failure was seen: {m:#?}");
    assert!(m.writes_acknowledged >= 20, "{m:#?}");
    assert_eq!(
        m.verified_on, standby,
        "the markers were checked on the new primary"
    );
    assert!(
        m.probe.iter().any(|s| !s.ok) && m.probe.last().unwrap().ok,
        "the probe saw the outage and the recovery: {:#?}",
        m.probe
    );
    assert_eq!(
        roles(&r),
        [
            (primary.clone(), "down".to_string()),
            (standby.clone(), "primary".to_string())
        ],
        "after the failover"
    );
    let pre = r.preflight.clone().unwrap();
    assert_eq!(pre.streaming.len(), 1, "{pre:#?}");
    assert!(pre.created_table);
    let recovery = r.recovery.clone().unwrap();
    assert!(recovery.ran && recovery.ok, "{recovery:#?}");
    // The shipped scripts ran, and their output is kept, not just its
    // first line: the rejoin's own words and pg_ctl's after them.
    let trigger = r.trigger.clone().unwrap();
    assert!(
        trigger
            .message
            .contains("pg-failover: promoting the standby"),
        "{trigger:#?}"
    );
    assert!(
        recovery.message.contains("pg-rejoin: rebuilding") && recovery.message.lines().count() > 2,
        "{recovery:#?}"
    );
    assert_eq!(
        r.left,
        format!("changed: {primary}: primary → standby; {standby}: standby → primary"),
        "the drill says what it left"
    );
    assert_eq!(
        e.pair
            .standby
            .psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"),
        "1",
        "the old primary streams from the new one"
    );
    assert_eq!(
        e.pair
            .standby
            .psql("SELECT coalesce(to_regclass('steward_drill_markers')::text, 'gone')"),
        "gone",
        "the marker table the drill made is gone"
    );

    // Evidence: JSON with its SHA-256, and Markdown for people.
    let json = std::fs::read(&r.evidence_json).unwrap();
    let sum = std::fs::read_to_string(format!("{}.sha256", r.evidence_json)).unwrap();
    assert!(
        sum.starts_with(&hex::encode(Sha256::digest(&json))),
        "{sum}"
    );
    assert_eq!(r.evidence_sha256, hex::encode(Sha256::digest(&json)));
    let md = std::fs::read_to_string(&r.evidence_markdown).unwrap();
    assert!(
        md.contains("# Failover drill `statehub-db`: passed"),
        "{md}"
    );
    assert!(md.contains("| RTO"), "{md}");
    assert!(
        md.contains("crashes the primary"),
        "the trigger as documented: {md}"
    );

    let (code, out, err) = e.cli(&["drill", "failover", "last", "statehub-db"]);
    assert_eq!(code, 0, "{err}");
    let last: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(last["last_passed"]["run_id"], r.run_id.as_str(), "{last}");
    assert_eq!(e.alerts_of("failover.passed").len(), 1);
}

#[tokio::test]
async fn a_worker_killed_mid_drill_still_ends_with_a_measured_verified_result() {
    let pair = PgPair::start(true).await;
    let trigger = pair.failover_script();
    let mut e = env(
        "failover-kill",
        pair,
        &["sh", trigger.to_str().unwrap()],
        "",
    )
    .await;
    let (code, out, err) = e.cli(&["drill", "failover", "run", "statehub-db", "--no-wait"]);
    assert_eq!(code, 0, "{err}");
    let started: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = started["workflow_id"].as_str().unwrap().to_string();
    wait_for("the trigger", Duration::from_secs(60), || async {
        let s: FailoverStatus = e
            .query::<FailoverDrill, _>(&id, FailoverDrill::status)
            .await
            .ok()?;
        (s.phase == "observing").then_some(())
    })
    .await
    .unwrap();
    e.worker().kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    e.worker().restart();
    let r: FailoverDrillResult = e
        .result::<FailoverDrill>(&id, Duration::from_secs(180))
        .await;
    assert_eq!(r.outcome, "passed", "{r:#?}");
    let m = r.measured.clone().unwrap();
    assert_eq!(m.lost_writes, 0, "{m:#?}");
    assert!(m.writes_failed > 0 && m.rto_seconds > 0.0, "{m:#?}");
    assert_eq!(m.verified_on, e.pair.standby.host());
    assert_eq!(
        r.left,
        format!(
            "changed: {}: primary → down; {}: standby → primary",
            e.pair.primary.host(),
            e.pair.standby.host()
        )
    );
    steward_tests::assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn a_standby_behind_its_lag_bound_is_refused_with_how_far_behind_it_was() {
    let pair = PgPair::start(false).await;
    // The standby keeps streaming but stops replaying; the primary writes
    // a few MiB meanwhile.
    pair.standby.psql("SELECT pg_wal_replay_pause()");
    pair.primary.psql(
        "CREATE TABLE ballast AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 5000) g",
    );
    let trigger = pair.failover_script();
    let e = env(
        "failover-lagging",
        pair,
        &["sh", trigger.to_str().unwrap()],
        "max_standby_lag = \"1MiB\"\n",
    )
    .await;
    let (code, r) = e.drill();
    assert_eq!((code, r.outcome.as_str()), (1, "refused"), "{r:#?}");
    let pre = r.preflight.clone().unwrap();
    assert_eq!(
        pre.streaming.len(),
        1,
        "the lagging standby is listed: {pre:#?}"
    );
    assert!(
        pre.max_lag_bytes_seen > 1024 * 1024,
        "how far behind it was: {pre:#?}"
    );
    assert!(
        r.message.contains("within max_standby_lag 1MiB") && r.message.contains("replay lag"),
        "{}",
        r.message
    );
    assert!(e.pair.primary.running(), "the trigger never ran");
    e.pair.standby.psql("SELECT pg_wal_replay_resume()");
}

#[tokio::test]
async fn a_standby_that_is_not_streaming_is_refused_at_preflight_and_nothing_is_touched() {
    let pair = PgPair::start(false).await;
    pair.standby.crash();
    let trigger = pair.failover_script();
    let e = env(
        "failover-refused",
        pair,
        &["sh", trigger.to_str().unwrap()],
        "",
    )
    .await;
    let (code, r) = e.drill();
    assert_eq!((code, r.outcome.as_str()), (1, "refused"), "{r:#?}");
    assert!(
        r.message.contains(&format!(
            "no standby is streaming from the primary {}",
            e.pair.primary.host()
        )),
        "{}",
        r.message
    );
    assert_eq!(r.left, "as found (nothing was done)");
    assert!(e.pair.primary.running(), "the trigger never ran");
    assert_eq!(e.pair.primary.psql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(
        e.pair
            .primary
            .psql("SELECT coalesce(to_regclass('steward_drill_markers')::text, 'none')"),
        "none"
    );
    assert_eq!(e.alerts_of("failover.refused").len(), 1);
}

#[tokio::test]
async fn a_trigger_that_does_nothing_ends_failed_with_the_probes_view_not_a_hang() {
    let pair = PgPair::start(true).await;
    let e = env("failover-noop", pair, &["true"], "").await;
    // A short wait, so the test does not wait the 30 s a real drill would.
    let config = std::fs::read_to_string(&e.config)
        .unwrap()
        .replace("observe_seconds = 30", "observe_seconds = 4");
    std::fs::write(&e.config, config).unwrap();
    let mut e = e;
    e.worker().kill9();
    e.start_worker();
    let started = std::time::Instant::now();
    let (code, r) = e.drill();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((code, r.outcome.as_str()), (1, "failed"), "{r:#?}");
    assert!(
        r.message.contains("the trigger did not interrupt writes"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("the probe: ok"),
        "the probe's view: {}",
        r.message
    );
    assert_eq!(r.measured.as_ref().unwrap().writes_failed, 0);
    assert_eq!(r.left, "as found");
    let alerts = e.alerts_of("failover.failed");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["severity"], "critical");
}

#[tokio::test]
async fn a_standby_that_fell_behind_loses_acknowledged_writes_and_the_drill_counts_them() {
    let pair = PgPair::start(false).await;
    // The standby stops receiving; the primary keeps acknowledging for a
    // second and a half; then the primary crashes and the standby is
    // promoted without those writes.
    let detach = pair.script(
        "detach.sh",
        &format!(
            "psql -h 127.0.0.1 -p {s} -U postgres -d postgres -c \"ALTER SYSTEM SET primary_conninfo = ''\" -c \"SELECT pg_reload_conf()\" >/dev/null\n\
             sleep 1.5\n\
             sh {failover}\n",
            s = pair.standby.port,
            failover = pair.failover_script().display(),
        ),
    );
    let e = env(
        "failover-lossy",
        pair,
        &["sh", detach.to_str().unwrap()],
        "",
    )
    .await;
    let (code, r) = e.drill();
    assert_eq!((code, r.outcome.as_str()), (1, "target-missed"), "{r:#?}");
    let m = r.measured.clone().unwrap();
    assert!(
        m.lost_writes >= 5,
        "about 15 writes were acknowledged after the standby left: {m:#?}"
    );
    assert!(m.rpo_seconds > 0.5, "{m:#?}");
    assert_eq!(m.lost_markers.len() as u64, m.lost_writes.min(50));
    assert!(
        r.message.contains("acknowledged writes lost"),
        "{}",
        r.message
    );
    let alerts = e.alerts_of("failover.target-missed");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["detail"]["lost_writes"], m.lost_writes);
}

#[tokio::test]
async fn a_drill_pinned_to_the_database_host_runs_its_trigger_there_only() {
    let pair = PgPair::start(true).await;
    let trigger = pair.failover_script();
    let e = env(
        "failover-hosts",
        pair,
        &["sh", trigger.to_str().unwrap()],
        "runs_on = \"db\"\n\n[worker]\nhost = \"app\"\n",
    )
    .await;
    let text = steward_tests::read(&e.config);
    let data = format!("data_dir = \"{}\"", e.root.join("data").display());
    assert!(text.contains(&data) && text.contains("host = \"app\""));
    let db = e.root.join("db.toml");
    std::fs::write(
        &db,
        text.replace(
            &data,
            &format!("data_dir = \"{}\"", e.root.join("data-db").display()),
        ),
    )
    .unwrap();
    // The same config on the database's host, which --host names.
    let _db = steward_tests::Steward::worker_with(&db, &e.server.address, &["--host", "db"]);

    // check-config shows the drill's URL as the drill connects.
    let shown = e.ok(&["check-config"]);
    let url = shown["drills"][0]["url"].as_str().unwrap();
    assert!(
        url.contains(&e.pair.primary.host())
            && url.contains(&e.pair.standby.host())
            && url.ends_with("target_session_attrs=read-write"),
        "{url}"
    );

    let (code, r) = e.drill();
    assert_eq!((code, r.outcome.as_str()), (0, "passed"), "{r:#?}");
    assert!(
        r.evidence_json.contains(&r.run_id),
        "the evidence folder is the run's own: {}",
        r.evidence_json
    );
    let timeline = e.ok(&["history", &r.workflow_id, "--json"]);
    steward_tests::assert_ran_only_on(&timeline, steward_proto::names::FAILOVER_TRIGGER, "db");
    steward_tests::assert_every_run_closed_without_task_failures(&e.client).await;
}

/// The value of the first sample of `name` whose labels hold `label` in
/// the worker's /metrics at `addr`.
fn sample(addr: &str, name: &str, label: &str) -> Option<f64> {
    let text = steward_tests::http_get(addr, "/metrics")?;
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn the_worker_watches_the_drilled_services_replication_between_drills() {
    let pair = PgPair::start(false).await;
    let trigger = pair.failover_script();
    let metrics = format!("127.0.0.1:{}", steward_tests::free_port());
    let e = env(
        "failover-watch",
        pair,
        &["sh", trigger.to_str().unwrap()],
        &format!("\n[worker]\nmetrics_addr = \"{metrics}\"\n\n[guard]\ncheck_seconds = 1\n"),
    )
    .await;
    let drill = "drill=\"statehub-db\"";
    wait_for("one standby streaming", Duration::from_secs(60), || async {
        (sample(&metrics, "steward_drill_standbys_streaming", drill)? == 1.0).then_some(())
    })
    .await
    .unwrap();
    let lag = sample(&metrics, "steward_drill_standby_lag_bytes", drill)
        .expect("the standby's lag is measured");
    assert!(lag >= 0.0, "{lag}");
    let seconds = sample(&metrics, "steward_drill_standby_lag_seconds", drill)
        .expect("the standby's lag in seconds is measured");
    assert!((0.0..60.0).contains(&seconds), "{seconds}");

    // The standby stops: none streams; the primary stops: none answers.
    e.pair.standby.crash();
    wait_for("no standby streaming", Duration::from_secs(60), || async {
        (sample(&metrics, "steward_drill_standbys_streaming", drill)? == 0.0).then_some(())
    })
    .await
    .unwrap();
    e.pair.primary.crash();
    wait_for("no primary", Duration::from_secs(60), || async {
        (sample(&metrics, "steward_drill_standbys_streaming", drill)? == -1.0).then_some(())
    })
    .await
    .unwrap();
    let log = e.worker_log();
    assert_eq!(
        log.matches("drill `statehub-db`: cannot read its replication")
            .count(),
        1,
        "told once: {log}"
    );
}

#[tokio::test]
async fn a_drill_that_fails_before_it_begins_leaves_evidence_and_lets_go_of_its_lease() {
    let pair = PgPair::start(true).await;
    let trigger = pair.failover_script();
    let mut e = env(
        "failover-unknown",
        pair,
        &["sh", trigger.to_str().unwrap()],
        "",
    )
    .await;
    // The worker runs on a config without the drill (one not yet rolled
    // out); the CLI's has it.
    let full = steward_tests::read(&e.config);
    let without = e.config.with_file_name("worker.toml");
    let cut = full.find("[[drills]]").expect("the drill's table");
    std::fs::write(&without, &full[..cut]).unwrap();
    e.worker = Some(steward_tests::Steward::worker(&without, &e.server.address));

    let (code, r) = e.drill();
    assert_eq!((code, r.outcome.as_str()), (1, "failed"), "{r:#?}");
    assert!(r.message.contains("the preflight failed"), "{}", r.message);
    assert_eq!(r.left, "as found (nothing was done)");
    assert!(
        std::path::Path::new(&r.evidence_json).is_file(),
        "evidence written: {r:#?}"
    );
    assert_eq!(e.alerts_of("failover.failed").len(), 1);
    let (code, last, err) = e.cli(&["drill", "failover", "last", "statehub-db"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        last.contains("the preflight failed"),
        "the progress event: {last}"
    );

    // The worker gets the drill: the next one is not refused for a lease.
    e.worker = Some(steward_tests::Steward::worker(&e.config, &e.server.address));
    let (code, r) = e.drill();
    assert_eq!((code, r.outcome.as_str()), (0, "passed"), "{r:#?}");
    // It passed: the failed drill's alert is over.
    let failed = e.alerts_of("failover.failed");
    assert!(failed[0]["resolved_at"].is_string(), "{failed:?}");
}
