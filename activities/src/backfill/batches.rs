//! The batch engine: runs of keyset batches, each in one transaction with
//! its progress row, so a retried batch is recognised and never applied
//! twice.

use super::*;

use sqlx::Any;
use sqlx::pool::PoolConnection;

/// Characters of a failed batch's error kept in its progress row.
const ERROR_CHARS: usize = 1000;

/// The progress table, in the target database. MySQL keys no `TEXT`
/// column, and its `TEXT` reads back as bytes: `VARCHAR`s there (an
/// error is kept to [`ERROR_CHARS`]).
pub(super) fn progress_ddl(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Numbered => {
            "CREATE TABLE IF NOT EXISTS steward_backfill_progress (run_tag TEXT NOT NULL, \
             batch_no BIGINT NOT NULL, lo BIGINT, hi BIGINT, rows_written BIGINT NOT NULL, status TEXT NOT NULL, \
             error TEXT NOT NULL, PRIMARY KEY (run_tag, batch_no))"
        }
        Dialect::Positional => {
            "CREATE TABLE IF NOT EXISTS steward_backfill_progress (run_tag VARCHAR(191) NOT NULL, \
             batch_no BIGINT NOT NULL, lo BIGINT, hi BIGINT, rows_written BIGINT NOT NULL, status VARCHAR(16) NOT NULL, \
             error VARCHAR(2000) NOT NULL, PRIMARY KEY (run_tag, batch_no)) ENGINE=InnoDB"
        }
    }
}

impl BackfillActivities {
    /// Applies a run of consecutive batches from `req.batch_no`: at most
    /// `max_batches`, none started after `budget_ms`, once `stop` says so,
    /// or while the lag is over `max_lag_seconds`, and none after the end
    /// of the source; the first always starts. Each batch is exactly once
    /// (see [`Self::one`]), so a retried run skips what it had applied and
    /// goes on. `applied` hears of every batch applied now, with its rows
    /// and seconds.
    pub async fn batches(
        &self,
        req: &BatchRequest,
        mut applied: impl FnMut(u64, f64),
        stop: impl Fn() -> bool,
    ) -> Result<BatchResult, Error> {
        let s = self.spec(&req.name)?;
        // A job keeps its progress in steward's store, SQL in the target.
        enum Engine<'a> {
            Job(&'a spec::Job),
            Sql(Target),
        }
        let mut engine = match &s.job {
            Some(job) => Engine::Job(job),
            None => {
                let pool = self.pool(&req.name).await?;
                let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
                sqlx::query(progress_ddl(s.dialect()))
                    .execute(&mut *conn)
                    .await
                    .map_err(sql_err("creating steward_backfill_progress"))?;
                Engine::Sql(Target {
                    pool,
                    conn,
                    next_range: None,
                })
            }
        };
        let max_batches = u64::from(req.max_batches.max(1));
        let started = std::time::Instant::now();
        let budget = Duration::from_millis(u64::from(req.budget_ms));
        let mut run = BatchResult {
            cursor: req.cursor,
            lo: req.cursor,
            hi: req.cursor,
            job_cursor: req.job_cursor.clone(),
            ..Default::default()
        };
        for i in 0..max_batches {
            if i > 0 {
                if started.elapsed() >= budget || stop() {
                    break;
                }
                if s.lag_sql.is_some() && self.lag(&req.name).await?.seconds > req.max_lag_seconds {
                    break;
                }
                // The throttles a query reads; the workflow reads them all
                // (commands, HTTP) before the next run.
                if s.throttles.iter().any(|t| t.sql.is_some())
                    && self
                        .throttles(&req.name, &req.throttle_max, true)
                        .await?
                        .readings
                        .iter()
                        .any(|r| r.over)
                {
                    break;
                }
            }
            let at = std::time::Instant::now();
            let batch_no = req.batch_no + i;
            let b = match &mut engine {
                Engine::Job(job) => {
                    let (b, ran) = self.one_job(job, req, batch_no, &run.job_cursor).await?;
                    if ran && b.rows > 0 {
                        applied(b.rows, at.elapsed().as_secs_f64());
                    }
                    run.job_cursor = b.job_cursor.clone();
                    run.job_errors += b.job_errors;
                    run.idempotency_violations += b.idempotency_violations;
                    b
                }
                Engine::Sql(target) => {
                    let read_ahead = i + 1 < max_batches && started.elapsed() < budget;
                    let b = self
                        .one(s, target, req, batch_no, run.cursor, read_ahead)
                        .await?;
                    if b.applied_now && !b.done {
                        applied(b.rows, at.elapsed().as_secs_f64());
                    }
                    b
                }
            };
            run.applied_now |= b.applied_now;
            run.batches += 1;
            // A job's last batch may carry rows; SQL's end carries none.
            run.rows += b.rows;
            // The runbook: a job's error or violation with stop_on_error
            // stops, and the rollout rolls back (with the counts, which an
            // error would lose).
            if s.job.is_some() && req.stop_on_error && !b.error.is_empty() {
                run.stopped = format!("batch {batch_no}: {}", b.error);
                break;
            }
            if b.done {
                run.done = true;
                break;
            }
            if i == 0 {
                run.lo = b.lo;
            }
            run.hi = b.hi;
            run.cursor = b.cursor;
            if !b.error.is_empty() {
                run.skipped.push(SkippedBatch {
                    lo: b.lo,
                    hi: b.hi,
                    error: b
                        .error
                        .chars()
                        .take(limits::FINDING_MESSAGE_CHARS)
                        .collect(),
                });
            }
        }
        Ok(run)
    }

