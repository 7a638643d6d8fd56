//! `[[backfills]]` of `steward.toml`: the backfill spec.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use steward_proto::limits;

/// SQL: one statement or several run in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SqlText {
    /// One statement.
    One(String),
    /// Several statements, in order.
    Many(Vec<String>),
}

impl SqlText {
    /// The statements.
    pub fn statements(&self) -> Vec<&str> {
        match self {
            SqlText::One(s) => vec![s.as_str()],
            SqlText::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// An HTTP request action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    /// GET, POST, PUT, DELETE.
    #[serde(default = "default_method")]
    pub method: String,
    /// The URL.
    pub url: String,
    /// JSON body, as text.
    #[serde(default)]
    pub body: Option<String>,
    /// Expected status; any 2xx when absent.
    #[serde(default)]
    pub expect_status: Option<u16>,
}

fn default_method() -> String {
    "POST".into()
}

/// A freeze, unfreeze, snapshot, restore or probe action: exactly one of
/// SQL (on the backfill's database), an HTTP request, or a command (argv,
/// never a shell string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// SQL statements run in one transaction.
    #[serde(default)]
    pub sql: Option<SqlText>,
    /// An HTTP request.
    #[serde(default)]
    pub http: Option<HttpAction>,
    /// A command as argv.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Timeout in seconds.
    #[serde(default = "default_action_timeout")]
    pub timeout_seconds: u64,
    /// The host whose workers run the action (a command that exists on one host) (`[worker] host`); unset: any
    /// worker.
    #[serde(default)]
    pub runs_on: Option<String>,
}

fn default_action_timeout() -> u64 {
    60
}

/// A named check: a one-value query (true when non-zero), or a command
/// (true when it exits 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedSql {
    /// Name shown in results.
    pub name: String,
    /// One-value query.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sql: String,
    /// A command (argv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

/// A backfill driven by the team's own job program instead of SQL: one
/// run of it per batch (docs/BACKFILL.md, "Job-driven backfills").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// argv, never a shell; `{cursor}`, `{batch_size}`, `{run_tag}` and
    /// `{batch_no}` are filled per batch.
    pub command: Vec<String>,
    /// Added to the argv for the dry run, which counts and writes nothing.
    #[serde(default = "default_dry_run_args")]
    pub dry_run_args: Vec<String>,
    /// How long one batch (or the dry run) may take, in seconds.
    #[serde(default = "default_job_timeout")]
    pub timeout_seconds: u64,
}

fn default_dry_run_args() -> Vec<String> {
    vec!["--dry-run".into()]
}

fn default_job_timeout() -> u64 {
    3600
}

/// A validation: a one-value query and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// Name shown in results.
    pub name: String,
    /// One-value query; `$1` is the run tag when used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sql: String,
    /// A command (argv; `{run_tag}` filled) whose last line of output is
    /// the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// `unchanged`, `= N`, `<= X` or `>= X`.
    pub expect: String,
}

/// A named throttle: a number read from a SQL query, a command or an HTTP
/// call; batches wait while it is over `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Name, `[a-z0-9-]`; `lag` is the `lag_sql` throttle's.
    pub name: String,
    /// A query whose first row holds the number.
    #[serde(default)]
    pub sql: Option<String>,
    /// The database the query runs on (a replica); the backfill's when
    /// unset.
    #[serde(default)]
    pub database_url: Option<String>,
    /// The column of the first row that holds the number (e.g.
    /// `Seconds_Behind_Master` of `SHOW REPLICA STATUS`); the first when
    /// unset.
    #[serde(default)]
    pub column: Option<String>,
    /// A command (argv, never a shell) whose last line of output is the
    /// number.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A URL whose answer is the number, or JSON holding it at `pointer`.
    #[serde(default)]
    pub http: Option<ThrottleHttp>,
    /// Batches wait while the number is over this.
    pub max: f64,
    /// How long they wait before it is read again; `throttle_seconds` when
    /// unset.
    #[serde(default)]
    pub wait_seconds: Option<u32>,
    /// How long one reading may take.
    #[serde(default = "default_throttle_timeout")]
    pub timeout_seconds: u64,
}

