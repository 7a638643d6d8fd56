//! The restore: the off-node copy unsealed with the identity file into an
//! isolated target, its figures compared with the live store's, its health
//! queries run, RTO and RPO measured, and everything it made removed.

use steward_proto::v1::{HealthCheck, TableFigures};

use super::*;

impl RestoreActivities {
    /// Restores `backup` from its off-node copy into the isolated target
    /// (named after `tag`, the drill's run), compares, measures RTO and
    /// RPO, and removes everything it made. A retry after a crash first
    /// removes what the earlier attempt of the same run left. A backup
    /// that does not restore is reported in `error`.
    pub async fn verify(&self, backup: &BackupTaken, tag: &str) -> Result<RestoreVerified, Error> {
        let tag = name_part(tag, 24);
        // A backup the drill took is restored from its off-node copy only;
        // one named with --backup from where it is, said to be local unless
        // it lies in the off-node folder.
        let (source, source_kind) = if !backup.offsite_path.is_empty() {
            let kind = if backup.named {
                "the backup named, off-node"
            } else {
                "the off-node copy"
            };
            (PathBuf::from(&backup.offsite_path), kind)
        } else if backup.named || !backup.encrypted {
            (
                PathBuf::from(&backup.path),
                "the backup named, a local file",
            )
        } else {
            (PathBuf::new(), "the off-node copy")
        };
        let targets = RestoreVerified {
            source: source.display().to_string(),
            source_kind: source_kind.into(),
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
        verified.source_kind = targets.source_kind;
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
        let begun = Instant::now();
        let mut restore_seconds = 0.0;
        let outcome = async {
            Self::unseal(source, identity, &scratch).await?;
            restore_seconds = begun.elapsed().as_secs_f64();
            read_restored(
                &self.api_program,
                &format!("sqlite://{}?mode=rw", scratch.display()),
                true,
                "the backup does not restore",
            )
            .await
        }
        .await;
        remove_sqlite_files(&scratch);
        Ok(restored(
            scratch.display().to_string(),
            outcome,
            restore_seconds,
        ))
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
        let connected =
            match tokio::time::timeout(Duration::from_secs(10), connect_any(admin_url.as_str()))
                .await
            {
                Ok(Ok(admin)) => Ok(admin),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no connection within 10s".to_string()),
            };
        let admin = match connected {
            Ok(admin) => admin,
            Err(why) => {
                return Ok(RestoreVerified {
                    target: shown_target,
                    error: format!(
                        "the isolated target {} is not reachable: {why}",
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
        let begun = Instant::now();
        let mut restore_seconds = 0.0;
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
            restore_seconds = begun.elapsed().as_secs_f64();
            read_restored(
                &self.api_program,
                scratch_url.as_str(),
                false,
                "the restored database does not open",
            )
            .await
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
        Ok(restored(shown_target, outcome, restore_seconds))
    }
}

/// The restored copy's figures and health, read from `url`, and whether
/// steward (`api`) serves from it; `unopened` names the failure when it
/// does not open.
async fn read_restored(
    api: &Path,
    url: &str,
    sqlite: bool,
    unopened: &str,
) -> Result<(Vec<TableFigures>, Vec<HealthCheck>), String> {
    let pool = connect_any(url)
        .await
        .map_err(|e| format!("{unopened}: {e}"))?;
    let tables = figures(&pool).await;
    let mut health = health(&pool, sqlite).await;
    pool.close().await;
    let tables = tables.map_err(|e| format!("the backup does not restore: {e}"))?;
    health.push(super::served::check(api, url).await);
    Ok((tables, health))
}

/// What the restore into `target` found, or why it failed; the restore
/// itself (decrypting and loading, before the health queries) took
/// `restore_seconds`.
fn restored(
    target: String,
    outcome: Result<(Vec<TableFigures>, Vec<HealthCheck>), String>,
    restore_seconds: f64,
) -> RestoreVerified {
    match outcome {
        Ok((tables, health)) => RestoreVerified {
            target,
            tables,
            health,
            restore_seconds,
            ..Default::default()
        },
        Err(error) => RestoreVerified {
            target,
            error,
            ..Default::default()
        },
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
