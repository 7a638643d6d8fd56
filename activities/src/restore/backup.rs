//! The backup: an online, consistent copy of the live store (SQLite's
//! `VACUUM INTO`, `pg_dump`), sealed to the recipient, copied off-node with
//! its manifest; or an earlier drill's backup, read back from its manifest.

use super::*;

impl RestoreActivities {
    /// Takes a backup with the live figures it holds (figures before and
    /// after the copy must agree, else the copy is taken again), encrypts
    /// it to the recipient, and copies it and its manifest off-node. With
    /// `input.backup`, reads that backup's manifest instead: the file named
    /// is what the drill restores.
    pub async fn backup(&self, input: &RestoreDrillInput, tag: &str) -> Result<BackupTaken, Error> {
        if !input.backup.is_empty() {
            let path = PathBuf::from(&input.backup);
            let mut taken = read_manifest(&path)?;
            // The file named is the one restored; it is the off-node copy
            // only when it lies in the off-node folder.
            taken.path = path.display().to_string();
            taken.named = true;
            let offsite = self.settings.offsite_dir.as_ref().is_some_and(|dir| {
                let (dir, file) = (dir.canonicalize(), path.canonicalize());
                matches!((dir, file), (Ok(d), Ok(f)) if f.starts_with(&d))
            });
            taken.offsite_path = if offsite {
                taken.path.clone()
            } else {
                String::new()
            };
            taken.offsite_error.clear();
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
            taken_at: crate::time::now_millis_text(),
            backup_seconds,
            encrypted: true,
            recipient,
            offsite_path: String::new(),
            offsite_error: String::new(),
            named: false,
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
}
