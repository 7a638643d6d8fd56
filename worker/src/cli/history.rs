//! `steward history <workflow-id>`: the audit timeline of a workflow, from
//! the server while it has the run, from the audit archive after.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::print_json;
use crate::history;
use crate::ops::Ops;

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

pub(super) async fn run(ops: Ops, args: Args) -> anyhow::Result<ExitCode> {
    let exported = ops
        .exported_history(&args.workflow_id, args.run_id.as_deref())
        .await?;
    if let Some(seq) = exported.archived {
        eprintln!(
            "{} is no longer on the server; shown from the audit archive (entry {seq})",
            args.workflow_id
        );
    }
    if let Some(file) = &args.export {
        std::fs::write(file, &exported.json)
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!(
            "wrote the history of {} to {}",
            args.workflow_id,
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let timeline = history::timeline(&history::events_of(&exported.json)?);
    if args.json {
        print_json(&timeline)?;
    } else {
        print!("{}", history::render_text(&timeline));
    }
    Ok(ExitCode::SUCCESS)
}
