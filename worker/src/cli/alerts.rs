//! `steward alerts list|ack`: the alert sink's files, newest first, and
//! an operator's acknowledgement of one.

use std::process::ExitCode;

use crate::cli::{Recorded, print_json};
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
    /// Acknowledge an alert: who saw it, when and why, kept with it; it
    /// leaves the inbox's unacknowledged critical alerts.
    Ack {
        /// The alert's id (`steward alerts list`).
        id: String,
        #[command(flatten)]
        why: Recorded,
    },
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List { limit } => print_json(&ops.alerts(limit)?)?,
        Command::Ack { id, why } => {
            print_json(&ops.acknowledge_alert(&why.actor(&ops), &id, &why.reason)?)?
        }
    }
    Ok(ExitCode::SUCCESS)
}
