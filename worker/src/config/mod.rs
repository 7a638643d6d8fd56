//! `steward.toml`: one serde struct per component, loaded once, validated
//! before anything runs. Unknown keys are errors that name the key.
//!
//! Loading is here; `validate` checks the config as written (one error
//! naming the key at fault), `paths` resolves what is relative to the
//! config file, `cron` reads the schedules' expressions.
//!
//! Temporal connection settings are not here: they come from the SDK's
//! standard client config (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
//! `temporal.toml` profiles). The one exception is the worker's gRPC
//! compression, which that config has no key for.

mod cron;
mod paths;
mod validate;
pub mod watch;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use steward_activities::alerts::AlertSettings;
use steward_activities::backfill::BackfillSpec;
use steward_activities::failover::DrillSpec;
use steward_activities::restore::RestoreSettings;
use steward_activities::roster::PermissionRule;
use steward_activities::sweep::{RepoConfig, SweepSettings};
use steward_activities::upgrade::{AppSpec, ColdSweepSettings, SharedSpec};
use steward_proto::vocab::ScheduleKind;

pub use cron::{check_cron, cron_interval};
pub use validate::{valid_host, valid_name};

/// Config errors; each names the file and the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("config {path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax, unknown key or wrong type (the message names the key).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message, with line and key (and the line itself).
        message: String,
        /// The line at fault.
        line: Option<usize>,
        /// What is wrong, without the line.
        reason: String,
    },
    /// A value that parses but is not valid.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Dotted key, e.g. `schedules[1].cron`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// The error with no value from the file in it: the line number, the
    /// key and the kind of fault, but never a line or a quoted value (a
    /// line may hold a database URL with its password). What a log that
    /// others read may say.
    pub fn redacted(&self) -> String {
        match self {
            Error::Read { path, source } => {
                format!("config {path}: cannot read: {}", source.kind())
            }
            Error::Parse {
                path, line, reason, ..
            } => format!(
                "config {path}: does not parse{}: {}",
                line.map(|l| format!(" at line {l}")).unwrap_or_default(),
                without_values(reason)
            ),
            Error::Invalid { path, key, message } => {
                format!("config {path}: {key}: {}", without_values(message))
            }
        }
    }
}

/// `text` with every quoted or backticked part replaced by `…`.
fn without_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<char> = None;
    for c in text.chars() {
        match open {
            Some(q) if c == q => {
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' || c == '\'' => {
                out.push(c);
                out.push('…');
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// The whole `steward.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder for the state store, the dev server's database and logs;
    /// relative to the config file. Default `.steward`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// State store URL; default `sqlite://<data_dir>/state.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Task queue of the worker and of every workflow it starts.
    #[serde(default = "default_task_queue")]
    pub task_queue: String,
    /// The embedded dev server (`steward dev`).
    #[serde(default)]
    pub dev: DevConfig,
    /// Sweep defaults.
    #[serde(default)]
    pub sweep: SweepSettings,
    /// Registered repos.
    #[serde(default)]
    pub repos: Vec<RepoConfig>,
    /// Temporal Schedules steward manages; the defaults when absent.
    #[serde(default)]
    pub schedules: Option<Vec<ScheduleConfig>>,
    /// Backfills (`[[backfills]]`).
    #[serde(default)]
    pub backfills: Vec<BackfillSpec>,
    /// Apps kept up to date by the warm upgrade (`[[apps]]`).
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// The nightly cold sweep's limits.
    #[serde(default)]
    pub cold_sweep: ColdSweepSettings,
    /// The forge whose pull-request comments start cold runs and trials
    /// (`[forge]`).
    #[serde(default)]
    pub forge: Option<steward_activities::forge::ForgeSettings>,
    /// Services many apps' cold runs and trials share, each run on a
    /// resource of its own (`[[shared]]`).
    #[serde(default)]
    pub shared: Vec<SharedSpec>,
    /// Failover drills of database services (`[[drills]]`).
    #[serde(default)]
    pub drills: Vec<DrillSpec>,
    /// Where evidence goes; default `<data_dir>/artifacts`.
    #[serde(default)]
    pub artifacts_dir: Option<PathBuf>,
    /// The alert sink.
    #[serde(default)]
    pub alerts: AlertSettings,
    /// The worker process: build id, shutdown, cache, metrics.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// The dead-man's switch and the failure pause.
    #[serde(default)]
    pub guard: GuardConfig,
    /// The restore drill: where backups go, how many are kept.
    #[serde(default)]
    pub restore: RestoreSettings,
    /// The Temporal namespace as steward wants it: its retention.
    #[serde(default)]
    pub temporal: TemporalConfig,
    /// The audit archive of closed runs.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The HTTP API (`steward api`).
    #[serde(default)]
    pub api: ApiConfig,
    /// Operators with verified identities (`[[operators]]`).
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    /// Who may take which action on what (`[[permissions]]`); the defaults
    /// when absent (`steward_activities::roster::Roster::groups`).
    #[serde(default)]
    pub permissions: Vec<PermissionRule>,
}

/// `[api]`: the HTTP API and the key pair that makes its operator actions
/// verifiable by the workflows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address `steward api` listens on; `--listen` overrides it.
    pub listen: String,
    /// The API's Ed25519 public key (hex): the workers give it to every
    /// run, which accepts only actions signed by its private key as
    /// verified. `steward api keygen` makes a pair.
    pub verify_key: Option<String>,
    /// The file with the API's private key (hex); `STEWARD_API_SIGNING_KEY`
    /// may hold the key instead. Never the key itself in this file.
    pub signing_key_file: Option<PathBuf>,
    /// Longest wait of `POST /consistency/sweep/remote-all` for the sweep
    /// before it answers 202 with the workflow id.
    pub sweep_wait_seconds: u64,
    /// The organisation's OpenID provider, whose access tokens the API
    /// takes beside steward's own (`[api.oidc]`).
    pub oidc: Option<crate::api::oidc::OidcConfig>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8234".into(),
            verify_key: None,
            signing_key_file: None,
            sweep_wait_seconds: 300,
            oidc: None,
        }
    }
}

