//! The restore drill's side effects: back up the state store (SQLite's
//! `VACUUM INTO`, an online and consistent copy; `pg_dump` for PostgreSQL),
//! restore a backup into a scratch target (a copied file; a scratch
//! database), compare figures and run the health queries, then remove the
//! scratch target. The live store is only read.
//!
//! External programs (`pg_dump`, `psql`) run as argv, never through a
//! shell; the password goes through `PGPASSWORD`, never argv or a log line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Column as _, Row as _};
use steward_proto::names;
use steward_proto::v1::{
    BackupTaken, HealthCheck, ProgressEvent, RestoreDrillInput, RestoreDrillResult,
    RestoreVerified, TableFigures,
};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::failure;
use crate::metrics::Metrics;
use crate::store::{self, Store, connect_any};

/// `[restore]`: where backups and scratch copies go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreSettings {
    /// Backups and their manifests; default `<data_dir>/backups`.
    pub backup_dir: Option<PathBuf>,
    /// Backups kept; older ones are removed after a verified drill.
    pub keep: usize,
}

impl Default for RestoreSettings {
    fn default() -> Self {
        Self {
            backup_dir: None,
            keep: 7,
        }
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
    /// `pg_dump` or `psql` failed or is missing.
    #[error("{program}: {message}")]
    Program {
        /// The program.
        program: &'static str,
        /// What went wrong (its stderr, the URL redacted).
        message: String,
    },
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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The tables whose figures are compared, each with its primary key. The
/// lease locks are left out: they are transient, not data to restore.
pub const TABLES: [(&str, &str); 6] = [
    ("steward_schema", "version"),
    ("workstreams", "id"),
    ("tasks", "id"),
    ("repo_state", "repo"),
    ("status_changes", "id"),
    ("progress_events", "id"),
];

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

fn backend_name(url: &str) -> &'static str {
    if is_sqlite(url) { "sqlite" } else { "postgres" }
}

/// The file of a SQLite URL (`sqlite://path?mode=...`).
fn sqlite_file(url: &str) -> PathBuf {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The database name of a PostgreSQL URL.
pub fn database_name(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    base[scheme_end..]
        .split_once('/')
        .map(|(_, db)| db.to_string())
        .unwrap_or_default()
}

/// One column of `row` as text, whatever its type.
fn cell(row: &sqlx::any::AnyRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v.unwrap_or_else(|| "\u{2400}".into());
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v
            .map(|v| v.to_string())
            .unwrap_or_else(|| "\u{2400}".into());
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v
            .map(|v| v.to_string())
            .unwrap_or_else(|| "\u{2400}".into());
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v
            .map(|v| v.to_string())
            .unwrap_or_else(|| "\u{2400}".into());
    }
    format!("<unreadable {}>", row.column(i).name())
}

/// Row count and ordered checksum of every compared table.
pub async fn figures(pool: &AnyPool) -> Result<Vec<TableFigures>, Error> {
    let mut out = Vec::new();
    for (table, key) in TABLES {
        let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {key}"))
            .fetch_all(pool)
            .await?;
        let mut hash = Sha256::new();
        for row in &rows {
            for i in 0..row.columns().len() {
                hash.update(cell(row, i).as_bytes());
                hash.update([0x1f]);
            }
            hash.update([0x1e]);
        }
        out.push(TableFigures {
            table: table.into(),
            rows: rows.len() as u64,
            checksum: hex::encode(hash.finalize()),
        });
    }
    Ok(out)
}

/// The store's health queries, run against a restored copy.
pub async fn health(pool: &AnyPool, sqlite: bool) -> Vec<HealthCheck> {
    let mut checks = Vec::new();
    let mut check = |name: &str, result: Result<(bool, String), sqlx::Error>| {
        let (ok, detail) = result.unwrap_or_else(|e| (false, e.to_string()));
        checks.push(HealthCheck {
            name: name.into(),
            ok,
            detail,
        });
    };
    let latest = store::migrations::LATEST;
    check(
        "schema_version",
        sqlx::query_scalar::<_, i64>("SELECT MAX(version) FROM steward_schema")
            .fetch_one(pool)
            .await
            .map(|v| {
                (
                    v == latest,
                    format!("version {v}, this binary expects {latest}"),
                )
            }),
    );
    check(
        "tasks_have_workstreams",
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM tasks t LEFT JOIN workstreams w ON w.id = t.workstream_id WHERE w.id IS NULL",
        )
        .fetch_one(pool)
        .await
        .map(|n| (n == 0, format!("{n} tasks without their workstream"))),
    );
    check(
        "status_changes_are_resolved_or_pending",
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM status_changes WHERE state NOT IN ('pending', 'applied', 'conflict', 'unknown_task')",
        )
        .fetch_one(pool)
        .await
        .map(|n| (n == 0, format!("{n} status changes in an unknown state"))),
    );
    if sqlite {
        check(
            "integrity_check",
            sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
                .fetch_one(pool)
                .await
                .map(|v| (v == "ok", v)),
        );
    }
    checks
}