fn default_throttle_timeout() -> u64 {
    10
}

/// An HTTP throttle's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleHttp {
    /// GET this URL.
    pub url: String,
    /// A JSON pointer (`/data/cpu`) into the answer; the whole answer is
    /// the number when unset.
    #[serde(default)]
    pub pointer: Option<String>,
}

impl Throttle {
    /// Checks the name, the one source and the maximum.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!("name `{}` must be [a-z0-9-]", self.name));
        }
        if self.name == "lag" {
            return Err("name `lag` is the lag_sql throttle's".into());
        }
        let sources = [
            self.sql.is_some(),
            self.command.is_some(),
            self.http.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err("set exactly one of sql, command, http".into());
        }
        if self.sql.is_none() && (self.database_url.is_some() || self.column.is_some()) {
            return Err("database_url and column go with sql".into());
        }
        if let Some(url) = &self.database_url {
            crate::dburl::check_target(url)?;
        }
        if let Some(argv) = &self.command {
            check_argv(argv).map_err(|m| format!("command {m}"))?;
        }
        if let Some(h) = &self.http {
            check_url(&h.url)?;
        }
        if !self.max.is_finite() || self.max < 0.0 {
            return Err("max must be a number of 0 or more".into());
        }
        Ok(())
    }
}

/// The replay probe after unfreeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayProbe {
    /// What to trigger.
    pub action: Action,
    /// One-value query that must become non-zero.
    pub check_sql: String,
    /// How long to wait for it, in seconds.
    #[serde(default = "default_probe_wait")]
    pub wait_seconds: u64,
}

fn default_probe_wait() -> u64 {
    30
}

/// One `[[backfills]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSpec {
    /// Name, `[a-z0-9-]`; the workflow id is `backfill-<name>`.
    pub name: String,
    /// The target database: a SQLite, PostgreSQL, MySQL or MariaDB URL;
    /// a job-driven backfill that runs no SQL needs none.
    #[serde(default)]
    pub database_url: String,
    /// The job program that applies the batches, instead of
    /// `next_range_sql` and `apply_sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    /// Checks that must hold before anything happens.
    #[serde(default)]
    pub preconditions: Vec<NamedSql>,
    /// Pause ingest, stop the publisher.
    #[serde(default)]
    pub freeze: Option<Action>,
    /// Re-enable ingest and the publisher.
    #[serde(default)]
    pub unfreeze: Option<Action>,
    /// Dry-run count of the records the backfill will write (a job's dry
    /// run counts instead).
    #[serde(default)]
    pub count_sql: String,
    /// Expected dry-run count.
    #[serde(default)]
    pub expected_count: Option<u64>,
    /// Allowed absolute difference from `expected_count`.
    #[serde(default)]
    pub count_tolerance: u64,
    /// Next key range after a cursor: `$1` cursor, `$2` batch size; returns
    /// two columns (low, high), NULL when nothing is left.
    #[serde(default)]
    pub next_range_sql: String,
    /// Applies one range: `$1` low, `$2` high, `$3` run tag.
    #[serde(default)]
    pub apply_sql: String,
    /// Removes what this run wrote: `$1` run tag.
    #[serde(default)]
    pub rollback_sql: String,
    /// Removes what this run wrote, by a command or HTTP call
    /// (`{run_tag}` filled), instead of `rollback_sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Action>,
    /// Taken after freeze, before execution.
    #[serde(default)]
    pub snapshot: Option<Action>,
    /// Brings the snapshot back when the rollback fails.
    #[serde(default)]
    pub restore: Option<Action>,
    /// Checks after execution.
    #[serde(default)]
    pub validations: Vec<Validation>,
    /// The probe after unfreeze.
    #[serde(default)]
    pub replay_probe: Option<ReplayProbe>,
    /// Rows per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Stop and roll back at the first failing batch.
    #[serde(default = "default_true")]
    pub stop_on_error: bool,
    /// Alert when the run takes longer, e.g. "2h".
    #[serde(default = "default_max_runtime")]
    pub max_runtime: String,
    /// One-value query returning the replication lag in seconds.
    #[serde(default)]
    pub lag_sql: Option<String>,
    /// Above this lag, batches wait and an alert is raised.
    #[serde(default = "default_max_lag")]
    pub max_lag_seconds: f64,
    /// How long a throttled backfill waits before reading the lag again.
    #[serde(default = "default_throttle")]
    pub throttle_seconds: u32,
    /// Named throttles on any load signal, besides the lag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttles: Vec<Throttle>,
    /// Groups that must approve before execution.
    #[serde(default)]
    pub approvals: Vec<String>,
    /// How long the approvals may take, e.g. "4h" (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout: Option<String>,
    /// What a rollout does when the approvals did not come in time:
    /// `abort` (rolled back, nothing applied) or `renotify` (say so again
    /// and keep waiting; the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_approval_timeout: Option<String>,
    /// Take only operator actions the API signed (verified identities);
    /// the CLI's typed names are refused.
    #[serde(default)]
    pub require_verified: bool,
    /// Batches per workflow run before continue-as-new.
    #[serde(default = "default_batches_per_run")]
    pub batches_per_run: u32,
    /// At most this many batches per batch activity (a run of batches
    /// also stops after a second); 1 makes each batch its own activity.
    #[serde(default = "default_batches_per_activity")]
    pub batches_per_activity: u32,
}

