//! The batches a job-driven backfill's job finished
//! (`steward_backfill_job_batches`): recorded when the job exits 0 with
//! its final line, so a retried batch returns what was recorded without
//! running the job again; removed by the rollback.

use sqlx::Row;

use super::{Error, Store};

/// One batch a job finished.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobBatch {
    /// The rollout's run tag.
    pub run_tag: String,
    /// The batch's number.
    pub batch_no: i64,
    /// The backfill.
    pub backfill: String,
    /// The cursor the job started from.
    pub cursor_in: String,
    /// The cursor it said comes next.
    pub cursor_out: String,
    /// Rows it reported applying.
    pub rows: i64,
    /// Errors it reported.
    pub errors: i64,
    /// Idempotency violations it reported.
    pub violations: i64,
    /// Nothing was left after it.
    pub done: bool,
    /// The end of its stderr.
    pub stderr: String,
}

impl Store {
    /// The batch `batch_no` of `run_tag`, if its job finished it.
    pub async fn job_batch(&self, run_tag: &str, batch_no: i64) -> Result<Option<JobBatch>, Error> {
        let row = sqlx::query(
            "SELECT backfill, cursor_in, cursor_out, rows_written, errors, violations, done, stderr \
             FROM steward_backfill_job_batches WHERE run_tag = $1 AND batch_no = $2",
        )
        .bind(run_tag)
        .bind(batch_no)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| JobBatch {
            run_tag: run_tag.to_string(),
            batch_no,
            backfill: r.get("backfill"),
            cursor_in: r.get("cursor_in"),
            cursor_out: r.get("cursor_out"),
            rows: r.get("rows_written"),
            errors: r.get("errors"),
            violations: r.get("violations"),
            done: r.get::<i64, _>("done") != 0,
            stderr: r.get("stderr"),
        }))
    }

    /// Records a finished batch; a batch recorded before keeps its record
    /// (the first finish counts).
    pub async fn record_job_batch(&self, b: &JobBatch, now_ms: i64) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO steward_backfill_job_batches (run_tag, batch_no, backfill, cursor_in, cursor_out, \
             rows_written, errors, violations, done, stderr, finished_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (run_tag, batch_no) DO NOTHING",
        )
        .bind(&b.run_tag)
        .bind(b.batch_no)
        .bind(&b.backfill)
        .bind(&b.cursor_in)
        .bind(&b.cursor_out)
        .bind(b.rows)
        .bind(b.errors)
        .bind(b.violations)
        .bind(i64::from(b.done))
        .bind(&b.stderr)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the batches of `run_tag` (its rollback removed what they
    /// wrote); how many.
    pub async fn forget_job_batches(&self, run_tag: &str) -> Result<u64, Error> {
        Ok(
            sqlx::query("DELETE FROM steward_backfill_job_batches WHERE run_tag = $1")
                .bind(run_tag)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
