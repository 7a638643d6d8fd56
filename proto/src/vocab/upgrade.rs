//! The warm upgrade's words.

use super::{stage, vocabulary};

vocabulary! {
    /// Where a running upgrade is.
    pub enum UpgradePhase ("upgrade phase") {
        /// Reading versions, last good and release notes.
        Inspecting = "inspecting",
        /// Waiting for the health gate.
        HealthGate = "health_gate",
        /// Held by the safety gate until an approval.
        Held = "held",
        /// Stopping the running version.
        Undeploying = "undeploying",
        /// Taking the last-known-good snapshot.
        Snapshotting = "snapshotting",
        /// Deploying the candidate.
        Deploying = "deploying",
        /// Running the app's assertions (trials).
        Asserting = "asserting",
        /// Recording the new last good.
        Committing = "committing",
        /// Restoring the snapshot and the last good version.
        RollingBack = "rolling_back",
        /// Removing what earlier runs left behind.
        Pruning = "pruning",
        /// Measuring what the snapshot or the cold run needs against free space.
        CheckingDisk = "checking_disk",
        /// A cold run: the candidate on fresh data in a scratch folder.
        ColdTesting = "cold_testing",
        /// Making the run's resources on its shared services (waiting while
        /// one of them is being upgraded).
        SharingResources = "sharing_resources",
    }
}

vocabulary! {
    /// Which run of an app an upgrade is: every result carries it.
    pub enum UpgradeMode ("upgrade mode") {
        /// The canonical deployment, moved to the target.
        Warm = "warm",
        /// The target tried on the canonical data and always restored: it
        /// never moves last_good.
        Trial = "trial",
        /// The target on fresh data in a scratch folder.
        Cold = "cold",
    }
}

vocabulary! {
    /// How an upgrade ended.
    pub enum UpgradeOutcome ("upgrade outcome") {
        /// Already on the target and healthy.
        NoopHealthy = "noop-healthy",
        /// Already on the target, and unhealthy.
        NoopUnhealthy = "noop-unhealthy",
        /// A major bump, not approved in time.
        HeldMajor = "held-major",
        /// Release notes ask for a manual migration, not approved in time.
        HeldManualMigration = "held-manual-migration",
        /// The candidate is healthy and is the new last good.
        Upgraded = "upgraded",
        /// The candidate failed; back on last good.
        RolledBack = "rolled-back",
        /// The candidate failed and the rollback did too.
        RollbackFailed = "rollback-failed",
        /// A trial whose candidate passed; restored.
        TrialPassed = "trial-passed",
        /// A trial whose candidate failed; restored.
        TrialFailed = "trial-failed",
        /// Another upgrade of the app held its lock.
        SkippedBusy = "skipped-busy",
        /// What the snapshot or the cold run needs does not fit on its disk;
        /// the app untouched.
        HeldDisk = "held-disk",
        /// `advance = "cold"` and no cold run passed the target.
        HeldCold = "held-cold",
        /// The candidate is unhealthy and kept running (`on_unhealthy =
        /// "notify"`); last good unchanged.
        UnhealthyKept = "unhealthy-kept",
        /// A cold run whose candidate passed.
        ColdPassed = "cold-passed",
        /// A cold run whose candidate failed.
        ColdFailed = "cold-failed",
        /// The start was refused (its signature, or who started it may not);
        /// nothing touched.
        Refused = "refused",
    }
}

impl UpgradeOutcome {
    /// The exit code of `steward upgrade run` that waited for this
    /// outcome: 0 when the run did what was asked, else one code per
    /// outcome (docs/UPGRADE.md lists them), so a script tells a rollback
    /// from a hold without reading the JSON. Codes 1, 2 and 4 keep their
    /// meaning for every command (a run without a result, a refused
    /// request, Temporal or the store failing), so outcomes start at 10.
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::Upgraded | Self::NoopHealthy | Self::TrialPassed | Self::ColdPassed => 0,
            Self::RolledBack => 10,
            Self::RollbackFailed => 11,
            Self::UnhealthyKept => 12,
            Self::NoopUnhealthy => 13,
            Self::TrialFailed => 14,
            Self::ColdFailed => 15,
            Self::HeldMajor => 20,
            Self::HeldManualMigration => 21,
            Self::HeldCold => 22,
            Self::HeldDisk => 23,
            Self::SkippedBusy => 24,
            Self::Refused => 2,
        }
    }

    /// The outcome of an upgrade held for `hold` and not approved.
    pub const fn held(hold: Hold) -> Self {
        match hold {
            Hold::Major => Self::HeldMajor,
            Hold::ManualMigration => Self::HeldManualMigration,
        }
    }
}

stage! {
    /// An upgrade's stage: a phase while it runs, its outcome once it ended.
    pub enum UpgradeStage (UpgradePhase, UpgradeOutcome, first Inspecting)
}

vocabulary! {
    /// One step of an upgrade, run by the step activity.
    pub enum UpgradeStepKind ("upgrade step") {
        /// Stop a version.
        Undeploy = "undeploy",
        /// Start a version.
        Deploy = "deploy",
        /// Take the last-known-good snapshot of the volumes.
        Snapshot = "snapshot",
        /// Restore the snapshot.
        Restore = "restore",
        /// The health gate.
        Health = "health",
        /// The app's assertions.
        Asserts = "asserts",
        /// Record the new last good.
        SetLastGood = "set_last_good",
        /// Record what the canonical deployment runs.
        SetDeployed = "set_deployed",
        /// Remove what earlier runs left behind.
        Prune = "prune",
        /// Check free space for the snapshot.
        DiskCheck = "disk_check",
        /// Check free space for a cold run's scratch data.
        ColdDiskCheck = "cold_disk_check",
        /// Deploy the candidate on fresh data in a scratch folder.
        ColdDeploy = "cold_deploy",
        /// The cold deployment's health gate.
        ColdHealth = "cold_health",
        /// The cold deployment's assertions.
        ColdAsserts = "cold_asserts",
        /// Stop the cold deployment and remove its scratch data.
        ColdUndeploy = "cold_undeploy",
        /// Record that a cold run passed a version.
        ColdPassed = "cold_passed",
        /// Make the run's resource on each shared service it uses.
        SharedCreate = "shared_create",
        /// Delete the run's resources on its shared services.
        SharedDelete = "shared_delete",
    }
}

vocabulary! {
    /// Which runs move an app's last good.
    #[derive(Default)]
    pub enum Advance ("advance mode") {
        /// A healthy upgrade of the canonical deployment.
        #[default]
        Warm = "warm",
        /// Only a green cold run; warm runs need a version a cold run passed.
        Cold = "cold",
    }
}

vocabulary! {
    /// What an unhealthy candidate gets.
    #[derive(Default)]
    pub enum OnUnhealthy ("on_unhealthy mode") {
        /// Undeploy it, restore the snapshot, redeploy what ran before.
        #[default]
        Rollback = "rollback",
        /// Keep it running and raise a critical alert.
        Notify = "notify",
    }
}

vocabulary! {
    /// Why the safety gate holds an upgrade for an approval.
    pub enum Hold ("hold") {
        /// The major version changes.
        Major = "major",
        /// The release notes ask for a manual migration.
        ManualMigration = "manual-migration",
    }
}
