//! The consistency sweep's activities: the lease lock, the plan (which
//! tells local repos that have not changed apart without running them), a
//! batch of repos (or, for sweeps recorded before batches, one repo), and
//! the record of the sweep.

mod clone;
mod error;
pub mod external_lock;
mod repo;
mod settings;
mod writeback;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use steward_proto::v1::{
    Finding, FindingsRequest, FindingsSummary, LockGrant, LockRelease, LockRequest, PlanRequest,
    RecordSweepRequest, RepoSlot, RepoSweepOutcome, RepoSweepRequest, RepoTarget,
    SweepBatchOutcome, SweepBatchRequest, SweepPlan,
};
use steward_proto::{ids, limits, names};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub use error::Error as RepoError;
pub use repo::{clean_at_plan, fingerprint, process_repo};
pub use settings::{RepoConfig, SweepSettings};

use external_lock::{ExternalLock, Held};

use crate::failure::{permanent, retryable};
use crate::store::Store;
use crate::store::findings::{FindingsQuery, Wanted};
use crate::store::locks::HolderRuns;
use crate::time::now_ms;

/// What the sweep's activities need: the store, the registered repos and
/// the sweep settings.
#[derive(Debug, Clone)]
pub struct SweepActivities {
    store: Store,
    repos: Vec<RepoConfig>,
    settings: SweepSettings,
    metrics: crate::metrics::Metrics,
    external: ExternalLock,
    /// Holders whose external lock a watcher of this process looks after.
    watching: Arc<Mutex<BTreeSet<String>>>,
    host_wait_alert_seconds: u32,
    /// Asks Temporal whether a lease's holder has closed; without it a
    /// lease is only ever taken once it has expired.
    holders: Option<Arc<dyn HolderRuns>>,
}

/// Groups `plan.names` by the host each runs on (`pinned`; any worker
/// otherwise), hosts in the order their first repo comes, and sets
/// `plan.hosts` beside them: a batch then holds one host's repos.
fn place(plan: &mut SweepPlan, pinned: &BTreeMap<&str, &str>) {
    let host = |name: &String| pinned.get(name.as_str()).copied().unwrap_or("");
    let mut order: Vec<&str> = Vec::new();
    for name in &plan.names {
        if !order.contains(&host(name)) {
            order.push(host(name));
        }
    }
    let mut names = Vec::with_capacity(plan.names.len());
    let mut hosts = Vec::with_capacity(plan.names.len());
    for h in order {
        for name in plan.names.iter().filter(|n| host(n) == h) {
            names.push(name.clone());
            hosts.push(h.to_string());
        }
    }
    plan.names = names;
    plan.hosts = hosts;
}

/// Why the sweep's lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The external lock file could not be opened or locked.
    #[error("external lock {path}: {source}")]
    External {
        /// The lock file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn target_url(req: &RepoSweepRequest) -> &str {
    req.repo.as_ref().map_or("", |t| t.url.as_str())
}

impl SweepActivities {
    /// Activities over `store` for `repos`.
    pub fn new(store: Store, repos: Vec<RepoConfig>, settings: SweepSettings) -> Self {
        Self {
            external: ExternalLock::new(settings.external_lock.clone()),
            watching: Default::default(),
            store,
            repos,
            settings,
            metrics: Default::default(),
            host_wait_alert_seconds: 300,
            holders: None,
        }
    }

    /// The same activities, taking over a lease whose holder's run has
    /// closed (as `holders` tells) instead of waiting for it to lapse.
    pub fn with_holder_runs(mut self, holders: Arc<dyn HolderRuns>) -> Self {
        self.holders = Some(holders);
        self
    }

    /// The same activities, telling every plan how long a pinned repo's
    /// batch may wait for a worker of its host before the sweep says so.
    pub fn with_host_wait_alert(mut self, seconds: u32) -> Self {
        self.host_wait_alert_seconds = seconds;
        self
    }

