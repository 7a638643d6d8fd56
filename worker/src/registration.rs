//! The one place that says what a steward worker runs: every workflow and
//! every activity. The binary and the tests both build their workers here,
//! so the two cannot drift apart.

use std::time::Duration;
use steward_activities::SweepActivities;
use steward_activities::alerts::AlertActivities;
use steward_activities::backfill::BackfillActivities;
use steward_activities::claims::ClaimActivities;
use steward_activities::failover::FailoverActivities;
use steward_activities::placement::PlacementActivities;
use steward_activities::restore::RestoreActivities;
use steward_activities::upgrade::UpgradeActivities;
use steward_workflows::{
    BackfillRollout, ColdSweep, ConsistencySweep, FailoverDrill, RestoreDrill, SharedReap,
    WarmUpgrade,
};

use temporalio_common::worker::WorkerDeploymentOptions;
use temporalio_sdk::WorkerOptions;

use crate::config::WorkerConfig;
use temporalio_sdk::workflow_replayer::WorkflowReplayerOptions;

/// Everything the activities need.
#[derive(Debug)]
pub struct Activities {
    /// The consistency sweep's activities.
    pub sweep: SweepActivities,
    /// The backfill rollout's activities.
    pub backfill: BackfillActivities,
    /// The warm upgrade's activities.
    pub upgrade: UpgradeActivities,
    /// The alert sink every workflow writes to.
    pub alerts: AlertActivities,
    /// The restore drill's activities.
    pub restore: RestoreActivities,
    /// The failover drill's activities.
    pub failover: FailoverActivities,
    /// Claims on signed starts.
    pub claims: ClaimActivities,
    /// Where pinned steps run.
    pub placement: PlacementActivities,
    /// Where every activity attempt after the first is counted.
    pub metrics: steward_activities::metrics::Metrics,
}

/// Logs and counts every activity attempt after the first, so no retry is
/// silent: the failure that caused it is in the workflow's history, the
/// retry itself here and in `steward_retries{step="<activity>",
/// reason="attempt"}`.
struct Attempts(steward_activities::metrics::Metrics);

impl temporalio_sdk::interceptors::ActivityInboundInterceptor for Attempts {
    fn execute_activity<'a>(
        &'a self,
        input: temporalio_sdk::interceptors::ExecuteActivityInput,
        next: temporalio_sdk::interceptors::Next<
            'a,
            temporalio_sdk::interceptors::ExecuteActivityInput,
            temporalio_sdk::interceptors::ExecuteActivityOutput<'a>,
        >,
    ) -> temporalio_sdk::interceptors::ExecuteActivityOutput<'a> {
        let info = input.activity_info();
        if info.attempt > 1 {
            tracing::warn!(
                activity = %info.activity_type,
                workflow = info.workflow_id.as_deref().unwrap_or_default(),
                attempt = info.attempt,
                "an earlier attempt of this activity failed or timed out; running it again"
            );
            self.0.retry(&info.activity_type, "attempt");
        }
        next.run(input)
    }
}

/// The longest a heartbeat waits to be sent: a batch activity heartbeats
/// this often, and learns from the reply that its run was cancelled (a
/// pause, an abort, a new setting), so the run stops within about this
/// long instead of four fifths of the heartbeat timeout.
const HEARTBEAT_THROTTLE: Duration = steward_activities::backfill::RUN_HEARTBEAT;

/// Worker options for `task_queue` with all workflows and activities, as
/// `process` says (build id, cache size, shutdown grace period).
pub fn worker_options(
    task_queue: &str,
    activities: Activities,
    process: &WorkerConfig,
) -> anyhow::Result<WorkerOptions> {
    let mut options = WorkerOptions::new(task_queue)
        .deployment_options(WorkerDeploymentOptions::from_build_id(process.build_id()))
        .max_cached_workflows(process.max_cached_workflows)
        .graceful_shutdown_period(Duration::from_secs(process.graceful_shutdown_seconds))
        .max_heartbeat_throttle_interval(HEARTBEAT_THROTTLE)
        .register_workflow::<ConsistencySweep>()?
        .register_workflow::<BackfillRollout>()?
        .register_workflow::<WarmUpgrade>()?
        .register_workflow::<RestoreDrill>()?
        .register_workflow::<ColdSweep>()?
        .register_workflow::<FailoverDrill>()?
        .register_workflow::<SharedReap>()?
        .workflow_interceptor(steward_workflows::operator::validator_clock())
        .client_identity_override(identity(process))
        .build();
    register_activities(&mut options, activities);
    Ok(options)
}

/// The options of a worker on its host's own task queue (`host_queue`):
/// every activity, no workflow, so it polls for the steps pinned to its
/// host only.
pub fn host_worker_options(
    host_queue: &str,
    activities: Activities,
    process: &WorkerConfig,
) -> WorkerOptions {
    let mut options = WorkerOptions::new(host_queue)
        .deployment_options(WorkerDeploymentOptions::from_build_id(process.build_id()))
        .graceful_shutdown_period(Duration::from_secs(process.graceful_shutdown_seconds))
        .max_heartbeat_throttle_interval(HEARTBEAT_THROTTLE)
        .client_identity_override(identity(process))
        .build();
    register_activities(&mut options, activities);
    options
}

