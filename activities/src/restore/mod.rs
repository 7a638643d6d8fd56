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

pub mod crypt;
mod figures;
pub mod offsite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
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

/// `[restore]`: where backups go, how they are sealed and copied off-node,
/// where they are restored, and the targets a drill is held to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreSettings {
    /// Backups and their manifests on this node; default `<data_dir>/backups`.
    pub backup_dir: Option<PathBuf>,
    /// Backups kept; older ones are removed after a verified drill.
    pub keep: usize,
    /// The age public key (`age1…`) every backup is encrypted to.
    pub recipient: Option<String>,
    /// The file with the matching private key (`AGE-SECRET-KEY-1…`), read
    /// only by the drill's restore step. Keep it off the worker's data
    /// folder.
    pub identity_file: Option<PathBuf>,
    /// Another host's storage (a mount): where each backup is copied, and
    /// what the drill restores from.
    pub offsite_dir: Option<PathBuf>,
    /// An argv command that makes the off-node copy instead of a plain
    /// copy (`{file}`: the backup, `{dir}`: `offsite_dir`).
    pub offsite_copy: Option<Vec<String>>,
    /// A PostgreSQL store's isolated target: an admin URL of another
    /// server or cluster, where a scratch database is made and dropped.
    pub target_url: Option<String>,
    /// A SQLite store's isolated target folder; default
    /// `<data_dir>/restore-target`.
    pub target_dir: Option<PathBuf>,
    /// RTO target: seconds from the start of the restore until the
    /// restored store answers its health queries.
    pub rto_seconds: f64,
    /// RPO target: the oldest a restored backup may be, in seconds.
    pub rpo_seconds: f64,
}

impl RestoreSettings {
    /// What a drill that takes a backup lacks, when it lacks something.
    pub fn unready(&self) -> Option<&'static str> {
        if self.recipient.is_none() {
            return Some(
                "restore drills write encrypted backups only: set [restore] recipient to an age \
                 public key (`steward restore-drill keygen --out FILE` makes a key pair)",
            );
        }
        if self.offsite_dir.is_none() {
            return Some(
                "set [restore] offsite_dir (another host's storage): the drill restores from the off-node copy",
            );
        }
        None
    }
}

impl Default for RestoreSettings {
    fn default() -> Self {
        Self {
            backup_dir: None,
            keep: 7,
            recipient: None,
            identity_file: None,
            offsite_dir: None,
            offsite_copy: None,
            target_url: None,
            target_dir: None,
            rto_seconds: 900.0,
            rpo_seconds: 26.0 * 3600.0,
        }
    }
}

impl RestoreSettings {
    /// Checks values that parse but are invalid; returns (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        if let Some(r) = &self.recipient {
            crypt::check_recipient(r).map_err(|m| ("recipient".to_string(), m))?;
        }
        if let Some(c) = &self.offsite_copy
            && c.first().is_none_or(|p| p.trim().is_empty())
        {
            return Err((
                "offsite_copy".into(),
                "must be a non-empty argv list".into(),
            ));
        }
        if let Some(u) = &self.target_url
            && !DatabaseUrl::parse(u).is_ok_and(|u| !u.is_sqlite())
        {
            return Err((
                "target_url".into(),
                "must be a postgres:// URL of another server".into(),
            ));
        }
        for (key, v) in [
            ("rto_seconds", self.rto_seconds),
            ("rpo_seconds", self.rpo_seconds),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err((key.into(), "must be more than 0".into()));
            }
        }
        Ok(())
    }
}

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

