//! The backfill rollout's words.

use super::{stage, vocabulary};

vocabulary! {
    /// Where a running rollout is, in the runbook's order.
    pub enum BackfillPhase ("backfill phase") {
        /// Checking the spec's preconditions.
        Preconditions = "preconditions",
        /// Waiting for the freeze window or an operator's `freeze`.
        AwaitingFreeze = "awaiting_freeze",
        /// Ingest frozen; the snapshot is being taken.
        Frozen = "frozen",
        /// Counting what the backfill will write.
        DryRun = "dry_run",
        /// Waiting for every approving group.
        AwaitingApproval = "awaiting_approval",
        /// Applying batches.
        Executing = "executing",
        /// Running the validations.
        Validating = "validating",
        /// Unfreezing ingest.
        Unfreezing = "unfreezing",
        /// Running the replay probe after the unfreeze.
        ReplayProbe = "replay_probe",
        /// Removing what the run wrote.
        RollingBack = "rolling_back",
        /// Rolled back; ingest stays frozen until an operator unfreezes.
        RolledBackFrozen = "rolled_back_frozen",
    }
}

vocabulary! {
    /// How a rollout ended.
    pub enum BackfillOutcome ("backfill outcome") {
        /// Every batch applied and validated.
        Done = "done",
        /// A dry run, as asked: counted, reported, unfrozen.
        DryRun = "dry_run",
        /// Rolled back and unfrozen by an operator.
        RolledBack = "rolled_back",
        /// A precondition did not hold; nothing was touched.
        PreconditionsFailed = "preconditions_failed",
        /// The dry-run count was outside the tolerance; unfrozen.
        DryRunFailed = "dry_run_failed",
        /// Aborted before the freeze.
        Aborted = "aborted",
    }
}

stage! {
    /// A rollout's stage: a phase while it runs, its outcome once it ended.
    ///
    /// The spelling is the phase's or the outcome's, as the status query and
    /// the update replies have always shown it. `dry_run` is both a phase and
    /// an outcome, so whether a rollout ended is never read from the spelling:
    /// it is [`BackfillStage::ended`] here, and the status query's `outcome`.
    pub enum BackfillStage (BackfillPhase, BackfillOutcome, first Preconditions)
}

vocabulary! {
    /// What an operator did to a rollout (or an upgrade): the start, or an
    /// operator update. Each update's name is its verb.
    pub enum OperatorVerb ("operator action") {
        /// Started the rollout or upgrade.
        Start = "start",
        /// Freeze now.
        Freeze = "freeze",
        /// Unfreeze after a rollback.
        Unfreeze = "unfreeze",
        /// Approve for a group (or an upgrade's held version).
        Approve = "approve",
        /// No batch starts until `resume`.
        Pause = "pause",
        /// Batches start again.
        Resume = "resume",
        /// Stop and roll back.
        Abort = "abort",
        /// Live settings.
        Set = "set",
    }
}

impl OperatorVerb {
    /// Whether the verb is sent as an operator update (all but `start`).
    pub const fn is_update(self) -> bool {
        !matches!(self, Self::Start)
    }
}

vocabulary! {
    /// What a `BackfillRef` asks the action activities for: one of the
    /// spec's actions, or the run the probe and rollback activities act on.
    pub enum SpecAction ("backfill action") {
        /// The spec's `freeze`.
        Freeze = "freeze",
        /// The spec's `unfreeze`.
        Unfreeze = "unfreeze",
        /// The spec's `snapshot`.
        Snapshot = "snapshot",
        /// The spec's `restore`.
        Restore = "restore",
        /// The replay probe's reference (it runs the probe's own action).
        Probe = "probe",
        /// The rollback's reference (it runs `rollback_sql`).
        Rollback = "rollback",
    }
}
