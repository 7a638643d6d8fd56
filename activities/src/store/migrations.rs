//! Schema migrations, applied in order on connect. Every statement is
//! idempotent (`IF NOT EXISTS`), so two workers starting at once, or a
//! start after a crash mid-migration, end in the same schema.

use sqlx::AnyPool;

/// Each migration: version and its statements. Append only; never edit a
/// migration that has shipped.
const MIGRATIONS: &[(i64, &[&str])] = &[(
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
)];

/// The schema version this binary migrates to.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Applies every migration not yet recorded in `steward_schema`.
pub async fn run(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS steward_schema (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    for (version, statements) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM steward_schema WHERE version = $1")
                .bind(version)
                .fetch_optional(pool)
                .await?;
        if done.is_some() {
            continue;
        }
        for statement in *statements {
            sqlx::query(statement).execute(pool).await?;
        }
        sqlx::query("INSERT INTO steward_schema (version, applied_at_ms) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING")
            .bind(version)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(pool)
            .await?;
    }
    Ok(())
}