fn default_batch_size() -> u32 {
    500
}
fn default_true() -> bool {
    true
}
fn default_max_runtime() -> String {
    "2h".into()
}
fn default_max_lag() -> f64 {
    60.0
}
fn default_throttle() -> u32 {
    5
}
fn default_batches_per_run() -> u32 {
    200
}
fn default_batches_per_activity() -> u32 {
    100
}

impl Action {
    /// Checks that exactly one kind is set and that it is well formed.
    pub fn check(&self) -> Result<(), String> {
        let kinds = [
            self.sql.is_some(),
            self.http.is_some(),
            self.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err("set exactly one of sql, http, command".into());
        }
        if let Some(argv) = &self.command {
            check_argv(argv).map_err(|m| format!("command {m}"))?;
        }
        if let Some(h) = &self.http {
            check_url(&h.url)?;
            if !["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&h.method.as_str()) {
                return Err(format!(
                    "http.method `{}` is not GET, POST, PUT, PATCH or DELETE",
                    h.method
                ));
            }
        }
        if let Some(sql) = &self.sql
            && sql.statements().iter().any(|s| s.trim().is_empty())
        {
            return Err("sql statements must not be empty".into());
        }
        Ok(())
    }
}

/// Refuses an argv without a program.
fn check_argv(argv: &[String]) -> Result<(), String> {
    if argv.first().is_none_or(|p| p.trim().is_empty()) {
        return Err("must be a non-empty argv list".into());
    }
    Ok(())
}

/// Refuses a URL that is not HTTP.
fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "http.url `{url}` must start with http:// or https://"
        ))
    }
}

/// An expectation of a validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// Same value as before the run.
    Unchanged,
    /// Exactly this value.
    Equal(f64),
    /// At most.
    AtMost(f64),
    /// At least.
    AtLeast(f64),
}

/// Parses `unchanged`, `= N`, `<= X`, `>= X`.
pub fn parse_expect(text: &str) -> Result<Expect, String> {
    let t = text.trim();
    let num = |s: &str| {
        s.trim()
            .parse::<f64>()
            .map_err(|_| format!("`{text}`: expected unchanged, = N, <= X or >= X"))
    };
    if t == "unchanged" {
        Ok(Expect::Unchanged)
    } else if let Some(v) = t.strip_prefix("<=") {
        Ok(Expect::AtMost(num(v)?))
    } else if let Some(v) = t.strip_prefix(">=") {
        Ok(Expect::AtLeast(num(v)?))
    } else if let Some(v) = t.strip_prefix('=') {
        Ok(Expect::Equal(num(v)?))
    } else {
        Err(format!("`{text}`: expected unchanged, = N, <= X or >= X"))
    }
}