    /// The same activities, recording sweep metrics into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The plan: starved repos first (longest waiting first), then the
    /// rest in config order. A batched sweep gets names only, and (unless
    /// `full`) the local repos that have not changed since the store last
    /// saw them apart, so an unchanged estate runs no repo activity at all.
    pub async fn plan(&self, req: &PlanRequest) -> Result<SweepPlan, crate::store::Error> {
        let starved = self.store.starved_repos().await?;
        let by_name: std::collections::BTreeMap<&str, &RepoConfig> =
            self.repos.iter().map(|r| (r.name.as_str(), r)).collect();
        let mut ordered: Vec<&RepoConfig> = starved
            .iter()
            .filter_map(|name| by_name.get(name.as_str()).copied())
            .collect();
        let first: BTreeSet<&str> = starved.iter().map(String::as_str).collect();
        ordered.extend(
            self.repos
                .iter()
                .filter(|r| !first.contains(r.name.as_str())),
        );
        let mut plan = SweepPlan {
            default_max_seconds: self.settings.max_seconds,
            default_concurrency: self.settings.concurrency,
            lock_ttl_seconds: self.settings.lock_ttl_seconds,
            batch_size: self.settings.batch_size,
            ..Default::default()
        };
        if !req.batched {
            plan.repos = ordered.into_iter().map(RepoConfig::target).collect();
            return Ok(plan);
        }
        let full = req.full;
        let pinned: BTreeMap<&str, &str> = ordered
            .iter()
            .filter_map(|r| Some((r.name.as_str(), r.runs_on.as_deref()?)))
            .collect();
        let targets: Vec<RepoTarget> = ordered.into_iter().map(RepoConfig::target).collect();
        let checks = targets.into_iter().map(|t| {
            let store = self.store.clone();
            // A repo pinned to a host is read on that host only: its
            // activity finds it clean there.
            let here = !pinned.contains_key(t.name.as_str());
            async move {
                // A repo that cannot be checked here is left to its activity.
                let clean = here && !full && clean_at_plan(&store, &t).await.unwrap_or(false);
                (t.name, clean)
            }
        });
        let lanes = (self.settings.concurrency.max(1) * 2) as usize;
        let checked: Vec<(String, bool)> = futures::stream::iter(checks)
            .buffered(lanes)
            .collect()
            .await;
        for (name, clean) in checked {
            if clean {
                plan.clean.push(name);
            } else {
                plan.names.push(name);
            }
        }
        if !pinned.is_empty() {
            place(&mut plan, &pinned);
            plan.host_wait_alert_seconds = self.host_wait_alert_seconds;
        }
        Ok(plan)
    }

