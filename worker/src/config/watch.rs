//! The config as a long-running process sees it: read again when the file
//! changes (its size, modification time or inode, and at least once a
//! second its content's hash), so a token removed from `[[operators]]`
//! stops working on the next request, without parsing the file for every
//! request. A file that no longer loads (an operator mid-edit) leaves the
//! last config that loaded in force: the fault goes to the log, redacted,
//! and to the counters `/metrics` shows, never to a client.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::{Error, Loaded, load};

/// How long an unchanged stat is trusted before the content is hashed
/// again (a filesystem with coarse modification times, an edit that keeps
/// the size).
const RECHECK: Duration = Duration::from_secs(1);

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode,
    })
}

#[derive(Debug)]
struct Seen {
    loaded: Arc<Loaded>,
    stamp: Option<Stamp>,
    sha256: [u8; 32],
    checked: Instant,
    /// The redacted fault of the file as it is now, when it does not load.
    fault: Option<String>,
}

/// A config file watched for changes.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    seen: Mutex<Seen>,
    reloads: AtomicU64,
    failures: AtomicU64,
}

impl Watched {
    /// Loads `path` (an error when it does not load: a process does not
    /// start on a broken config) and watches it.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read(path).unwrap_or_default();
        let loaded = load(path)?;
        Ok(Self::of(loaded, &text))
    }

    /// Watches the file `loaded` came from, starting from `loaded`.
    pub fn of(loaded: Loaded, text: &[u8]) -> Self {
        let path = loaded.path.clone();
        Self {
            seen: Mutex::new(Seen {
                stamp: stamp(&path),
                sha256: Sha256::digest(text).into(),
                loaded: Arc::new(loaded),
                checked: Instant::now(),
                fault: None,
            }),
            path,
            reloads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config now: the file's, when it changed and loads; else the
    /// last that loaded.
    pub fn current(&self) -> Arc<Loaded> {
        let mut seen = self.seen.lock().expect("config watch");
        let now_stamp = stamp(&self.path);
        if now_stamp == seen.stamp && seen.checked.elapsed() < RECHECK {
            return seen.loaded.clone();
        }
        seen.checked = Instant::now();
        let Ok(text) = std::fs::read(&self.path) else {
            seen.stamp = now_stamp;
            self.fault(
                &mut seen,
                format!("config {}: cannot read", self.path.display()),
            );
            return seen.loaded.clone();
        };
        let sha: [u8; 32] = Sha256::digest(&text).into();
        seen.stamp = now_stamp;
        if sha == seen.sha256 {
            return seen.loaded.clone();
        }
        seen.sha256 = sha;
        match load(&self.path) {
            Ok(loaded) => {
                if seen.fault.take().is_some() {
                    tracing::warn!(config = %self.path.display(), "the config loads again");
                }
                self.reloads.fetch_add(1, Ordering::Relaxed);
                seen.loaded = Arc::new(loaded);
            }
            Err(e) => self.fault(&mut seen, e.redacted()),
        }
        seen.loaded.clone()
    }

    fn fault(&self, seen: &mut Seen, why: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{why}; serving with the last config that loaded until the file is fixed");
        seen.fault = Some(why);
    }

    /// Why the file does not load now (redacted), while the last good
    /// config is in force.
    pub fn fault_now(&self) -> Option<String> {
        self.current();
        self.seen.lock().expect("config watch").fault.clone()
    }

    /// The watch's counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        let stale = u8::from(self.fault_now().is_some());
        format!(
            "# HELP steward_config_reloads_total Times the config was read again after a change\n\
             # TYPE steward_config_reloads_total counter\n\
             steward_config_reloads_total {}\n\
             # HELP steward_config_reload_failures_total Changes to the config file that did not load (the last good config stayed in force)\n\
             # TYPE steward_config_reload_failures_total counter\n\
             steward_config_reload_failures_total {}\n\
             # HELP steward_config_stale 1 while the file does not load and the last good config is in force\n\
             # TYPE steward_config_stale gauge\n\
             steward_config_stale {stale}\n",
            self.reloads.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_seen_a_broken_file_keeps_the_last_good_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steward.toml");
        std::fs::write(&path, "task_queue = \"one\"\n").unwrap();
        let w = Watched::load(&path).unwrap();
        assert_eq!(w.current().config.task_queue, "one");
        std::fs::write(&path, "task_queue = \"two\"\n# longer\n").unwrap();
        assert_eq!(w.current().config.task_queue, "two", "a change is read");
        std::fs::write(
            &path,
            "task_queue = \"two\"\ndatabase_url = \"postgres://u:s3cret@h/db\n",
        )
        .unwrap();
        assert_eq!(w.current().config.task_queue, "two", "the last good one");
        let fault = w.fault_now().expect("the fault is known");
        assert!(
            !fault.contains("s3cret") && fault.contains("line 2"),
            "{fault}"
        );
        let metrics = w.prometheus();
        assert!(metrics.contains("steward_config_stale 1"), "{metrics}");
        assert!(
            metrics.contains("steward_config_reload_failures_total 1"),
            "{metrics}"
        );
        std::fs::write(&path, "task_queue = \"three\"\n").unwrap();
        assert_eq!(w.current().config.task_queue, "three");
        assert!(w.prometheus().contains("steward_config_stale 0"));
    }
}