/// Every activity, each attempt after the first counted as a retry.
fn register_activities(options: &mut WorkerOptions, activities: Activities) {
    options
        .register_activities(activities.sweep)
        .register_activities(activities.backfill)
        .register_activities(activities.upgrade)
        .register_activities(activities.alerts)
        .register_activities(activities.restore)
        .register_activities(activities.failover)
        .register_activities(activities.claims)
        .register_activities(activities.placement)
        .activity_inbound_interceptor(Attempts(activities.metrics));
}

/// How the worker names itself in every history it writes and to the
/// server's task-queue descriptions: `<pid>@<machine>` as the SDK would,
/// and the host it says it is, when it says one.
pub fn identity(process: &WorkerConfig) -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    match &process.host {
        Some(host) => format!("{}@{machine} host {host}", std::process::id()),
        None => format!("{}@{machine}", std::process::id()),
    }
}

/// Replayer options with every workflow, for determinism checks.
pub fn replayer_options()
-> anyhow::Result<temporalio_sdk::workflow_replayer::WorkflowReplayerOptions> {
    Ok(WorkflowReplayerOptions::new()
        .register_workflow::<ConsistencySweep>()?
        .register_workflow::<BackfillRollout>()?
        .register_workflow::<WarmUpgrade>()?
        .register_workflow::<RestoreDrill>()?
        .register_workflow::<ColdSweep>()?
        .register_workflow::<FailoverDrill>()?
        .register_workflow::<SharedReap>()?
        .build())
}

#[cfg(test)]
mod tests {
    use steward_activities::SweepActivities;
    use steward_activities::backfill::BackfillActivities as B;
    use steward_activities::restore::RestoreActivities as R;
    use temporalio_common::ActivityDefinition;

    /// Declaration (proto) and implementation (activities) must agree on
    /// the name and on the input and output types; the types are checked
    /// by the compiler through the bounds of this function.
    fn same<D, I>(declared: D, implemented: I)
    where
        D: ActivityDefinition,
        I: ActivityDefinition<Input = D::Input, Output = D::Output>,
    {
        assert_eq!(declared.name(), implemented.name());
    }

    #[test]
    fn declared_activities_match_their_implementations() {
        use steward_proto::activities as p;
        same(p::AcquireLock, SweepActivities::acquire_lock);
        same(
            p::ClaimStart,
            steward_activities::claims::ClaimActivities::claim_start,
        );
        same(p::ReleaseLock, SweepActivities::release_lock);
        same(p::PlanSweep, SweepActivities::plan_sweep);
        same(p::SweepRepo, SweepActivities::sweep_repo);
        same(p::SweepBatch, SweepActivities::sweep_batch);
        same(p::RecordSweep, SweepActivities::record_sweep);
        same(p::SweepFindings, SweepActivities::sweep_findings);
        same(p::BackfillPlanActivity, B::plan_backfill);
        same(p::BackfillPreconditions, B::check_preconditions);
        same(p::BackfillAction, B::backfill_action);
        same(p::BackfillDryRun, B::backfill_dry_run);
        same(p::BackfillBatch, B::backfill_batch);
        same(p::BackfillLag, B::backfill_lag);
        same(p::BackfillValidate, B::backfill_validate);
        same(p::BackfillRollback, B::backfill_rollback);
        same(p::BackfillReplayProbe, B::backfill_replay_probe);
        same(p::BackfillWriteEvidence, B::backfill_evidence);
        same(
            p::RaiseAlert,
            steward_activities::alerts::AlertActivities::raise_alert,
        );
        same(
            p::UpgradeInspect,
            steward_activities::upgrade::UpgradeActivities::upgrade_inspect,
        );
        same(
            p::UpgradeStep,
            steward_activities::upgrade::UpgradeActivities::upgrade_step,
        );
        same(
            p::UpgradeRecord,
            steward_activities::upgrade::UpgradeActivities::upgrade_record,
        );
        same(
            p::ColdSweepPlanActivity,
            steward_activities::upgrade::UpgradeActivities::cold_sweep_plan,
        );
        same(
            p::ColdSweepRecord,
            steward_activities::upgrade::UpgradeActivities::cold_sweep_record,
        );
        same(
            p::SharedReapPass,
            steward_activities::upgrade::UpgradeActivities::shared_reap_pass,
        );
        same(
            p::SharedReapRecord,
            steward_activities::upgrade::UpgradeActivities::shared_reap_record,
        );
        {
            use steward_activities::failover::FailoverActivities as F;
            same(p::FailoverPreflightActivity, F::failover_preflight);
            same(p::FailoverObserve, F::failover_observe);
            same(p::FailoverTrigger, F::failover_trigger);
            same(p::FailoverVerify, F::failover_verify);
            same(p::FailoverRecover, F::failover_recover);
            same(p::FailoverRecord, F::failover_record);
        }
        same(p::RestoreBackup, R::restore_backup);
        same(p::RestoreVerify, R::restore_verify);
        same(p::RestoreRecord, R::restore_record);
    }
}
