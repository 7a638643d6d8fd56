//! `steward history <workflow-id>`: the audit timeline of a workflow.

use std::process::ExitCode;

use crate::cli::print_json;
use crate::{connect, history};

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

pub(super) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = connect::from_env(None).await?;
    if let Some(file) = args.export {
        let json = history::history(&client, &args.workflow_id, args.run_id.as_deref())
            .to_json()
            .await?;
        std::fs::write(&file, json)?;
        eprintln!(
            "wrote the history of {} to {}",
            args.workflow_id,
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let events = history::fetch_events(&client, &args.workflow_id, args.run_id.as_deref()).await?;
    let timeline = history::timeline(&events);
    if args.json {
        print_json(&timeline)?;
    } else {
        print!("{}", history::render_text(&timeline));
    }
    Ok(ExitCode::SUCCESS)
}