/// One `[[operators]]` entry: a person, their groups, and the SHA-256 of
/// their API token (the token itself is theirs, never in this file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// The name every action they take is recorded under.
    pub name: String,
    /// The groups they approve for.
    #[serde(default)]
    pub groups: Vec<String>,
    /// SHA-256 (hex) of their token: `steward api token <name>` prints both.
    pub token_sha256: String,
    /// The credential's id, recorded with every action; default the
    /// hash's first 12 characters.
    #[serde(default)]
    pub token_id: Option<String>,
    /// When the token stops working (RFC 3339); never by default.
    #[serde(default)]
    pub expires: Option<String>,
}

impl OperatorConfig {
    /// The credential's id.
    pub fn credential_id(&self) -> String {
        self.token_id
            .clone()
            .unwrap_or_else(|| self.token_sha256.chars().take(12).collect())
    }
}

/// `[temporal]`: what steward needs of its namespace (the connection
/// itself comes from the SDK's client config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemporalConfig {
    /// Days the server keeps closed runs' histories: how long the audit
    /// trail can be read there (the archive keeps them after).
    pub retention_days: u32,
}

impl Default for TemporalConfig {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// `[audit]`: the archive of closed runs in the state store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often each worker archives the runs that closed since.
    pub archive_seconds: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            archive_seconds: 60,
        }
    }
}

/// `[guard]`: what every worker watches besides its tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// How often the guard looks, in seconds.
    pub check_seconds: u64,
    /// Alert when no sweep has succeeded for this long. Default: twice
    /// the interval of the first non-full sweep schedule; 0 turns the
    /// dead-man's switch off.
    pub max_sweep_age_seconds: Option<u64>,
    /// Pause a sweep schedule after this many consecutive sweeps with
    /// automation errors (assessment failures do not count); 0 never
    /// pauses.
    pub pause_after_errors: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            check_seconds: 60,
            max_sweep_age_seconds: None,
            pause_after_errors: 3,
        }
    }
}

/// `[worker]`: how the worker process runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Build id the worker reports to the server (recorded on every
    /// workflow task it completes), so two versions can run side by side
    /// and be told apart. Default `steward-<version>`; `STEWARD_BUILD_ID`
    /// and `--build-id` override it.
    pub build_id: Option<String>,
    /// How long in-flight activities may run on after a shutdown signal
    /// before they are cancelled.
    pub graceful_shutdown_seconds: u64,
    /// Workflows kept in the worker's cache (sticky execution).
    pub max_cached_workflows: usize,
    /// Address of the Prometheus endpoint (`host:port`); none by default.
    /// `--metrics-addr` overrides it.
    pub metrics_addr: Option<String>,
    /// Address of the worker's probes (`/healthz`, `/readyz`; `host:port`);
    /// none by default. `--health-addr` overrides it.
    pub health_addr: Option<String>,
    /// Compression of the worker's gRPC messages to Temporal.
    pub grpc_compression: GrpcCompression,
    /// The host this worker runs on, as `runs_on` names it: the worker
    /// polls the shared task queue and this host's own (`<task_queue>@<host>`),
    /// where the steps pinned to the host go. None: the shared queue only.
    pub host: Option<String>,
    /// How long a step pinned to a host may wait for a worker of that host
    /// before its run says so and raises an alert (`90s`, `5m`).
    pub host_wait_alert: String,
}

