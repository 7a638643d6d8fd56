//! A rollout from start to end: the happy path on every engine, the dry
//! run, the runtime alert, rollbacks, skipped batches, the lag throttle,
//! continue-as-new, actions by command and HTTP, bad arguments.

use super::*;

/// The message of the alert of `kind`, once it is there.
async fn notice(e: &Env, kind: &str) -> String {
    wait_for(kind, Duration::from_secs(30), || async {
        e.alerts()
            .into_iter()
            .find(|a| a["kind"] == kind)
            .map(|a| a["message"].as_str().unwrap_or_default().to_string())
    })
    .await
    .unwrap()
}

async fn happy_path(target: Target) {
    let e = env(
        "happy",
        target,
        None,
        "approvals = [\"storage-guild\", \"platform-security\"]",
    )
    .await;
    let expected = oracle(&e.pool).await;
    assert!(
        expected.len() > RECORDS as usize / 2,
        "fixture yields many edges"
    );
    let before = checksum(&e.pool).await;

    e.ok(&[
        "backfill",
        "start",
        "bf",
        "--reason",
        "DEVOPS-AOC-19-101",
        "--by",
        "ops-bot",
    ]);
    let (code, _, err) = e.cli(&["backfill", "start", "bf", "--reason", "again"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("already running as workflow backfill-bf"),
        "{err}"
    );

    e.wait_phase("awaiting_freeze").await;
    assert_eq!(
        flag(&e.pool, "ingest").await,
        1,
        "nothing frozen before the operator says so"
    );
    // Those who must act hear that the rollout waits for them.
    let said = notice(&e, "backfill.awaiting-freeze").await;
    assert!(said.contains("steward backfill freeze bf"), "{said}");
    e.ok(&[
        "backfill",
        "freeze",
        "bf",
        "--reason",
        "window opened",
        "--by",
        "ana",
    ]);
    let s = e.wait_phase("awaiting_approval").await;
    assert_eq!(
        (flag(&e.pool, "ingest").await, flag(&e.pool, "outbox").await),
        (0, 0),
        "frozen"
    );
    assert_eq!(
        s.expected,
        expected.len() as u64,
        "dry-run count equals the oracle"
    );
    assert_eq!(
        checksum(&e.pool).await,
        before,
        "the dry-run writes nothing"
    );

    e.ok(&[
        "backfill",
        "approve",
        "bf",
        "--group",
        "storage-guild",
        "--reason",
        "reviewed",
        "--by",
        "sam",
    ]);
    let (code, _, err) = e.cli(&[
        "backfill",
        "approve",
        "bf",
        "--group",
        "marketing",
        "--reason",
        "x",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not an approving group"), "{err}");
    let refused = notice(&e, "backfill.approval-refused").await;
    assert!(refused.contains("not an approving group"), "{refused}");
    let asked = notice(&e, "backfill.awaiting-approval").await;
    assert!(
        asked.contains("storage-guild, platform-security") && asked.contains("--group G"),
        "{asked}"
    );
    assert_eq!(
        e.status().await.phase,
        "awaiting_approval",
        "one group is not enough"
    );
    e.ok(&[
        "backfill",
        "approve",
        "bf",
        "--group",
        "platform-security",
        "--reason",
        "ok",
        "--by",
        "kim",
    ]);

    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    let approved = notice(&e, "backfill.approved").await;
    assert!(
        approved.contains("sam for storage-guild (reviewed)")
            && approved.contains("kim for platform-security (ok)"),
        "{approved}"
    );
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        expected,
        "target equals the oracle"
    );
    assert_eq!(result.rows, expected.len() as u64);
    assert_eq!(
        (flag(&e.pool, "ingest").await, flag(&e.pool, "outbox").await),
        (1, 1),
        "unfrozen"
    );
    let probes: i64 = sqlx::query("SELECT COUNT(*) FROM replay_log")
        .fetch_one(&e.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(probes, 1, "one replay after unfreeze");

    let ev = verify_evidence(&result);
    assert!(
        result.evidence_path.contains("/artifacts/bf/"),
        "{}",
        result.evidence_path
    );
    assert_eq!(ev["dry_run"]["counted"], expected.len() as u64);
    assert_eq!(ev["violations"], 0);
    assert_eq!(ev["validations"].as_array().unwrap().len(), 3);
    assert_eq!(ev["spec_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(ev["command"]["reason"], "DEVOPS-AOC-19-101");
    let actions: Vec<(String, String)> = ev["operator_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["operator"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("start".into(), "ops-bot".into()),
            ("freeze".into(), "ana".into()),
            ("approve".into(), "sam".into()),
            ("approve".into(), "kim".into())
        ]
    );
    assert!(
        Path::new(&ev["dry_run"]["report_path"].as_str().unwrap().to_string()).is_file(),
        "dry-run report kept"
    );
    let status = e.ok(&["backfill", "status", "bf"]);
    assert_eq!(status["phase"], "done");
    let (code, out, _) = e.cli(&["history", &bf()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("update") && out.contains("\"operator\":\"sam\""),
        "the history names who approved: {out}"
    );

    // The PostgreSQL URL's password is in the config only: not in the
    // history, the evidence, the store's events, the alerts or the logs.
    let root = e.root.as_path();
    let export = root.join("backfill-bf.history.json");
    e.ok(&["history", &bf(), "--export", export.to_str().unwrap()]);
    assert_no_planted_secret(
        root,
        &e.config,
        &[
            ("worker log", &e.worker_log()),
            ("timeline", &out),
            ("status", &status.to_string()),
        ],
    );
}

#[tokio::test]
async fn happy_path_on_sqlite_matches_the_oracle_with_verified_evidence() {
    happy_path(Target::Sqlite).await;
}

#[tokio::test]
async fn happy_path_on_postgres_matches_the_oracle_with_verified_evidence() {
    happy_path(Target::Postgres).await;
}

#[tokio::test]
async fn happy_path_on_mariadb_matches_the_oracle_with_verified_evidence() {
    happy_path(Target::Mysql).await;
}

/// InnoDB's REPEATABLE READ share-locks every row an `INSERT ... SELECT`
/// reads until the batch commits, so the application's writes to the
/// source would wait on each batch (a lock wait timeout here); steward's
/// sessions on MySQL and MariaDB run at READ COMMITTED, as on PostgreSQL.
#[tokio::test]
async fn a_batch_on_mariadb_reads_the_source_without_locking_it_against_the_applications_writes() {
    let url = mysql_database().await;
    let pool = steward_activities::store::connect_any(&url).await.unwrap();
    for statement in [
        "CREATE TABLE source (id BIGINT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE target (id BIGINT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
        "INSERT INTO source (id, v) VALUES (1, 1), (2, 2), (3, 3)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let mut batch = pool.begin().await.unwrap();
    let level: String = sqlx::query_scalar("SELECT CAST(@@tx_isolation AS CHAR)")
        .fetch_one(&mut *batch)
        .await
        .unwrap();
    assert_eq!(level, "READ-COMMITTED");
    sqlx::query("INSERT INTO target (id, v) SELECT id, v FROM source WHERE id BETWEEN 1 AND 3")
        .execute(&mut *batch)
        .await
        .unwrap();

    // The application, on a session at the server's default level.
    let mut app = <sqlx::MySqlConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 1")
        .execute(&mut app)
        .await
        .unwrap();
    let updated = sqlx::query("UPDATE source SET v = v + 10 WHERE id = 2")
        .execute(&mut app)
        .await
        .expect("the application's write to a row an open batch read");
    assert_eq!(updated.rows_affected(), 1);

    batch.commit().await.unwrap();
    let copied: Vec<(i64, i32)> = sqlx::query_as("SELECT id, v FROM target ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(copied, vec![(1, 1), (2, 2), (3, 3)]);
}

#[tokio::test]
async fn dry_run_stops_after_the_count_and_unfreezes() {
    let e = env(
        "dryrun",
        Backend::Sqlite,
        None,
        "expected_count = 5\ncount_tolerance = 1000",
    )
    .await;
    let before = checksum(&e.pool).await;
    e.start_dry_run();
    let result = e.result().await;
    assert_eq!(result.outcome, "dry_run");
    assert_eq!(checksum(&e.pool).await, before);
    assert_eq!(flag(&e.pool, "ingest").await, 1);
    let ev = verify_evidence(&result);
    assert_eq!(ev["dry_run"]["expected"], 5);
    assert_eq!(ev["dry_run"]["counted"], oracle(&e.pool).await.len() as u64);
}

/// `status --watch` follows a dry run to its end: `dry_run` is both the
/// phase of a running dry run and the outcome of a finished one, so the
/// watch must tell them apart by the outcome, not the spelling.
#[tokio::test]
async fn status_watch_during_a_dry_run_waits_for_the_dry_run_to_end() {
    let e = env(
        "watch-dryrun",
        Backend::Postgres,
        None,
        &format!("count_sql = \"SELECT COUNT(*) {EDGES} WHERE (SELECT 1 FROM pg_sleep(4)) = 1\""),
    )
    .await;
    e.start_dry_run();
    let running = e.wait_phase("dry_run").await;
    assert!(!running.ended(), "a running dry run has no outcome yet");
    let (code, out, err) = e.cli(&["backfill", "status", "bf", "--watch"]);
    assert_eq!(code, 0, "{err}");
    let watched: BackfillStatus = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (watched.phase.as_str(), watched.outcome.as_str()),
        ("dry_run", "dry_run"),
        "the watch returned before the dry run ended: {out}"
    );
    let closed = e
        .client
        .get_workflow_handle::<BackfillRollout>(bf())
        .describe(Default::default())
        .await
        .unwrap();
    assert_eq!(
        closed.status(),
        temporalio_client::WorkflowExecutionStatus::Completed,
        "the rollout had closed when the watch returned"
    );
    assert!(
        err.contains("phase dry_run"),
        "the watch showed the running dry run: {err}"
    );
}

/// A backfill announced ahead with `--freeze-at` has not run while it
/// waited for its window: `max_runtime` counts from the start of
/// execution, as the runbook means it.
#[tokio::test]
async fn the_runtime_alert_counts_from_the_start_of_execution_not_from_the_announcement() {
    let e = env(
        "runtime-from-execution",
        Backend::Sqlite,
        None,
        "batch_size = 60\nmax_runtime = \"5s\"",
    )
    .await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(7))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    e.ok(&[
        "backfill",
        "start",
        "bf",
        "--freeze-at",
        &at,
        "--reason",
        "tonight",
    ]);
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    let ev = verify_evidence(&result);
    let started = chrono::DateTime::parse_from_rfc3339(ev["started_at"].as_str().unwrap()).unwrap();
    let finished =
        chrono::DateTime::parse_from_rfc3339(ev["finished_at"].as_str().unwrap()).unwrap();
    assert!(
        (finished - started).num_seconds() > 5,
        "the rollout lived longer than max_runtime, waiting for its window"
    );
    let runtime: Vec<_> = e
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "backfill.runtime")
        .collect();
    assert!(
        runtime.is_empty(),
        "the wait for the freeze window is not runtime: {runtime:?}"
    );
}

#[tokio::test]
async fn a_bad_row_rolls_back_to_the_exact_pre_run_state_and_stays_frozen() {
    a_bad_row_rolls_back(Target::Postgres).await;
}

#[tokio::test]
async fn a_bad_row_on_mariadb_rolls_back_to_the_exact_pre_run_state_and_stays_frozen() {
    a_bad_row_rolls_back(Target::Mysql).await;
}

async fn a_bad_row_rolls_back(target: Target) {
    let e = env("badrow", target, Some(57), "").await;
    let before = checksum(&e.pool).await;
    e.start();
    e.wait_phase("rolled_back_frozen").await;
    assert_eq!(
        checksum(&e.pool).await,
        before,
        "rows of earlier batches removed, the earlier run's kept"
    );
    assert_eq!(flag(&e.pool, "ingest").await, 0, "ingest stays frozen");
    assert!(
        e.alerts()
            .iter()
            .any(|a| a["kind"] == "backfill.batch-error" && a["severity"] == "critical")
    );
    let err = e
        .update(
            OperatorVerb::Set,
            OperatorRequest {
                batch_size: 5,
                ..op("x")
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.contains("cannot change in phase `rolled_back_frozen`"),
        "{err}"
    );
    e.ok(&[
        "backfill",
        "unfreeze",
        "bf",
        "--reason",
        "fixed the row upstream",
    ]);
    let result = e.result().await;
    assert_eq!(result.outcome, "rolled_back");
    assert_eq!(flag(&e.pool, "ingest").await, 1);
    let ev = verify_evidence(&result);
    assert!(
        ev["error"].as_str().unwrap().contains("batch 6"),
        "{}",
        ev["error"]
    );
    assert_eq!(ev["rollback"]["rolled_back"], true);
}

#[tokio::test]
async fn a_failing_rollback_restores_the_snapshot() {
    let e = env(
        "restore",
        Backend::Sqlite,
        Some(33),
        r#"snapshot = { sql = ["DROP TABLE IF EXISTS supersedes_snapshot", "CREATE TABLE supersedes_snapshot AS SELECT * FROM supersedes"] }
restore = { sql = ["DELETE FROM supersedes", "INSERT INTO supersedes SELECT * FROM supersedes_snapshot"] }"#,
    )
    .await;
    let before = checksum(&e.pool).await;
    let cfg = read(&e.config).replace(
        "rollback_sql = \"DELETE FROM supersedes WHERE run_tag = $1\"",
        "rollback_sql = \"DELETE FROM no_such_table WHERE run_tag = $1\"",
    );
    std::fs::write(&e.config, cfg).unwrap();
    let mut e = e;
    e.worker().kill9();
    e.start_worker();
    e.start();
    e.wait_phase("rolled_back_frozen").await;
    assert_eq!(
        checksum(&e.pool).await,
        before,
        "the snapshot brought the table back"
    );
    let critical: Vec<_> = e
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "backfill.rollback")
        .collect();
    assert_eq!(critical.len(), 1);
    assert!(
        critical[0]["message"]
            .as_str()
            .unwrap()
            .contains("snapshot was restored"),
        "{:?}",
        critical[0]
    );
    e.ok(&["backfill", "unfreeze", "bf", "--reason", "checked"]);
    let ev = verify_evidence(&e.result().await);
    assert_eq!(ev["rollback"]["restored"], true);
}

#[tokio::test]
async fn lag_over_the_limit_throttles_and_alerts() {
    let e = env(
        "lag",
        Backend::Sqlite,
        None,
        "lag_sql = \"SELECT seconds FROM fake_lag\"\nmax_lag_seconds = 60",
    )
    .await;
    sqlx::query("UPDATE fake_lag SET seconds = 120")
        .execute(&e.pool)
        .await
        .unwrap();
    e.start();
    let s = wait_for("throttling", Duration::from_secs(60), || async {
        let s = e.status().await;
        s.throttled.then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(s.batches, 0, "no batch while the lag is over the limit");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(e.status().await.batches, 0);
    let lag_alerts: Vec<_> = e
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "backfill.lag")
        .collect();
    assert_eq!(lag_alerts.len(), 1, "one alert per throttling episode");
    assert!(lag_alerts[0]["resolved_at"].is_null(), "open while over");
    sqlx::query("UPDATE fake_lag SET seconds = 1")
        .execute(&e.pool)
        .await
        .unwrap();
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    // The lag fell back: its alert is over (resolved in Alertmanager too).
    let lag_alert = e
        .alerts()
        .into_iter()
        .find(|a| a["kind"] == "backfill.lag")
        .unwrap();
    assert!(lag_alert["resolved_at"].is_string(), "{lag_alert}");
    assert!(
        verify_evidence(&result)["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "backfill.lag")
    );
}

#[tokio::test]
async fn a_failing_batch_with_stop_on_error_off_is_skipped_counted_and_caught_by_validation() {
    let e = env("skip", Backend::Postgres, Some(57), "stop_on_error = false").await;
    let before = checksum(&e.pool).await;
    e.start();
    e.wait_phase("rolled_back_frozen").await;
    let alerts = e.alerts();
    let skipped: Vec<_> = alerts
        .iter()
        .filter(|a| a["kind"] == "backfill.batch-error")
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["severity"], "warning");
    assert!(
        skipped[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("batch 51..=60 failed and was skipped"),
        "{:?}",
        skipped[0]
    );
    assert!(
        alerts.iter().any(|a| a["kind"] == "backfill.validation"
            && a["message"]
                .as_str()
                .unwrap()
                .contains("validation `every edge present` failed")),
        "the missing edges fail the validation: {alerts:?}"
    );
    assert_eq!(checksum(&e.pool).await, before, "rolled back");
    e.ok(&[
        "backfill",
        "unfreeze",
        "bf",
        "--reason",
        "row fixed upstream",
    ]);
    let result = e.result().await;
    assert_eq!(result.outcome, "rolled_back", "{result:?}");
    let ev = verify_evidence(&result);
    assert_eq!(ev["failed_batches"], 1, "{ev}");
    assert_eq!(ev["batches"], 13, "12 batches and the empty one: {ev}");
}

#[tokio::test]
async fn unknown_backfills_and_bad_arguments_are_refused_before_anything_runs() {
    let e = env("refuse", Backend::Sqlite, None, "").await;
    let (code, _, err) = e.cli(&["backfill", "start", "nope", "--reason", "x"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no backfill named `nope`") && err.contains("configured: bf"),
        "{err}"
    );
    let (code, _, err) = e.cli(&[
        "backfill",
        "start",
        "bf",
        "--freeze-at",
        "tomorrow-ish",
        "--reason",
        "x",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not an RFC 3339 time"), "{err}");
    let (code, _, err) = e.cli(&["backfill", "status", "bf"]);
    assert_eq!(code, 2);
    assert!(err.contains("no rollout of backfill `bf` found"), "{err}");
}

/// A tiny HTTP endpoint on 127.0.0.1 that answers 200 and records each
/// request's first line and body.
async fn http_recorder() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            log.lock().unwrap().push(format!(
                                "{} {}",
                                head.lines().next().unwrap_or(""),
                                body
                            ));
                            break;
                        }
                    }
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn command_and_http_actions_run_and_alerts_reach_the_webhook() {
    let (port, seen) = http_recorder().await;
    let mut e = env(
        "actions",
        Backend::Sqlite,
        None,
        "batch_size = 2\nbatches_per_activity = 1\nmax_runtime = \"1s\"",
    )
    .await;
    let marker = e.config.with_file_name("frozen-marker");
    let cfg = read(&e.config)
        .replace(
            "freeze = { sql = \"UPDATE control SET enabled = 0\" }",
            &format!("freeze = {{ command = [\"touch\", \"{}\"] }}", marker.display()),
        )
        .replace(
            "unfreeze = { sql = \"UPDATE control SET enabled = 1\" }",
            &format!("unfreeze = {{ http = {{ method = \"POST\", url = \"http://127.0.0.1:{port}/ingest/enable?token={PLANTED_SECRET}\", body = \"{{\\\"enabled\\\":true}}\" }} }}"),
        )
        + &format!("\n[alerts]\nwebhook = \"http://127.0.0.1:{port}/alerts/{PLANTED_SECRET}\"\n");
    std::fs::write(&e.config, cfg).unwrap();
    e.worker().kill9();
    e.start_worker();
    // check-config says a webhook is set, never its URL (it carries a token).
    let shown = e.ok(&["check-config"]);
    assert!(
        shown["alerts"]["webhook"]
            .as_str()
            .is_some_and(|w| w.starts_with("set")),
        "{shown}"
    );
    assert!(!shown.to_string().contains(PLANTED_SECRET), "{shown}");

    e.start();
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert!(marker.is_file(), "the freeze command ran (argv, no shell)");
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with(&format!(
            "POST /ingest/enable?token={PLANTED_SECRET} HTTP/1.1"
        )) && r.ends_with("{\"enabled\":true}")),
        "the unfreeze request was sent: {requests:?}"
    );
    let runtime: Vec<_> = e
        .alerts()
        .into_iter()
        .filter(|a| a["kind"] == "backfill.runtime")
        .collect();
    assert_eq!(runtime.len(), 1, "one runtime alert over max_runtime");
    assert!(
        runtime[0]["resolved_at"].is_string(),
        "the rollout ended, so its runtime alert is over: {runtime:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("POST /alerts/{PLANTED_SECRET}"))
                && r.contains("backfill.runtime")),
        "alerts are posted to the webhook: {requests:?}"
    );
    // The tokens in the webhook's and the action's URLs reached their
    // servers, and nothing else: not the history, the evidence, the
    // alerts, the store or the worker's log.
    let export = e.config.with_file_name("actions.history.json");
    e.ok(&["history", &bf(), "--export", export.to_str().unwrap()]);
    assert_no_planted_secret(
        e.config.parent().unwrap(),
        &e.config,
        &[("worker log", &e.worker_log())],
    );
    assert_not_world_writable(&e.config.with_file_name("data"));
}

#[tokio::test]
async fn a_freeze_command_pinned_to_its_host_runs_on_that_hosts_worker_only() {
    let mut e = env("action-host", Backend::Sqlite, None, "batch_size = 50").await;
    let marker = e.config.with_file_name("frozen-marker");
    let data = format!(
        "data_dir = \"{}\"",
        e.config.with_file_name("data").display()
    );
    let cfg = read(&e.config).replace(
        "freeze = { sql = \"UPDATE control SET enabled = 0\" }",
        &format!(
            "freeze = {{ command = [\"touch\", \"{}\"], runs_on = \"ingest1\" }}",
            marker.display()
        ),
    ) + "\n[worker]\nhost = \"app1\"\n";
    assert!(cfg.contains("runs_on") && cfg.contains(&data));
    std::fs::write(&e.config, &cfg).unwrap();
    let ingest = e.config.with_file_name("ingest1.toml");
    let ingest_data = format!(
        "data_dir = \"{}\"",
        e.config.with_file_name("data-ingest1").display()
    );
    std::fs::write(&ingest, cfg.replace(&data, &ingest_data)).unwrap();
    e.worker().kill9();
    e.start_worker();
    let _ingest =
        steward_tests::Steward::worker_with(&ingest, &e.server.address, &["--host", "ingest1"]);

    e.start();
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert!(marker.is_file(), "the freeze command ran");
    let timeline = e.ok(&["history", &bf(), "--json"]);
    let freezes: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| {
            x["name"] == steward_proto::names::BACKFILL_ACTION
                && x["detail"]["input"]["action"] == "freeze"
        })
        .map(|x| x["detail"]["worker"].as_str().unwrap_or_default())
        .collect();
    assert!(!freezes.is_empty(), "{timeline}");
    for worker in &freezes {
        assert!(
            worker.ends_with("host ingest1"),
            "the freeze ran on `{worker}`"
        );
    }
    // The other actions are not pinned: the shared queue's workers take them.
    let others = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == steward_proto::names::BACKFILL_ACTION)
        .count();
    assert!(others > freezes.len(), "{timeline}");
}

#[tokio::test]
async fn approvals_that_do_not_come_in_time_renotify_or_abort_as_configured() {
    // renotify: told again each time the wait runs out, then approved.
    let e = env(
        "approval-renotify",
        Backend::Sqlite,
        None,
        "approvals = [\"storage\"]\napproval_timeout = \"2s\"\non_approval_timeout = \"renotify\"",
    )
    .await;
    e.start();
    e.wait_phase("awaiting_approval").await;
    wait_for("two timeouts told", Duration::from_secs(60), || async {
        (e.alerts()
            .iter()
            .filter(|a| a["kind"] == "backfill.approval-timed-out")
            .count()
            >= 2)
            .then_some(())
    })
    .await
    .unwrap();
    let again = notice(&e, "backfill.approval-timed-out").await;
    assert!(
        again.contains("no approval of storage within 2s; still waiting"),
        "{again}"
    );
    assert_eq!(e.status().await.phase, "awaiting_approval");
    e.ok(&[
        "backfill", "approve", "bf", "--group", "storage", "--reason", "ok", "--by", "ana",
    ]);
    assert_eq!(e.result().await.outcome, "done");

    // abort: rolled back (nothing was applied) and it says why.
    let e = env(
        "approval-abort",
        Backend::Sqlite,
        None,
        "approvals = [\"storage\"]\napproval_timeout = \"2s\"\non_approval_timeout = \"abort\"",
    )
    .await;
    e.start();
    let said = notice(&e, "backfill.approval-timed-out").await;
    assert!(said.contains("aborted as configured"), "{said}");
    e.wait_phase("rolled_back_frozen").await;
    e.ok(&[
        "backfill",
        "unfreeze",
        "bf",
        "--reason",
        "window closed",
        "--by",
        "ana",
    ]);
    let result = e.result().await;
    assert_eq!(result.outcome, "rolled_back", "{result:?}");
    assert!(
        result.error.contains("not approved within 2s"),
        "{result:?}"
    );
    assert_eq!(edges(&e.pool, "<> 'earlier-run'").await, vec![]);
}
