//! `steward alerts list`: the alert sink's files, newest first.

use std::process::ExitCode;

use crate::cli::print_json;
use crate::ops::Ops;

/// Alert commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Alerts written by every workflow, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List { limit } => print_json(&ops.alerts(limit)?)?,
    }
    Ok(ExitCode::SUCCESS)
}
