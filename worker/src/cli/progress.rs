//! `steward progress`: latest progress events from the state store.

use std::process::ExitCode;

use crate::cli::print_json;
use crate::ops::Ops;

/// Options of `steward progress`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only events of this type, e.g. `consistency_sweep_remote_all`.
    #[arg(long)]
    event_type: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 10)]
    limit: i64,
}

pub(super) async fn run(ops: Ops, args: Args) -> anyhow::Result<ExitCode> {
    print_json(&ops.progress(args.event_type.as_deref(), args.limit).await?)?;
    Ok(ExitCode::SUCCESS)
}