/// Removes a scratch SQLite file and its WAL companions, if present.
fn remove_sqlite_files(file: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = file.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
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
        }
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

    /// Takes a backup with the live figures it holds (figures before and
    /// after the copy must agree, else the copy is taken again), encrypts
    /// it to the recipient, and copies it and its manifest off-node. With
    /// `input.backup`, reads that backup's manifest instead: the file named
    /// is what the drill restores.
    pub async fn backup(&self, input: &RestoreDrillInput, tag: &str) -> Result<BackupTaken, Error> {
        if !input.backup.is_empty() {
            let path = PathBuf::from(&input.backup);
            let manifest = manifest_path(&path);
            let bytes = std::fs::read(&manifest)
                .map_err(|_| Error::NoManifest(path.display().to_string()))?;
            let mut taken: BackupTaken = serde_json::from_slice(&bytes).map_err(|e| Error::Io {
                path: manifest.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            // The file named is the one restored, wherever it was copied.
            taken.path = path.display().to_string();
            taken.offsite_path = taken.path.clone();
            return Ok(taken);
        }
        if let Some(missing) = self.settings.unready() {
            return Err(Error::Config(missing.into()));
        }
        let recipient = self.settings.recipient.clone().unwrap_or_default();
        let offsite_dir = self.settings.offsite_dir.clone().unwrap_or_default();
        let url = self.live_url()?;
        let live = connect_any(url.as_str()).await?;
        let sqlite = url.is_sqlite();
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let short = name_part(tag, 12);
        let path = self.backup_dir.join(format!(
            "state-{stamp}-{short}.{}.age",
            if sqlite { "db" } else { "sql" }
        ));
        // The plaintext dump lives in a private folder of this run, removed
        // after it is sealed (and by a retry, if a killed attempt left it).
        let work = self.backup_dir.join(format!(".work-{short}"));
        let _ = std::fs::remove_dir_all(&work);
        // A killed attempt of this run may have left a half-sealed file or
        // a half-written manifest.
        for e in std::fs::read_dir(&self.backup_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(&format!("-{short}."))
                && (name.ends_with(".partial") || name.contains(".tmp-"))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
        crate::files::create_private(&work.join(".keep")).map_err(io(&work))?;
        let plain = work.join(if sqlite { "state.db" } else { "state.sql" });
        let outcome = async {
            const ATTEMPTS: usize = 5;
            for _ in 0..ATTEMPTS {
                let _ = std::fs::remove_file(&plain);
                let before = figures(&live).await?;
                let started = Instant::now();
                if sqlite {
                    let target = plain.display().to_string().replace('\'', "''");
                    sqlx::query(&format!("VACUUM INTO '{target}'"))
                        .execute(&live)
                        .await?;
                } else {
                    let file = plain.display().to_string();
                    program(
                        "pg_dump",
                        &["--no-owner", "--no-privileges", "--file", &file],
                        &url,
                    )
                    .await?;
                }
                let after = figures(&live).await?;
                if before != after {
                    tokio::time::sleep(BUSY_PAUSE).await;
                    continue;
                }
                let (plain, sealed, to) = (plain.clone(), path.clone(), recipient.clone());
                tokio::task::spawn_blocking(move || {
                    let partial = sealed.with_extension("partial");
                    crypt::encrypt_file(&plain, &partial, &to)?;
                    std::fs::rename(&partial, &sealed)
                        .map_err(|e| format!("{}: {e}", sealed.display()))
                })
                .await
                .map_err(|e| Error::Backup(format!("encrypting did not finish: {e}")))?
                .map_err(Error::Backup)?;
                return Ok((after, started.elapsed().as_secs_f64()));
            }
            Err(Error::Busy(ATTEMPTS))
        }
        .await;
        let _ = std::fs::remove_dir_all(&work);
        live.close().await;
        let (tables, backup_seconds) = outcome?;
        let (bytes, sha256) = sha256_file(&path)?;
        let mut taken = BackupTaken {
            backend: url.backend().into(),
            path: path.display().to_string(),
            bytes,
            sha256,
            tables,
            taken_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            backup_seconds,
            encrypted: true,
            recipient,
            offsite_path: String::new(),
            offsite_error: String::new(),
        };
        let manifest = manifest_path(&path);
        crate::files::write_private(
            &manifest,
            &serde_json::to_vec_pretty(&taken).unwrap_or_default(),
        )
        .map_err(io(&manifest))?;
        let command = self.settings.offsite_copy.as_deref();
        let copied = async {
            let copy = offsite::copy(&path, &offsite_dir, command).await?;
            offsite::copy(&manifest, &offsite_dir, command).await?;
            let (_, sha) = sha256_file(&copy).map_err(|e| e.to_string())?;
            if sha != taken.sha256 {
                return Err(format!(
                    "the off-node copy {} differs from the backup (sha256 {} against {})",
                    copy.display(),
                    &sha[..12],
                    &taken.sha256[..12]
                ));
            }
            Ok(copy)
        }
        .await;
        match copied {
            Ok(copy) => taken.offsite_path = copy.display().to_string(),
            Err(e) => taken.offsite_error = e,
        }
        Ok(taken)
    }

    /// Restores `backup` from its off-node copy into the isolated target
    /// (named after `tag`, the drill's run), compares, measures RTO and
    /// RPO, and removes everything it made. A retry after a crash first
    /// removes what the earlier attempt of the same run left. A backup
    /// that does not restore is reported in `error`.
    pub async fn verify(&self, backup: &BackupTaken, tag: &str) -> Result<RestoreVerified, Error> {
        let tag = name_part(tag, 24);
        // An encrypted backup is restored from its off-node copy only; one
        // from before encryption (named with --backup) from where it is.
        let source = PathBuf::from(if backup.encrypted || !backup.offsite_path.is_empty() {
            &backup.offsite_path
        } else {
            &backup.path
        });
        let targets = RestoreVerified {
            source: source.display().to_string(),
            rto_target_seconds: self.settings.rto_seconds,
            rpo_target_seconds: self.settings.rpo_seconds,
            ..Default::default()
        };
        let failed = |error: String| RestoreVerified {
            error,
            ..targets.clone()
        };
        if source.as_os_str().is_empty() {
            return Ok(failed(format!(
                "no off-node copy to restore from (the local file is never used): {}",
                if backup.offsite_error.is_empty() {
                    "none was made"
                } else {
                    &backup.offsite_error
                }
            )));
        }
        if !source.exists() {
            return Ok(failed(format!(
                "the off-node copy {} is missing: there is nothing to restore from",
                source.display()
            )));
        }
        let mut mismatches = Vec::new();
        match sha256_file(&source) {
            Ok((_, sha)) if sha != backup.sha256 => mismatches.push(format!(
                "backup file changed since it was taken: sha256 {} now, {} in the manifest",
                &sha[..12],
                &backup.sha256[..12.min(backup.sha256.len())]
            )),
            Ok(_) => {}
            Err(e) => return Ok(failed(e.to_string())),
        }
        let identity = if backup.encrypted {
            match &self.settings.identity_file {
                Some(f) => Some(f.clone()),
                None => {
                    return Ok(failed(
                        "the backup is encrypted: set [restore] identity_file to the private key's path"
                            .into(),
                    ));
                }
            }
        } else {
            None
        };
        let rpo = chrono::DateTime::parse_from_rfc3339(&backup.taken_at)
            .map(|t| (chrono::Utc::now() - t.to_utc()).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        let live_url = self.live_url()?;
        let started = Instant::now();
        let mut verified = if StoreBackend::Sqlite == backup.backend {
            self.verify_sqlite(&source, identity.as_deref(), &live_url, &tag)
                .await?
        } else {
            self.verify_postgres(&source, identity.as_deref(), &live_url, &tag)
                .await?
        };
        if verified.error.is_empty() {
            verified.rto_seconds = started.elapsed().as_secs_f64();
            mismatches.extend(compare(&backup.tables, &verified.tables));
        }
        mismatches.append(&mut verified.mismatches);
        verified.mismatches = mismatches;
        verified.rpo_seconds = rpo;
        verified.source = targets.source;
        verified.rto_target_seconds = targets.rto_target_seconds;
        verified.rpo_target_seconds = targets.rpo_target_seconds;
        verified.decrypted_with = identity
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Ok(verified)
    }

    /// Decrypts (or copies, for a backup from before encryption) `source`
    /// into `out`.
    async fn unseal(source: &Path, identity: Option<&Path>, out: &Path) -> Result<(), String> {
        let (source, out) = (source.to_path_buf(), out.to_path_buf());
        let identity = identity.map(Path::to_path_buf);
        tokio::task::spawn_blocking(move || match identity {
            Some(id) => crypt::decrypt_file(&source, &out, &id),
            None => std::fs::copy(&source, &out)
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", out.display())),
        })
        .await
        .map_err(|e| format!("decrypting did not finish: {e}"))?
    }

    async fn verify_sqlite(
        &self,
        source: &Path,
        identity: Option<&Path>,
        live_url: &DatabaseUrl,
        tag: &str,
    ) -> Result<RestoreVerified, Error> {
        let scratch = self.target_dir.join(format!("drill-{tag}.db"));
        remove_sqlite_files(&scratch);
        if Some(&scratch) == live_url.sqlite_file().as_ref() {
            return Ok(RestoreVerified {
                error: "refused: the restore target is the live store's file".into(),
                ..Default::default()
            });
        }
        let outcome = async {
            Self::unseal(source, identity, &scratch).await?;
            let pool = connect_any(&format!("sqlite://{}?mode=rw", scratch.display()))
                .await
                .map_err(|e| format!("the backup does not restore: {e}"))?;
            let tables = figures(&pool).await;
            let health = health(&pool, true).await;
            pool.close().await;
            let tables = tables.map_err(|e| format!("the backup does not restore: {e}"))?;
            Ok::<_, String>((tables, health))
        }
        .await;
        remove_sqlite_files(&scratch);
        Ok(match outcome {
            Ok((tables, health)) => RestoreVerified {
                target: scratch.display().to_string(),
                tables,
                health,
                ..Default::default()
            },
            Err(error) => RestoreVerified {
                target: scratch.display().to_string(),
                error,
                ..Default::default()
            },
        })
    }

    async fn verify_postgres(
        &self,
        source: &Path,
        identity: Option<&Path>,
        live_url: &DatabaseUrl,
        tag: &str,
    ) -> Result<RestoreVerified, Error> {
        let scratch_db = format!("steward_drill_{tag}");
        let Some(target) = &self.settings.target_url else {
            return Ok(RestoreVerified {
                error:
                    "a PostgreSQL store's drill restores into an isolated server: set [restore] \
                        target_url to an admin URL of another server or cluster"
                        .into(),
                ..Default::default()
            });
        };
        let admin_url = DatabaseUrl::parse(target).map_err(store::Error::from)?;
        if admin_url.server() == live_url.server() {
            return Ok(RestoreVerified {
                error: format!(
                    "refused: [restore] target_url is the live server {}; an isolated target is another server or cluster",
                    live_url.server()
                ),
                ..Default::default()
            });
        }
        let shown_target = format!("database {scratch_db} on {}", admin_url.redacted());
        let admin =
            match tokio::time::timeout(Duration::from_secs(10), connect_any(admin_url.as_str()))
                .await
            {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    return Ok(RestoreVerified {
                        target: shown_target,
                        error: format!(
                            "the isolated target {} is not reachable: {e}",
                            admin_url.redacted()
                        ),
                        ..Default::default()
                    });
                }
                Err(_) => {
                    return Ok(RestoreVerified {
                        target: shown_target,
                        error: format!(
                            "the isolated target {} is not reachable: no connection within 10s",
                            admin_url.redacted()
                        ),
                        ..Default::default()
                    });
                }
            };
        let scratch_url = admin_url.with_database(&scratch_db);
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {scratch_db} WITH (FORCE)"
        ))
        .execute(&admin)
        .await?;
        sqlx::query(&format!("CREATE DATABASE {scratch_db}"))
            .execute(&admin)
            .await?;
        let plain_dir = std::env::temp_dir().join(format!("steward-restore-{tag}"));
        let plain = plain_dir.join("restore.sql");
        let _ = std::fs::remove_dir_all(&plain_dir);
        let outcome = async {
            Self::unseal(source, identity, &plain).await?;
            let file = plain.display().to_string();
            program(
                "psql",
                &[
                    "--no-psqlrc",
                    "--quiet",
                    "--set",
                    "ON_ERROR_STOP=1",
                    "--single-transaction",
                    "--file",
                    &file,
                ],
                &scratch_url,
            )
            .await
            .map_err(|e| format!("the backup does not restore: {e}"))?;
            let pool = connect_any(scratch_url.as_str())
                .await
                .map_err(|e| format!("the restored database does not open: {e}"))?;
            let tables = figures(&pool).await;
            let health = health(&pool, false).await;
            pool.close().await;
            let tables = tables.map_err(|e| format!("the backup does not restore: {e}"))?;
            Ok::<_, String>((tables, health))
        }
        .await;
        let _ = std::fs::remove_dir_all(&plain_dir);
        let dropped = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {scratch_db} WITH (FORCE)"
        ))
        .execute(&admin)
        .await;
        admin.close().await;
        dropped?;
        Ok(match outcome {
            Ok((tables, health)) => RestoreVerified {
                target: shown_target,
                tables,
                health,
                ..Default::default()
            },
            Err(error) => RestoreVerified {
                target: shown_target,
                error,
                ..Default::default()
            },
        })
    }

    /// Records the drill and writes its evidence; after a verified one,
    /// prunes old backups.
    pub async fn record(&self, r: &RestoreDrillResult) -> Result<(), Error> {
        let fresh = self
            .store
            .record_run(
                names::RESTORE_EVENT_TYPE,
                &r.source,
                &r.workflow_id,
                &r.run_id,
                r,
            )
            .await?;
        let dir = self
            .artifacts
            .join("restore")
            .join(r.started_at.replace(':', "-"));
        crate::evidence::write(
            &dir,
            &serde_json::to_vec_pretty(r).unwrap_or_default(),
            &markdown(r),
        )
        .map_err(Error::Backup)?;
        let backup = r.backup.clone().unwrap_or_default();
        if fresh {
            self.metrics.restore_drill(
                &backup.backend,
                &r.outcome,
                r.restore.as_ref().map(|v| v.restore_seconds).unwrap_or(0.0),
            );
        }
        if DrillOutcome::Verified == r.outcome {
            self.prune()?;
        }
        Ok(())
    }

    /// Keeps the newest `keep` backups (names sort by time).
    fn prune(&self) -> Result<(), Error> {
        let Ok(entries) = std::fs::read_dir(&self.backup_dir) else {
            return Ok(());
        };
        let mut backups: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.starts_with("state-")
                    && [".db", ".sql", ".db.age", ".sql.age"]
                        .iter()
                        .any(|ext| name.ends_with(ext))
            })
            .collect();
        backups.sort();
        let excess = backups.len().saturating_sub(self.settings.keep.max(1));
        for old in &backups[..excess] {
            std::fs::remove_file(old).map_err(io(old))?;
            let _ = std::fs::remove_file(manifest_path(old));
        }
        Ok(())
    }
}

