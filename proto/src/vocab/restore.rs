//! The restore drill's words.

use super::vocabulary;

vocabulary! {
    /// How a restore drill ended.
    pub enum DrillOutcome ("drill outcome") {
        /// The backup restored with the figures it was taken with.
        Verified = "verified",
        /// It restored, with different figures or failing health queries.
        Mismatch = "mismatch",
        /// It did not restore at all.
        Failed = "failed",
        /// It restored as taken, slower than the RTO target or older than
        /// the RPO target.
        TargetMissed = "target-missed",
    }
}

vocabulary! {
    /// Where a running restore drill is.
    #[derive(Default)]
    pub enum DrillPhase ("drill phase") {
        /// Taking (or reading) the backup.
        #[default]
        BackingUp = "backing_up",
        /// Restoring into the scratch target and comparing.
        Restoring = "restoring",
        /// Recording the outcome.
        Recording = "recording",
        /// Finished.
        Done = "done",
    }
}

vocabulary! {
    /// Which database a state store or a backup is.
    pub enum StoreBackend ("store backend") {
        /// A SQLite file.
        Sqlite = "sqlite",
        /// A PostgreSQL database.
        Postgres = "postgres",
    }
}
