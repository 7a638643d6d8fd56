//! Why a repo's activity failed: what `repo`, `clone` and `writeback`
//! return.

use std::path::Path;

use crate::{git, store};

/// Why a repo's activity failed (an automation error, C-00, once retries
/// are spent).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A git command failed.
    #[error(transparent)]
    Git(#[from] git::Error),
    /// Reading or writing a workplan file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another sweep took the lock: this one must not write.
    #[error("the sweep lock is no longer held by this sweep (now: {0})")]
    LockLost(String),
}

impl Error {
    /// What kind of failure it is, as a metric's label (`store_busy`,
    /// `store_sql`, `git`, `io`, `lock_lost`...).
    pub fn kind(&self) -> String {
        match self {
            Error::Store(e) => format!("store_{}", e.kind()),
            Error::Git(_) => "git".into(),
            Error::Io { .. } => "io".into(),
            Error::LockLost(_) => "lock_lost".into(),
        }
    }
}

/// The `Io` error of `path`.
pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}
