//! `BackfillRollout` on a real dev server, against real SQLite files and a
//! real PostgreSQL, with a realistic fixture: raw records with duplicates
//! and conflicts; the backfill derives "supersedes" edges into a second
//! table behind an idempotency unique index; ingest and outbox flags live in
//! a control table.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use steward_proto::ids;
use steward_proto::v1::{BackfillResult, BackfillStatus, OperatorRequest};
use steward_proto::vocab::OperatorVerb;
use steward_tests::{
    Backend, Harness, PLANTED_SECRET, assert_every_run_closed_without_task_failures,
    assert_no_planted_secret, assert_not_world_writable, database, read, task_queue, temp_dir,
    wait_for, with_planted_password, write_config,
};
use steward_workflows::BackfillRollout;
use temporalio_client::Client;

const RECORDS: i64 = 120;

/// Creates the fixture in `url`: RECORDS raw records in advisories of four
/// versions, with duplicated (advisory, version) pairs; one poisoned record
/// when `poison_at` is set (its payload breaks a CHECK on the edge table).
async fn fixture(url: &str, backend: Backend, poison_at: Option<i64>) -> AnyPool {
    let pool = steward_activities::store::connect_any(url).await.unwrap();
    let real = if backend == Backend::Postgres {
        "DOUBLE PRECISION"
    } else {
        "REAL"
    };
    for ddl in [
        "CREATE TABLE raw_records (id BIGINT PRIMARY KEY, advisory TEXT NOT NULL, version BIGINT NOT NULL, payload TEXT NOT NULL)".to_string(),
        "CREATE TABLE supersedes (older BIGINT NOT NULL, newer BIGINT NOT NULL, run_tag TEXT NOT NULL, payload_len BIGINT NOT NULL CHECK (payload_len < 1000))".into(),
        "CREATE UNIQUE INDEX supersedes_idem ON supersedes (older, newer)".into(),
        "CREATE TABLE control (key TEXT PRIMARY KEY, enabled BIGINT NOT NULL)".into(),
        "INSERT INTO control (key, enabled) VALUES ('ingest', 1), ('outbox', 1)".into(),
        "CREATE TABLE replay_log (note TEXT NOT NULL)".into(),
        format!("CREATE TABLE fake_lag (seconds {real} NOT NULL)"),
        "INSERT INTO fake_lag (seconds) VALUES (0)".into(),
        // An earlier, unrelated backfill's edge: must survive every rollback.
        "INSERT INTO supersedes (older, newer, run_tag, payload_len) VALUES (1000001, 1000002, 'earlier-run', 3)".into(),
    ] {
        sqlx::query(&ddl).execute(&pool).await.unwrap();
    }
    for id in 1..=RECORDS {
        let advisory = format!("ADV-{}", id / 8);
        // Versions 1..4 per advisory, and every 5th record duplicates the
        // version of its predecessor: a conflict that yields extra edges.
        let version = if id % 5 == 0 { (id - 1) % 4 } else { id % 4 };
        let payload = if Some(id) == poison_at {
            "x".repeat(2000)
        } else {
            format!("p{id}")
        };
        sqlx::query(
            "INSERT INTO raw_records (id, advisory, version, payload) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(advisory)
        .bind(version)
        .bind(payload)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool
}

const EDGES: &str = "FROM raw_records a JOIN raw_records b ON b.advisory = a.advisory AND b.version = a.version + 1";

/// The plain-SQL oracle: the edges the backfill must produce.
async fn oracle(pool: &AnyPool) -> Vec<(i64, i64)> {
    rows(pool, &format!("SELECT a.id, b.id {EDGES} ORDER BY 1, 2")).await
}

async fn rows(pool: &AnyPool, sql: &str) -> Vec<(i64, i64)> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get::<i64, _>(0).unwrap(),
                r.try_get::<i64, _>(1).unwrap(),
            )
        })
        .collect()
}

/// A PostgreSQL `apply_sql` that takes `secs` longer per batch, so that a
/// test can act while a run of batches is in flight.
fn slow_apply(secs: f64) -> String {
    format!(
        "apply_sql = \"INSERT INTO supersedes (older, newer, run_tag, payload_len) SELECT a.id, b.id, $3, LENGTH(a.payload) {EDGES} WHERE a.id BETWEEN $1 AND $2 AND (SELECT 1 FROM pg_sleep({secs})) = 1\"\n"
    )
}