/// `[worker] grpc_compression`: how the worker's gRPC messages travel.
///
/// steward's payloads are small, bounded JSON (`proto/src/limits.rs`), and
/// gzip builds a fresh deflate compressor for every request (a few hundred
/// kB, zeroed): with the server on the same host or network that was a
/// third of the worker's CPU and bought nothing (docs/BENCHMARKS.md). So
/// steward sends uncompressed unless told otherwise, for a thin link to a
/// distant cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrpcCompression {
    /// Uncompressed, both ways.
    #[default]
    None,
    /// Gzip requests and accept gzip responses (the SDK's own default).
    Gzip,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            build_id: None,
            graceful_shutdown_seconds: 30,
            max_cached_workflows: 1000,
            metrics_addr: None,
            health_addr: None,
            grpc_compression: GrpcCompression::None,
            host: None,
            host_wait_alert: "5m".into(),
        }
    }
}

impl WorkerConfig {
    /// Seconds a pinned step waits for its host before it is told.
    pub fn host_wait_alert_seconds(&self) -> u32 {
        steward_activities::duration::parse(&self.host_wait_alert)
            .ok()
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(300)
    }

    /// The build id: configured, or `steward-<crate version>`.
    pub fn build_id(&self) -> String {
        self.build_id
            .clone()
            .unwrap_or_else(|| format!("steward-{}", env!("CARGO_PKG_VERSION")))
    }
}

/// `[dev]`: ports of the embedded Temporal dev server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// Frontend (gRPC) port.
    pub port: u16,
    /// Web UI port.
    pub ui_port: u16,
}

impl Default for DevConfig {
    fn default() -> Self {
        Self {
            port: 7233,
            ui_port: 8233,
        }
    }
}

/// One `[[schedules]]` entry: a Temporal Schedule that starts a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Name, `[a-z0-9-]`; the schedule id is `steward-<name>`.
    pub name: String,
    /// What it starts: `sweep` (default), `upgrade`, `restore-drill`,
    /// `cold-sweep` or `failover-drill`.
    #[serde(default = "default_kind")]
    pub workflow: ScheduleKind,
    /// The app an `upgrade` schedule upgrades.
    #[serde(default)]
    pub app: Option<String>,
    /// A `cold-sweep` schedule tests only the apps whose name contains it.
    #[serde(default)]
    pub filter: Option<String>,
    /// The `[[drills]]` entry a `failover-drill` schedule drills.
    #[serde(default)]
    pub drill: Option<String>,
    /// Standard five-field cron expression, evaluated in `timezone`.
    pub cron: String,
    /// IANA timezone; UTC by default.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Run a `--full` sweep.
    #[serde(default)]
    pub full: bool,
    /// Budget override; 0 uses `[sweep].max_seconds`.
    #[serde(default)]
    pub max_seconds: u32,
    /// Source tag of the progress events; default `schedule`.
    #[serde(default = "default_source")]
    pub source: String,
    /// Create the schedule paused.
    #[serde(default)]
    pub paused: bool,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".steward")
}
fn default_task_queue() -> String {
    "steward".into()
}
fn default_kind() -> ScheduleKind {
    ScheduleKind::Sweep
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_source() -> String {
    "schedule".into()
}

/// The schedules when the config declares none: the sweep every 15
/// minutes and a nightly full sweep, both in UTC.
pub fn default_schedules() -> Vec<ScheduleConfig> {
    let sweep = |name: &str, cron: &str, full: bool| ScheduleConfig {
        name: name.into(),
        workflow: ScheduleKind::Sweep,
        app: None,
        filter: None,
        drill: None,
        cron: cron.into(),
        timezone: default_timezone(),
        full,
        max_seconds: 0,
        source: default_source(),
        paused: false,
    };
    vec![
        sweep("sweep", "*/15 * * * *", false),
        sweep("sweep-nightly-full", "30 2 * * *", true),
    ]
}

/// A loaded, validated config and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config file.
    pub path: PathBuf,
    /// Its contents, with relative paths resolved.
    pub config: Config,
}

