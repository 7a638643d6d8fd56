//! Schema migrations, applied in order on connect. Every statement is
//! idempotent (`IF NOT EXISTS`), and on PostgreSQL they run under an
//! advisory lock, so two workers starting at once, or a start after a
//! crash mid-migration, end in the same schema.

use sqlx::{AnyConnection, AnyPool};
use steward_proto::vocab::StoreBackend;

/// Each migration: version and its statements. Append only; never edit a
/// migration that has shipped.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS steward_locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at_ms BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS workstreams (id TEXT PRIMARY KEY, workplan_id TEXT NOT NULL UNIQUE, repo TEXT NOT NULL, \
         path TEXT NOT NULL, title TEXT NOT NULL, status TEXT NOT NULL, owner TEXT NOT NULL, domain TEXT NOT NULL, \
         depends_on TEXT NOT NULL, archived BIGINT NOT NULL DEFAULT 0, updated_at_ms BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS workstreams_by_repo ON workstreams (repo)",
            "CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, task_id TEXT NOT NULL UNIQUE, workstream_id TEXT NOT NULL, \
         title TEXT NOT NULL, status TEXT NOT NULL, file_status TEXT NOT NULL, priority TEXT NOT NULL, \
         needs_human BIGINT NOT NULL, intervention_note TEXT NOT NULL, archived BIGINT NOT NULL DEFAULT 0, \
         updated_at_ms BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS tasks_by_workstream ON tasks (workstream_id)",
            "CREATE TABLE IF NOT EXISTS repo_state (repo TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, \
         starved_since_ms BIGINT, updated_at_ms BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS status_changes (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, status TEXT NOT NULL, \
         reason TEXT NOT NULL, requested_by TEXT NOT NULL, requested_at_ms BIGINT NOT NULL, state TEXT NOT NULL, \
         note TEXT NOT NULL, resolved_at_ms BIGINT)",
            "CREATE TABLE IF NOT EXISTS progress_events (id TEXT PRIMARY KEY, event_type TEXT NOT NULL, source TEXT NOT NULL, \
         created_at_ms BIGINT NOT NULL, workflow_id TEXT NOT NULL, run_id TEXT NOT NULL, detail TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS progress_by_type ON progress_events (event_type, created_at_ms)",
        ],
    ),
    (
        2,
        &[
            // The findings ledger: one row per problem (repo, file, check,
            // subject), open until a sweep that re-reads the file no longer
            // finds it.
            "CREATE TABLE IF NOT EXISTS findings (repo TEXT NOT NULL, file TEXT NOT NULL, check_code TEXT NOT NULL, \
         subject TEXT NOT NULL, message TEXT NOT NULL, first_seen_ms BIGINT NOT NULL, first_run TEXT NOT NULL, \
         last_seen_ms BIGINT NOT NULL, last_run TEXT NOT NULL, resolved_ms BIGINT, resolved_run TEXT NOT NULL, \
         reason TEXT NOT NULL, PRIMARY KEY (repo, file, check_code, subject))",
            "CREATE INDEX IF NOT EXISTS findings_by_state ON findings (resolved_ms, repo)",
        ],
    ),
    (
        3,
        &[
            // The audit archive: closed runs with their histories, in a
            // hash chain (store/archive.rs).
            "CREATE TABLE IF NOT EXISTS audit_archive (seq BIGINT PRIMARY KEY, workflow_id TEXT NOT NULL, \
         run_id TEXT NOT NULL, workflow_type TEXT NOT NULL, close_time TEXT NOT NULL, status TEXT NOT NULL, \
         history_json TEXT NOT NULL, history_sha256 TEXT NOT NULL, prev_sha256 TEXT NOT NULL, \
         entry_sha256 TEXT NOT NULL, archived_at_ms BIGINT NOT NULL, UNIQUE (workflow_id, run_id))",
            "CREATE INDEX IF NOT EXISTS audit_archive_by_close ON audit_archive (close_time)",
        ],
    ),
    (
        4,
        &[
            // The failover drill's log: every write attempt (by marker
            // number), probe answer and trigger event of a drill run, so a
            // drill whose worker was killed resumes and measures from it.
            "CREATE TABLE IF NOT EXISTS drill_log (run_id TEXT NOT NULL, kind TEXT NOT NULL, seq BIGINT NOT NULL, \
         at_ms BIGINT NOT NULL, ok BIGINT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (run_id, kind, seq))",
        ],
    ),
    (
        5,
        &[
            // Every repo of a sweep asks for its pending status changes;
            // applied ones accumulate, so the pending ones need an index.
            "CREATE INDEX IF NOT EXISTS status_changes_by_state ON status_changes (state)",
        ],
    ),
    (
        6,
        &[
            // The nonce of every signed start with the run that used it: a
            // start signed once starts one run.
            "CREATE TABLE IF NOT EXISTS steward_start_claims (nonce TEXT PRIMARY KEY, workflow_id TEXT NOT NULL, \
         run_id TEXT NOT NULL, claimed_at_ms BIGINT NOT NULL)",
        ],
    ),
    (
        7,
        &[
            // Every lease released by an operator or taken over from a run
            // that had closed: which, whose, by whom, why, when.
            "CREATE TABLE IF NOT EXISTS steward_lock_events (id TEXT PRIMARY KEY, name TEXT NOT NULL, \
         holder TEXT NOT NULL, action TEXT NOT NULL, by_whom TEXT NOT NULL, reason TEXT NOT NULL, \
         at_ms BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS steward_lock_events_by_time ON steward_lock_events (at_ms)",
        ],
    ),
    (
        8,
        &[
            // Every per-run resource steward made on a shared service: the
            // reaper deletes only these, never what it did not make.
            "CREATE TABLE IF NOT EXISTS steward_shared_resources (service TEXT NOT NULL, resource TEXT NOT NULL, \
         app TEXT NOT NULL, run_id TEXT NOT NULL, created_at_ms BIGINT NOT NULL, \
         deleted_at_ms BIGINT NOT NULL DEFAULT 0, ended TEXT NOT NULL DEFAULT '', PRIMARY KEY (service, resource))",
        ],
    ),
    (
        9,
        &[
            // Each batch a job-driven backfill's job finished: a retry of
            // a recorded batch returns it without running the job again
            // (the target is not steward's to write its progress in).
            "CREATE TABLE IF NOT EXISTS steward_backfill_job_batches (run_tag TEXT NOT NULL, batch_no BIGINT NOT NULL, \
         backfill TEXT NOT NULL, cursor_in TEXT NOT NULL, cursor_out TEXT NOT NULL, rows_written BIGINT NOT NULL, \
         errors BIGINT NOT NULL, violations BIGINT NOT NULL, done BIGINT NOT NULL, stderr TEXT NOT NULL, \
         finished_at_ms BIGINT NOT NULL, PRIMARY KEY (run_tag, batch_no))",
        ],
    ),
];

/// The schema version this binary migrates to.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Key of the advisory lock that makes PostgreSQL migrations one at a time.
const MIGRATION_LOCK: i64 = 0x5745_5741_5244; // "STEWARD"

/// Applies every migration not yet recorded in `steward_schema`. On
/// PostgreSQL, in one transaction under an advisory lock: `CREATE TABLE IF
/// NOT EXISTS` there is not safe against a second process creating the
/// same table at the same moment (two workers starting on a fresh
/// database). SQLite's own write lock already serialises them.
pub async fn run(pool: &AnyPool, backend: StoreBackend) -> Result<(), sqlx::Error> {
    if backend == StoreBackend::Postgres {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        apply(&mut tx).await?;
        tx.commit().await
    } else {
        apply(&mut *pool.acquire().await?).await
    }
}

async fn apply(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS steward_schema (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for (version, statements) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM steward_schema WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *conn)
                .await?;
        if done.is_some() {
            continue;
        }
        for statement in *statements {
            sqlx::query(statement).execute(&mut *conn).await?;
        }
        sqlx::query("INSERT INTO steward_schema (version, applied_at_ms) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING")
            .bind(version)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
