//! `[[apps]]` of `steward.toml`: an app the warm upgrade keeps up to date.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use steward_proto::vocab::{Advance, OnUnhealthy};

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
    /// Seconds after the deploy during which failed checks are not held
    /// against the candidate (it may still be starting).
    #[serde(default)]
    pub grace_seconds: u64,
    /// A check that passes and then fails this many times within the gate
    /// is a restart loop: unhealthy at once, with that reason.
    #[serde(default = "default_max_flaps")]
    pub max_flaps: u32,
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
fn default_max_flaps() -> u32 {
    2
}
fn default_disk_margin() -> String {
    "64MiB".into()
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

/// `[apps.cold]`: how to deploy a candidate on fresh, empty data in a
/// scratch folder, never the canonical volumes. `{scratch}` in the argv is
/// that folder (new and empty for each cold run), `{version}` and `{app}`
/// as in the app's own commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColdSpec {
    /// Deploy command of a cold run.
    pub deploy: Vec<String>,
    /// Undeploy command of a cold run (its scratch folder is removed after).
    pub undeploy: Vec<String>,
    /// The cold deployment's health gate (default the app's).
    #[serde(default)]
    pub health: Option<Health>,
    /// Commands run against the cold deployment after its health gate.
    #[serde(default)]
    pub asserts: Vec<Vec<String>>,
    /// Where scratch folders go (default `<snapshot_dir>/cold`).
    #[serde(default)]
    pub scratch_dir: Option<PathBuf>,
    /// What a cold run's data needs on disk, e.g. "2GiB" (default 0; the
    /// app's `disk_margin` is added).
    #[serde(default)]
    pub needs: Option<String>,
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Name, `[a-z0-9-]`; the workflow id is `warm-upgrade-<name>`.
    pub name: String,
    /// The host whose workers run every step that touches the app or its volume,
    /// and the inspection that reads its snapshot folder (`[worker] host`); unset: any
    /// worker.
    #[serde(default)]
    pub runs_on: Option<String>,
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
    /// Data folders to snapshot (none for a stateless app).
    #[serde(default)]
    pub volumes: Vec<PathBuf>,
    /// Where the last-known-good snapshot and `last_good` live.
    pub snapshot_dir: PathBuf,
    /// Commands a trial runs after the health gate.
    #[serde(default)]
    pub asserts: Vec<Vec<String>>,
    /// How long a held upgrade waits for an approval, e.g. "24h".
    #[serde(default = "default_approval_wait")]
    pub approval_wait: String,
    /// The group whose members approve a held upgrade (when operators are
    /// declared); any declared operator but the starter when unset.
    #[serde(default)]
    pub approval_group: Option<String>,
    /// Take only approvals the API signed (verified identities).
    #[serde(default)]
    pub require_verified: bool,
    /// Which runs move `last_good`: `warm` (a healthy upgrade) or `cold`
    /// (only a green cold run; needs `[apps.cold]`).
    #[serde(default)]
    pub advance: Advance,
    /// An unhealthy candidate: `rollback`, or `notify` (kept running, a
    /// critical alert, `unhealthy-kept`).
    #[serde(default)]
    pub on_unhealthy: OnUnhealthy,
    /// Free space kept beyond what a snapshot or cold run needs, e.g.
    /// "512MiB"; a run that would eat into it ends `held-disk`.
    #[serde(default = "default_disk_margin")]
    pub disk_margin: String,
    /// The cold run's setup.
    #[serde(default)]
    pub cold: Option<ColdSpec>,
    /// The `[[shared]]` services a cold run or a trial of the app gets a
    /// resource of its own on (`{shared.<name>}` in its commands).
    #[serde(default)]
    pub uses: Vec<String>,
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
        check_health("health", &self.health)?;
        if let Err(m) = crate::upgrade::disk::parse_size(&self.disk_margin) {
            return Err(("disk_margin".into(), m));
        }
        if let Some(c) = &self.cold {
            for (key, argv) in [("cold.deploy", &c.deploy), ("cold.undeploy", &c.undeploy)] {
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    return e(key, "must be a non-empty argv list");
                }
            }
            if !c.deploy.iter().any(|a| a.contains("{scratch}")) {
                return e(
                    "cold.deploy",
                    "must pass `{scratch}` (the fresh data folder) to the app: a cold run never uses the canonical volumes",
                );
            }
            if let Some(h) = &c.health {
                check_health("cold.health", h)?;
            }
            if let Some(i) = c.asserts.iter().position(|a| a.is_empty()) {
                return Err((
                    format!("cold.asserts[{i}]"),
                    "must be a non-empty argv list".into(),
                ));
            }
            if let Some(n) = &c.needs
                && let Err(m) = crate::upgrade::disk::parse_size(n)
            {
                return Err(("cold.needs".into(), m));
            }
        } else if self.advance == Advance::Cold {
            return e(
                "advance",
                "`cold` needs an [apps.cold] table (deploy and undeploy with `{scratch}`)",
            );
        }
        if let Err(m) = crate::duration::parse(&self.approval_wait) {
            return Err(("approval_wait".into(), m));
        }
        Ok(())
    }

    /// Where cold runs' scratch folders go.
    pub fn scratch_dir(&self) -> PathBuf {
        self.cold
            .as_ref()
            .and_then(|c| c.scratch_dir.clone())
            .unwrap_or_else(|| self.snapshot_dir.join("cold"))
    }

    /// The cold deployment's health gate.
    pub fn cold_health(&self) -> &Health {
        self.cold
            .as_ref()
            .and_then(|c| c.health.as_ref())
            .unwrap_or(&self.health)
    }

    /// `argv` with `{version}`, `{revision}`, `{app}` and `{scratch}`
    /// replaced.
    pub fn cold_argv(
        &self,
        argv: &[String],
        (version, revision): (&str, &str),
        scratch: &std::path::Path,
    ) -> Vec<String> {
        self.argv(argv, (version, revision))
            .into_iter()
            .map(|a| a.replace("{scratch}", &scratch.display().to_string()))
            .collect()
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
        if let Some(c) = &self.cold {
            all.push(("cold.deploy".into(), &c.deploy));
            all.push(("cold.undeploy".into(), &c.undeploy));
            if let Some(cmd) = c.health.as_ref().and_then(|h| h.command.as_ref()) {
                all.push(("cold.health.command".into(), cmd));
            }
            for (i, a) in c.asserts.iter().enumerate() {
                all.push((format!("cold.asserts[{i}]"), a));
            }
        }
        all.into_iter().find_map(|(key, argv)| {
            let program = argv.first()?;
            (!crate::files::is_runnable(program)).then(|| (key, program.clone()))
        })
    }

    /// `argv` with `{version}` (a release's version, a trial's revision
    /// as named), `{revision}` (the exact commit) and `{app}` replaced.
    pub fn argv(&self, argv: &[String], (version, revision): (&str, &str)) -> Vec<String> {
        argv.iter()
            .map(|a| {
                a.replace("{version}", version)
                    .replace("{revision}", revision)
                    .replace("{app}", &self.name)
            })
            .collect()
    }

    /// Whether a command of the app names `{revision}`.
    pub fn uses_revision(&self) -> bool {
        let mut all: Vec<&Vec<String>> = vec![&self.deploy, &self.undeploy];
        all.extend(&self.asserts);
        if let Some(c) = &self.cold {
            all.extend([&c.deploy, &c.undeploy]);
            all.extend(&c.asserts);
        }
        all.iter()
            .flat_map(|a| a.iter())
            .any(|a| a.contains("{revision}"))
    }
}

fn check_health(key: &str, h: &Health) -> Result<(), (String, String)> {
    let e = |k: &str, m: &str| Err((format!("{key}{k}"), m.to_string()));
    match (&h.url, &h.command) {
        (Some(_), Some(_)) | (None, None) => e("", "set exactly one of url, command"),
        (Some(u), None) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            e(".url", "must start with http:// or https://")
        }
        (None, Some(c)) if c.is_empty() => e(".command", "must be a non-empty argv list"),
        _ if h.successes == 0 => e(".successes", "must be at least 1"),
        _ if h.max_flaps == 0 => e(".max_flaps", "must be at least 1"),
        _ => Ok(()),
    }
}
