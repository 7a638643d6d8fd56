//! `steward task set-status`: queue a status change that the next sweep
//! writes into the workplan file (C-15 writeback).

use std::process::ExitCode;

use crate::cli::{Recorded, print_json};
use crate::ops::Ops;

/// Task commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Queue a status change for a task; the next sweep writes it back.
    SetStatus {
        /// The task id, e.g. STATE-WP-0064-T03.
        task_id: String,
        /// The new status.
        status: String,
        #[command(flatten)]
        why: Recorded,
    },
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::SetStatus {
            task_id,
            status,
            why,
        } => {
            let change = ops
                .queue_status_change(&why.actor(&ops), &task_id, &status, &why.reason)
                .await?;
            print_json(&change)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