impl Config {
    /// Everything pinned to a host (`runs_on`): the key that pins it
    /// (`apps[0].runs_on`) and the host, in the config's order.
    pub fn pinned(&self) -> Vec<(String, &str)> {
        let mut pins: Vec<(String, &Option<String>)> = Vec::new();
        for (i, r) in self.repos.iter().enumerate() {
            pins.push((format!("repos[{i}].runs_on"), &r.runs_on));
        }
        for (i, a) in self.apps.iter().enumerate() {
            pins.push((format!("apps[{i}].runs_on"), &a.runs_on));
        }
        for (i, d) in self.drills.iter().enumerate() {
            pins.push((format!("drills[{i}].runs_on"), &d.runs_on));
        }
        for (i, b) in self.backfills.iter().enumerate() {
            let actions = [
                ("freeze", &b.freeze),
                ("unfreeze", &b.unfreeze),
                ("snapshot", &b.snapshot),
                ("restore", &b.restore),
            ];
            for (action, a) in actions {
                if let Some(a) = a {
                    pins.push((format!("backfills[{i}].{action}.runs_on"), &a.runs_on));
                }
            }
            if let Some(p) = &b.replay_probe {
                pins.push((
                    format!("backfills[{i}].replay_probe.action.runs_on"),
                    &p.action.runs_on,
                ));
            }
        }
        pins.push(("restore.runs_on".into(), &self.restore.runs_on));
        pins.into_iter()
            .filter_map(|(key, host)| Some((key, host.as_deref()?)))
            .collect()
    }

    /// The hosts steps are pinned to, each with what pins it there.
    pub fn hosts(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut hosts: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (key, host) in self.pinned() {
            hosts.entry(host.to_string()).or_default().push(key);
        }
        hosts
    }
}

impl Loaded {
    /// The state store URL.
    pub fn database_url(&self) -> String {
        self.config.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.config.data_dir.join("state.db").display()
            )
        })
    }

    /// The evidence folder.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.config
            .artifacts_dir
            .clone()
            .unwrap_or_else(|| self.config.data_dir.join("artifacts"))
    }

    /// The backups folder of the restore drill.
    pub fn backup_dir(&self) -> PathBuf {
        self.config
            .restore
            .backup_dir
            .clone()
            .unwrap_or_else(|| self.config.data_dir.join("backups"))
    }

    /// Every folder steward writes to, with what for: the filesystems the
    /// disk-free gauge watches.
    pub fn watched_folders(&self) -> Vec<(PathBuf, String)> {
        let mut all = vec![
            (self.config.data_dir.clone(), "data".to_string()),
            (self.backup_dir(), "backups".into()),
        ];
        for app in &self.config.apps {
            all.push((app.snapshot_dir.clone(), format!("snapshots {}", app.name)));
            if app.cold.is_some() {
                all.push((app.scratch_dir(), format!("cold scratch {}", app.name)));
            }
            for v in &app.volumes {
                all.push((v.clone(), format!("volume {}", app.name)));
            }
        }
        all
    }

    /// The alert files folder.
    pub fn alerts_dir(&self) -> PathBuf {
        self.config
            .alerts
            .dir
            .clone()
            .unwrap_or_else(|| self.config.data_dir.join("alerts"))
    }

    /// The dead-man's switch threshold: configured, else twice the
    /// interval of the first non-full sweep schedule; None when off.
    pub fn max_sweep_age(&self) -> Option<std::time::Duration> {
        let seconds = match self.config.guard.max_sweep_age_seconds {
            Some(s) => s,
            None => self
                .schedules()
                .iter()
                .find(|s| s.workflow == ScheduleKind::Sweep && !s.full)
                .and_then(|s| cron_interval(&s.cron))?
                .as_secs()
                .saturating_mul(2),
        };
        (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
    }

    /// The schedules to keep on the server.
    pub fn schedules(&self) -> Vec<ScheduleConfig> {
        self.config
            .schedules
            .clone()
            .unwrap_or_else(default_schedules)
    }
}

/// The property the fuzz target (`fuzz/fuzz_targets/config.rs`), the
/// property tests and the corpus test check on any text: loading never
/// panics, and a refusal names the file. Panics otherwise.
pub fn fuzz_check(text: &str) {
    let path = Path::new("/etc/steward/steward.toml");
    if let Err(e) = parse(text, path) {
        let message = e.to_string();
        assert!(
            message.starts_with("config /etc/steward/steward.toml: "),
            "an error that does not name the file: {message}"
        );
    }
}

