//! The restore drill's side effects, as the workplan's restore drill means
//! it: back up the state store (SQLite's `VACUUM INTO`, an online and
//! consistent copy; `pg_dump` for PostgreSQL), encrypt the backup to the
//! configured age recipient (`crypt.rs`; a drill never writes an
//! unencrypted backup), copy it off-node (`offsite.rs`), then restore
//! **from that copy**, decrypting with the documented identity file, into
//! an isolated target (a separate PostgreSQL server or cluster; for SQLite a
//! folder of its own), compare figures and run the health queries
//! (`figures.rs`), measure RTO and RPO against their targets, and remove
//! everything the restore made. The live store is only read.
//!
//! External programs (`pg_dump`, `psql`) run as argv, never through a
//! shell; the password goes through `PGPASSWORD`, never argv or a log line.

mod backup;
pub mod crypt;
mod figures;
pub mod offsite;
mod report;
pub mod served;
mod settings;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use steward_proto::names;
use steward_proto::v1::{BackupTaken, RestoreDrillInput, RestoreDrillResult, RestoreVerified};
use steward_proto::vocab::{DrillOutcome, StoreBackend};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::command::Command;
use crate::dburl::DatabaseUrl;
use crate::failure;
use crate::metrics::Metrics;
use crate::store::{self, Store, connect_any};
pub use figures::{TABLES, compare, figures, health};
pub use report::markdown;
pub use settings::RestoreSettings;

/// Why a drill step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state store could not be read.
    #[error("state store: {0}")]
    Sql(#[from] sqlx::Error),
    /// The store layer failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `pg_dump` or `psql` failed or is missing (its stderr, the URL
    /// and password hidden).
    #[error(transparent)]
    Program(crate::command::Error),
    /// The store changed during every backup attempt.
    #[error(
        "the state store kept changing during the backup ({0} attempts); try again when it is quieter"
    )]
    Busy(usize),
    /// A backup to verify has no manifest.
    #[error(
        "{0}: no manifest beside it ({0}.manifest.json); only backups taken by a drill can be verified"
    )]
    NoManifest(String),
    /// The config lacks what a drill needs.
    #[error("{0}")]
    Config(String),
    /// Sealing or copying the backup failed.
    #[error("{0}")]
    Backup(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sha256_file(path: &Path) -> Result<(u64, String), Error> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let got = f.read(&mut buf).map_err(io(path))?;
        if got == 0 {
            break;
        }
        n += got as u64;
        h.update(&buf[..got]);
    }
    Ok((n, hex::encode(h.finalize())))
}

/// The manifest a drill writes beside each backup it takes.
pub fn manifest_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// Decrypts `backup` (a drill's, its manifest beside it) with
/// `identity` into `out`, a new file private to its owner (mode 0600; a
/// folder made for it, 0700), after checking the backup is the one its
/// manifest names. Refused if `out` exists. What the backup holds
/// (`sqlite` or `postgres`), for the next step.
pub fn decrypt_backup(backup: &Path, out: &Path, identity: &Path) -> Result<String, Error> {
    let taken = read_manifest(backup)?;
    let (_, sha) = sha256_file(backup)?;
    if sha != taken.sha256 {
        return Err(Error::Backup(format!(
            "{} is not the backup its manifest names (sha256 {} now, {} in the manifest): it was changed",
            backup.display(),
            &sha[..12],
            &taken.sha256[..12.min(taken.sha256.len())]
        )));
    }
    if out.exists() {
        return Err(Error::Backup(format!(
            "{} exists: choose a new file (a restore never overwrites one)",
            out.display()
        )));
    }
    if !taken.encrypted {
        return Err(Error::Backup(format!(
            "{} is not encrypted (taken before backups were): copy it with `install -m 600`",
            backup.display()
        )));
    }
    crypt::decrypt_file(backup, out, identity).map_err(|e| {
        let _ = std::fs::remove_file(out);
        Error::Backup(e)
    })?;
    Ok(taken.backend)
}

/// The manifest a drill wrote beside `backup`.
fn read_manifest(backup: &Path) -> Result<BackupTaken, Error> {
    let manifest = manifest_path(backup);
    let bytes =
        std::fs::read(&manifest).map_err(|_| Error::NoManifest(backup.display().to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Io {
        path: manifest.display().to_string(),
        source: std::io::Error::other(e),
    })
}

/// Runs a PostgreSQL client program against `url` (appended as
/// `--dbname`), its password in the environment (`PGPASSWORD`), never its
/// argv, which any local user can read in the process list; the URL and
/// the password are hidden from what it says.
async fn program(program: &'static str, args: &[&str], url: &DatabaseUrl) -> Result<(), Error> {
    let (dbname, password) = url.split_password();
    let argv = std::iter::once(program)
        .chain(args.iter().copied())
        .chain(["--dbname", dbname.as_str()]);
    let mut cmd = Command::new(argv)
        .hint("install the PostgreSQL client tools")
        .hide(&dbname, "<url>");
    if let Some(p) = &password {
        cmd = cmd.env("PGPASSWORD", p).hide(p, "***");
    }
    cmd.run().await.map(|_| ()).map_err(Error::Program)
}

/// A run's tag as a name part: letters and digits, lowercase.
fn name_part(tag: &str, len: usize) -> String {
    let t: String = tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(len)
        .collect::<String>()
        .to_lowercase();
    if t.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        t
    }
}

