//! `BackfillRollout` on a real dev server, against real SQLite files, a
//! real PostgreSQL and a real MariaDB, with a realistic fixture: raw records with duplicates
//! and conflicts; the backfill derives "supersedes" edges into a second
//! table behind an idempotency unique index; ingest and outbox flags live in
//! a control table.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use steward_activities::backfill::sql::{Dialect, Statement};
use steward_proto::ids;
use steward_proto::v1::{BackfillResult, BackfillStatus, OperatorRequest};
use steward_proto::vocab::OperatorVerb;
use steward_tests::{
    Backend, Harness, PLANTED_SECRET, assert_every_run_closed_without_task_failures,
    assert_no_planted_secret, assert_not_world_writable, database, mysql_database, read,
    task_queue, temp_dir, wait_for, with_planted_password, write_config,
};
use steward_workflows::BackfillRollout;
use temporalio_client::Client;

const RECORDS: i64 = 120;

/// The engine of a backfill's target database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Sqlite,
    Postgres,
    Mysql,
}

impl From<Backend> for Target {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Sqlite => Target::Sqlite,
            Backend::Postgres => Target::Postgres,
        }
    }
}

impl Target {
    /// How the engine writes bound parameters.
    fn dialect(self) -> Dialect {
        match self {
            Target::Mysql => Dialect::Positional,
            _ => Dialect::Numbered,
        }
    }

    /// Its name for a double.
    fn double(self) -> &'static str {
        match self {
            Target::Sqlite => "REAL",
            Target::Postgres => "DOUBLE PRECISION",
            Target::Mysql => "DOUBLE",
        }
    }

    /// Its name for a signed 64-bit integer in a CAST.
    fn bigint(self) -> &'static str {
        match self {
            Target::Mysql => "SIGNED",
            _ => "BIGINT",
        }
    }

    /// A boolean expression that takes `secs` longer to evaluate.
    fn sleep(self, secs: f64) -> String {
        match self {
            Target::Mysql => format!("SLEEP({secs}) = 0"),
            _ => format!("(SELECT 1 FROM pg_sleep({secs})) = 1"),
        }
    }
}

/// Creates the fixture in `url`: RECORDS raw records in advisories of four
/// versions, with duplicated (advisory, version) pairs; one poisoned record
/// when `poison_at` is set (its payload breaks a CHECK on the edge table).
async fn fixture(url: &str, target: impl Into<Target>, poison_at: Option<i64>) -> AnyPool {
    let target = target.into();
    let pool = steward_activities::store::connect_any(url).await.unwrap();
    for ddl in [
        "CREATE TABLE raw_records (id BIGINT PRIMARY KEY, advisory VARCHAR(64) NOT NULL, version BIGINT NOT NULL, payload VARCHAR(4000) NOT NULL)".to_string(),
        "CREATE TABLE supersedes (older BIGINT NOT NULL, newer BIGINT NOT NULL, run_tag VARCHAR(191) NOT NULL, payload_len BIGINT NOT NULL CHECK (payload_len < 1000))".into(),
        "CREATE UNIQUE INDEX supersedes_idem ON supersedes (older, newer)".into(),
        "CREATE TABLE control (name VARCHAR(64) PRIMARY KEY, enabled BIGINT NOT NULL)".into(),
        "INSERT INTO control (name, enabled) VALUES ('ingest', 1), ('outbox', 1)".into(),
        "CREATE TABLE replay_log (note VARCHAR(64) NOT NULL)".into(),
        format!("CREATE TABLE fake_lag (seconds {} NOT NULL)", target.double()),
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
        Statement::new(
            target.dialect(),
            "INSERT INTO raw_records (id, advisory, version, payload) VALUES ($1, $2, $3, $4)",
            &[id.into(), advisory.into(), version.into(), payload.into()],
        )
        .query()
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

/// An `apply_sql` (PostgreSQL or MySQL) that takes `secs` longer per
/// batch, so that a test can act while a run of batches is in flight.
fn slow_apply(target: Target, secs: f64) -> String {
    format!(
        "apply_sql = \"INSERT INTO supersedes (older, newer, run_tag, payload_len) SELECT a.id, b.id, $3, LENGTH(a.payload) {EDGES} WHERE a.id BETWEEN $1 AND $2 AND {}\"\n",
        target.sleep(secs)
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

async fn flag(pool: &AnyPool, name: &str) -> i64 {
    // The same text on every engine: the name is the fixture's own.
    sqlx::query(&format!(
        "SELECT enabled FROM control WHERE name = '{name}'"
    ))
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
async fn env(test: &str, target: impl Into<Target>, poison_at: Option<i64>, extra: &str) -> Env {
    let target = target.into();
    let dir = temp_dir();
    let url = match target {
        Target::Sqlite => format!("{}?mode=rwc", database(Backend::Sqlite, dir.path()).await),
        Target::Postgres => with_planted_password(&database(Backend::Postgres, dir.path()).await),
        Target::Mysql => mysql_database().await,
    };
    env_on(test, dir, target, &url, poison_at, extra).await
}

/// [`env`] on the database at `url`, of engine `target`, in `dir`.
async fn env_on(
    test: &str,
    dir: tempfile::TempDir,
    target: Target,
    url: &str,
    poison_at: Option<i64>,
    extra: &str,
) -> Env {
    let root = dir.path().to_path_buf();
    let pool = fixture(url, target, poison_at).await;
    let index_check = match target {
        Target::Postgres => "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'supersedes_idem'",
        Target::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'supersedes_idem'"
        }
        Target::Mysql => {
            "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name = 'supersedes_idem'"
        }
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
  {{ name = "idempotency hit rate", sql = "SELECT CAST((SELECT COUNT(*) FROM supersedes WHERE run_tag = 'never') AS {double}) / (SELECT COUNT(*) + 1 FROM supersedes)", expect = "<= 0.001" }},
]
replay_probe = {{ action = {{ sql = "INSERT INTO replay_log (note) VALUES ('probe')" }}, check_sql = "SELECT COUNT(*) FROM replay_log" }}
throttle_seconds = 1
{batch}{extra}
"#,
            double = target.double(),
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

/// `steward backfill start bf --freeze-at now --reason go`.
fn start_bf(h: &Harness) {
    h.ok(&[
        "backfill",
        "start",
        "bf",
        "--freeze-at",
        "now",
        "--reason",
        "go",
    ]);
}

impl Env {
    /// `steward backfill start bf --freeze-at now --reason go`.
    fn start(&self) {
        start_bf(self);
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
            throttle_max: req.throttle_max,
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

mod faults;
mod job;
mod operators;
mod rollout;
mod store_failover;
mod throttles;