/// Batches applied so far, as the target database records them (0 before
/// the progress table exists).
async fn recorded_batches(pool: &AnyPool) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM steward_backfill_progress WHERE lo IS NOT NULL")
        .fetch_one(pool)
        .await
        .map(|r| r.try_get::<i64, _>(0).unwrap())
        .unwrap_or(0)
}

/// Batch activities the rollout's latest run scheduled.
async fn batch_activities(client: &Client) -> usize {
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    steward_worker::history::fetch_events(client, &bf(), None)
        .await
        .unwrap()
        .iter()
        .filter(|ev| {
            matches!(&ev.attributes,
                Some(Attributes::ActivityTaskScheduledEventAttributes(a))
                    if a.activity_type.as_ref().is_some_and(|t| t.name == steward_proto::names::BACKFILL_BATCH))
        })
        .count()
}

async fn edges(pool: &AnyPool, tag_filter: &str) -> Vec<(i64, i64)> {
    rows(
        pool,
        &format!("SELECT older, newer FROM supersedes WHERE run_tag {tag_filter} ORDER BY 1, 2"),
    )
    .await
}

/// Ordered checksum of the whole edge table, every column.
async fn checksum(pool: &AnyPool) -> String {
    let all = sqlx::query(
        "SELECT older, newer, run_tag, payload_len FROM supersedes ORDER BY older, newer",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut h = Sha256::new();
    for r in &all {
        let line = format!(
            "{}|{}|{}|{}\n",
            r.try_get::<i64, _>(0).unwrap(),
            r.try_get::<i64, _>(1).unwrap(),
            r.try_get::<String, _>(2).unwrap(),
            r.try_get::<i64, _>(3).unwrap()
        );
        h.update(line);
    }
    format!("{}:{}", all.len(), hex::encode(h.finalize()))
}

async fn flag(pool: &AnyPool, key: &str) -> i64 {
    sqlx::query("SELECT enabled FROM control WHERE key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// The harness, and the backfill's own database.
struct Env {
    h: Harness,
    pool: AnyPool,
}

steward_tests::derefs_to_harness!(Env);

/// The workflow id of every rollout here.
fn bf() -> String {
    ids::backfill("bf")
}

/// A backfill `bf` over a fresh fixture, with `extra` TOML lines in the spec.
async fn env(test: &str, backend: Backend, poison_at: Option<i64>, extra: &str) -> Env {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let url = database(backend, &root).await;
    let url = if backend == Backend::Sqlite {
        format!("{url}?mode=rwc")
    } else {
        with_planted_password(&url)
    };
    let pool = fixture(&url, backend, poison_at).await;
    let index_check = if backend == Backend::Postgres {
        "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'supersedes_idem'"
    } else {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'supersedes_idem'"
    };
    let store = database(Backend::Sqlite, &root).await;
    let config = write_config(
        &root,
        &store,
        &task_queue(test),
        &[],
        &format!(
            r#"
[[backfills]]
name = "bf"
database_url = "{url}"
{count}next_range_sql = "SELECT MIN(id), MAX(id) FROM (SELECT id FROM raw_records WHERE id > $1 ORDER BY id LIMIT $2) t"
{apply}rollback_sql = "DELETE FROM supersedes WHERE run_tag = $1"
freeze = {{ sql = "UPDATE control SET enabled = 0" }}
unfreeze = {{ sql = "UPDATE control SET enabled = 1" }}
preconditions = [{{ name = "idempotency index exists", sql = "{index_check}" }}]
validations = [
  {{ name = "raw records stable", sql = "SELECT COUNT(*) FROM raw_records", expect = "unchanged" }},
  {{ name = "every edge present", sql = "SELECT COUNT(*) {EDGES} WHERE NOT EXISTS (SELECT 1 FROM supersedes s WHERE s.older = a.id AND s.newer = b.id)", expect = "= 0" }},
  {{ name = "idempotency hit rate", sql = "SELECT CAST((SELECT COUNT(*) FROM supersedes WHERE run_tag = 'never') AS DOUBLE PRECISION) / (SELECT COUNT(*) + 1 FROM supersedes)", expect = "<= 0.001" }},
]
replay_probe = {{ action = {{ sql = "INSERT INTO replay_log (note) VALUES ('probe')" }}, check_sql = "SELECT COUNT(*) FROM replay_log" }}
throttle_seconds = 1
{batch}{extra}
"#,
            batch = if extra.contains("batch_size") {
                ""
            } else {
                "batch_size = 10\n"
            },
            count = if extra.contains("count_sql") {
                String::new()
            } else {
                format!("count_sql = \"SELECT COUNT(*) {EDGES}\"\n")
            },
            apply = if extra.contains("apply_sql") {
                String::new()
            } else {
                format!(
                    "apply_sql = \"INSERT INTO supersedes (older, newer, run_tag, payload_len) SELECT a.id, b.id, $3, LENGTH(a.payload) {EDGES} WHERE a.id BETWEEN $1 AND $2\"\n"
                )
            },
        ),
    );
    Env {
        h: Harness::with_worker(dir, config).await,
        pool,
    }
}

impl Env {
    /// `steward backfill start bf --freeze-at now --reason go`.
    fn start(&self) {
        self.ok(&[
            "backfill",
            "start",
            "bf",
            "--freeze-at",
            "now",
            "--reason",
            "go",
        ]);
    }

    /// `steward backfill start bf --dry-run --freeze-at now`.
    fn start_dry_run(&self) {
        self.ok(&[
            "backfill",
            "start",
            "bf",
            "--dry-run",
            "--freeze-at",
            "now",
            "--reason",
            "rehearsal",
        ]);
    }

    async fn status(&self) -> BackfillStatus {
        self.query::<BackfillRollout, _>(&bf(), BackfillRollout::status)
            .await
            .unwrap()
    }

    async fn wait_phase(&self, phase: &str) -> BackfillStatus {
        self.wait_query::<BackfillRollout, _>(
            &bf(),
            || BackfillRollout::status,
            &format!("phase {phase}"),
            Duration::from_secs(90),
            |s| s.phase == phase,
        )
        .await
    }

    async fn result(&self) -> BackfillResult {
        self.h
            .result::<BackfillRollout>(&bf(), Duration::from_secs(180))
            .await
    }

    /// Sends an operator update the way `steward backfill <action>` does
    /// (through the operations layer, as `req.operator` typed it).
    async fn update(&self, verb: OperatorVerb, req: OperatorRequest) -> Result<(), String> {
        use steward_worker::ops::{Actor, Ops, backfill::Action};
        let loaded = steward_worker::config::load(&self.config).unwrap();
        let actor = Actor::typed(&loaded, &req.operator);
        let action = Action {
            reason: req.reason,
            group: Some(req.group).filter(|g| !g.is_empty()),
            batch_size: Some(req.batch_size).filter(|b| *b > 0),
            max_lag_seconds: Some(req.max_lag_seconds).filter(|l| *l > 0.0),
        };
        Ops::new(loaded)
            .with_client(self.client.clone())
            .act_on_backfill(&actor, "bf", verb, action)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn op(reason: &str) -> OperatorRequest {
    OperatorRequest {
        operator: "ana".into(),
        reason: reason.into(),
        ..Default::default()
    }
}

fn verify_evidence(result: &BackfillResult) -> serde_json::Value {
    let bytes = std::fs::read(&result.evidence_path).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(sha, result.evidence_sha256);
    let side = read(Path::new(&format!("{}.sha256", result.evidence_path)));
    assert_eq!(
        side,
        format!("{sha}  report.json\n"),
        "the SHA-256 file next to the report verifies"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&result.evidence_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o002, 0, "evidence is not world-writable");
    serde_json::from_slice(&bytes).unwrap()
}

async fn happy_path(backend: Backend) {
    let e = env(
        "happy",
        backend,
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
    happy_path(Backend::Sqlite).await;
}

#[tokio::test]
async fn happy_path_on_postgres_matches_the_oracle_with_verified_evidence() {
    happy_path(Backend::Postgres).await;
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
    let e = env("badrow", Backend::Postgres, Some(57), "").await;
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
async fn operators_pause_resume_resize_and_invalid_requests_are_rejected() {
    let e = env(
        "signals",
        Backend::Sqlite,
        None,
        "batch_size = 1\nbatches_per_activity = 1",
    )
    .await;
    e.start();
    e.wait_phase("executing").await;
    let err = e
        .update(
            OperatorVerb::Approve,
            OperatorRequest {
                group: "x".into(),
                ..op("late")
            },
        )
        .await
        .unwrap_err();
    assert!(err.contains("not allowed in phase `executing`"), "{err}");
    let err = e
        .update(OperatorVerb::Unfreeze, op("now please"))
        .await
        .unwrap_err();
    assert!(
        err.contains("`unfreeze` is not allowed in phase `executing`"),
        "{err}"
    );
    let err = e
        .update(
            OperatorVerb::Set,
            OperatorRequest {
                batch_size: 0,
                ..op("zero")
            },
        )
        .await
        .unwrap_err();
    assert!(err.contains("nothing to set"), "{err}");
    let (code, _, err) = e.cli(&["backfill", "set", "bf", "batch_size=0", "--reason", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("nothing to set"), "{err}");
    // A reason of a megabyte: the CLI refuses it before sending, and the
    // workflow's validator refuses it from any other client, so the
    // rollout's state and history stay far below the server's limit.
    let long = "x".repeat(100_000);
    let (code, _, err) = e.cli(&["backfill", "pause", "bf", "--reason", &long]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the reason is 100000 characters long; at most 2000 are accepted"),
        "{err}"
    );
    let huge = "x".repeat(1 << 20);
    let err = e
        .client
        .get_workflow_handle::<BackfillRollout>(bf())
        .execute_update(BackfillRollout::pause, op(&huge), Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the reason is 1048576 characters long; at most 2000 are accepted"),
        "{err}"
    );
    assert!(!e.status().await.paused, "a refused pause changes nothing");

    e.update(OperatorVerb::Pause, op("lag on replica"))
        .await
        .unwrap();
    let paused_at = e.status().await.batches;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = e.status().await;
    assert!(s.paused);
    assert!(
        s.batches <= paused_at + 1,
        "no batch starts after the pause is acknowledged: {paused_at} -> {}",
        s.batches
    );

    let reply = e.ok(&[
        "backfill",
        "set",
        "bf",
        "batch_size=40",
        "--reason",
        "replica caught up",
    ]);
    assert_eq!(
        reply["message"], "set accepted: batch_size 1 → 40",
        "the reply says what the setting was"
    );
    e.ok(&["backfill", "resume", "bf", "--reason", "go on"]);
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    // The audit timeline shows who, why and the value before the change.
    let (code, timeline, err) = e.cli(&["history", &bf()]);
    assert_eq!(code, 0, "{err}");
    let set = timeline
        .lines()
        .find(|l| l.contains(" update ") && l.contains(" set ") && l.contains(" completed "))
        .unwrap_or_else(|| panic!("no set update in the timeline:\n{timeline}"));
    assert!(
        set.contains(" completed — ")
            && set.contains("(replica caught up): set accepted: batch_size 1 → 40"),
        "{set}"
    );
    let pause = timeline
        .lines()
        .find(|l| l.contains(" update ") && l.contains(" pause ") && l.contains(" completed "))
        .unwrap_or_else(|| panic!("no completed pause in the timeline:\n{timeline}"));
    assert!(
        pause.contains("ana (lag on replica): pause accepted"),
        "{pause}"
    );
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await
    );
    let widths = rows(&e.pool, "SELECT batch_no, hi - lo FROM steward_backfill_progress WHERE lo IS NOT NULL ORDER BY batch_no").await;
    assert_eq!(
        widths.first().map(|w| w.1),
        Some(0),
        "batch size 1 at first"
    );
    assert!(
        widths.iter().any(|w| w.1 >= 39),
        "batch size 40 after `set`: {widths:?}"
    );
    let ev = verify_evidence(&result);
    let names: Vec<&str> = ev["operator_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["start", "pause", "set", "resume"],
        "rejected requests are not recorded as actions"
    );
}

#[tokio::test]
async fn abort_during_execution_rolls_back() {
    let e = env(
        "abort",
        Backend::Sqlite,
        None,
        "batch_size = 1\nbatches_per_activity = 1",
    )
    .await;
    let before = checksum(&e.pool).await;
    e.start();
    wait_for("a few batches", Duration::from_secs(60), || async {
        (e.status().await.batches >= 3).then_some(())
    })
    .await
    .unwrap();
    e.ok(&[
        "backfill",
        "abort",
        "bf",
        "--reason",
        "wrong bundle",
        "--by",
        "lee",
    ]);
    e.wait_phase("rolled_back_frozen").await;
    assert_eq!(checksum(&e.pool).await, before);
    e.ok(&["backfill", "unfreeze", "bf", "--reason", "done for today"]);
    assert_eq!(e.result().await.outcome, "rolled_back");
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
    sqlx::query("UPDATE fake_lag SET seconds = 1")
        .execute(&e.pool)
        .await
        .unwrap();
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    assert!(
        verify_evidence(&result)["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "backfill.lag")
    );
}

#[tokio::test]
async fn a_long_run_continues_as_new_and_keeps_its_state() {
    let e = env(
        "can",
        Backend::Sqlite,
        None,
        "batches_per_run = 3\napprovals = [\"storage\"]",
    )
    .await;
    e.start();
    e.wait_phase("awaiting_approval").await;
    e.ok(&[
        "backfill", "approve", "bf", "--group", "storage", "--reason", "ok",
    ]);
    // Operator updates racing the continue-as-new boundaries: every accepted
    // one must survive into the final run's record.
    let mut accepted = 0;
    for _ in 0..6 {
        if e.update(OperatorVerb::Pause, op("peek")).await.is_ok() {
            accepted += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let h = e.client.get_workflow_handle::<BackfillRollout>(bf());
            h.execute_update(BackfillRollout::resume, op("go on"), Default::default())
                .await
                .unwrap();
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(accepted > 0, "some updates landed during execution");
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    let s = e.status().await;
    assert!(
        s.runs >= 3,
        "continued as new at least twice: {} runs",
        s.runs
    );
    assert_eq!(
        s.approvals,
        vec!["storage"],
        "approvals carried across runs"
    );
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await
    );
    let ev = verify_evidence(&result);
    assert_eq!(
        ev["operator_actions"].as_array().unwrap().len(),
        2 + accepted,
        "operator actions carried across runs"
    );
}

#[tokio::test]
async fn killing_the_worker_during_execution_applies_every_batch_once() {
    // 30 batches of a tenth of a second: runs of about ten batches per
    // activity, so every kill lands inside a run.
    let mut e = env(
        "kill",
        Backend::Postgres,
        None,
        &format!("batch_size = 4\n{}", slow_apply(0.1)),
    )
    .await;
    e.start();
    // Kill points differ from run to run: 3 trials, each after a random
    // further 1 to 7 batches.
    let mut target = 0;
    for trial in 0..3u64 {
        target += 1 + (uuid::Uuid::new_v4().as_u128() % 7) as u64;
        eprintln!("fault: kill -9 of the worker after {target} batches");
        wait_for("more batches", Duration::from_secs(120), || async {
            (recorded_batches(&e.pool).await >= target as i64).then_some(())
        })
        .await
        .unwrap();
        // Let the next batch be in flight, at a different moment each trial.
        tokio::time::sleep(Duration::from_millis(50 * trial)).await;
        e.worker().kill9();
        e.worker().restart();
    }
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    let expected = oracle(&e.pool).await;
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        expected,
        "target equals the oracle"
    );
    let written: i64 =
        sqlx::query("SELECT CAST(SUM(rows_written) AS BIGINT) FROM steward_backfill_progress")
            .fetch_one(&e.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
    assert_eq!(written as usize, expected.len(), "no batch applied twice");
    assert_eq!(result.rows as usize, expected.len());
    let activities = batch_activities(&e.client).await;
    assert!(
        activities * 2 < result.batches as usize,
        "runs of batches: {activities} activities for {} batches",
        result.batches
    );
    assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn a_pause_during_a_run_of_batches_replies_once_the_run_has_stopped() {
    // 120 batches of 50 ms: runs of about twenty batches per activity.
    let e = env(
        "pause-run",
        Backend::Postgres,
        None,
        &format!("batch_size = 1\n{}", slow_apply(0.05)),
    )
    .await;
    e.start();
    wait_for("a run under way", Duration::from_secs(60), || async {
        (recorded_batches(&e.pool).await >= 3).then_some(())
    })
    .await
    .unwrap();
    e.update(OperatorVerb::Pause, op("replica lag"))
        .await
        .unwrap();
    let at_reply = recorded_batches(&e.pool).await;
    assert!(at_reply < 120, "paused before the end: {at_reply}");
    assert_eq!(
        e.status().await.batches,
        at_reply as u64,
        "the rollout knows every batch applied before the reply"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        recorded_batches(&e.pool).await,
        at_reply,
        "no batch ran after the pause's reply"
    );
    e.ok(&["backfill", "resume", "bf", "--reason", "caught up"]);
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await
    );
    let activities = batch_activities(&e.client).await;
    assert!(
        activities * 4 < result.batches as usize,
        "runs of batches: {activities} activities for {} batches",
        result.batches
    );
}

/// Four times: a pause while a run of batches (0.4 s each) is in flight,
/// and a resume as soon as the pause is accepted, while it may still wait
/// for that run. Each pause must reply
/// within a few seconds, whatever the run that follows does.
async fn pause_and_resume_during_runs(test: &str, extra: &str) -> Env {
    let e = env(
        test,
        Backend::Postgres,
        None,
        &format!("batch_size = 1\n{extra}\n{}", slow_apply(0.4)),
    )
    .await;
    e.start();
    e.wait_phase("executing").await;
    let mut waited_on_a_run = 0;
    for i in 0..4 {
        let pause = async {
            let reply = tokio::time::timeout(
                Duration::from_secs(20),
                e.update(OperatorVerb::Pause, op(&format!("peek {i}"))),
            )
            .await;
            (reply, Instant::now())
        };
        let resume = async {
            // As soon as the pause is accepted, while it may still wait.
            wait_for("the pause accepted", Duration::from_secs(20), || async {
                e.status().await.paused.then_some(())
            })
            .await
            .unwrap();
            let reply = e
                .update(OperatorVerb::Resume, op(&format!("go on {i}")))
                .await;
            (reply, Instant::now())
        };
        let ((paused, paused_at), (resumed, resumed_at)) = tokio::join!(pause, resume);
        paused
            .unwrap_or_else(|_| panic!("pause {i} got no reply in 20 s"))
            .unwrap_or_else(|err| panic!("pause {i} failed: {err}"));
        resumed.unwrap_or_else(|err| panic!("resume {i} failed: {err}"));
        if resumed_at < paused_at {
            waited_on_a_run += 1;
        }
    }
    assert!(
        waited_on_a_run > 0,
        "no pause waited on a run in flight: the race was not exercised"
    );
    let s = e.status().await;
    let pauses = s
        .operator_actions
        .iter()
        .filter(|a| a.action == "pause")
        .count();
    assert_eq!(pauses, 4, "every pause is recorded once: {s:?}");
    e
}

#[tokio::test]
async fn a_pause_overtaken_by_a_resume_replies_when_its_run_ends() {
    // The next run starts in the step where the awaited one ends.
    pause_and_resume_during_runs("pause-resume", "").await;
}

#[tokio::test]
async fn a_pause_waiting_on_the_last_run_before_continue_as_new_still_gets_its_reply() {
    // A new run after every two batches: the run that ends is the last
    // before continue-as-new, and the pause must still get its reply, not
    // "the workflow completed before the update".
    let e = pause_and_resume_during_runs("pause-can", "batches_per_run = 2").await;
    let s = e.status().await;
    assert!(s.runs >= 3, "continued as new between the pauses: {s:?}");
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
async fn a_storm_of_100_duplicated_out_of_order_operator_updates_leaves_a_consistent_rollout() {
    // Batches of two seconds (the default run ends after the first), so
    // the storm ends long before the rows do, however loaded the machine;
    // once it is checked, larger batches finish the rollout.
    let e = env(
        "storm",
        Backend::Postgres,
        None,
        &format!("batch_size = 1\n{}", slow_apply(2.0)),
    )
    .await;
    e.start();
    e.wait_phase("executing").await;
    let started_actions = e.status().await.operator_actions.len();

    // Pauses, resumes and resizes, each twice, fired at once: the server
    // orders them, the validators refuse what does not fit the state.
    let requests: Vec<(OperatorVerb, OperatorRequest)> = (0..100)
        .map(|i| {
            use OperatorVerb::{Pause, Resume, Set};
            let which = [Pause, Resume, Set, Pause, Resume][i % 5];
            let req = OperatorRequest {
                batch_size: if which == Set { 1 + (i as u32 % 2) } else { 0 },
                ..op(&format!("storm {}", i / 2))
            };
            (which, req)
        })
        .collect();
    let outcomes =
        futures::future::join_all(requests.iter().map(|(w, r)| e.update(*w, r.clone()))).await;
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    for err in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            err.contains("already paused")
                || err.contains("not paused")
                || err.contains("not allowed")
                || err.contains("cannot change"),
            "only validator refusals: {err}"
        );
    }
    assert!(accepted >= 20, "{accepted} of 100 accepted");

    // Whatever the storm left, a pause that is acknowledged stops batches.
    let hold = e.update(OperatorVerb::Pause, op("hold")).await;
    let paused_at = e.status().await;
    assert!(paused_at.paused, "{hold:?} {paused_at:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = e.status().await;
    assert!(
        s.batches <= paused_at.batches + 1,
        "no batch starts after the pause is acknowledged: {} -> {}",
        paused_at.batches,
        s.batches
    );
    e.update(
        OperatorVerb::Set,
        OperatorRequest {
            batch_size: 60,
            ..op("after the storm")
        },
    )
    .await
    .unwrap();
    e.update(OperatorVerb::Resume, op("after the storm"))
        .await
        .unwrap();
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await,
        "every edge exactly once"
    );
    let ev = verify_evidence(&result);
    let recorded = ev["operator_actions"].as_array().unwrap().len();
    assert!(
        recorded > started_actions + accepted,
        "every accepted update is in the audit trail: {recorded} recorded, {accepted} accepted"
    );
    assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn an_acknowledged_pause_survives_a_kill_9_of_the_server() {
    let mut e = env(
        "server-kill",
        Backend::Sqlite,
        None,
        "batch_size = 1\nbatches_per_activity = 1",
    )
    .await;
    e.start();
    e.wait_phase("executing").await;
    e.update(OperatorVerb::Pause, op("before the crash"))
        .await
        .unwrap();
    let before = e.status().await;
    assert!(before.paused);

    e.server.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    e.server.restart().await;

    let after = wait_for(
        "the rollout to answer again",
        Duration::from_secs(90),
        || async {
            e.client
                .get_workflow_handle::<BackfillRollout>(bf())
                .query(BackfillRollout::status, (), Default::default())
                .await
                .ok()
        },
    )
    .await
    .unwrap();
    assert!(after.paused, "the acknowledged pause is still in force");
    assert!(
        after
            .operator_actions
            .iter()
            .any(|a| a.action == "pause" && a.reason == "before the crash" && a.operator == "ana"),
        "who paused and why survived: {:?}",
        after.operator_actions
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        e.status().await.batches <= before.batches + 1,
        "no batch started while paused"
    );
    e.update(OperatorVerb::Resume, op("server is back"))
        .await
        .unwrap();
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await,
        "every edge exactly once"
    );
    assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn sigterm_during_a_long_activity_lets_it_finish_and_leaves_no_task_timeouts() {
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    let mut e = env(
        "sigterm",
        Backend::Sqlite,
        None,
        "batches_per_run = 1000\n\n[worker]\ngraceful_shutdown_seconds = 20",
    )
    .await;
    // A freeze that takes 4 s and counts its completions in a file.
    let marker = e.config.with_file_name("freeze-runs");
    let cfg = read(&e.config).replace(
        "freeze = { sql = \"UPDATE control SET enabled = 0\" }",
        &format!(
            "freeze = {{ command = [\"python3\", \"-c\", \"import sys, time; time.sleep(4); open(sys.argv[1], 'a').write('x')\", \"{}\"] }}",
            marker.display()
        ),
    );
    std::fs::write(&e.config, cfg).unwrap();
    e.worker().kill9();
    e.start_worker();

    e.start();
    // `frozen` is set as the freeze activity is scheduled; it runs 4 s.
    e.wait_phase("frozen").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = std::time::Instant::now();
    let status = e
        .worker()
        .terminate(Duration::from_secs(25))
        .expect("the worker stops within the grace period");
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}: {}", e.worker_log());
    assert!(
        took >= Duration::from_secs(1),
        "it waited for the freeze in flight ({took:?})"
    );
    assert_eq!(
        read(&marker),
        "x",
        "the freeze finished on the stopping worker"
    );

    e.start_worker();
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    assert_eq!(read(&marker), "x", "and was not run again");
    let events = steward_worker::history::fetch_events(&e.client, &bf(), None)
        .await
        .unwrap();
    let bad: Vec<_> = events
        .iter()
        .filter(|ev| {
            matches!(
                ev.attributes,
                Some(Attributes::WorkflowTaskTimedOutEventAttributes(_))
                    | Some(Attributes::WorkflowTaskFailedEventAttributes(_))
            )
        })
        .map(|ev| ev.event_id)
        .collect();
    assert!(
        bad.is_empty(),
        "workflow task timeouts or failures at events {bad:?}"
    );
}
