//! Determinism checks: replay exported workflow histories against the
//! workflows compiled into this binary. A history that no longer replays
//! means a deployed change would break running workflows.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use temporalio_client::WorkflowHistory;
use temporalio_sdk::workflow_replayer::WorkflowReplayer;

use crate::registration;

/// The outcome of one history.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The history file.
    pub file: PathBuf,
    /// The failure, if the history does not replay.
    pub error: Option<String>,
}

/// The `*.json` files of `dir`, sorted.
pub fn history_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Replays each file; a file that cannot be read is an error outcome too.
pub async fn replay_files(files: &[PathBuf]) -> anyhow::Result<Vec<Outcome>> {
    let replayer = WorkflowReplayer::new(registration::replayer_options()?)
        .context("creating the replayer")?;
    let mut out = Vec::new();
    for file in files {
        let error = match std::fs::read(file)
            .map_err(anyhow::Error::from)
            .and_then(|b| WorkflowHistory::from_json(&b).map_err(anyhow::Error::from))
        {
            Err(e) => Some(format!("unreadable history: {e:#}")),
            Ok(history) => replayer
                .replay_workflow(history)
                .await
                .err()
                .map(|e| e.to_string()),
        };
        out.push(Outcome {
            file: file.clone(),
            error,
        });
    }
    Ok(out)
}
