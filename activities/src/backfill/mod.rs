//! The backfill rollout's activities, against the backfill's own database
//! (SQLite or PostgreSQL).

pub mod spec;
pub mod sql;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use steward_proto::v1::{
    BackfillEvidence, BackfillPlan, BackfillRef, BatchRequest, BatchResult, CheckResult,
    DryRunReport, DryRunRequest, EvidenceWritten, LagReading, PreconditionsResult, ProbeResult,
    RollbackResult, SkippedBatch, ValidationRequest, ValidationResult,
};
use steward_proto::vocab::{BackfillPhase, SpecAction};
use steward_proto::{limits, names};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub use spec::{Action, BackfillSpec, Expect, parse_expect};

use crate::command::Command;
use crate::files::write_private;

/// Backfill errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `[[backfills]]` entry of that name.
    #[error("no backfill named `{0}` in the config")]
    Unknown(String),
    /// A statement failed.
    #[error("{what}: {source}")]
    Sql {
        /// Which statement.
        what: String,
        /// The database's error.
        source: sqlx::Error,
    },
    /// An action failed.
    #[error("{0}")]
    Action(String),
    /// A batch failed and `stop_on_error` is set: stop and roll back.
    #[error("batch {batch_no} ({lo}..={hi}) failed: {message}")]
    BatchFailed {
        /// The batch.
        batch_no: u64,
        /// Range low.
        lo: i64,
        /// Range high.
        hi: i64,
        /// The database's error.
        message: String,
    },
    /// Writing a report failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn sql_err(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    let what = what.into();
    move |source| Error::Sql { what, source }
}

/// An unknown backfill and a failed batch under `stop_on_error` are
/// permanent; everything else (connections, timeouts) is retried.
fn failure(e: Error) -> ActivityError {
    if matches!(e, Error::Unknown(_) | Error::BatchFailed { .. }) {
        crate::failure::permanent(e)
    } else {
        crate::failure::retryable(e)
    }
}

/// The backfill activities: specs by name, a pool per target database and
/// the evidence folder.
#[derive(Debug)]
pub struct BackfillActivities {
    specs: BTreeMap<String, BackfillSpec>,
    pools: Mutex<HashMap<String, AnyPool>>,
    artifacts: PathBuf,
    metrics: crate::metrics::Metrics,
    roster: crate::roster::Roster,
}

const PROGRESS_DDL: &str = "CREATE TABLE IF NOT EXISTS steward_backfill_progress (run_tag TEXT NOT NULL, \
    batch_no BIGINT NOT NULL, lo BIGINT, hi BIGINT, rows_written BIGINT NOT NULL, status TEXT NOT NULL, \
    error TEXT NOT NULL, PRIMARY KEY (run_tag, batch_no))";

impl BackfillActivities {
    /// Activities over `specs`, writing evidence under `artifacts`.
    pub fn new(specs: Vec<BackfillSpec>, artifacts: PathBuf) -> Self {
        Self {
            specs: specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
            pools: Mutex::new(HashMap::new()),
            artifacts,
            metrics: Default::default(),
            roster: Default::default(),
        }
    }

    /// The same activities, handing `roster` to every rollout's plan.
    pub fn with_roster(mut self, roster: crate::roster::Roster) -> Self {
        self.roster = roster;
        self
    }

    /// The same activities, recording rows, rate and phase into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The spec named `name`.
    pub fn spec(&self, name: &str) -> Result<&BackfillSpec, Error> {
        self.specs
            .get(name)
            .ok_or_else(|| Error::Unknown(name.into()))
    }

    async fn pool(&self, name: &str) -> Result<AnyPool, Error> {
        if let Some(p) = self.pools.lock().expect("pool map").get(name) {
            return Ok(p.clone());
        }
        let spec = self.spec(name)?;
        let pool = crate::store::connect_any(&spec.database_url)
            .await
            .map_err(sql_err(format!(
                "connecting to the database of backfill `{name}`"
            )))?;
        self.pools
            .lock()
            .expect("pool map")
            .insert(name.into(), pool.clone());
        Ok(pool)
    }

