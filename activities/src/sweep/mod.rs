//! The consistency sweep's activities: the lease lock, the plan, one repo,
//! and the record of the sweep.

mod repo;
mod settings;

use std::sync::Arc;

use steward_proto::names;
use steward_proto::v1::{
    LockGrant, LockRelease, LockRequest, PlanRequest, ProgressEvent, RecordSweepRequest,
    RepoSweepOutcome, RepoSweepRequest, SweepPlan,
};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub use repo::{Error as RepoError, fingerprint, process_repo};
pub use settings::{RepoConfig, SweepSettings};

use crate::failure::{permanent, retryable};
use crate::store::Store;

/// What the sweep's activities need: the store, the registered repos and
/// the sweep settings.
#[derive(Debug, Clone)]
pub struct SweepActivities {
    store: Store,
    repos: Vec<RepoConfig>,
    settings: SweepSettings,
    metrics: crate::metrics::Metrics,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SweepActivities {
    /// Activities over `store` for `repos`.
    pub fn new(store: Store, repos: Vec<RepoConfig>, settings: SweepSettings) -> Self {
        Self {
            store,
            repos,
            settings,
            metrics: Default::default(),
        }
    }

    /// The same activities, recording sweep metrics into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The plan: starved repos first (longest waiting first), then the
    /// rest in config order.
    pub async fn plan(&self) -> Result<SweepPlan, crate::store::Error> {
        let starved = self.store.starved_repos().await?;
        let mut ordered: Vec<&RepoConfig> = starved
            .iter()
            .filter_map(|name| self.repos.iter().find(|r| &r.name == name))
            .collect();
        ordered.extend(self.repos.iter().filter(|r| !starved.contains(&r.name)));
        Ok(SweepPlan {
            repos: ordered.into_iter().map(RepoConfig::target).collect(),
            default_max_seconds: self.settings.max_seconds,
            default_concurrency: self.settings.concurrency,
            lock_ttl_seconds: self.settings.lock_ttl_seconds,
        })
    }

    /// Records budget skips for fairness and writes the progress event.
    pub async fn record(&self, req: RecordSweepRequest) -> Result<(), crate::store::Error> {
        let result = req.result.unwrap_or_default();
        let now = now_ms();
        for repo in &result.skipped_budget {
            self.store.mark_starved(repo, now).await?;
        }
        let event = ProgressEvent {
            id: format!("{}:{}", result.workflow_id, result.run_id),
            event_type: names::SWEEP_EVENT_TYPE.into(),
            source: result.source.clone(),
            created_at: String::new(),
            workflow_id: result.workflow_id.clone(),
            run_id: result.run_id.clone(),
            detail_json: serde_json::to_string(&result).unwrap_or_default(),
        };
        if self.store.insert_progress(&event, now).await? {
            self.metrics.sweep(&result);
        }
        Ok(())
    }
}

#[activities]
impl SweepActivities {
    /// Takes the sweep lock. Idempotent: acquiring again as the same holder
    /// only renews the lease.
    #[activity(name = names::ACQUIRE_LOCK)]
    pub async fn acquire_lock(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: LockRequest,
    ) -> Result<LockGrant, ActivityError> {
        self.store
            .acquire_lock(&req.name, &req.holder, req.ttl_seconds, now_ms())
            .await
            .map_err(retryable)
    }

    /// Releases the sweep lock. Idempotent: deleting a lock that is gone or
    /// held by someone else changes nothing.
    #[activity(name = names::RELEASE_LOCK)]
    pub async fn release_lock(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: LockRelease,
    ) -> Result<(), ActivityError> {
        self.store
            .release_lock(&req.name, &req.holder)
            .await
            .map_err(retryable)
    }

    /// Lists the repos to sweep. Idempotent: it only reads.
    #[activity(name = names::PLAN_SWEEP)]
    pub async fn plan_sweep(
        self: Arc<Self>,
        _ctx: ActivityContext,
        _req: PlanRequest,
    ) -> Result<SweepPlan, ActivityError> {
        self.plan().await.map_err(retryable)
    }

    /// Sweeps one repo, heartbeating while it works. Idempotent: records
    /// are keyed by their natural ids, so a retry reuses the UUIDs a failed
    /// attempt assigned; an edit that is already in the file is a no-op and
    /// an empty commit is skipped; status changes are closed only after
    /// their commit exists.
    #[activity(name = names::SWEEP_REPO)]
    pub async fn sweep_repo(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: RepoSweepRequest,
    ) -> Result<RepoSweepOutcome, ActivityError> {
        let work = async {
            process_repo(&self.store, &self.settings, &req, ctx.info().attempt)
                .await
                .map_err(|e| match e {
                    RepoError::LockLost(_) => permanent(e),
                    e => retryable(e),
                })
        };
        crate::heartbeat::with_heartbeat(&ctx, work).await
    }

    /// Marks budget skips and writes the progress event. Idempotent: the
    /// event id is the workflow run, inserted once; a starved mark keeps its
    /// first time.
    #[activity(name = names::RECORD_SWEEP)]
    pub async fn record_sweep(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: RecordSweepRequest,
    ) -> Result<(), ActivityError> {
        self.record(req).await.map_err(retryable)
    }
}