impl BackfillSpec {
    /// The host each pinned action runs on, by the `SpecAction` word its
    /// reference carries (the replay probe's action under `probe`).
    pub fn action_hosts(&self) -> std::collections::HashMap<String, String> {
        use steward_proto::vocab::SpecAction;
        [
            (SpecAction::Freeze, self.freeze.as_ref()),
            (SpecAction::Unfreeze, self.unfreeze.as_ref()),
            (SpecAction::Snapshot, self.snapshot.as_ref()),
            (SpecAction::Restore, self.restore.as_ref()),
            (
                SpecAction::Probe,
                self.replay_probe.as_ref().map(|p| &p.action),
            ),
            // The rollback runs the `restore` action when its SQL fails.
            (SpecAction::Rollback, self.restore.as_ref()),
        ]
        .into_iter()
        .filter_map(|(which, action)| {
            let host = action?.runs_on.clone()?;
            Some((which.as_str().to_string(), host))
        })
        .collect()
    }

    /// Checks values that parse but are invalid; returns (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: String| Err((k.to_string(), m));
        if self.batch_size == 0 {
            return e("batch_size", "must be at least 1".into());
        }
        if self.batches_per_run == 0 {
            return e("batches_per_run", "must be at least 1".into());
        }
        if !(1..=limits::BATCHES_PER_ACTIVITY).contains(&self.batches_per_activity) {
            return e(
                "batches_per_activity",
                format!("must be between 1 and {}", limits::BATCHES_PER_ACTIVITY),
            );
        }
        if self.max_lag_seconds <= 0.0 {
            return e("max_lag_seconds", "must be positive".into());
        }
        if let Err(m) = crate::duration::parse(&self.max_runtime) {
            return e("max_runtime", m);
        }
        if let Some(Err(m)) = self.approval_timeout.as_deref().map(crate::duration::parse) {
            return e("approval_timeout", m);
        }
        if let Some(o) = &self.on_approval_timeout
            && o != "abort"
            && o != "renotify"
        {
            return e(
                "on_approval_timeout",
                format!("`{o}` is neither `abort` nor `renotify`"),
            );
        }
        if let Err((k, m)) = self.check_engine() {
            return e(k, m);
        }
        for (key, action) in [
            ("freeze", &self.freeze),
            ("unfreeze", &self.unfreeze),
            ("snapshot", &self.snapshot),
            ("restore", &self.restore),
        ] {
            if let Some(a) = action
                && let Err(m) = a.check()
            {
                return e(key, m);
            }
        }
        if let Some(p) = &self.replay_probe
            && let Err(m) = p.action.check()
        {
            return e("replay_probe.action", m);
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.throttles.iter().enumerate() {
            if let Err(m) = t.check() {
                return e(&format!("throttles[{i}]"), m);
            }
            if !names.insert(t.name.as_str()) {
                return e(
                    &format!("throttles[{i}].name"),
                    format!("`{}` is named twice", t.name),
                );
            }
        }
        for (i, v) in self.validations.iter().enumerate() {
            if let Err(m) = parse_expect(&v.expect) {
                return e(&format!("validations[{i}].expect"), m);
            }
        }
        for (i, g) in self.approvals.iter().enumerate() {
            if g.trim().is_empty() {
                return e(&format!("approvals[{i}]"), "must not be empty".into());
            }
        }
        Ok(())
    }

