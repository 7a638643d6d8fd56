//! Determinism checks: replay exported workflow histories against the
//! workflows compiled into this binary. A history that no longer replays
//! means a deployed change would break running workflows.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde::Serialize;
use temporalio_client::{Client, WorkflowHistory, WorkflowListOptions};
use temporalio_sdk::workflow_replayer::WorkflowReplayer;

use crate::{history, registration};

/// The outcome of one history.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The history file, or `<workflow id>/<run id>` of a fetched history.
    pub source: String,
    /// The failure, if the history does not replay.
    pub error: Option<String>,
}

/// The visibility query for the last closed runs of `workflow_type`.
pub fn closed_runs_query(workflow_type: &str) -> String {
    format!("WorkflowType = '{workflow_type}' AND ExecutionStatus != 'Running'")
}

/// Fetches up to `last` runs matching each query and replays them.
pub async fn replay_from_server(
    client: &Client,
    queries: &[String],
    last: usize,
) -> anyhow::Result<Vec<Outcome>> {
    let replayer = WorkflowReplayer::new(registration::replayer_options()?)
        .context("creating the replayer")?;
    let mut out = Vec::new();
    for query in queries {
        let mut runs = client.list_workflows(
            query.clone(),
            WorkflowListOptions::builder().limit(last).build(),
        );
        while let Some(run) = runs.next().await {
            let run = run.with_context(|| format!("listing workflows matching `{query}`"))?;
            let (id, run_id) = (run.id().to_string(), run.run_id().to_string());
            let history = history::history(client, &id, Some(&run_id));
            let error = replayer
                .replay_workflow(history)
                .await
                .err()
                .map(|e| e.to_string());
            out.push(Outcome {
                source: format!("{id}/{run_id}"),
                error,
            });
        }
    }
    Ok(out)
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
            source: file.display().to_string(),
            error,
        });
    }
    Ok(out)
}
