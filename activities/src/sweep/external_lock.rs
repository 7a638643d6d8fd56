//! `[sweep] external_lock`: the advisory lock a cron or systemd runner of
//! this kind takes with `flock -n PATH`, taken by steward for the whole
//! sweep beside its own lease, so that during a cut-over the old runner
//! and steward's schedule never write to the same repos at once.
//!
//! The lock is a `flock(2)` on an open file, held by the worker process
//! that took the sweep's lease. It is released when the lease is (the
//! release activity, or a watcher in the holding process that sees the
//! lease released, taken over or expired), or with the process when it
//! dies, as a `kill -9` does. The holder's run id is written into the file,
//! so that a repo activity on another worker of the same host can tell that
//! the process holding it holds it for this very sweep; a retry after the
//! holder died takes it again, and a legacy job that got it meanwhile makes
//! the sweep stop writing (the lock is lost).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_proto::ids;

use crate::store::Store;

/// How often the holding process checks that the sweep still has its lease.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Whether the external lock is this sweep's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// This sweep holds it (or no external lock is configured).
    Ours,
    /// Someone else does: `external:PATH`.
    Busy(String),
}

/// The external lock of one worker process.
#[derive(Debug, Clone, Default)]
pub struct ExternalLock {
    path: Option<PathBuf>,
    /// Open, locked files by holder (the sweep's run id).
    held: Arc<Mutex<BTreeMap<String, File>>>,
}

impl ExternalLock {
    /// The lock at `path`; none when `path` is None.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            held: Default::default(),
        }
    }

    /// How a sweep that found it held names the holder.
    pub fn holder_name(path: &Path) -> String {
        format!("external:{}", path.display())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, File>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the lock for `holder`, as `flock -n` would: at once or not at
    /// all. Taking it again as the same holder in this process is a no-op.
    /// When it is held, a holder that wrote `holder` into the file holds it
    /// for the same sweep (another worker of this host): that is ours too.
    pub fn take(&self, holder: &str) -> std::io::Result<Held> {
        let Some(path) = &self.path else {
            return Ok(Held::Ours);
        };
        if self.held().contains_key(holder) {
            return Ok(Held::Ours);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                writeln!(file, "steward sweep {holder} (pid {})", std::process::id())?;
                file.flush()?;
                self.held().insert(holder.to_string(), file);
                Ok(Held::Ours)
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                if !holder.is_empty() && text.contains(&format!("steward sweep {holder} ")) {
                    Ok(Held::Ours)
                } else {
                    Ok(Held::Busy(Self::holder_name(path)))
                }
            }
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether this process holds the lock for `holder`.
    pub fn holds(&self, holder: &str) -> bool {
        self.held().contains_key(holder)
    }

    /// Releases `holder`'s lock, if this process holds it.
    pub fn release(&self, holder: &str) {
        // Closing the file releases the flock.
        self.held().remove(holder);
    }

    /// Releases `holder`'s lock once the store says the sweep's lease is
    /// no longer `holder`'s (released, taken over or expired), checking
    /// every second; runs until then or until the lock is released.
    pub async fn watch(self, store: Store, holder: String) {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if !self.holds(&holder) {
                return;
            }
            let now = chrono::Utc::now().timestamp_millis();
            match store.lock_holder(ids::SWEEP_LOCK).await {
                Ok(Some((h, expires))) if h == holder && expires >= now => {}
                Ok(_) => {
                    self.release(&holder);
                    return;
                }
                // A store that cannot be read keeps the lock: better held
                // a little long than the legacy runner let in mid-sweep.
                Err(e) => tracing::warn!("external lock watcher: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_taken_once_released_and_named_when_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/sweep.lock");
        let a = ExternalLock::new(Some(path.clone()));
        let b = ExternalLock::new(Some(path.clone()));
        assert_eq!(a.take("run-1").unwrap(), Held::Ours);
        assert_eq!(
            a.take("run-1").unwrap(),
            Held::Ours,
            "again as the same holder"
        );
        assert_eq!(
            b.take("run-1").unwrap(),
            Held::Ours,
            "held for the same sweep by another process"
        );
        assert_eq!(
            b.take("run-2").unwrap(),
            Held::Busy(format!("external:{}", path.display()))
        );
        a.release("run-1");
        assert_eq!(b.take("run-2").unwrap(), Held::Ours);
        assert!(b.holds("run-2"));
        assert_eq!(
            ExternalLock::default().take("any").unwrap(),
            Held::Ours,
            "no external lock configured"
        );
    }
}
