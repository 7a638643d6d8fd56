//! `[[apps]]` of `steward.toml`: an app the warm upgrade keeps up to date.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::versions::DEFAULT_HOLD_PATTERNS;

/// The health gate: an HTTP check or a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// URL to GET.
    #[serde(default)]
    pub url: Option<String>,
    /// Or a command (argv) that exits 0 when healthy.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Expected HTTP status.
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Seconds between checks.
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    /// Seconds until the gate gives up.
    #[serde(default = "default_health_timeout")]
    pub timeout_seconds: u64,
    /// Consecutive successes required.
    #[serde(default = "default_successes")]
    pub successes: u32,
}

fn default_status() -> u16 {
    200
}
fn default_interval() -> u64 {
    2
}
fn default_health_timeout() -> u64 {
    60
}
fn default_successes() -> u32 {
    1
}
fn default_hold() -> Vec<String> {
    DEFAULT_HOLD_PATTERNS
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn default_command_timeout() -> u64 {
    300
}
fn default_approval_wait() -> String {
    "24h".into()
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Name, `[a-z0-9-]`; the workflow id is `warm-upgrade-<name>`.
    pub name: String,
    /// Git repo whose tags are the releases.
    pub recipe_repo: PathBuf,
    /// Path of a version's release notes in the repo at its tag, with
    /// `{version}`; without it, the tag's annotation.
    #[serde(default)]
    pub release_notes: Option<String>,
    /// Phrases in the notes that hold the upgrade (case-insensitive).
    #[serde(default = "default_hold")]
    pub hold_patterns: Vec<String>,
    /// Deploy command (argv; `{version}` and `{app}` are replaced).
    pub deploy: Vec<String>,
    /// Undeploy command (argv; `{version}` and `{app}` are replaced).
    pub undeploy: Vec<String>,
    /// Timeout of deploy, undeploy and assert commands, in seconds.
    #[serde(default = "default_command_timeout")]
    pub command_timeout_seconds: u64,
    /// The health gate.
    pub health: Health,
    /// Data folders to snapshot.
    pub volumes: Vec<PathBuf>,
    /// Where the last-known-good snapshot and `last_good` live.
    pub snapshot_dir: PathBuf,
    /// Commands a trial runs after the health gate.
    #[serde(default)]
    pub asserts: Vec<Vec<String>>,
    /// How long a held upgrade waits for an approval, e.g. "24h".
    #[serde(default = "default_approval_wait")]
    pub approval_wait: String,
}

impl AppSpec {
    /// Checks values that parse but are invalid; returns (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        for (key, argv) in [("deploy", &self.deploy), ("undeploy", &self.undeploy)] {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return e(key, "must be a non-empty argv list");
            }
        }
        if let Some(i) = self.asserts.iter().position(|a| a.is_empty()) {
            return Err((
                format!("asserts[{i}]"),
                "must be a non-empty argv list".into(),
            ));
        }
        match (&self.health.url, &self.health.command) {
            (Some(_), Some(_)) | (None, None) => {
                return e("health", "set exactly one of url, command");
            }
            (Some(u), None) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                return e("health.url", "must start with http:// or https://");
            }
            (None, Some(c)) if c.is_empty() => {
                return e("health.command", "must be a non-empty argv list");
            }
            _ => {}
        }
        if self.health.successes == 0 {
            return e("health.successes", "must be at least 1");
        }
        if self.volumes.is_empty() {
            return e("volumes", "name at least one data folder");
        }
        if let Err(m) = crate::backfill::spec::parse_duration(&self.approval_wait) {
            return Err(("approval_wait".into(), m));
        }
        Ok(())
    }

    /// The first program among deploy, undeploy, the health command and
    /// the asserts that cannot be run on this machine, as (key, program):
    /// the upgrade checks this before it touches anything, so a typo never
    /// leaves an app undeployed with no way back.
    pub fn missing_program(&self) -> Option<(String, String)> {
        let mut all = vec![("deploy".to_string(), &self.deploy)];
        all.push(("undeploy".into(), &self.undeploy));
        if let Some(c) = &self.health.command {
            all.push(("health.command".into(), c));
        }
        for (i, a) in self.asserts.iter().enumerate() {
            all.push((format!("asserts[{i}]"), a));
        }
        all.into_iter().find_map(|(key, argv)| {
            let program = argv.first()?;
            (!crate::files::is_runnable(program)).then(|| (key, program.clone()))
        })
    }

    /// `argv` with `{version}` and `{app}` replaced.
    pub fn argv(&self, argv: &[String], version: &str) -> Vec<String> {
        argv.iter()
            .map(|a| a.replace("{version}", version).replace("{app}", &self.name))
            .collect()
    }
}
