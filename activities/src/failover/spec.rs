//! `[[drills]]` of `steward.toml`: a database service whose failover is
//! drilled.

use serde::{Deserialize, Serialize};

/// The health probe that watches the service through the failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// A query run against the service's read-write host.
    #[serde(default)]
    pub sql: Option<String>,
    /// Or a URL to GET (a 2xx answer is healthy).
    #[serde(default)]
    pub url: Option<String>,
}

impl Probe {
    /// What the probe asks, in words.
    pub fn describe(&self) -> String {
        match (&self.sql, &self.url) {
            (Some(q), _) => format!("sql: {q}"),
            (None, Some(u)) => format!("http: GET {u}"),
            (None, None) => "none".into(),
        }
    }
}

fn default_probe() -> Probe {
    Probe {
        sql: Some("SELECT 1".into()),
        url: None,
    }
}
fn default_kind() -> String {
    "failover".into()
}
fn default_rto() -> f64 {
    30.0
}
fn default_baseline() -> u32 {
    2
}
fn default_observe() -> u32 {
    60
}
fn default_lag() -> String {
    "16MiB".into()
}
fn default_marker_table() -> String {
    "steward_drill_markers".into()
}

/// One `[[drills]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSpec {
    /// Name, `[a-z0-9-]`.
    pub name: String,
    /// The host whose workers run the trigger and the recovery (`pg_ctl promote` on
    /// the standby's machine) (`[worker] host`); unset: any
    /// worker.
    #[serde(default)]
    pub runs_on: Option<String>,
    /// What is drilled; `failover` is the one kind.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The service's connection: a PostgreSQL URL with every host of the
    /// cluster (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`),
    /// or one host that is a proxy in front of them. Writes go to the first
    /// host that accepts them, as libpq's `read-write` does.
    pub url: String,
    /// The documented failure: an argv command that fails the primary
    /// (never a shell string). It must be idempotent: a retried trigger
    /// runs it again.
    pub trigger: Vec<String>,
    /// What the trigger does, in words, for the evidence.
    #[serde(default)]
    pub trigger_note: String,
    /// Optional argv command run after verification to bring the cluster
    /// back (rebuild the old primary as a standby, fail back).
    #[serde(default)]
    pub recovery: Option<Vec<String>>,
    /// The probe that watches the service throughout.
    #[serde(default = "default_probe")]
    pub probe: Probe,
    /// RTO target: seconds from the first failed write to the first one
    /// that succeeds again.
    #[serde(default = "default_rto")]
    pub rto_seconds: f64,
    /// RPO target: seconds of acknowledged writes that may be lost.
    #[serde(default)]
    pub rpo_seconds: f64,
    /// Seconds of writes before the trigger.
    #[serde(default = "default_baseline")]
    pub baseline_seconds: u32,
    /// Seconds after the trigger to wait for writes to fail and succeed
    /// again before the drill gives up.
    #[serde(default = "default_observe")]
    pub observe_seconds: u32,
    /// Preflight refuses when no standby streams within this replay lag.
    #[serde(default = "default_lag")]
    pub max_standby_lag: String,
    /// The table the markers go into (created when missing, dropped after
    /// if the drill created it).
    #[serde(default = "default_marker_table")]
    pub marker_table: String,
}

impl DrillSpec {
    /// Checks values that parse but are invalid; returns (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if self.kind != "failover" {
            return e("kind", "the one kind of drill is `failover`");
        }
        if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
            return e("url", "must be a postgres:// URL");
        }
        if let Err(m) = super::service::Service::parse(&self.url) {
            return Err(("url".into(), m));
        }
        if self.trigger.first().is_none_or(|p| p.trim().is_empty()) {
            return e("trigger", "must be a non-empty argv list");
        }
        if let Some(r) = &self.recovery
            && r.first().is_none_or(|p| p.trim().is_empty())
        {
            return e("recovery", "must be a non-empty argv list");
        }
        match (&self.probe.sql, &self.probe.url) {
            (Some(_), Some(_)) | (None, None) => return e("probe", "set exactly one of sql, url"),
            (None, Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                return e("probe.url", "must start with http:// or https://");
            }
            _ => {}
        }
        if !self.rto_seconds.is_finite() || self.rto_seconds <= 0.0 {
            return e("rto_seconds", "must be more than 0");
        }
        if !self.rpo_seconds.is_finite() || self.rpo_seconds < 0.0 {
            return e("rpo_seconds", "must be 0 or more");
        }
        if self.observe_seconds == 0 {
            return e("observe_seconds", "must be at least 1");
        }
        if let Err(m) = crate::upgrade::disk::parse_size(&self.max_standby_lag) {
            return Err(("max_standby_lag".into(), m));
        }
        let table_ok = !self.marker_table.is_empty()
            && self
                .marker_table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !self.marker_table.starts_with(|c: char| c.is_ascii_digit());
        if !table_ok {
            return e(
                "marker_table",
                "must be a plain lowercase SQL name ([a-z_][a-z0-9_]*)",
            );
        }
        Ok(())
    }
}
