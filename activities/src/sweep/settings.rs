//! The sweep's configuration: `[sweep]` and `[[repos]]` of `steward.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One registered repo (`[[repos]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Unique name, `[a-z0-9-]`.
    pub name: String,
    /// Work tree folder; relative paths are resolved against the config
    /// file. For a repo with a `url`, set from the data dir: the worker's
    /// own clone, `<data_dir>/clones/<name>`.
    #[serde(default)]
    pub path: PathBuf,
    /// A git URL instead of a path: every worker keeps its own clone,
    /// fetched at the start of the repo's activity, and pushes writeback
    /// commits to it (its remote is `origin`).
    #[serde(default)]
    pub url: Option<String>,
    /// Remote to fetch (pull gate) and push to; none by default.
    #[serde(default)]
    pub remote: Option<String>,
    /// Push writeback commits to the remote.
    #[serde(default)]
    pub push: bool,
    /// The host whose workers run the repo's sweep: a `path` that exists on one host (`[worker] host`); unset: any
    /// worker.
    #[serde(default)]
    pub runs_on: Option<String>,
}

impl RepoConfig {
    /// The repo as a sweep activity receives it.
    pub fn target(&self) -> steward_proto::v1::RepoTarget {
        match &self.url {
            Some(url) => steward_proto::v1::RepoTarget {
                name: self.name.clone(),
                path: self.path.display().to_string(),
                remote: super::clone::ORIGIN.into(),
                push: true,
                url: url.clone(),
            },
            None => steward_proto::v1::RepoTarget {
                name: self.name.clone(),
                path: self.path.display().to_string(),
                remote: self.remote.clone().unwrap_or_default(),
                push: self.push,
                url: String::new(),
            },
        }
    }
}

/// `[sweep]`: defaults of every sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepSettings {
    /// Budget in workflow time.
    pub max_seconds: u32,
    /// Repos processed at once.
    pub concurrency: u32,
    /// Lease of the sweep lock; renewed by every repo activity.
    pub lock_ttl_seconds: u32,
    /// Repos per batch activity (raised for very large estates, so that a
    /// sweep's history stays bounded; lowered so every lane gets work).
    pub batch_size: u32,
    /// Committer name of writeback commits.
    pub committer_name: String,
    /// Committer email of writeback commits.
    pub committer_email: String,
    /// A lock file that an older runner of the sweep (cron, systemd) takes
    /// with `flock -n`: steward takes it the same way for the whole sweep,
    /// and skips the sweep while the other holds it. Relative to the config.
    pub external_lock: Option<PathBuf>,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            max_seconds: 300,
            concurrency: 4,
            lock_ttl_seconds: 120,
            batch_size: 25,
            committer_name: "steward".into(),
            committer_email: "steward@localhost".into(),
            external_lock: None,
        }
    }
}
