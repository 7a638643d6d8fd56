//! The consistency sweep's words, and the check catalogue.

use super::vocabulary;

vocabulary! {
    /// What the sweep did with one repo.
    pub enum RepoStatus ("repo status") {
        /// Assessed and reconciled.
        Processed = "processed",
        /// Nothing changed since the last sweep: not reassessed.
        SkippedClean = "skipped_clean",
        /// The path is not a git work tree.
        SkippedMissing = "skipped_missing",
    }
}

vocabulary! {
    /// Where a running sweep is.
    #[derive(Default)]
    pub enum SweepPhase ("sweep phase") {
        /// Listing the repos.
        #[default]
        Planning = "planning",
        /// Taking the sweep lock.
        Locking = "locking",
        /// Repos in lanes.
        Sweeping = "sweeping",
        /// Writing the progress event.
        Recording = "recording",
        /// Finished.
        Done = "done",
    }
}

vocabulary! {
    /// The state of a queued status change.
    pub enum ChangeState ("status change state") {
        /// Waiting for the next sweep of its repo.
        Pending = "pending",
        /// Written into the file and committed.
        Applied = "applied",
        /// The file's value moved since the last sweep (C-15).
        Conflict = "conflict",
        /// The task is not in its repo any more (C-17).
        UnknownTask = "unknown_task",
    }
}

vocabulary! {
    /// The check catalogue, C-00..C-17 (docs/CHECKS.md).
    pub enum CheckCode ("check code") {
        /// The repo's activity failed after its retries.
        AutomationError = "C-00",
        /// A workplan id is used twice (in one repo or across repos).
        DuplicateWorkplanId = "C-01",
        /// A task id is used twice.
        DuplicateTaskId = "C-02",
        /// A task id is not prefixed by its workplan id.
        TaskIdPrefix = "C-03",
        /// The frontmatter misses a required field.
        MissingWorkplanField = "C-04",
        /// An invalid workplan status.
        InvalidWorkplanStatus = "C-05",
        /// A task misses a required field.
        MissingTaskField = "C-06",
        /// An invalid task status.
        InvalidTaskStatus = "C-07",
        /// A finished workplan with open tasks.
        FinishedWithOpenTasks = "C-08",
        /// `depends_on` names an unknown workplan.
        UnknownDependency = "C-09",
        /// `needs_human` without an `intervention_note`.
        NeedsHumanWithoutNote = "C-10",
        /// A workplan file was deleted; its record is archived.
        DeletedWorkplan = "C-11",
        /// A state_hub id in the file points at another record.
        ForeignId = "C-12",
        /// A malformed file.
        Malformed = "C-13",
        /// An invalid value.
        InvalidValue = "C-14",
        /// A writeback conflict.
        WritebackConflict = "C-15",
        /// The pull gate blocked writeback.
        PullGateBlocked = "C-16",
        /// A status change queued for a task that no longer exists.
        UnknownTask = "C-17",
    }
}

impl CheckCode {
    /// The check's one-line meaning, as docs/CHECKS.md states it.
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::AutomationError => {
                "automation error: the repo's activity failed after its retries"
            }
            Self::DuplicateWorkplanId => "duplicate workplan id (in this repo or across repos)",
            Self::DuplicateTaskId => "duplicate task id",
            Self::TaskIdPrefix => "task id not prefixed by its workplan id",
            Self::MissingWorkplanField => {
                "workplan frontmatter misses a required field (id, type, title, status)"
            }
            Self::InvalidWorkplanStatus => "invalid workplan status",
            Self::MissingTaskField => "task misses a required field (id, status)",
            Self::InvalidTaskStatus => "invalid task status",
            Self::FinishedWithOpenTasks => "finished workplan with open tasks",
            Self::UnknownDependency => "depends_on names an unknown workplan",
            Self::NeedsHumanWithoutNote => "needs_human without intervention_note",
            Self::DeletedWorkplan => {
                "workplan file deleted while the store still has it (record archived)"
            }
            Self::ForeignId => "state_hub id in the file points at another record in the store",
            Self::Malformed => {
                "malformed file (frontmatter, fence, YAML subset, duplicate key, encoding)"
            }
            Self::InvalidValue => {
                "invalid value (type is not workplan, unknown priority, non-boolean needs_human)"
            }
            Self::WritebackConflict => {
                "writeback conflict: the file's value changed since the last sweep"
            }
            Self::PullGateBlocked => {
                "pull gate blocked: diverged or dirty, no writeback to this repo"
            }
            Self::UnknownTask => "status change queued for a task that no longer exists",
        }
    }
}