    /// Checks that the backfill says how it applies, counts and rolls
    /// back (SQL, or a job), and that what it runs has a database.
    fn check_engine(&self) -> Result<(), (&'static str, String)> {
        let needs_db = self.job.is_none()
            || !self.count_sql.is_empty()
            || !self.rollback_sql.is_empty()
            || self.lag_sql.is_some()
            || self.preconditions.iter().any(|p| !p.sql.is_empty())
            || self.validations.iter().any(|v| !v.sql.is_empty())
            || self
                .throttles
                .iter()
                .any(|t| t.sql.is_some() && t.database_url.is_none());
        if needs_db || !self.database_url.is_empty() {
            crate::dburl::check_target(&self.database_url).map_err(|m| ("database_url", m))?;
        }
        match &self.job {
            None => {
                for (key, sql) in [
                    ("count_sql", &self.count_sql),
                    ("next_range_sql", &self.next_range_sql),
                    ("apply_sql", &self.apply_sql),
                ] {
                    if sql.trim().is_empty() {
                        return Err((key, "is required (or a `job`)".into()));
                    }
                }
            }
            Some(job) => {
                check_argv(&job.command).map_err(|m| ("job.command", m))?;
                for (key, sql) in [
                    ("next_range_sql", &self.next_range_sql),
                    ("apply_sql", &self.apply_sql),
                ] {
                    if !sql.is_empty() {
                        return Err((key, "goes with SQL batches, not with a `job`".into()));
                    }
                }
            }
        }
        if self.rollback_sql.trim().is_empty() == self.rollback.is_none() {
            return Err((
                "rollback_sql",
                "set exactly one of rollback_sql and rollback".into(),
            ));
        }
        if let Some(a) = &self.rollback {
            a.check().map_err(|m| ("rollback", m))?;
        }
        for p in &self.preconditions {
            if p.sql.trim().is_empty() == p.command.is_none() {
                return Err((
                    "preconditions",
                    format!("`{}`: set exactly one of sql, command", p.name),
                ));
            }
        }
        for v in &self.validations {
            if v.sql.trim().is_empty() == v.command.is_none() {
                return Err((
                    "validations",
                    format!("`{}`: set exactly one of sql, command", v.name),
                ));
            }
        }
        Ok(())
    }

    /// How the target database writes bound parameters.
    pub fn dialect(&self) -> super::sql::Dialect {
        super::sql::Dialect::of(&self.database_url)
    }

    /// SHA-256 of the spec's canonical JSON form.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(serde_json::to_vec(self).unwrap_or_default()))
    }

    /// How long the approvals may take, in seconds (0: no limit).
    pub fn approval_timeout_seconds(&self) -> u64 {
        self.approval_timeout
            .as_deref()
            .and_then(|t| crate::duration::parse(t).ok())
            .unwrap_or(0)
    }

    /// The alert threshold in seconds.
    pub fn max_runtime_seconds(&self) -> u64 {
        crate::duration::parse(&self.max_runtime).unwrap_or(7200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse() {
        assert_eq!(parse_expect("unchanged"), Ok(Expect::Unchanged));
        assert_eq!(parse_expect("= 12"), Ok(Expect::Equal(12.0)));
        assert_eq!(parse_expect("<= 0.001"), Ok(Expect::AtMost(0.001)));
        assert_eq!(parse_expect(">=3"), Ok(Expect::AtLeast(3.0)));
        assert!(parse_expect("about 3").is_err());
    }

    #[test]
    fn actions_need_exactly_one_kind() {
        let none = Action {
            sql: None,
            http: None,
            command: None,
            timeout_seconds: 1,
            runs_on: None,
        };
        assert!(none.check().is_err());
        let cmd = Action {
            command: Some(vec![]),
            ..none.clone()
        };
        assert!(cmd.check().unwrap_err().contains("argv"));
        let both = Action {
            sql: Some(SqlText::One("x".into())),
            command: Some(vec!["true".into()]),
            ..none.clone()
        };
        assert!(both.check().is_err());
        let http = Action {
            http: Some(HttpAction {
                method: "POST".into(),
                url: "ftp://x".into(),
                body: None,
                expect_status: None,
            }),
            ..none
        };
        assert!(http.check().unwrap_err().contains("http://"));
    }
}
