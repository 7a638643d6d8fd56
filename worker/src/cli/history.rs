//! `steward history <workflow-id>`: the audit timeline of a workflow, from
//! the server while it has the run, from the audit archive after.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use steward_activities::Store;

use crate::cli::print_json;
use crate::{config, connect, history};

/// Options of `steward history`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow id (its latest run is shown).
    workflow_id: String,
    /// A specific run (default: the latest).
    #[arg(long)]
    run_id: Option<String>,
    /// Print the timeline as JSON.
    #[arg(long)]
    json: bool,
    /// Write the raw history (the replayer's JSON format) to this file instead.
    #[arg(long, value_name = "FILE")]
    export: Option<std::path::PathBuf>,
}

/// The run's history as exported JSON: from the server, or, when the
/// server no longer has it (retention, deletion), from the archive.
async fn exported(config_path: &Path, args: &Args) -> anyhow::Result<Vec<u8>> {
    let from_server = async {
        let client = connect::from_env(None).await?;
        history::history(&client, &args.workflow_id, args.run_id.as_deref())
            .to_json()
            .await
            .with_context(|| format!("fetching the history of {}", args.workflow_id))
    };
    let server_error = match from_server.await {
        Ok(json) => return Ok(json),
        Err(e) if history::is_not_found(&e) => e,
        Err(e) => return Err(e),
    };
    let loaded = config::load(config_path)?;
    let store = Store::connect(&loaded.database_url()).await?;
    match store
        .archived_run(&args.workflow_id, args.run_id.as_deref())
        .await?
    {
        Some(entry) => {
            eprintln!(
                "{} run {} is no longer on the server; shown from the audit archive (entry {})",
                entry.workflow_id, entry.run_id, entry.seq
            );
            Ok(entry.history_json.into_bytes())
        }
        None => Err(server_error.context("and the audit archive does not have it either")),
    }
}

pub(super) async fn run(config_path: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let json = exported(config_path, &args).await?;
    if let Some(file) = &args.export {
        std::fs::write(file, &json).with_context(|| format!("writing {}", file.display()))?;
        eprintln!(
            "wrote the history of {} to {}",
            args.workflow_id,
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let timeline = history::timeline(&history::events_of(&json)?);
    if args.json {
        print_json(&timeline)?;
    } else {
        print!("{}", history::render_text(&timeline));
    }
    Ok(ExitCode::SUCCESS)
}
