//! A drill's evidence on disk: `report.json` (the result, as recorded),
//! `report.json.sha256` beside it, and `report.md` for people, written
//! whole and private into the run's folder. The same result writes the
//! same bytes, so writing again after a retry changes nothing.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::files::write_private;

/// Where the evidence went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// SHA-256 of `report.json`.
    pub sha256: String,
}

/// The folder of a run's evidence: its start time (`:` made `-`) and its
/// run id, so two runs started in the same second never share one.
pub fn folder(started_at: &str, run_id: &str) -> String {
    let started = started_at.replace(':', "-");
    if run_id.is_empty() {
        started
    } else {
        format!("{started}-{run_id}")
    }
}

/// The paths the evidence of a run goes to in `dir`.
pub fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("report.json"), dir.join("report.md"))
}

/// Writes `json` and its SHA-256, and `markdown` (which may name the hash:
/// `{sha256}` in it is replaced), into `dir`.
pub fn write(dir: &Path, json: &[u8], markdown: &str) -> Result<Written, String> {
    let (json_path, md_path) = paths(dir);
    let sha = hex::encode(Sha256::digest(json));
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| format!("{p}: {e}")
    };
    write_private(&json_path, json).map_err(io(&json_path))?;
    let sum = dir.join("report.json.sha256");
    write_private(&sum, format!("{sha}  report.json\n").as_bytes()).map_err(io(&sum))?;
    write_private(&md_path, markdown.replace("{sha256}", &sha).as_bytes()).map_err(io(&md_path))?;
    Ok(Written {
        json: json_path,
        markdown: md_path,
        sha256: sha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_folders_of_their_own() {
        let at = "2026-12-07T05:00:00Z";
        assert_ne!(folder(at, "run-a"), folder(at, "run-b"));
        assert_eq!(folder(at, "run-a"), "2026-12-07T05-00-00Z-run-a");
        assert_eq!(folder(at, ""), "2026-12-07T05-00-00Z");
    }
}
