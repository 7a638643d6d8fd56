//! The rollout's evidence: its JSON, its SHA-256 beside it, under a
//! folder named after the run.

use super::*;

impl BackfillActivities {
    /// Writes `report.json` and `report.json.sha256` under
    /// `artifacts/<name>/<timestamp>/`. Idempotent: same input, same bytes.
    pub fn evidence(&self, e: &BackfillEvidence, dir_name: &str) -> Result<EvidenceWritten, Error> {
        let dir = self.artifacts.join(&e.name).join(dir_name);
        let bytes = serde_json::to_vec_pretty(e).unwrap_or_default();
        let sha = hex::encode(Sha256::digest(&bytes));
        let report = dir.join("report.json");
        let io = |path: &PathBuf| {
            let path = path.display().to_string();
            move |source| Error::Io { path, source }
        };
        write_private(&report, &bytes).map_err(io(&report))?;
        let sum = dir.join("report.json.sha256");
        write_private(&sum, format!("{sha}  report.json\n").as_bytes()).map_err(io(&sum))?;
        Ok(EvidenceWritten {
            path: report.display().to_string(),
            sha256: sha,
        })
    }
}

/// Folder name of a run's evidence: its start time, safe for file names.
pub fn evidence_dir_name(started_at: &str) -> String {
    started_at.replace(':', "-")
}