    /// The spec as the workflow needs it. Read-only.
    pub fn plan(&self, name: &str) -> Result<BackfillPlan, Error> {
        let s = self.spec(name)?;
        Ok(BackfillPlan {
            name: s.name.clone(),
            spec_sha256: s.sha256(),
            batch_size: s.batch_size,
            stop_on_error: s.stop_on_error,
            max_runtime_seconds: s.max_runtime_seconds(),
            has_lag_sql: s.lag_sql.is_some(),
            max_lag_seconds: s.max_lag_seconds,
            approvals: s.approvals.clone(),
            batches_per_run: s.batches_per_run,
            batches_per_activity: s.batches_per_activity,
            has_snapshot: s.snapshot.is_some(),
            has_replay_probe: s.replay_probe.is_some(),
            throttle_seconds: s.throttle_seconds,
            operators: self.roster.operators.clone(),
            require_verified: s.require_verified,
            verify_key: self.roster.verify_key.clone(),
            permissions: self
                .roster
                .grants(crate::roster::Target::Backfill(&s.name), &s.approvals),
        })
    }

    /// Preconditions, and the values of `unchanged` validations before the
    /// run. Read-only (plus the idempotent progress table DDL).
    pub async fn preconditions(&self, name: &str) -> Result<PreconditionsResult, Error> {
        let s = self.spec(name)?;
        let pool = self.pool(name).await?;
        let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
        sqlx::query(PROGRESS_DDL)
            .execute(&mut *conn)
            .await
            .map_err(sql_err("creating steward_backfill_progress"))?;
        let mut out = PreconditionsResult::default();
        for p in &s.preconditions {
            let r = sql::scalar(&mut conn, &p.sql, "").await;
            out.checks.push(match r {
                Ok(v) => CheckResult {
                    name: p.name.clone(),
                    ok: v.truthy(),
                    value: v.text,
                    expect: "true".into(),
                    message: String::new(),
                },
                Err(e) => CheckResult {
                    name: p.name.clone(),
                    ok: false,
                    value: String::new(),
                    expect: "true".into(),
                    message: e.to_string(),
                },
            });
        }
        for v in &s.validations {
            if parse_expect(&v.expect) == Ok(Expect::Unchanged) {
                let value = sql::scalar(&mut conn, &v.sql, "")
                    .await
                    .map_err(sql_err(format!("baseline of `{}`", v.name)))?;
                out.baseline.push(CheckResult {
                    name: v.name.clone(),
                    ok: true,
                    value: value.text,
                    expect: v.expect.clone(),
                    message: String::new(),
                });
            }
        }
        Ok(out)
    }

    /// Runs an action of the spec. Idempotent when the action is: freeze
    /// and unfreeze set flags, snapshots replace their copy.
    pub async fn run_action(
        &self,
        name: &str,
        which: SpecAction,
        run_tag: &str,
    ) -> Result<(), Error> {
        let s = self.spec(name)?;
        let action = match which {
            SpecAction::Freeze => s.freeze.as_ref(),
            SpecAction::Unfreeze => s.unfreeze.as_ref(),
            SpecAction::Snapshot => s.snapshot.as_ref(),
            SpecAction::Restore => s.restore.as_ref(),
            SpecAction::Probe | SpecAction::Rollback => {
                return Err(Error::Action(format!(
                    "`{which}` is not a spec action; it has its own activity"
                )));
            }
        };
        match action {
            None => Ok(()),
            Some(a) => self
                .execute(name, a, run_tag)
                .await
                .map_err(|e| Error::Action(format!("{which}: {e}"))),
        }
    }

