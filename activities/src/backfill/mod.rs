//! The backfill rollout's activities, against the backfill's own database
//! (SQLite, PostgreSQL, MySQL or MariaDB).

mod actions;
mod batches;
mod checks;
mod job;
mod report;
pub mod spec;
pub mod sql;

use batches::progress_ddl;
pub use report::evidence_dir_name;
use sql::{Dialect, Statement};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use steward_proto::v1::{
    BackfillEvidence, BackfillPlan, BackfillRef, BatchRequest, BatchResult, CheckResult,
    DryRunReport, DryRunRequest, EvidenceWritten, LagReading, PreconditionsResult, ProbeResult,
    RollbackResult, SkippedBatch, ThrottlePlan, ThrottleReading, ThrottleReadings, ThrottleRequest,
    ValidationRequest, ValidationResult,
};
use steward_proto::vocab::{BackfillPhase, BackfillStage, SpecAction};
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

/// The backfill activities: specs by name, a pool per target database
/// (on a cluster's primary, followed through a failover) and the evidence
/// folder.
#[derive(Debug)]
pub struct BackfillActivities {
    specs: BTreeMap<String, BackfillSpec>,
    pools: Mutex<HashMap<String, AnyPool>>,
    /// The pools' primaries are followed while the activities live.
    alive: std::sync::Arc<()>,
    /// Where the lag and runtime alerts are resolved when they end.
    alerts: Option<crate::alerts::AlertSink>,
    artifacts: PathBuf,
    metrics: crate::metrics::Metrics,
    roster: crate::roster::Roster,
    host_wait_alert_seconds: u32,
    /// Where a job-driven backfill's finished batches are recorded.
    store: Option<crate::store::Store>,
}

/// How often a run of batches heartbeats: a cancellation reaches it within
/// about this long (with the worker's heartbeat throttle no longer than it).
pub const RUN_HEARTBEAT: Duration = Duration::from_millis(500);

impl BackfillActivities {
    /// Activities over `specs`, writing evidence under `artifacts`.
    pub fn new(specs: Vec<BackfillSpec>, artifacts: PathBuf) -> Self {
        Self {
            specs: specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
            pools: Mutex::new(HashMap::new()),
            alive: Default::default(),
            alerts: None,
            artifacts,
            metrics: Default::default(),
            roster: Default::default(),
            host_wait_alert_seconds: 300,
            store: None,
        }
    }

    /// The same activities, recording a job-driven backfill's finished
    /// batches in `store`.
    pub fn with_store(mut self, store: crate::store::Store) -> Self {
        self.store = Some(store);
        self
    }

    /// The same activities, telling every plan how long a pinned action
    /// may wait for a worker of its host before the rollout says so.
    pub fn with_host_wait_alert(mut self, seconds: u32) -> Self {
        self.host_wait_alert_seconds = seconds;
        self
    }

    /// The same activities, resolving a backfill's lag alert when its lag
    /// falls back and its runtime and lag alerts when it ends, in `sink`.
    pub fn with_alerts(mut self, sink: crate::alerts::AlertSink) -> Self {
        self.alerts = Some(sink);
        self
    }