/// The drill report as an operator reads it.
pub fn markdown(r: &RestoreDrillResult) -> String {
    let b = r.backup.clone().unwrap_or_default();
    let v = r.restore.clone().unwrap_or_default();
    let mut lines = vec![
        format!("# Restore drill: {}", r.outcome),
        String::new(),
        format!(
            "- run: `{}` (`{}`), started {} by {} ({})",
            r.workflow_id, r.run_id, r.started_at, r.operator, r.source
        ),
        format!(
            "- backup: `{}` ({} bytes, {}, taken {}), sha256 `{}`",
            b.path,
            b.bytes,
            if b.encrypted {
                format!("encrypted to {}", b.recipient)
            } else {
                "not encrypted".into()
            },
            b.taken_at,
            b.sha256
        ),
        format!("- restored from: `{}`", v.source),
        format!("- decrypted with: `{}`", v.decrypted_with),
        format!("- isolated target: {}", v.target),
        String::new(),
        "| | measured | target |".into(),
        "| --- | --- | --- |".into(),
        format!(
            "| RTO (restore start → health queries pass) | {:.2} s | {:.2} s |",
            v.rto_seconds, v.rto_target_seconds
        ),
        format!(
            "| RPO (the backup's age) | {:.2} s | {:.2} s |",
            v.rpo_seconds, v.rpo_target_seconds
        ),
        String::new(),
        "## Tables".into(),
    ];
    for t in &v.tables {
        lines.push(format!(
            "- {}: {} rows, checksum `{}`",
            t.table,
            t.rows,
            &t.checksum[..12.min(t.checksum.len())]
        ));
    }
    lines.push(String::new());
    lines.push("## Health queries".into());
    for h in &v.health {
        lines.push(format!(
            "- {} {}: {}",
            if h.ok { "ok" } else { "FAILED" },
            h.name,
            h.detail
        ));
    }
    if !v.mismatches.is_empty() || !v.error.is_empty() {
        lines.push(String::new());
        lines.push("## Problems".into());
        lines.extend(v.mismatches.iter().map(|m| format!("- {m}")));
        if !v.error.is_empty() {
            lines.push(format!("- {}", v.error));
        }
    }
    lines.push(String::new());
    lines.push("Evidence: `report.json`, SHA-256 `{sha256}`.".into());
    lines.join("\n") + "\n"
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
        self.record(&r).await.map_err(failure)
    }
}

/// The pause between backup attempts while the store is changing.
pub const BUSY_PAUSE: Duration = Duration::from_millis(200);