    async fn execute(&self, name: &str, action: &Action, run_tag: &str) -> Result<(), Error> {
        let timeout = Duration::from_secs(action.timeout_seconds.max(1));
        if let Some(text) = &action.sql {
            let pool = self.pool(name).await?;
            let mut tx = crate::store::begin_write(&pool)
                .await
                .map_err(sql_err("begin"))?;
            for statement in text.statements() {
                sql::query_with_tag(statement, run_tag)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_err(format!("`{}`", shorten(statement))))?;
            }
            tx.commit().await.map_err(sql_err("commit"))?;
        }
        if let Some(h) = &action.http {
            let method = reqwest::Method::from_bytes(h.method.as_bytes())
                .map_err(|e| Error::Action(e.to_string()))?;
            let mut req = reqwest::Client::new()
                .request(method, &h.url)
                .timeout(timeout);
            if let Some(body) = &h.body {
                req = req
                    .header("content-type", "application/json")
                    .body(body.clone());
            }
            let resp = req.send().await.map_err(|e| {
                Error::Action(format!(
                    "{} {}: {}",
                    h.method,
                    h.url,
                    crate::http::cause(&e, timeout)
                ))
            })?;
            let ok = match h.expect_status {
                Some(code) => resp.status().as_u16() == code,
                None => resp.status().is_success(),
            };
            if !ok {
                return Err(Error::Action(format!(
                    "{} {} answered {}",
                    h.method,
                    h.url,
                    resp.status()
                )));
            }
        }
        if let Some(argv) = &action.command {
            Command::new(argv.iter().cloned())
                .timeout(timeout)
                .run()
                .await
                .map_err(|e| Error::Action(e.to_string()))?;
        }
        Ok(())
    }

    /// Counts the records the backfill will write and writes the dry-run
    /// report with its SHA-256. Idempotent: reads, then rewrites the same
    /// report file.
    pub async fn dry_run(&self, req: &DryRunRequest) -> Result<DryRunReport, Error> {
        let s = self.spec(&req.name)?;
        let pool = self.pool(&req.name).await?;
        let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
        let counted = sql::scalar(&mut conn, &s.count_sql, &req.run_tag)
            .await
            .map_err(sql_err("count_sql"))?;
        let counted = counted.number.unwrap_or(0.0).max(0.0) as u64;
        let within = s
            .expected_count
            .is_none_or(|e| counted.abs_diff(e) <= s.count_tolerance);
        let report = serde_json::json!({
            "backfill": s.name,
            "spec_sha256": s.sha256(),
            "run_tag": req.run_tag,
            "counted": counted,
            "expected": s.expected_count,
            "tolerance": s.count_tolerance,
            "within_tolerance": within,
        });
        let bytes = serde_json::to_vec_pretty(&report).unwrap_or_default();
        let path = self
            .artifacts
            .join(&req.name)
            .join(&req.evidence_dir)
            .join("dry-run.json");
        write_private(&path, &bytes).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(DryRunReport {
            expected: s.expected_count.unwrap_or(0),
            has_expected: s.expected_count.is_some(),
            counted,
            within_tolerance: within,
            report_path: path.display().to_string(),
            report_sha256: hex::encode(Sha256::digest(&bytes)),
        })
    }

    /// Applies a run of consecutive batches from `req.batch_no`: at most
    /// `max_batches`, none started after `budget_ms` or while the lag is
    /// over `max_lag_seconds`, and none after the end of the source. Each
    /// batch is exactly once (see [`Self::one`]), so a retried run skips
    /// what it had applied and goes on. `applied` hears of every batch
    /// applied now, with its rows and seconds.
    pub async fn batches(
        &self,
        req: &BatchRequest,
        mut applied: impl FnMut(u64, f64),
    ) -> Result<BatchResult, Error> {
        let s = self.spec(&req.name)?;
        let pool = self.pool(&req.name).await?;
        sqlx::query(PROGRESS_DDL)
            .execute(&pool)
            .await
            .map_err(sql_err("creating steward_backfill_progress"))?;
        let started = std::time::Instant::now();
        let budget = Duration::from_millis(u64::from(req.budget_ms));
        let mut run = BatchResult {
            cursor: req.cursor,
            lo: req.cursor,
            hi: req.cursor,
            ..Default::default()
        };
        for i in 0..u64::from(req.max_batches.max(1)) {
            if i > 0 {
                if started.elapsed() >= budget {
                    break;
                }
                if s.lag_sql.is_some() && self.lag(&req.name).await?.seconds > req.max_lag_seconds {
                    break;
                }
            }
            let at = std::time::Instant::now();
            let b = self
                .one(s, &pool, req, req.batch_no + i, run.cursor)
                .await?;
            if b.applied_now && !b.done {
                applied(b.rows, at.elapsed().as_secs_f64());
            }
            run.applied_now |= b.applied_now;
            run.batches += 1;
            if b.done {
                run.done = true;
                break;
            }
            if i == 0 {
                run.lo = b.lo;
            }
            run.hi = b.hi;
            run.rows += b.rows;
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

    /// Applies batch `batch_no` from `cursor`. Exactly once: the
    /// transaction that applies the range also records `(run_tag,
    /// batch_no)` in `steward_backfill_progress`; a retry finds the row and
    /// returns what was recorded without applying anything.
    async fn one(
        &self,
        s: &BackfillSpec,
        pool: &AnyPool,
        req: &BatchRequest,
        batch_no: u64,
        cursor: i64,
    ) -> Result<BatchResult, Error> {
        let mut tx = crate::store::begin_write(pool)
            .await
            .map_err(sql_err("begin"))?;
        let done_before = sqlx::query(
            "SELECT lo, hi, rows_written, status, error FROM steward_backfill_progress WHERE run_tag = $1 AND batch_no = $2",
        )
        .bind(&req.run_tag)
        .bind(batch_no as i64)
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
        let range = sqlx::query(&s.next_range_sql)
            .bind(cursor)
            .bind(i64::from(req.batch_size.max(1)))
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql_err("next_range_sql"))?;
        let bounds = range.and_then(|r| {
            let lo = r.try_get::<Option<i64>, _>(0).ok().flatten()?;
            let hi = r.try_get::<Option<i64>, _>(1).ok().flatten()?;
            Some((lo, hi))
        });
        let record = |lo: Option<i64>,
                      hi: Option<i64>,
                      rows: i64,
                      status: &'static str,
                      error: String| {
            sqlx::query(
                "INSERT INTO steward_backfill_progress (run_tag, batch_no, lo, hi, rows_written, status, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(req.run_tag.clone())
            .bind(batch_no as i64)
            .bind(lo)
            .bind(hi)
            .bind(rows)
            .bind(status)
            .bind(error)
        };
        let Some((lo, hi)) = bounds else {
            record(None, None, 0, "done", String::new())
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
        let applied = sqlx::query(&s.apply_sql)
            .bind(lo)
            .bind(hi)
            .bind(&req.run_tag)
            .execute(&mut *tx)
            .await;
        match applied {
            Ok(done) => {
                let rows = done.rows_affected() as i64;
                record(Some(lo), Some(hi), rows, "applied", String::new())
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_err("recording the batch"))?;
                tx.commit().await.map_err(sql_err("commit"))?;
                Ok(BatchResult {
                    applied_now: true,
                    done: false,
                    lo,
                    hi,
                    rows: rows as u64,
                    cursor: hi,
                    error: String::new(),
                    ..Default::default()
                })
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
                    .execute(pool)
                    .await
                    .map_err(sql_err("recording the failed batch"))?;
                Ok(BatchResult {
                    applied_now: true,
                    done: false,
                    lo,
                    hi,
                    rows: 0,
                    cursor: hi,
                    error: message,
                    ..Default::default()
                })
            }
        }
    }

    /// The replication lag in seconds (0 without `lag_sql`). Read-only.
    pub async fn lag(&self, name: &str) -> Result<LagReading, Error> {
        let s = self.spec(name)?;
        let Some(lag_sql) = &s.lag_sql else {
            return Ok(LagReading { seconds: 0.0 });
        };
        let pool = self.pool(name).await?;
        let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
        let v = sql::scalar(&mut conn, lag_sql, "")
            .await
            .map_err(sql_err("lag_sql"))?;
        Ok(LagReading {
            seconds: v.number.unwrap_or(0.0),
        })
    }

    /// Runs the validations. Read-only.
    pub async fn validate(&self, req: &ValidationRequest) -> Result<ValidationResult, Error> {
        let s = self.spec(&req.name)?;
        let pool = self.pool(&req.name).await?;
        let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
        let mut out = ValidationResult::default();
        for v in &s.validations {
            let expect = parse_expect(&v.expect).map_err(Error::Action)?;
            let got = sql::scalar(&mut conn, &v.sql, &req.run_tag).await;
            let check = match got {
                Err(e) => CheckResult {
                    name: v.name.clone(),
                    ok: false,
                    value: String::new(),
                    expect: v.expect.clone(),
                    message: e.to_string(),
                },
                Ok(value) => {
                    let n = value.number;
                    let ok = match expect {
                        Expect::Unchanged => req
                            .baseline
                            .iter()
                            .find(|b| b.name == v.name)
                            .is_some_and(|b| b.value == value.text),
                        Expect::Equal(x) => n == Some(x),
                        Expect::AtMost(x) => n.is_some_and(|n| n <= x),
                        Expect::AtLeast(x) => n.is_some_and(|n| n >= x),
                    };
                    let message = match expect {
                        Expect::Unchanged => format!(
                            "before: {}",
                            req.baseline
                                .iter()
                                .find(|b| b.name == v.name)
                                .map(|b| b.value.as_str())
                                .unwrap_or("?")
                        ),
                        _ => String::new(),
                    };
                    CheckResult {
                        name: v.name.clone(),
                        ok,
                        value: value.text,
                        expect: v.expect.clone(),
                        message,
                    }
                }
            };
            out.checks.push(check);
        }
        Ok(out)
    }

    /// Removes what the run wrote (`rollback_sql` with the run tag, and the
    /// run's progress rows) in one transaction; if that fails, runs the
    /// restore action. Idempotent: a second rollback deletes nothing more.
    pub async fn rollback(&self, name: &str, run_tag: &str) -> Result<RollbackResult, Error> {
        let s = self.spec(name)?;
        let pool = self.pool(name).await?;
        let attempt = async {
            let mut tx = crate::store::begin_write(&pool).await?;
            sqlx::query(&s.rollback_sql)
                .bind(run_tag)
                .execute(&mut *tx)
                .await?;
            sqlx::query(PROGRESS_DDL).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM steward_backfill_progress WHERE run_tag = $1")
                .bind(run_tag)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        match attempt.await {
            Ok(()) => Ok(RollbackResult {
                rolled_back: true,
                ..Default::default()
            }),
            Err(e) => {
                let mut r = RollbackResult {
                    rolled_back: false,
                    error: e.to_string(),
                    ..Default::default()
                };
                match &s.restore {
                    None => r.restore_error = "no restore action configured".into(),
                    Some(a) => match self.execute(name, a, run_tag).await {
                        Ok(()) => r.restored = true,
                        Err(e) => r.restore_error = e.to_string(),
                    },
                }
                Ok(r)
            }
        }
    }

    /// Triggers the replay probe and waits for its check. The probe action
    /// should be safe to repeat (one replayed event).
    pub async fn replay_probe(&self, name: &str, run_tag: &str) -> Result<ProbeResult, Error> {
        let s = self.spec(name)?;
        let Some(p) = &s.replay_probe else {
            return Ok(ProbeResult {
                ok: true,
                message: "no probe configured".into(),
            });
        };
        if let Err(e) = self.execute(name, &p.action, run_tag).await {
            return Ok(ProbeResult {
                ok: false,
                message: format!("probe action: {e}"),
            });
        }
        let pool = self.pool(name).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(p.wait_seconds);
        loop {
            let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
            let v = sql::scalar(&mut conn, &p.check_sql, run_tag).await;
            if let Ok(v) = &v
                && v.truthy()
            {
                return Ok(ProbeResult {
                    ok: true,
                    message: format!("check returned {}", v.text),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                let last = v.map(|v| v.text).unwrap_or_else(|e| e.to_string());
                return Ok(ProbeResult {
                    ok: false,
                    message: format!("check still {last} after {}s", p.wait_seconds),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Writes `report.json` and `report.json.sha256` under
    /// `artifacts/<name>/<timestamp>/`. Idempotent: same input, same bytes.
    pub fn evidence(&self, e: &BackfillEvidence, dir_name: &str) -> Result<EvidenceWritten, Error> {
        let dir = self.artifacts.join(&e.name).join(dir_name);
        let bytes = serde_json::to_vec_pretty(e).unwrap_or_default();
        let sha = hex::encode(Sha256::digest(&bytes));
        let report = dir.join("report.json");
        let io = |path: &PathBuf| {
            let path = path.display().to_string();
            move |source| Error::Io { path, source }
        };
        write_private(&report, &bytes).map_err(io(&report))?;
        let sum = dir.join("report.json.sha256");
        write_private(&sum, format!("{sha}  report.json\n").as_bytes()).map_err(io(&sum))?;
        Ok(EvidenceWritten {
            path: report.display().to_string(),
            sha256: sha,
        })
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(160).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Folder name of a run's evidence: its start time, safe for file names.
pub fn evidence_dir_name(started_at: &str) -> String {
    started_at.replace(':', "-")
}

#[activities]
impl BackfillActivities {
    /// The spec as the workflow needs it. Idempotent: read-only.
    #[activity(name = names::BACKFILL_PLAN)]
    pub async fn plan_backfill(
        self: Arc<Self>,
        _ctx: ActivityContext,
        name: String,
    ) -> Result<BackfillPlan, ActivityError> {
        self.plan(&name).map_err(failure)
    }

    /// Preconditions and baseline. Idempotent: read-only.
    #[activity(name = names::BACKFILL_PRECONDITIONS)]
    pub async fn check_preconditions(
        self: Arc<Self>,
        _ctx: ActivityContext,
        name: String,
    ) -> Result<PreconditionsResult, ActivityError> {
        self.preconditions(&name).await.map_err(failure)
    }

    /// Freeze, unfreeze or snapshot. Idempotent as the configured action is
    /// (flags set to a value, a snapshot replaced).
    #[activity(name = names::BACKFILL_ACTION)]
    pub async fn backfill_action(
        self: Arc<Self>,
        ctx: ActivityContext,
        r: BackfillRef,
    ) -> Result<(), ActivityError> {
        self.metrics.backfill_phase(&r.name, &r.action);
        let which: SpecAction = r.action.parse().map_err(crate::failure::permanent)?;
        crate::heartbeat::with_heartbeat(&ctx, async {
            self.run_action(&r.name, which, &r.run_tag)
                .await
                .map_err(failure)
        })
        .await
    }

    /// Dry-run count and report. Idempotent: reads and rewrites one file.
    #[activity(name = names::BACKFILL_DRY_RUN)]
    pub async fn backfill_dry_run(
        self: Arc<Self>,
        ctx: ActivityContext,
        r: DryRunRequest,
    ) -> Result<DryRunReport, ActivityError> {
        self.metrics
            .backfill_phase(&r.name, BackfillPhase::DryRun.as_str());
        crate::heartbeat::with_heartbeat(&ctx, async { self.dry_run(&r).await.map_err(failure) })
            .await
    }

    /// A run of batches, each exactly once (see
    /// [`BackfillActivities::batches`]).
    #[activity(name = names::BACKFILL_BATCH)]
    pub async fn backfill_batch(
        self: Arc<Self>,
        ctx: ActivityContext,
        r: BatchRequest,
    ) -> Result<BatchResult, ActivityError> {
        self.metrics.backfill_phase(&r.name, "batching");
        let metrics = self.metrics.clone();
        crate::heartbeat::with_heartbeat(&ctx, async {
            self.batches(&r, |rows, secs| metrics.backfill_batch(&r.name, rows, secs))
                .await
                .map_err(failure)
        })
        .await
    }

    /// The replication lag. Idempotent: read-only.
    #[activity(name = names::BACKFILL_LAG)]
    pub async fn backfill_lag(
        self: Arc<Self>,
        _ctx: ActivityContext,
        name: String,
    ) -> Result<LagReading, ActivityError> {
        self.lag(&name).await.map_err(failure)
    }

    /// The validations. Idempotent: read-only.
    #[activity(name = names::BACKFILL_VALIDATE)]
    pub async fn backfill_validate(
        self: Arc<Self>,
        ctx: ActivityContext,
        r: ValidationRequest,
    ) -> Result<ValidationResult, ActivityError> {
        self.metrics.backfill_phase(&r.name, "validating");
        crate::heartbeat::with_heartbeat(&ctx, async { self.validate(&r).await.map_err(failure) })
            .await
    }

    /// Rollback, restore as the fallback. Idempotent: deletes by run tag.
    #[activity(name = names::BACKFILL_ROLLBACK)]
    pub async fn backfill_rollback(
        self: Arc<Self>,
        ctx: ActivityContext,
        r: BackfillRef,
    ) -> Result<RollbackResult, ActivityError> {
        self.metrics
            .backfill_phase(&r.name, BackfillPhase::RollingBack.as_str());
        crate::heartbeat::with_heartbeat(&ctx, async {
            self.rollback(&r.name, &r.run_tag).await.map_err(failure)
        })
        .await
    }

    /// Replay probe. Repeats at most one replayed event on a retry.
    #[activity(name = names::BACKFILL_REPLAY_PROBE)]
    pub async fn backfill_replay_probe(
        self: Arc<Self>,
        ctx: ActivityContext,
        r: BackfillRef,
    ) -> Result<ProbeResult, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, async {
            self.replay_probe(&r.name, &r.run_tag)
                .await
                .map_err(failure)
        })
        .await
    }

    /// Evidence report. Idempotent: same input, same file, same bytes.
    #[activity(name = names::BACKFILL_EVIDENCE)]
    pub async fn backfill_evidence(
        self: Arc<Self>,
        _ctx: ActivityContext,
        e: BackfillEvidence,
    ) -> Result<EvidenceWritten, ActivityError> {
        let dir = evidence_dir_name(&e.started_at);
        self.metrics.backfill_phase(&e.name, &e.outcome);
        self.evidence(&e, &dir).map_err(failure)
    }
}