/// Environment variable that overrides `database_url`, so a deployment can
/// keep the state store's password out of the config file.
pub const DATABASE_URL_ENV: &str = "STEWARD_DATABASE_URL";

/// Loads and validates `path`; `STEWARD_DATABASE_URL`, when set, replaces
/// `database_url`.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: shown.clone(),
        source,
    })?;
    let mut loaded = parse(&text, path)?;
    if let Ok(url) = std::env::var(DATABASE_URL_ENV)
        && !url.is_empty()
    {
        if steward_activities::dburl::DatabaseUrl::parse(&url).is_err() {
            return Err(Error::Invalid {
                path: shown,
                key: DATABASE_URL_ENV.into(),
                message: "must start with sqlite:, postgres:// or postgresql://".into(),
            });
        }
        loaded.config.database_url = Some(url);
    }
    Ok(loaded)
}

/// Loads `path`, or, when there is no such file, the defaults (for the
/// commands that need a config only for what it may add, such as
/// `steward history`'s fallback to the audit archive). A file that is
/// there and does not load is an error, as ever.
pub fn load_or_defaults(path: &Path) -> Result<Loaded, Error> {
    if path.exists() {
        load(path)
    } else {
        parse("", path)
    }
}

/// Parses and validates config text that lives at `path`.
pub fn parse(text: &str, path: &Path) -> Result<Loaded, Error> {
    let shown = path.display().to_string();
    let mut config: Config = toml::from_str(text).map_err(|e| Error::Parse {
        path: shown.clone(),
        message: e.to_string().trim().replace('\n', " "),
        line: e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1)),
        reason: e.message().to_string(),
    })?;
    validate::check(&config).map_err(|(key, message)| Error::Invalid {
        path: shown,
        key,
        message,
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    paths::resolve(&mut config, &base);
    Ok(Loaded {
        path: path.to_path_buf(),
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn p(text: &str) -> Result<Loaded, Error> {
        parse(text, Path::new("/etc/steward/steward.toml"))
    }

    #[test]
    fn a_redacted_error_names_the_line_and_key_but_no_value() {
        let text =
            "data_dir = \"x\"\ndatabase_url = \"postgres://steward:s3cret@db/steward\nworker = 1\n";
        let e = p(text).unwrap_err();
        assert!(
            e.to_string().contains("s3cret"),
            "the CLI shows the line: {e}"
        );
        let shown = e.redacted();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("line 2"), "{shown}");
        let e = p("[worker]\nbuild_id = 7\n").unwrap_err();
        assert!(
            e.redacted().contains("build_id") || e.redacted().contains("line 2"),
            "{}",
            e.redacted()
        );
        let e = p("[api]\nlisten = \"s3cret:xyz\"\n").unwrap_err();
        let shown = e.redacted();
        assert!(
            shown.contains("api.listen") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn the_dead_mans_switch_defaults_to_twice_the_sweep_interval() {
        let every_15 = p("").unwrap();
        assert_eq!(every_15.max_sweep_age(), Some(Duration::from_secs(1800)));
        let hourly = p("[[schedules]]\nname = \"s\"\ncron = \"0 * * * *\"\n").unwrap();
        assert_eq!(hourly.max_sweep_age(), Some(Duration::from_secs(7200)));
        let set = p("[guard]\nmax_sweep_age_seconds = 600\n").unwrap();
        assert_eq!(set.max_sweep_age(), Some(Duration::from_secs(600)));
        let off = p("[guard]\nmax_sweep_age_seconds = 0\n").unwrap();
        assert_eq!(off.max_sweep_age(), None);
        let no_sweep = p("schedules = []\n").unwrap();
        assert_eq!(no_sweep.max_sweep_age(), None);
    }

    #[test]
    fn worker_and_guard_settings_are_checked() {
        for (text, key) in [
            (
                "[worker]\nmetrics_addr = \"localhost\"\n",
                "worker.metrics_addr",
            ),
            ("[worker]\nbuild_id = \"\"\n", "worker.build_id"),
            (
                "[worker]\nmax_cached_workflows = 0\n",
                "worker.max_cached_workflows",
            ),
            ("[guard]\ncheck_seconds = 0\n", "guard.check_seconds"),
            ("[guard]\npause_after = 3\n", "pause_after"),
        ] {
            let e = p(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let ok = p("[worker]\nmetrics_addr = \"0.0.0.0:9464\"\nbuild_id = \"b7\"\n").unwrap();
        assert_eq!(ok.config.worker.build_id(), "b7");
        assert_eq!(ok.config.worker.grpc_compression, GrpcCompression::None);
        let gzip = p("[worker]\ngrpc_compression = \"gzip\"\n").unwrap();
        assert_eq!(gzip.config.worker.grpc_compression, GrpcCompression::Gzip);
        let e = p("[worker]\ngrpc_compression = \"zstd\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("grpc_compression") && e.contains("gzip"),
            "names the key and what it accepts: {e}"
        );
        assert_eq!(
            p("").unwrap().config.worker.build_id(),
            format!("steward-{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn defaults_apply_and_relative_paths_resolve_against_the_file() {
        let l = p("[[repos]]\nname = \"state-hub\"\npath = \"repos/state-hub\"\n").unwrap();
        assert_eq!(
            l.config.repos[0].path,
            PathBuf::from("/etc/steward/repos/state-hub")
        );
        assert_eq!(l.database_url(), "sqlite:///etc/steward/.steward/state.db");
        assert_eq!(l.config.task_queue, "steward");
        assert_eq!(l.config.sweep.max_seconds, 300);
        assert_eq!(l.config.sweep.concurrency, 4);
        let s = l.schedules();
        assert_eq!(s[0].cron, "*/15 * * * *");
        assert_eq!(s[0].timezone, "UTC");
        assert!(s[1].full);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("bogus = 1\n", "unknown field `bogus`"),
            ("[sweep]\nmax_secs = 3\n", "unknown field `max_secs`"),
            (
                "[[repos]]\nname = \"a\"\npath = \"x\"\nbranch = \"b\"\n",
                "unknown field `branch`",
            ),
            ("[sweep]\nconcurrency = \"four\"\n", "invalid type"),
            (
                "[[repos]]\nname = \"a\"\n",
                "repos[0].path: set the repo's path, or its url",
            ),
            (
                "[[repos]]\nname = \"a\"\npath = \"x\"\nurl = \"git://h/a.git\"\n",
                "repos[0].url: set a path or a url, not both",
            ),
            (
                "[[repos]]\nname = \"a\"\nurl = \"git://h/a.git\"\nremote = \"up\"\n",
                "repos[0].remote: a url repo's remote is its url",
            ),
            (
                "[[repos]]\nname = \"../etc\"\npath = \"x\"\n",
                "repos[0].name",
            ),
            (
                "[[repos]]\nname = \"a\"\npath = \"x\"\n[[repos]]\nname = \"a\"\npath = \"y\"\n",
                "registered twice",
            ),
            (
                "[[schedules]]\nname = \"s\"\ncron = \"*/15 * * *\"\n",
                "schedules[0].cron",
            ),
            (
                "[[schedules]]\nname = \"s\"\ncron = \"*/75 * * * *\"\n",
                "not a valid cron",
            ),
            ("[sweep]\nconcurrency = 0\n", "sweep.concurrency"),
            ("database_url = \"mysql://x\"\n", "database_url"),
            (
                "[[repos]]\nname = \"a\"\npath = \"x\"\npush = true\n",
                "needs a remote",
            ),
        ];
        for (text, expected) in cases {
            let err = p(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.starts_with("config /etc/steward/steward.toml"), "{err}");
        }
        let backfill_cases = [
            (backfill("batch_size = 0"), "backfills[0].batch_size"),
            (
                backfill("batches_per_activity = 0"),
                "backfills[0].batches_per_activity: must be between 1 and 1000",
            ),
            (
                backfill("batches_per_activity = 1001"),
                "backfills[0].batches_per_activity: must be between 1 and 1000",
            ),
            (
                backfill("max_runtime = \"2 weeks\""),
                "backfills[0].max_runtime",
            ),
            (backfill("freeze = { command = [] }"), "backfills[0].freeze"),
            (
                backfill("freeze = { command = \"pause-ingest --all\" }"),
                "expected a sequence",
            ),
            (backfill("bogus = 1"), "unknown field `bogus`"),
            (
                backfill("validations = [{ name = \"v\", sql = \"x\", expect = \"roughly\" }]"),
                "backfills[0].validations[0].expect",
            ),
            (
                backfill("").replace("name = \"bf\"", "name = \"../../etc\""),
                "backfills[0].name",
            ),
            (
                backfill("").replace("apply_sql = \"a\"\n", ""),
                "backfills[0].apply_sql: is required (or a `job`)",
            ),
            (
                backfill("job = { command = [\"job\"] }"),
                "backfills[0].next_range_sql: goes with SQL batches, not with a `job`",
            ),
            (
                backfill("job = { command = [] }")
                    .replace("next_range_sql = \"n\"\n", "")
                    .replace("apply_sql = \"a\"\n", ""),
                "backfills[0].job.command: must be a non-empty argv list",
            ),
            (
                backfill("rollback = { command = [\"undo\", \"{run_tag}\"] }"),
                "backfills[0].rollback_sql: set exactly one of rollback_sql and rollback",
            ),
            (
                backfill(
                    "validations = [{ name = \"v\", sql = \"x\", command = [\"c\"], expect = \"= 0\" }]",
                ),
                "backfills[0].validations: `v`: set exactly one of sql, command",
            ),
            (
                backfill("database_url = \"mongodb://db/x\"")
                    .replace("database_url = \"sqlite://t.db\"\n", ""),
                "backfills[0].database_url: unsupported database_url `mongodb://db/x`",
            ),
            (
                backfill("throttles = [{ name = \"lag\", sql = \"x\", max = 1 }]"),
                "backfills[0].throttles[0]: name `lag` is the lag_sql throttle's",
            ),
            (
                backfill(
                    "throttles = [{ name = \"cpu\", sql = \"x\", command = [\"c\"], max = 1 }]",
                ),
                "backfills[0].throttles[0]: set exactly one of sql, command, http",
            ),
            (
                backfill(
                    "throttles = [{ name = \"cpu\", command = [\"c\"], max = 1 }, { name = \"cpu\", command = [\"d\"], max = 2 }]",
                ),
                "backfills[0].throttles[1].name: `cpu` is named twice",
            ),
        ];
        let schedule_cases = [
            ("[[schedules]]\nname = \"u\"\nworkflow = \"upgrade\"\ncron = \"0 3 * * *\"\n".to_string(), "schedules[0].app"),
            ("[[schedules]]\nname = \"u\"\nworkflow = \"upgrade\"\napp = \"nope\"\ncron = \"0 3 * * *\"\n".to_string(), "needs the name of an [[apps]] entry"),
            ("[[schedules]]\nname = \"u\"\nworkflow = \"reboot\"\ncron = \"0 3 * * *\"\n".to_string(), "`reboot` is not a schedule kind (expected one of: sweep, upgrade, restore-drill, cold-sweep, shared-reap, failover-drill)"),
            ("[[schedules]]\nname = \"f\"\nworkflow = \"failover-drill\"\ncron = \"0 3 * * *\"\n".to_string(), "schedules[0].drill: a `failover-drill` schedule needs the name of a [[drills]] entry"),
            ("[[schedules]]\nname = \"s\"\ndrill = \"db\"\ncron = \"0 3 * * *\"\n".to_string(), "schedules[0].drill: only `failover-drill` schedules name a drill"),
            ("[forge]\napi_url = \"http://forge/api/v1\"\ncommands = { \"!ship\" = \"warm\" }\n".to_string(), "forge.commands: `!ship` = `warm`: a comment starts a `cold` run or a `trial`, never a warm upgrade"),
            ("[forge]\napi_url = \"http://forge/api/v1\"\nrepos = { \"ops/x\" = \"nope\" }\n".to_string(), "forge.repos: `ops/x` = `nope`: `nope` is not an [[apps]] entry"),
            ("[forge]\napi_url = \"forge\"\n".to_string(), "forge.api_url: must be an http:// or https:// URL"),
            ("[api.oidc]\nissuer = \"sso.example.org\"\nclient_id = \"steward\"\n".to_string(), "api.oidc.issuer: must be an http(s):// URL"),
            ("[api.oidc]\nissuer = \"https://sso\"\nclient_id = \"steward\"\nclient_secret = \"s3cret\"\n".to_string(), "unknown field `client_secret`"),
            (shared("resource = \"realm-{app}\""), "shared[0].resource: must contain `{run}`"),
            (shared("app = \"nope\""), "shared[0].app: `nope` is not an [[apps]] entry"),
            (shared("create = [\"kc\"]"), "shared[0].create: must pass `{resource}`"),
            (drill("url = \"mysql://db/x\""), "drills[0].url: must be a postgres:// URL"),
            (drill("url = \"postgres://db/x\"\ntrigger = []"), "drills[0].trigger: must be a non-empty argv list"),
            (drill("url = \"postgres://db/x\"\nprobe = { sql = \"SELECT 1\", url = \"http://x\" }"), "drills[0].probe: set exactly one of sql, url"),
            (drill("url = \"postgres://db/x\"\nmarker_table = \"x; DROP TABLE y\""), "drills[0].marker_table"),
            (drill("url = \"postgres://db/x\"\nrto_seconds = 0"), "drills[0].rto_seconds: must be more than 0"),
        ];
        for (text, expected) in backfill_cases.into_iter().chain(schedule_cases) {
            let err = p(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    fn shared(keys: &str) -> String {
        let create = if keys.contains("create") {
            ""
        } else {
            "create = [\"kc\", \"{resource}\"]\n"
        };
        format!(
            "[[shared]]\nname = \"kc\"\n{create}delete = [\"kc\", \"{{resource}}\"]\nlist = [\"kc\"]\n{keys}\n"
        )
    }

    fn drill(keys: &str) -> String {
        let trigger = if keys.contains("trigger") {
            ""
        } else {
            "trigger = [\"promote\"]\n"
        };
        format!("[[drills]]\nname = \"db\"\n{trigger}{keys}\n")
    }

    fn backfill(extra: &str) -> String {
        format!(
            "[[backfills]]\nname = \"bf\"\ndatabase_url = \"sqlite://t.db\"\ncount_sql = \"c\"\nnext_range_sql = \"n\"\napply_sql = \"a\"\nrollback_sql = \"r\"\n{extra}\n"
        )
    }

    #[test]
    fn a_url_repo_lives_in_the_workers_own_clone_and_pushes_to_origin() {
        let l = p("data_dir = \"/var/lib/steward\"\n[[repos]]\nname = \"plans\"\nurl = \"git://git.example.org/plans.git\"\n").unwrap();
        let t = l.config.repos[0].target();
        assert_eq!(t.path, "/var/lib/steward/clones/plans");
        assert_eq!(
            (t.url.as_str(), t.remote.as_str(), t.push),
            ("git://git.example.org/plans.git", "origin", true)
        );
    }

    #[test]
    fn a_job_driven_backfill_needs_no_database_when_it_runs_no_sql() {
        let l = p("[[backfills]]\nname = \"bf\"\njob = { command = [\"job\", \"--from={cursor}\"] }\nrollback = { command = [\"undo\", \"{run_tag}\"] }\n").unwrap();
        let b = &l.config.backfills[0];
        assert_eq!(b.job.as_ref().unwrap().dry_run_args, vec!["--dry-run"]);
        assert!(b.database_url.is_empty());
        let err = p("[[backfills]]\nname = \"bf\"\njob = { command = [\"job\"] }\nrollback = { command = [\"undo\"] }\nvalidations = [{ name = \"v\", sql = \"x\", expect = \"= 0\" }]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backfills[0].database_url"),
            "SQL needs a database: {err}"
        );
    }

    #[test]
    fn a_backfill_resolves_its_sqlite_path_and_defaults() {
        let l = p(&backfill("")).unwrap();
        let b = &l.config.backfills[0];
        assert_eq!(b.database_url, "sqlite:///etc/steward/t.db");
        assert_eq!(
            (
                b.batch_size,
                b.stop_on_error,
                b.max_runtime_seconds(),
                b.max_lag_seconds
            ),
            (500, true, 7200, 60.0)
        );
        assert_eq!(
            l.artifacts_dir(),
            PathBuf::from("/etc/steward/.steward/artifacts")
        );
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = load(Path::new("/nonexistent/steward.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/steward.toml") && err.contains("cannot read"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_schedule_list_means_no_schedules() {
        let l = p("schedules = []\n").unwrap();
        assert!(l.schedules().is_empty());
    }

    #[test]
    fn names_are_restricted() {
        for ok in ["a", "state-hub", "x1-2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a/b",
            "..",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_config_or_an_error_naming_the_file(text in "\\PC{0,300}") {
            fuzz_check(&text);
        }

        #[test]
        fn near_valid_configs_never_panic(
            text in "((data_dir|task_queue|database_url|artifacts_dir) = (\"[a-z:/.]{0,12}\"|[0-9]{1,3}|true)\n\
                     |\\[(sweep|worker|guard|restore|dev|alerts)\\]\n\
                     |\\[\\[(repos|schedules|apps|backfills)\\]\\]\n\
                     |(name|cron|path|workflow|app|metrics_addr|build_id) = \"[a-z0-9 */:.-]{0,12}\"\n\
                     |(concurrency|max_seconds|keep|check_seconds|pause_after_errors|max_cached_workflows) = -?[0-9]{1,4}\n){0,12}"
        ) {
            fuzz_check(&text);
        }
    }
}