    /// Runs a batch of repos one after the other, each as the per-repo
    /// activity would (a repo that fails is tried three times, then is an
    /// automation error of its slot). `done` holds the slots an earlier
    /// attempt finished (from its heartbeat); `progress` is told each slot
    /// as it is filled. Repos not started by the deadline are `not_started`.
    /// `activity_attempt` is the batch activity's attempt: from the second
    /// on, a repo the killed attempt committed but did not report is found
    /// by its trailer and reported with that commit.
    pub async fn batch(
        &self,
        req: &SweepBatchRequest,
        activity_attempt: u32,
        done: Vec<RepoSlot>,
        progress: &(dyn Fn(&[RepoSlot]) + Sync),
    ) -> Result<SweepBatchOutcome, RepoError> {
        let mut slots = done;
        slots.truncate(req.repos.len());
        let wanted: BTreeSet<&str> = req.repos.iter().map(String::as_str).collect();
        let configured: std::collections::BTreeMap<&str, &RepoConfig> = self
            .repos
            .iter()
            .filter(|r| wanted.contains(r.name.as_str()))
            .map(|r| (r.name.as_str(), r))
            .collect();
        for name in req.repos.iter().skip(slots.len()) {
            let mut slot = RepoSlot {
                repo: name.clone(),
                ..Default::default()
            };
            if req.deadline_ms > 0 && now_ms() >= req.deadline_ms {
                slot.not_started = true;
                slots.push(slot);
                continue;
            }
            let target = configured
                .get(name.as_str())
                .map(|r| r.target())
                // A repo that left the config since the plan: missing here.
                .unwrap_or_else(|| RepoTarget {
                    name: name.clone(),
                    ..Default::default()
                });
            let one = RepoSweepRequest {
                repo: Some(target),
                full: req.full,
                lock_name: req.lock_name.clone(),
                lock_holder: req.lock_holder.clone(),
                lock_ttl_seconds: req.lock_ttl_seconds,
            };
            const ATTEMPTS: u32 = 3;
            for attempt in 1..=ATTEMPTS {
                if attempt > 1 && !target_url(&one).is_empty() {
                    // After a failure a clone is never trusted: clone anew.
                    clone::forget(Path::new(
                        &one.repo
                            .as_ref()
                            .map(|t| t.path.clone())
                            .unwrap_or_default(),
                    ));
                }
                self.confirm_external(&req.lock_holder).await?;
                let seen_as = attempt.max(activity_attempt);
                match process_repo(&self.store, &self.settings, &one, seen_as).await {
                    Ok(mut outcome) => {
                        // The sweep reports the findings ledger, not these.
                        outcome.findings_omitted += outcome.findings.len() as u32;
                        outcome.findings.clear();
                        slot.outcome = Some(outcome);
                        slot.error.clear();
                        break;
                    }
                    Err(e @ RepoError::LockLost(_)) => return Err(e),
                    Err(e) => {
                        slot.error = e.to_string();
                        if attempt < ATTEMPTS {
                            // Never silent: a pass done again is logged and
                            // counted, whatever it costs the sweep.
                            tracing::warn!(
                                repo = %name,
                                attempt,
                                error = %e,
                                "the repo's pass failed; trying it again"
                            );
                            self.metrics.retry("sweep.repo", &e.kind());
                            tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt)))
                                .await;
                        }
                    }
                }
            }
            slots.push(slot);
            progress(&slots);
        }
        Ok(SweepBatchOutcome { slots })
    }

    /// Takes the sweep's lease, and with it the external lock when one is
    /// configured: a sweep that finds the external lock held gives its
    /// lease back and reports the holder as `external:PATH`. Other locks
    /// (an upgrade's) are the lease alone.
    pub async fn acquire(&self, req: &LockRequest) -> Result<LockGrant, LockError> {
        let mut grant = self
            .store
            .acquire_lock(&req.name, &req.holder, req.ttl_seconds, now_ms())
            .await?;
        if !grant.acquired {
            grant = self.take_over(req, grant).await?;
        }
        if !grant.acquired || req.name != ids::SWEEP_LOCK {
            return Ok(grant);
        }
        let taken = self
            .external
            .take(&req.holder)
            .map_err(|source| LockError::External {
                path: self.external_path(),
                source,
            })?;
        match taken {
            Held::Ours => {
                self.watch_external(&req.holder);
                Ok(grant)
            }
            Held::Busy(holder) => {
                self.store.release_lock(&req.name, &req.holder).await?;
                Ok(LockGrant {
                    acquired: false,
                    holder,
                    expires_at_ms: 0,
                })
            }
        }
    }

    /// The lease `refused` named, taken over when its holder is a run that
    /// Temporal says has closed (a run that ended without releasing it:
    /// killed, terminated, or from before every ending released): recorded
    /// in the lease events and logged. Otherwise `refused` as it was.
    async fn take_over(
        &self,
        req: &LockRequest,
        refused: LockGrant,
    ) -> Result<LockGrant, crate::store::Error> {
        let Some(holders) = &self.holders else {
            return Ok(refused);
        };
        if uuid::Uuid::parse_str(&refused.holder).is_err()
            || holders.closed(&refused.holder).await != Some(true)
        {
            return Ok(refused);
        }
        let reason = format!("the run holding it ({}) has closed", refused.holder);
        let now = now_ms();
        let taken = self
            .store
            .take_over_lease(
                &req.name,
                &refused.holder,
                &req.holder,
                req.ttl_seconds,
                &reason,
                now,
            )
            .await?;
        if !taken {
            // Someone else moved first: ask again as an ordinary acquire.
            return self
                .store
                .acquire_lock(&req.name, &req.holder, req.ttl_seconds, now)
                .await;
        }
        tracing::warn!(lock = %req.name, from = %refused.holder, to = %req.holder, "lease taken over: {reason}");
        Ok(LockGrant {
            acquired: true,
            holder: req.holder.clone(),
            expires_at_ms: now + i64::from(req.ttl_seconds) * 1000,
        })
    }

    /// Releases the lease, and the external lock if this process has it.
    pub async fn release(&self, req: &LockRelease) -> Result<(), crate::store::Error> {
        self.store.release_lock(&req.name, &req.holder).await?;
        if req.name == ids::SWEEP_LOCK {
            self.external.release(&req.holder);
        }
        Ok(())
    }

    /// Before a repo is written: the external lock is still this sweep's
    /// (held here, held for it by another worker of this host, or taken
    /// again after the process that held it died).
    pub async fn confirm_external(&self, holder: &str) -> Result<(), RepoError> {
        if holder.is_empty() {
            return Ok(());
        }
        match self.external.take(holder) {
            Ok(Held::Ours) => {
                self.watch_external(holder);
                Ok(())
            }
            Ok(Held::Busy(other)) => Err(RepoError::LockLost(other)),
            Err(source) => Err(RepoError::Io {
                path: self.external_path(),
                source,
            }),
        }
    }

    fn external_path(&self) -> String {
        self.settings
            .external_lock
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Starts, once per holder, the watcher that releases the external
    /// lock this process holds when the sweep's lease ends.
    fn watch_external(&self, holder: &str) {
        let fresh = self.external.holds(holder)
            && self
                .watching
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(holder.to_string());
        if fresh {
            let (lock, store, holder, watching) = (
                self.external.clone(),
                self.store.clone(),
                holder.to_string(),
                self.watching.clone(),
            );
            tokio::spawn(async move {
                lock.watch(store, holder.clone()).await;
                watching
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&holder);
            });
        }
    }

    /// The ledger as run `run_id` reports it: the estate's open findings,
    /// and those the run opened and resolved. A repo that left the config
    /// keeps its open findings, with that reason.
    pub async fn findings_summary(
        &self,
        run_id: &str,
    ) -> Result<FindingsSummary, crate::store::Error> {
        let configured: Vec<String> = self.repos.iter().map(|r| r.name.clone()).collect();
        self.store
            .hold_findings_of_removed_repos(&configured)
            .await?;
        let (open, open_count) = self.read(Wanted::Open, limits::FINDINGS_PER_SWEEP).await?;
        if run_id.is_empty() {
            return Ok(FindingsSummary {
                open,
                open_count,
                ..Default::default()
            });
        }
        let changed = limits::FINDINGS_CHANGED_PER_SWEEP;
        let (opened, opened_count) = self.read(Wanted::OpenedBy(run_id), changed).await?;
        let (resolved, resolved_count) = self.read(Wanted::ResolvedBy(run_id), changed).await?;
        Ok(FindingsSummary {
            open,
            open_count,
            opened,
            opened_count,
            resolved,
            resolved_count,
        })
    }

    async fn read(
        &self,
        wanted: Wanted<'_>,
        limit: usize,
    ) -> Result<(Vec<Finding>, u32), crate::store::Error> {
        let (rows, total) = self
            .store
            .findings(&FindingsQuery::new(wanted, limit))
            .await?;
        Ok((
            rows.into_iter().map(|r| r.finding).collect(),
            u32::try_from(total).unwrap_or(u32::MAX),
        ))
    }

    /// Records budget skips for fairness (and visits of starved repos the
    /// plan found clean) and writes the progress event.
    pub async fn record(&self, req: RecordSweepRequest) -> Result<(), crate::store::Error> {
        let result = req.result.unwrap_or_default();
        let now = now_ms();
        // The whole lists when the result's were cut, else the result's.
        let whole = |all: &[String], listed: &[String]| -> BTreeSet<String> {
            all.iter().chain(listed).cloned().collect()
        };
        for repo in &whole(&req.skipped_budget, &result.skipped_budget) {
            self.store.mark_starved(repo, now).await?;
        }
        // A starved repo the plan found clean was visited all the same.
        let starved: BTreeSet<String> = self.store.starved_repos().await?.into_iter().collect();
        let clean = whole(&req.skipped_clean, &result.skipped_clean);
        for repo in clean.intersection(&starved) {
            self.store.unstarve(repo).await?;
        }
        let fresh = self
            .store
            .record_run(
                names::SWEEP_EVENT_TYPE,
                &result.source,
                &result.workflow_id,
                &result.run_id,
                &result,
            )
            .await?;
        if fresh {
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
        self.acquire(&req).await.map_err(retryable)
    }

    /// Releases the sweep lock. Idempotent: deleting a lock that is gone or
    /// held by someone else changes nothing.
    #[activity(name = names::RELEASE_LOCK)]
    pub async fn release_lock(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: LockRelease,
    ) -> Result<(), ActivityError> {
        self.release(&req).await.map_err(retryable)
    }

    /// Lists the repos to sweep. Idempotent: it only reads.
    #[activity(name = names::PLAN_SWEEP)]
    pub async fn plan_sweep(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: PlanRequest,
    ) -> Result<SweepPlan, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, async { self.plan(&req).await.map_err(retryable) })
            .await
    }

    /// Sweeps a batch of repos, heartbeating the slots it has filled.
    /// Idempotent as each repo is (see [`Self::sweep_repo`]); a retry
    /// resumes after the slots the last heartbeat carried, and a repo it
    /// runs again finds its own commit by the sweep's trailer.
    #[activity(name = names::SWEEP_BATCH)]
    pub async fn sweep_batch(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: SweepBatchRequest,
    ) -> Result<SweepBatchOutcome, ActivityError> {
        let done: Vec<RepoSlot> = ctx
            .heartbeat_details()
            .deserialize()
            .ok()
            .flatten()
            .unwrap_or_default();
        let latest = Arc::new(Mutex::new(done.clone()));
        let progress = {
            let latest = latest.clone();
            move |slots: &[RepoSlot]| {
                *latest.lock().unwrap_or_else(|p| p.into_inner()) = slots.to_vec();
            }
        };
        let beat = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let slots = latest.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let _ = ctx.record_heartbeat(slots).await;
            }
        };
        tokio::select! {
            outcome = self.batch(&req, ctx.info().attempt, done, &progress) => outcome.map_err(|e| match e {
                RepoError::LockLost(_) => permanent(e),
                e => retryable(e),
            }),
            _ = beat => unreachable!("the heartbeat loop never ends"),
            _ = ctx.cancelled() => Err(ActivityError::cancelled()),
        }
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
            let outcome = match self.confirm_external(&req.lock_holder).await {
                Ok(()) => process_repo(&self.store, &self.settings, &req, ctx.info().attempt).await,
                Err(e) => Err(e),
            };
            outcome.map_err(|e| match e {
                RepoError::LockLost(_) => permanent(e),
                e => retryable(e),
            })
        };
        crate::heartbeat::with_heartbeat(&ctx, work).await
    }

    /// Reads the findings ledger for the sweep's result. Idempotent: it
    /// only reads, but for giving the open findings of repos that left the
    /// config that reason, which a second time changes nothing.
    #[activity(name = names::SWEEP_FINDINGS)]
    pub async fn sweep_findings(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: FindingsRequest,
    ) -> Result<FindingsSummary, ActivityError> {
        self.findings_summary(&req.run_id).await.map_err(retryable)
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