/// The drill's activities.
#[derive(Debug)]
pub struct RestoreActivities {
    database_url: String,
    settings: RestoreSettings,
    backup_dir: PathBuf,
    target_dir: PathBuf,
    artifacts: PathBuf,
    store: Store,
    metrics: Metrics,
    /// The `steward` program the restored copy is served with.
    api_program: PathBuf,
    alerts: Option<crate::alerts::AlertSink>,
}

impl RestoreActivities {
    /// Drills for the store at `database_url` as `settings` say, backing up
    /// into `backup_dir`, restoring a SQLite copy into `target_dir`
    /// (unless the settings name one), evidence under `artifacts`.
    pub fn new(
        database_url: String,
        settings: RestoreSettings,
        backup_dir: PathBuf,
        target_dir: PathBuf,
        artifacts: PathBuf,
        store: Store,
    ) -> Self {
        Self {
            database_url,
            target_dir: settings.target_dir.clone().unwrap_or(target_dir),
            settings,
            backup_dir,
            artifacts,
            store,
            metrics: Metrics::default(),
            // The worker is the `steward` binary: it serves the copy too.
            api_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("steward")),
            alerts: None,
        }
    }

    /// The same activities, serving a restored copy with `program`
    /// (`steward`) instead of this process's own binary.
    pub fn with_api_program(mut self, program: PathBuf) -> Self {
        self.api_program = program;
        self
    }

    /// The same activities, resolving the failed drills' alerts in `sink`
    /// once a drill verifies.
    pub fn with_alerts(mut self, sink: crate::alerts::AlertSink) -> Self {
        self.alerts = Some(sink);
        self
    }

    /// The same activities, recording drill outcomes into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The live store's URL, as the store connects to it.
    fn live_url(&self) -> Result<DatabaseUrl, Error> {
        let url = DatabaseUrl::parse(&self.database_url).map_err(store::Error::from)?;
        let creating = url.creating().map_err(|source| Error::Io {
            path: url.redacted(),
            source,
        })?;
        Ok(DatabaseUrl::parse(&creating).map_err(store::Error::from)?)
    }
}

/// A missing manifest or a config that lacks keys will not change by
/// retrying; anything else may pass.
fn failure(e: Error) -> ActivityError {
    match e {
        Error::NoManifest(_) | Error::Config(_) => failure::permanent(e),
        e => failure::retryable(e),
    }
}

#[activities]
impl RestoreActivities {
    /// Backs up the store. Safe to retry: each attempt writes its own file,
    /// its plaintext folder is the run's and removed first, and only the
    /// backup whose manifest is returned is used.
    #[activity(name = names::RESTORE_BACKUP)]
    pub async fn restore_backup(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RestoreDrillInput,
    ) -> Result<BackupTaken, ActivityError> {
        let tag = ctx.info().workflow_run_id.clone().unwrap_or_default();
        crate::heartbeat::with_heartbeat(&ctx, async {
            self.backup(&input, &tag).await.map_err(failure)
        })
        .await
    }

    /// Restores and compares. Safe to retry: the scratch target is named
    /// after the run, removed first and after.
    #[activity(name = names::RESTORE_VERIFY)]
    pub async fn restore_verify(
        self: Arc<Self>,
        ctx: ActivityContext,
        backup: BackupTaken,
    ) -> Result<RestoreVerified, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, async {
            let tag = ctx.info().workflow_run_id.clone().unwrap_or_default();
            self.verify(&backup, &tag).await.map_err(failure)
        })
        .await
    }

    /// Records the outcome and the evidence. Idempotent: the event id is
    /// the workflow run; the same result writes the same files.
    #[activity(name = names::RESTORE_RECORD)]
    pub async fn restore_record(
        self: Arc<Self>,
        _ctx: ActivityContext,
        r: RestoreDrillResult,
    ) -> Result<(), ActivityError> {
        self.record(&r).await.map_err(failure)?;
        if DrillOutcome::Verified == r.outcome
            && let Some(sink) = &self.alerts
        {
            sink.resolve("restore.failed", "").await;
        }
        Ok(())
    }
}

/// The pause between backup attempts while the store is changing.
pub const BUSY_PAUSE: Duration = Duration::from_millis(200);