    /// Resolves backfill `name`'s open alerts of `kinds`.
    async fn resolve(&self, name: &str, kinds: &[&str]) {
        if let Some(sink) = &self.alerts {
            for kind in kinds {
                sink.resolve(kind, name).await;
            }
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
        let url = self.spec(name)?.database_url.clone();
        if url.is_empty() {
            return Err(no_database(name));
        }
        self.pool_at(name, &url, &format!("backfill `{name}`'s database"))
            .await
    }

    /// The pool kept under `key`, on `url` (`what` in messages).
    async fn pool_at(&self, key: &str, url: &str, what: &str) -> Result<AnyPool, Error> {
        if let Some(p) = self.pools.lock().expect("pool map").get(key) {
            return Ok(p.clone());
        }
        let pool = if crate::dburl::is_mysql(url) {
            crate::store::connect_any(url)
                .await
                .map_err(|e| crate::store::Error::Connect {
                    url: crate::dburl::redact(url),
                    source: e,
                })
        } else {
            crate::store::primary::connect_following(
                url,
                what,
                std::sync::Arc::downgrade(&self.alive),
            )
            .await
            .map(|(pool, _)| pool)
        }
        .map_err(|e| Error::Action(format!("connecting to {what}: {e}")))?;
        let first = {
            let mut pools = self.pools.lock().expect("pool map");
            pools.get(key).cloned().ok_or_else(|| {
                pools.insert(key.into(), pool.clone());
            })
        };
        match first {
            // Another activity connected first: its pool serves; ours,
            // and the watch that follows it, end.
            Ok(first) => {
                pool.close().await;
                Ok(first)
            }
            Err(()) => Ok(pool),
        }
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
            approval_timeout_seconds: s.approval_timeout_seconds(),
            on_approval_timeout: s.on_approval_timeout.clone().unwrap_or_default(),
            batches_per_run: s.batches_per_run,
            batches_per_activity: s.batches_per_activity,
            has_snapshot: s.snapshot.is_some(),
            has_replay_probe: s.replay_probe.is_some(),
            throttle_seconds: s.throttle_seconds,
            throttles: s
                .throttles
                .iter()
                .map(|t| ThrottlePlan {
                    name: t.name.clone(),
                    max: t.max,
                    wait_seconds: t.wait_seconds.unwrap_or(s.throttle_seconds),
                })
                .collect(),
            operators: self.roster.operators.clone(),
            require_verified: s.require_verified,
            verify_key: self.roster.verify_key.clone(),
            permissions: self
                .roster
                .grants(crate::roster::Target::Backfill(&s.name), &s.approvals),
            action_hosts: s.action_hosts(),
            host_wait_alert_seconds: self.host_wait_alert_seconds,
            job_command: s
                .job
                .as_ref()
                .map(|j| j.command.clone())
                .unwrap_or_default(),
        })
    }
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
        let which: SpecAction = r.action.parse().map_err(crate::failure::permanent)?;
        self.metrics
            .backfill_phase(&r.name, BackfillStage::Running(phase_of(which)));
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
            .backfill_phase(&r.name, BackfillStage::Running(BackfillPhase::DryRun));
        crate::heartbeat::with_heartbeat(&ctx, async { self.dry_run(&r).await.map_err(failure) })
            .await
    }

    /// A run of batches, each exactly once (see
    /// [`BackfillActivities::batches`]). A cancellation (the workflow's
    /// way to say a pause, an abort or a new setting came) ends the run
    /// before its next batch, and the run returns what it applied.
    #[activity(name = names::BACKFILL_BATCH)]
    pub async fn backfill_batch(
        self: Arc<Self>,
        ctx: ActivityContext,
        r: BatchRequest,
    ) -> Result<BatchResult, ActivityError> {
        self.metrics
            .backfill_phase(&r.name, BackfillStage::Running(BackfillPhase::Executing));
        let metrics = self.metrics.clone();
        let run = self.batches(
            &r,
            |rows, secs| metrics.backfill_batch(&r.name, rows, secs),
            || ctx.is_cancelled(),
        );
        crate::heartbeat::beating(&ctx, RUN_HEARTBEAT, run)
            .await
            .map_err(failure)
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

    /// The named throttles. Idempotent: reads (a command throttle runs
    /// its command).
    #[activity(name = names::BACKFILL_THROTTLES)]
    pub async fn backfill_throttles(
        self: Arc<Self>,
        _ctx: ActivityContext,
        r: ThrottleRequest,
    ) -> Result<ThrottleReadings, ActivityError> {
        self.throttles(&r.name, &r.max, false)
            .await
            .map_err(failure)
    }

    /// The validations. Idempotent: read-only.
    #[activity(name = names::BACKFILL_VALIDATE)]
    pub async fn backfill_validate(
        self: Arc<Self>,
        ctx: ActivityContext,
        r: ValidationRequest,
    ) -> Result<ValidationResult, ActivityError> {
        self.metrics
            .backfill_phase(&r.name, BackfillStage::Running(BackfillPhase::Validating));
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
            .backfill_phase(&r.name, BackfillStage::Running(BackfillPhase::RollingBack));
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
        if let Ok(outcome) = e.outcome.parse() {
            self.metrics
                .backfill_phase(&e.name, BackfillStage::Ended(outcome));
        }
        // The rollout ended: its runtime and lag alerts are over.
        self.resolve(&e.name, &["backfill.runtime", "backfill.lag"])
            .await;
        self.evidence(&e, &dir).map_err(failure)
    }
}

/// A backfill without a database was asked to run SQL.
fn no_database(name: &str) -> Error {
    Error::Action(format!("backfill `{name}` has no database_url for its SQL"))
}

/// The phase a spec action runs in, for the phase gauge.
fn phase_of(action: SpecAction) -> BackfillPhase {
    match action {
        SpecAction::Freeze | SpecAction::Snapshot => BackfillPhase::Frozen,
        SpecAction::Unfreeze => BackfillPhase::Unfreezing,
        SpecAction::Restore | SpecAction::Rollback => BackfillPhase::RollingBack,
        SpecAction::Probe => BackfillPhase::ReplayProbe,
    }
}
