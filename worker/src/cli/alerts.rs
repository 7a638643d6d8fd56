//! `steward alerts list`: the alert sink's files, newest first.

use std::process::ExitCode;

use crate::cli::print_json;
use crate::config::Loaded;
use crate::serve::alert_sink;

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

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List { limit } => {
            let alerts: Vec<_> = alert_sink(&loaded).list().into_iter().take(limit).collect();
            print_json(&alerts)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
