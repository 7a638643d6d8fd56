//! `steward.toml`: one serde struct per component, loaded once, validated
//! before anything runs. Unknown keys are errors that name the key.
//!
//! Temporal connection settings are not here: they come from the SDK's
//! standard client config (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
//! `temporal.toml` profiles). The one exception is the worker's gRPC
//! compression, which that config has no key for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use steward_activities::alerts::AlertSettings;
use steward_activities::backfill::BackfillSpec;
use steward_activities::restore::RestoreSettings;
use steward_activities::sweep::{RepoConfig, SweepSettings};
use steward_activities::upgrade::AppSpec;

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
        /// toml's message, with line and key.
        message: String,
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
    /// Compression of the worker's gRPC messages to Temporal.
    pub grpc_compression: GrpcCompression,
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
            grpc_compression: GrpcCompression::None,
        }
    }
}

impl WorkerConfig {
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

/// One `[[schedules]]` entry: a Temporal Schedule that starts a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Name, `[a-z0-9-]`; the schedule id is `steward-<name>`.
    pub name: String,
    /// What it starts: `sweep` (default) or `upgrade`.
    #[serde(default = "default_workflow")]
    pub workflow: String,
    /// The app an `upgrade` schedule upgrades.
    #[serde(default)]
    pub app: Option<String>,
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
fn default_workflow() -> String {
    "sweep".into()
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_source() -> String {
    "schedule".into()
}

/// Prefix of every schedule id steward manages.
pub const SCHEDULE_PREFIX: &str = "steward-";

/// The schedules when the config declares none: the sweep every 15
/// minutes and a nightly full sweep, both in UTC.
pub fn default_schedules() -> Vec<ScheduleConfig> {
    vec![
        ScheduleConfig {
            name: "sweep".into(),
            workflow: default_workflow(),
            app: None,
            cron: "*/15 * * * *".into(),
            timezone: default_timezone(),
            full: false,
            max_seconds: 0,
            source: default_source(),
            paused: false,
        },
        ScheduleConfig {
            name: "sweep-nightly-full".into(),
            workflow: default_workflow(),
            app: None,
            cron: "30 2 * * *".into(),
            timezone: default_timezone(),
            full: true,
            max_seconds: 0,
            source: default_source(),
            paused: false,
        },
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
                .find(|s| s.workflow == "sweep" && !s.full)
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

/// Whether `name` is a valid steward name: `[a-z0-9-]`, 1 to 63
/// characters, not starting or ending with `-`. Names become parts of
/// workflow ids, schedule ids and paths, so nothing else is allowed.
pub fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
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
        if !valid_database_url(&url) {
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

fn valid_database_url(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Parses and validates config text that lives at `path`.
pub fn parse(text: &str, path: &Path) -> Result<Loaded, Error> {
    let shown = path.display().to_string();
    let mut config: Config = toml::from_str(text).map_err(|e| Error::Parse {
        path: shown.clone(),
        message: e.to_string().trim().replace('\n', " "),
    })?;
    let invalid = |key: String, message: String| Error::Invalid {
        path: shown.clone(),
        key,
        message,
    };
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if config.data_dir.is_relative() {
        config.data_dir = base.join(&config.data_dir);
    }
    if config.task_queue.trim().is_empty() {
        return Err(invalid("task_queue".into(), "must not be empty".into()));
    }
    if let Some(url) = &config.database_url
        && !valid_database_url(url)
    {
        return Err(invalid(
            "database_url".into(),
            "must start with sqlite:, postgres:// or postgresql://".into(),
        ));
    }
    if let Some(addr) = &config.worker.metrics_addr
        && addr.parse::<std::net::SocketAddr>().is_err()
    {
        return Err(invalid(
            "worker.metrics_addr".into(),
            format!("`{addr}` is not host:port (for example 0.0.0.0:9464)"),
        ));
    }
    if let Some(id) = &config.worker.build_id
        && (id.trim().is_empty() || id.len() > 255)
    {
        return Err(invalid(
            "worker.build_id".into(),
            "must be 1 to 255 characters".into(),
        ));
    }
    if config.guard.check_seconds == 0 {
        return Err(invalid(
            "guard.check_seconds".into(),
            "must be at least 1".into(),
        ));
    }
    if config.worker.max_cached_workflows == 0 {
        return Err(invalid(
            "worker.max_cached_workflows".into(),
            "must be at least 1".into(),
        ));
    }
    let s = &config.sweep;
    if s.concurrency == 0 || s.concurrency > 64 {
        return Err(invalid(
            "sweep.concurrency".into(),
            format!("{} is not in 1..=64", s.concurrency),
        ));
    }
    if s.max_seconds == 0 {
        return Err(invalid(
            "sweep.max_seconds".into(),
            "must be at least 1".into(),
        ));
    }
    if s.lock_ttl_seconds < 30 {
        return Err(invalid(
            "sweep.lock_ttl_seconds".into(),
            "must be at least 30".into(),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, repo) in config.repos.iter_mut().enumerate() {
        if !valid_name(&repo.name) {
            return Err(invalid(
                format!("repos[{i}].name"),
                format!("`{}` must match [a-z0-9-]{{1,63}}", repo.name),
            ));
        }
        if !names.insert(repo.name.clone()) {
            return Err(invalid(
                format!("repos[{i}].name"),
                format!("`{}` is registered twice", repo.name),
            ));
        }
        if repo.path.as_os_str().is_empty() {
            return Err(invalid(
                format!("repos[{i}].path"),
                "must not be empty".into(),
            ));
        }
        if repo.path.is_relative() {
            repo.path = base.join(&repo.path);
        }
        if repo.push && repo.remote.is_none() {
            return Err(invalid(
                format!("repos[{i}].push"),
                "push = true needs a remote".into(),
            ));
        }
    }
    for dir in [
        &mut config.artifacts_dir,
        &mut config.alerts.dir,
        &mut config.restore.backup_dir,
    ]
    .into_iter()
    .flatten()
    {
        if dir.is_relative() {
            *dir = base.join(&*dir);
        }
    }
    if let Some(url) = &config.alerts.webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(invalid(
            "alerts.webhook".into(),
            "must be an http:// or https:// URL".into(),
        ));
    }
    let mut backfill_names = BTreeSet::new();
    for (i, b) in config.backfills.iter_mut().enumerate() {
        if !valid_name(&b.name) {
            return Err(invalid(
                format!("backfills[{i}].name"),
                format!("`{}` must match [a-z0-9-]{{1,63}}", b.name),
            ));
        }
        if !backfill_names.insert(b.name.clone()) {
            return Err(invalid(
                format!("backfills[{i}].name"),
                format!("`{}` is declared twice", b.name),
            ));
        }
        b.check()
            .map_err(|(key, m)| invalid(format!("backfills[{i}].{key}"), m))?;
        if let Some(rest) = b.database_url.strip_prefix("sqlite://")
            && !rest.starts_with('/')
            && !rest.starts_with(':')
        {
            b.database_url = format!("sqlite://{}", base.join(rest).display());
        }
    }
    let mut app_names = BTreeSet::new();
    for (i, a) in config.apps.iter_mut().enumerate() {
        if !valid_name(&a.name) {
            return Err(invalid(
                format!("apps[{i}].name"),
                format!("`{}` must match [a-z0-9-]{{1,63}}", a.name),
            ));
        }
        if !app_names.insert(a.name.clone()) {
            return Err(invalid(
                format!("apps[{i}].name"),
                format!("`{}` is declared twice", a.name),
            ));
        }
        a.check()
            .map_err(|(key, m)| invalid(format!("apps[{i}].{key}"), m))?;
        for p in std::iter::once(&mut a.recipe_repo)
            .chain(std::iter::once(&mut a.snapshot_dir))
            .chain(a.volumes.iter_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
    let mut schedule_names = BTreeSet::new();
    for (i, sch) in config.schedules.iter().flatten().enumerate() {
        if !valid_name(&sch.name) {
            return Err(invalid(
                format!("schedules[{i}].name"),
                format!("`{}` must match [a-z0-9-]{{1,63}}", sch.name),
            ));
        }
        if !schedule_names.insert(sch.name.clone()) {
            return Err(invalid(
                format!("schedules[{i}].name"),
                format!("`{}` is declared twice", sch.name),
            ));
        }
        check_cron(&sch.cron).map_err(|m| invalid(format!("schedules[{i}].cron"), m))?;
        match (sch.workflow.as_str(), &sch.app) {
            ("sweep", None) => {}
            ("sweep" | "restore-drill", Some(_)) => {
                return Err(invalid(
                    format!("schedules[{i}].app"),
                    "only `upgrade` schedules name an app".into(),
                ));
            }
            ("upgrade", Some(app)) if app_names.contains(app) => {}
            ("restore-drill", None) => {}
            ("upgrade", _) => {
                return Err(invalid(
                    format!("schedules[{i}].app"),
                    "an `upgrade` schedule needs the name of an [[apps]] entry".into(),
                ));
            }
            (other, _) => {
                return Err(invalid(
                    format!("schedules[{i}].workflow"),
                    format!("`{other}` is not `sweep`, `upgrade` or `restore-drill`"),
                ));
            }
        }
        if sch.source.trim().is_empty() {
            return Err(invalid(
                format!("schedules[{i}].source"),
                "must not be empty".into(),
            ));
        }
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        config,
    })
}

/// The shortest gap between the next few fire times of a five-field cron
/// expression.
pub fn cron_interval(expr: &str) -> Option<std::time::Duration> {
    let schedule = cron::Schedule::try_from(seconds_first(expr).as_str()).ok()?;
    let times: Vec<_> = schedule.upcoming(chrono::Utc).take(8).collect();
    times
        .windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .min()
}

/// A standard five-field expression (weekdays 0-7, Sunday 0 or 7) in the
/// `cron` crate's form: a seconds field first, weekdays 1-7 from Sunday.
/// Temporal itself gets the expression as written.
fn seconds_first(expr: &str) -> String {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let Some((weekday, rest)) = fields.split_last() else {
        return format!("0 {expr}");
    };
    let shift = |n: &str| match n.parse::<u8>() {
        Ok(d @ 0..=6) => (d + 1).to_string(),
        Ok(7) => "1".to_string(),
        _ => n.to_string(),
    };
    let weekday: Vec<String> = weekday
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let mut out = range.split('-').map(shift).collect::<Vec<_>>().join("-");
            if let Some(s) = step {
                out.push('/');
                out.push_str(s);
            }
            out
        })
        .collect();
    format!("0 {} {}", rest.join(" "), weekday.join(","))
}

/// Checks a five-field cron expression.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "`{expr}` has {fields} fields; expected 5 (minute hour day month weekday)"
        ));
    }
    cron::Schedule::try_from(seconds_first(expr).as_str())
        .map(|_| ())
        .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn p(text: &str) -> Result<Loaded, Error> {
        parse(text, Path::new("/etc/steward/steward.toml"))
    }

    #[test]
    fn weekdays_count_from_sunday_zero_as_in_standard_cron() {
        for ok in [
            "0 3 * * 0",
            "0 3 * * 7",
            "0 3 * * 1-5",
            "*/5 * * * 0,6",
            "0 3 * * SUN",
            "0 0 * * 1-5/2",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}: {:?}", check_cron(ok));
        }
        assert!(check_cron("0 3 * * 8").is_err());
        assert_eq!(
            cron_interval("0 3 * * 0"),
            Some(Duration::from_secs(7 * 24 * 3600)),
            "weekly on Sunday"
        );
        assert_eq!(seconds_first("0 3 * * 0"), "0 0 3 * * 1");
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
            ("[[repos]]\nname = \"a\"\n", "missing field `path`"),
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
        ];
        let schedule_cases = [
            ("[[schedules]]\nname = \"u\"\nworkflow = \"upgrade\"\ncron = \"0 3 * * *\"\n".to_string(), "schedules[0].app"),
            ("[[schedules]]\nname = \"u\"\nworkflow = \"upgrade\"\napp = \"nope\"\ncron = \"0 3 * * *\"\n".to_string(), "needs the name of an [[apps]] entry"),
            ("[[schedules]]\nname = \"u\"\nworkflow = \"reboot\"\ncron = \"0 3 * * *\"\n".to_string(), "is not `sweep`, `upgrade` or `restore-drill`"),
        ];
        for (text, expected) in backfill_cases.into_iter().chain(schedule_cases) {
            let err = p(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    fn backfill(extra: &str) -> String {
        format!(
            "[[backfills]]\nname = \"bf\"\ndatabase_url = \"sqlite://t.db\"\ncount_sql = \"c\"\nnext_range_sql = \"n\"\napply_sql = \"a\"\nrollback_sql = \"r\"\n{extra}\n"
        )
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