/// Every difference between the figures at backup time and the restored
/// copy's.
pub fn compare(expected: &[TableFigures], restored: &[TableFigures]) -> Vec<String> {
    let mut out = Vec::new();
    for want in expected {
        match restored.iter().find(|r| r.table == want.table) {
            None => out.push(format!("table {}: missing from the restored copy", want.table)),
            Some(got) if got.rows != want.rows => out.push(format!(
                "table {}: {} rows at backup time, {} restored",
                want.table, want.rows, got.rows
            )),
            Some(got) if got.checksum != want.checksum => out.push(format!(
                "table {}: same {} rows, different content (checksum {} restored, {} at backup time)",
                want.table,
                want.rows,
                &got.checksum[..12],
                &want.checksum[..12]
            )),
            Some(_) => {}
        }
    }
    out
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
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok((bytes.len() as u64, hex::encode(Sha256::digest(&bytes))))
}

fn manifest_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

fn private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).map_err(io(path))
}

/// `url` without its password, and the password: the password reaches
/// `pg_dump` and `psql` through `PGPASSWORD`, never their argv (which any
/// local user can read in the process list).
pub fn split_password(url: &str) -> (String, Option<String>) {
    let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) else {
        return (url.to_string(), None);
    };
    if at < scheme {
        return (url.to_string(), None);
    }
    let creds = &url[scheme + 3..at];
    match creds.split_once(':') {
        Some((user, password)) => (
            format!("{}{user}{}", &url[..scheme + 3], &url[at..]),
            Some(password.to_string()),
        ),
        None => (url.to_string(), None),
    }
}

/// Runs a PostgreSQL client program against `url` (appended as
/// `--dbname`), its password in the environment.
async fn program(program: &'static str, args: &[&str], url: &str) -> Result<(), Error> {
    let (dbname, password) = split_password(url);
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).arg("--dbname").arg(&dbname);
    if let Some(p) = &password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Program {
            program,
            message: format!("cannot run it ({e}); install the PostgreSQL client tools"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).replace(&dbname, "<url>");
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        stderr = stderr.replace(&p, "***");
    }
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(Error::Program {
        program,
        message: format!(
            "exited with {}: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ),
    })
}

/// The drill's activities.
#[derive(Debug)]
pub struct RestoreActivities {
    database_url: String,
    backup_dir: PathBuf,
    keep: usize,
    store: Store,
    metrics: Metrics,
}

impl RestoreActivities {
    /// Drills for the store at `database_url`, backing up into `backup_dir`.
    pub fn new(database_url: String, backup_dir: PathBuf, keep: usize, store: Store) -> Self {
        Self {
            database_url,
            backup_dir,
            keep,
            store,
            metrics: Metrics::default(),
        }
    }

