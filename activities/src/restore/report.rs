//! The drill's record and evidence: the progress event, the metric, the
//! report (`report.md` from [`markdown`]), and the backups pruned after a
//! verified drill.

use super::*;

impl RestoreActivities {
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
            .join(crate::evidence::folder(&r.started_at, &r.run_id));
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
        format!("- restored from: `{}` ({})", v.source, v.source_kind),
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