    /// Applies batch `batch_no` from `cursor` on the run's connection.
    /// Exactly once: the transaction that applies the range also records
    /// `(run_tag, batch_no)` in `steward_backfill_progress`; a retry finds
    /// the row and returns what was recorded without applying anything.
    ///
    /// With `read_ahead`, the next range is read on another of the pool's
    /// connections while this batch applies and commits, and kept in
    /// `target` for the next batch. A range is keyset
    /// (rows after the cursor), so reading it before the previous batch
    /// commits selects what reading it after would.
    async fn one(
        &self,
        s: &BackfillSpec,
        target: &mut Target,
        req: &BatchRequest,
        batch_no: u64,
        cursor: i64,
        read_ahead: bool,
    ) -> Result<BatchResult, Error> {
        let dialect = s.dialect();
        let Target {
            pool,
            conn,
            next_range: ahead,
        } = target;
        let pool: &AnyPool = pool;
        let mut tx = crate::store::begin_write_on(conn)
            .await
            .map_err(sql_err("begin"))?;
        let done_before = Statement::new(
            dialect,
            "SELECT lo, hi, rows_written, status, error FROM steward_backfill_progress WHERE run_tag = $1 AND batch_no = $2",
            &[req.run_tag.as_str().into(), (batch_no as i64).into()],
        )
        .query()
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql_err("reading steward_backfill_progress"))?;
        if let Some(row) = done_before {
            let lo: Option<i64> = row.try_get("lo").map_err(sql_err("progress row"))?;
            let hi: Option<i64> = row.try_get("hi").map_err(sql_err("progress row"))?;
            let rows: i64 = row
                .try_get("rows_written")
                .map_err(sql_err("progress row"))?;
            let error: String = row.try_get("error").map_err(sql_err("progress row"))?;
            return Ok(BatchResult {
                applied_now: false,
                done: lo.is_none(),
                lo: lo.unwrap_or(cursor),
                hi: hi.unwrap_or(cursor),
                rows: rows.max(0) as u64,
                cursor: hi.unwrap_or(cursor),
                error,
                ..Default::default()
            });
        }
        let bounds = match ahead.take() {
            Some((from, bounds)) if from == cursor => bounds,
            _ => next_range(s, &mut *tx, cursor, req.batch_size).await?,
        };
        let record = |lo: Option<i64>,
                      hi: Option<i64>,
                      rows: i64,
                      status: &'static str,
                      error: String| {
            Statement::new(
                dialect,
                "INSERT INTO steward_backfill_progress (run_tag, batch_no, lo, hi, rows_written, status, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    req.run_tag.as_str().into(),
                    (batch_no as i64).into(),
                    lo.into(),
                    hi.into(),
                    rows.into(),
                    status.into(),
                    error.chars().take(ERROR_CHARS).collect::<String>().into(),
                ],
            )
        };
        let Some((lo, hi)) = bounds else {
            record(None, None, 0, "done", String::new())
                .query()
                .execute(&mut *tx)
                .await
                .map_err(sql_err("recording the end"))?;
            tx.commit().await.map_err(sql_err("commit"))?;
            return Ok(BatchResult {
                applied_now: true,
                done: true,
                lo: cursor,
                hi: cursor,
                rows: 0,
                cursor,
                error: String::new(),
                ..Default::default()
            });
        };
        let apply = async {
            let applied = Statement::new(
                dialect,
                &s.apply_sql,
                &[lo.into(), hi.into(), req.run_tag.as_str().into()],
            )
            .query()
            .execute(&mut *tx)
            .await;
            let rows = match applied {
                Ok(done) => done.rows_affected() as i64,
                // The server went away or turned read-only under the batch
                // (a failover): nothing was applied; the attempt is
                // retried, on the new primary, with the same run tag and
                // batch number.
                Err(e) if crate::store::unavailable(&e) => {
                    return Err(sql_err("applying the batch")(e));
                }
                Err(e) => {
                    let message = e.to_string();
                    tx.rollback().await.map_err(sql_err("rollback"))?;
                    if req.stop_on_error {
                        return Err(Error::BatchFailed {
                            batch_no,
                            lo,
                            hi,
                            message,
                        });
                    }
                    record(Some(lo), Some(hi), 0, "failed", message.clone())
                        .query()
                        .execute(pool)
                        .await
                        .map_err(sql_err("recording the failed batch"))?;
                    return Ok((0, message));
                }
            };
            record(Some(lo), Some(hi), rows, "applied", String::new())
                .query()
                .execute(&mut *tx)
                .await
                .map_err(sql_err("recording the batch"))?;
            tx.commit().await.map_err(sql_err("commit"))?;
            Ok((rows, String::new()))
        };
        // The next range: an error here is the next batch's to meet.
        let reading = async {
            if read_ahead {
                let mut other = pool.acquire().await.ok()?;
                let bounds = next_range(s, &mut *other, hi, req.batch_size).await.ok()?;
                Some((hi, bounds))
            } else {
                None
            }
        };
        let (applied, next) = tokio::join!(apply, reading);
        let (rows, error) = applied?;
        *ahead = next;
        Ok(BatchResult {
            applied_now: true,
            done: false,
            lo,
            hi,
            rows: rows as u64,
            cursor: hi,
            error,
            ..Default::default()
        })
    }
}

/// Where a run of SQL batches applies: a connection of the target's pool
/// held for the run, and the range after a cursor when it was read while
/// the batch before applied.
struct Target {
    pool: AnyPool,
    conn: PoolConnection<Any>,
    next_range: Option<(i64, Option<(i64, i64)>)>,
}

/// The range `next_range_sql` selects after `cursor`: `(low, high)`, or
/// none at the end of the source.
async fn next_range<'c, E>(
    s: &BackfillSpec,
    on: E,
    cursor: i64,
    batch_size: u32,
) -> Result<Option<(i64, i64)>, Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let range = Statement::new(
        s.dialect(),
        &s.next_range_sql,
        &[cursor.into(), i64::from(batch_size.max(1)).into()],
    )
    .query()
    .fetch_optional(on)
    .await
    .map_err(sql_err("next_range_sql"))?;
    Ok(range.and_then(|r| {
        let lo = r.try_get::<Option<i64>, _>(0).ok().flatten()?;
        let hi = r.try_get::<Option<i64>, _>(1).ok().flatten()?;
        Some((lo, hi))
    }))
}