    /// The same activities, recording drill outcomes into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Takes a backup with the live figures it holds: figures before and
    /// after the copy must agree, else the copy is taken again.
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
            // The file named is the one verified, wherever it was copied.
            taken.path = path.display().to_string();
            return Ok(taken);
        }
        let (_, url) = store::normalize_url(&self.database_url)?;
        let live = connect_any(&url).await?;
        let sqlite = is_sqlite(&url);
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let short: String = tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let path = self.backup_dir.join(format!(
            "state-{stamp}-{short}.{}",
            if sqlite { "db" } else { "sql" }
        ));
        std::fs::create_dir_all(&self.backup_dir).map_err(io(&self.backup_dir))?;
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let _ = std::fs::remove_file(&path);
            let before = figures(&live).await?;
            let started = Instant::now();
            if sqlite {
                let target = path.display().to_string().replace('\'', "''");
                sqlx::query(&format!("VACUUM INTO '{target}'"))
                    .execute(&live)
                    .await?;
            } else {
                let file = path.display().to_string();
                program(
                    "pg_dump",
                    &["--no-owner", "--no-privileges", "--file", &file],
                    &url,
                )
                .await?;
            }
            let backup_seconds = started.elapsed().as_secs_f64();
            let after = figures(&live).await?;
            if before != after {
                tokio::time::sleep(BUSY_PAUSE).await;
                continue;
            }
            private(&path)?;
            let (bytes, sha256) = sha256_file(&path)?;
            let taken = BackupTaken {
                backend: backend_name(&url).into(),
                path: path.display().to_string(),
                bytes,
                sha256,
                tables: after,
                taken_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                backup_seconds,
            };
            let manifest = manifest_path(&path);
            crate::files::write_private(
                &manifest,
                &serde_json::to_vec_pretty(&taken).unwrap_or_default(),
            )
            .map_err(io(&manifest))?;
            live.close().await;
            return Ok(taken);
        }
        let _ = std::fs::remove_file(&path);
        Err(Error::Busy(ATTEMPTS))
    }

    /// Restores `backup` into a scratch target named after `tag` (the
    /// drill's run), compares, removes the target. A retry after a crash
    /// first removes what the earlier attempt of the same run left. A
    /// backup that does not restore is reported in `error`.
    pub async fn verify(&self, backup: &BackupTaken, tag: &str) -> Result<RestoreVerified, Error> {
        let tag: String = tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(24)
            .collect::<String>()
            .to_lowercase();
        let tag = if tag.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            tag
        };
        let path = PathBuf::from(&backup.path);
        let mut mismatches = Vec::new();
        match sha256_file(&path) {
            Ok((_, sha)) if sha != backup.sha256 => mismatches.push(format!(
                "backup file changed since it was taken: sha256 {} now, {} in the manifest",
                &sha[..12],
                &backup.sha256[..12.min(backup.sha256.len())]
            )),
            Ok(_) => {}
            Err(e) => {
                return Ok(RestoreVerified {
                    error: e.to_string(),
                    ..Default::default()
                });
            }
        }
        let (_, live_url) = store::normalize_url(&self.database_url)?;
        let mut verified = if backup.backend == "sqlite" {
            self.verify_sqlite(&path, &live_url, &tag).await?
        } else {
            self.verify_postgres(&path, &live_url, &tag).await?
        };
        if verified.error.is_empty() {
            mismatches.extend(compare(&backup.tables, &verified.tables));
        }
        mismatches.append(&mut verified.mismatches);
        verified.mismatches = mismatches;
        Ok(verified)
    }

    async fn verify_sqlite(
        &self,
        backup: &Path,
        live_url: &str,
        tag: &str,
    ) -> Result<RestoreVerified, Error> {
        let scratch_dir = std::env::temp_dir().join("steward-restore-drills");
        std::fs::create_dir_all(&scratch_dir).map_err(io(&scratch_dir))?;
        let scratch = scratch_dir.join(format!("drill-{tag}.db"));
        remove_sqlite_files(&scratch);
        assert_ne!(
            scratch,
            sqlite_file(live_url),
            "a drill never restores over the live store"
        );
        let started = Instant::now();
        let outcome = async {
            tokio::fs::copy(backup, &scratch)
                .await
                .map_err(io(&scratch))?;
            let pool = connect_any(&format!("sqlite://{}?mode=rw", scratch.display())).await?;
            let tables = figures(&pool).await;
            let restore_seconds = started.elapsed().as_secs_f64();
            let health = health(&pool, true).await;
            pool.close().await;
            Ok::<_, Error>((tables?, restore_seconds, health))
        }
        .await;
        remove_sqlite_files(&scratch);
        Ok(match outcome {
            Ok((tables, restore_seconds, health)) => RestoreVerified {
                target: scratch.display().to_string(),
                restore_seconds,
                tables,
                health,
                ..Default::default()
            },
            Err(e) => RestoreVerified {
                target: scratch.display().to_string(),
                error: format!("the backup does not restore: {e}"),
                ..Default::default()
            },
        })
    }

    async fn verify_postgres(
        &self,
        backup: &Path,
        live_url: &str,
        tag: &str,
    ) -> Result<RestoreVerified, Error> {
        let scratch_db = format!("steward_drill_{tag}");
        assert_ne!(
            scratch_db,
            database_name(live_url),
            "a drill never restores over the live store"
        );
        let scratch_url = with_database(live_url, &scratch_db);
        let admin = connect_any(live_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {scratch_db} WITH (FORCE)"
        ))
        .execute(&admin)
        .await?;
        sqlx::query(&format!("CREATE DATABASE {scratch_db}"))
            .execute(&admin)
            .await?;
        let started = Instant::now();
        let outcome = async {
            let file = backup.display().to_string();
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
            .await?;
            let pool = connect_any(&scratch_url).await?;
            let tables = figures(&pool).await;
            let restore_seconds = started.elapsed().as_secs_f64();
            let health = health(&pool, false).await;
            pool.close().await;
            Ok::<_, Error>((tables?, restore_seconds, health))
        }
        .await;
        let dropped = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {scratch_db} WITH (FORCE)"
        ))
        .execute(&admin)
        .await;
        admin.close().await;
        dropped?;
        Ok(match outcome {
            Ok((tables, restore_seconds, health)) => RestoreVerified {
                target: format!("database {scratch_db}"),
                restore_seconds,
                tables,
                health,
                ..Default::default()
            },
            Err(e) => RestoreVerified {
                target: format!("database {scratch_db}"),
                error: format!("the backup does not restore: {e}"),
                ..Default::default()
            },
        })
    }

    /// Records the drill; after a verified one, prunes old backups.
    pub async fn record(&self, r: &RestoreDrillResult) -> Result<(), Error> {
        let event = ProgressEvent {
            id: format!("{}:{}", r.workflow_id, r.run_id),
            event_type: names::RESTORE_EVENT_TYPE.into(),
            source: r.source.clone(),
            created_at: String::new(),
            workflow_id: r.workflow_id.clone(),
            run_id: r.run_id.clone(),
            detail_json: serde_json::to_string(r).unwrap_or_default(),
        };
        let fresh = self
            .store
            .insert_progress(&event, chrono::Utc::now().timestamp_millis())
            .await?;
        let backup = r.backup.clone().unwrap_or_default();
        if fresh {
            self.metrics.restore_drill(
                &backup.backend,
                &r.outcome,
                r.restore.as_ref().map(|v| v.restore_seconds).unwrap_or(0.0),
            );
        }
        if r.outcome == "verified" {
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
                name.starts_with("state-") && (name.ends_with(".db") || name.ends_with(".sql"))
            })
            .collect();
        backups.sort();
        let excess = backups.len().saturating_sub(self.keep.max(1));
        for old in &backups[..excess] {
            std::fs::remove_file(old).map_err(io(old))?;
            let _ = std::fs::remove_file(manifest_path(old));
        }
        Ok(())
    }
}

/// A missing manifest will not appear by retrying; anything else may pass.
fn failure(e: Error) -> ActivityError {
    match e {
        Error::NoManifest(_) => failure::permanent(e),
        e => failure::retryable(e),
    }
}

#[activities]
impl RestoreActivities {
    /// Backs up the store. Safe to retry: each attempt writes its own file,
    /// and only the one whose manifest is returned is used.
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

    /// Restores and compares. Safe to retry: the scratch target is new
    /// each time and removed after.
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

    /// Records the outcome. Idempotent: the event id is the workflow run.
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
