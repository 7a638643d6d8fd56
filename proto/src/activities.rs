//! Activity declarations: each a marker type with its stable name, input and
//! output. Workflows schedule activities through these markers; the
//! `activities` crate implements them under the same names, and the worker
//! crate checks at test time that both sides agree.

use crate::names;
use crate::v1::{
    Alert, BackfillEvidence, BackfillPlan, BackfillRef, BatchRequest, BatchResult, DryRunReport,
    DryRunRequest, EvidenceWritten, LagReading, PreconditionsResult, ProbeResult, RollbackResult,
    ThrottleReadings, ThrottleRequest, ValidationRequest, ValidationResult,
};
use crate::v1::{AppStep, StepResult, UpgradeInput, UpgradePlan, UpgradeResult};
use crate::v1::{BackupTaken, RestoreDrillInput, RestoreDrillResult, RestoreVerified};
use crate::v1::{ColdSweepInput, ColdSweepPlan, ColdSweepResult};
use crate::v1::{
    FailoverDrillInput, FailoverDrillResult, FailoverMeasured, FailoverObserved, FailoverPreflight,
    FailoverStep, RecoveryResult, TriggerResult,
};
use crate::v1::{
    FindingsRequest, FindingsSummary, LockGrant, LockRelease, LockRequest, PlanRequest,
    RecordSweepRequest, RepoSweepOutcome, RepoSweepRequest, SweepBatchOutcome, SweepBatchRequest,
    SweepPlan,
};
use crate::v1::{ForgeStatus, SharedReapInput, SharedReapResult};
use crate::v1::{Placement, PlacementRequest};
use crate::v1::{StartClaim, StartClaimed};
use temporalio_common::ActivityDefinition;

