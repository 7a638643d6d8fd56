//! `steward replay-check <dir-or-query>`: replay histories against this
//! binary's workflows before a deploy. A folder replays the exported
//! histories in it; anything else is a visibility query whose last closed
//! runs are fetched from the server; no argument checks the last closed
//! runs of every steward workflow type.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::print_json;
use crate::{connect, replay};

/// Options of `steward replay-check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder of exported histories (`steward history <id> --export
    /// FILE`), or a visibility query such as
    /// "WorkflowType = 'ConsistencySweep' AND ExecutionStatus != 'Running'".
    /// Omitted: the last closed runs of each steward workflow type.
    source: Option<String>,
    /// How many runs to fetch per query.
    #[arg(long, default_value_t = 20)]
    last: usize,
    /// `temporal.toml` profile to use for the server.
    #[arg(long, env = "TEMPORAL_PROFILE")]
    profile: Option<String>,
}

pub(super) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let outcomes = match &args.source {
        Some(dir) if PathBuf::from(dir).is_dir() => {
            let dir = PathBuf::from(dir);
            let files = replay::history_files(&dir)?;
            anyhow::ensure!(
                !files.is_empty(),
                "no *.json histories in {}",
                dir.display()
            );
            replay::replay_files(&files).await?
        }
        source => {
            anyhow::ensure!(args.last > 0, "--last must be at least 1");
            let queries = match source {
                Some(query) => vec![query.clone()],
                None => steward_proto::names::WORKFLOW_TYPES
                    .iter()
                    .map(|t| replay::closed_runs_query(t))
                    .collect(),
            };
            let client = connect::from_env(args.profile.as_deref()).await?;
            replay::replay_from_server(&client, &queries, args.last).await?
        }
    };
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    print_json(
        &serde_json::json!({ "replayed": outcomes.len(), "failed": failed, "histories": outcomes }),
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
