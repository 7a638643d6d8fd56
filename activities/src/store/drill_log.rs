//! The failover drill's log: one row per write attempt (keyed by its
//! marker number), probe answer and trigger event of a drill run. The
//! drill's writer appends to it as it goes, so a drill whose worker was
//! killed resumes from it and the verification measures from it.

use sqlx::Row as _;

use super::{Error, Store};

/// What a log row is about.
pub const WRITE: &str = "write";
/// See [`WRITE`].
pub const PROBE: &str = "probe";
/// See [`WRITE`]: seq 0 when it started, 1 when it ended (with `ok`).
pub const TRIGGER: &str = "trigger";

/// One row of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// [`WRITE`], [`PROBE`] or [`TRIGGER`].
    pub kind: String,
    /// The marker number, the probe's number, the trigger's event.
    pub seq: i64,
    /// When, in ms since the epoch.
    pub at_ms: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error, the answer, or what the host was.
    pub detail: String,
}

impl Store {
    /// Appends a row to run `run`'s log; a row already there stays as it
    /// was (a retried step logs nothing twice). True when this call wrote
    /// it.
    pub async fn drill_log_append(&self, run: &str, row: &LogRow) -> Result<bool, Error> {
        let done = sqlx::query(
            "INSERT INTO drill_log (run_id, kind, seq, at_ms, ok, detail) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run_id, kind, seq) DO NOTHING",
        )
        .bind(run)
        .bind(&row.kind)
        .bind(row.seq)
        .bind(row.at_ms)
        .bind(i64::from(row.ok))
        .bind(&row.detail)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Run `run`'s log, oldest first.
    pub async fn drill_log(&self, run: &str) -> Result<Vec<LogRow>, Error> {
        let rows = sqlx::query(
            "SELECT kind, seq, at_ms, ok, detail FROM drill_log WHERE run_id = $1 ORDER BY at_ms, kind, seq",
        )
        .bind(run)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogRow {
                    kind: r.try_get("kind")?,
                    seq: r.try_get("seq")?,
                    at_ms: r.try_get("at_ms")?,
                    ok: r.try_get::<i64, _>("ok")? != 0,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