macro_rules! declare_activity {
    ($(#[$doc:meta])* $marker:ident, $name:expr, $input:ty => $output:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $marker;

        impl ActivityDefinition for $marker {
            type Input = $input;
            type Output = $output;

            fn name(&self) -> &str {
                $name
            }
        }
    };
}

declare_activity!(
    /// Take the named lease lock for `holder`, unless another live holder has it.
    AcquireLock, names::ACQUIRE_LOCK, LockRequest => LockGrant
);
declare_activity!(
    /// Release the named lock if `holder` still has it.
    ReleaseLock, names::RELEASE_LOCK, LockRelease => ()
);
declare_activity!(
    /// Claim a signed start's nonce for this run: a start signed once
    /// starts one run.
    ClaimStart, names::CLAIM_START, StartClaim => StartClaimed
);
declare_activity!(
    /// The host whose workers run a run's pinned steps, from the config.
    Place, names::PLACE, PlacementRequest => Placement
);
declare_activity!(
    /// The repos to sweep, in the order they should be started.
    PlanSweep, names::PLAN_SWEEP, PlanRequest => SweepPlan
);
declare_activity!(
    /// Pull gate, assessment, reconciliation and writeback of one repo.
    SweepRepo, names::SWEEP_REPO, RepoSweepRequest => RepoSweepOutcome
);
declare_activity!(
    /// A batch of repos, one after the other, heartbeating its progress.
    SweepBatch, names::SWEEP_BATCH, SweepBatchRequest => SweepBatchOutcome
);
declare_activity!(
    /// The open findings of the estate, and those the run opened and resolved.
    SweepFindings, names::SWEEP_FINDINGS, FindingsRequest => FindingsSummary
);
declare_activity!(
    /// Record budget skips for fairness and write the sweep's progress event.
    RecordSweep, names::RECORD_SWEEP, RecordSweepRequest => ()
);

declare_activity!(
    /// The backfill spec as the workflow needs it, with its SHA-256.
    BackfillPlanActivity, names::BACKFILL_PLAN, String => BackfillPlan
);
declare_activity!(
    /// Preconditions, and the baseline values of `unchanged` validations.
    BackfillPreconditions, names::BACKFILL_PRECONDITIONS, String => PreconditionsResult
);
declare_activity!(
    /// Runs the spec's freeze, unfreeze or snapshot action.
    BackfillAction, names::BACKFILL_ACTION, BackfillRef => ()
);
declare_activity!(
    /// Counts the expected records and writes the dry-run report.
    BackfillDryRun, names::BACKFILL_DRY_RUN, DryRunRequest => DryRunReport
);
declare_activity!(
    /// Applies one keyset batch, exactly once.
    BackfillBatch, names::BACKFILL_BATCH, BatchRequest => BatchResult
);
declare_activity!(
    /// Reads the replication lag in seconds.
    BackfillLag, names::BACKFILL_LAG, String => LagReading
);
declare_activity!(
    /// Reads a backfill's named throttles against their maxima.
    BackfillThrottles, names::BACKFILL_THROTTLES, ThrottleRequest => ThrottleReadings
);
declare_activity!(
    /// Runs the validations against the baseline.
    BackfillValidate, names::BACKFILL_VALIDATE, ValidationRequest => ValidationResult
);
declare_activity!(
    /// Removes what the run wrote; restores the snapshot if that fails.
    BackfillRollback, names::BACKFILL_ROLLBACK, BackfillRef => RollbackResult
);
declare_activity!(
    /// Runs the replay probe and its check.
    BackfillReplayProbe, names::BACKFILL_REPLAY_PROBE, BackfillRef => ProbeResult
);
declare_activity!(
    /// Writes the evidence report and its SHA-256 next to it.
    BackfillWriteEvidence, names::BACKFILL_EVIDENCE, BackfillEvidence => EvidenceWritten
);
declare_activity!(
    /// Writes an alert to the shared sink (JSON file, optional webhook).
    RaiseAlert, names::RAISE_ALERT, Alert => ()
);

declare_activity!(
    /// Versions, last good, release notes and the safety gate of an app.
    UpgradeInspect, names::UPGRADE_INSPECT, UpgradeInput => UpgradePlan
);
declare_activity!(
    /// One step of an upgrade; a failed step is a result, not an error.
    UpgradeStep, names::UPGRADE_STEP, AppStep => StepResult
);
declare_activity!(
    /// Writes the upgrade's progress event.
    UpgradeRecord, names::UPGRADE_RECORD, UpgradeResult => ()
);
declare_activity!(
    /// The apps a cold sweep tests (least recently tested first) and those it skips.
    ColdSweepPlanActivity, names::COLD_SWEEP_PLAN, ColdSweepInput => ColdSweepPlan
);
declare_activity!(
    /// Writes the cold sweep's progress event.
    ColdSweepRecord, names::COLD_SWEEP_RECORD, ColdSweepResult => ()
);
declare_activity!(
    /// Posts a forge-started run's commit status to the forge.
    UpgradeForgeStatus, names::UPGRADE_FORGE_STATUS, ForgeStatus => ()
);
declare_activity!(
    /// One pass of the reaper over the shared services.
    SharedReapPass, names::SHARED_REAP_PASS, SharedReapInput => SharedReapResult
);
declare_activity!(
    /// Writes the reaper's progress event.
    SharedReapRecord, names::SHARED_REAP_RECORD, SharedReapResult => ()
);
declare_activity!(
    /// Back up the state store (or read an existing backup's manifest).
    RestoreBackup, names::RESTORE_BACKUP, RestoreDrillInput => BackupTaken
);
declare_activity!(
    /// Restore the backup into a scratch target, compare, remove the target.
    RestoreVerify, names::RESTORE_VERIFY, BackupTaken => RestoreVerified
);
declare_activity!(
    /// Record the drill as the last verified backup (or the failed one).
    RestoreRecord, names::RESTORE_RECORD, RestoreDrillResult => ()
);

declare_activity!(
    /// The service's primary, its streaming standbys and their lag, or why
    /// the drill refuses; creates the marker table when missing.
    FailoverPreflightActivity, names::FAILOVER_PREFLIGHT, FailoverDrillInput => FailoverPreflight
);
declare_activity!(
    /// Writes a numbered marker every 100 ms and probes the service, logging
    /// each outcome, until writes succeed again after the trigger.
    FailoverObserve, names::FAILOVER_OBSERVE, FailoverStep => FailoverObserved
);
declare_activity!(
    /// Runs the configured trigger once per drill run.
    FailoverTrigger, names::FAILOVER_TRIGGER, FailoverStep => TriggerResult
);
declare_activity!(
    /// Every acknowledged marker against the service; RTO, RPO and the
    /// probe's view, from the drill's log.
    FailoverVerify, names::FAILOVER_VERIFY, FailoverStep => FailoverMeasured
);
declare_activity!(
    /// Runs the configured recovery command; the hosts' roles afterwards.
    FailoverRecover, names::FAILOVER_RECOVER, FailoverStep => RecoveryResult
);
declare_activity!(
    /// Writes the evidence (JSON, Markdown, SHA-256), the progress event
    /// and the metrics; returns the result with the evidence's paths.
    FailoverRecord, names::FAILOVER_RECORD, FailoverDrillResult => FailoverDrillResult
);
