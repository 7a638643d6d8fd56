//! `steward schedules sync|list|pause|resume`.

use std::process::ExitCode;

use crate::cli::{Recorded, print_json};
use crate::ops::{Actor, Ops};
use crate::schedules;

/// Schedule commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create or update the configured schedules; delete steward-managed ones the config dropped.
    Sync,
    /// Show steward-managed schedules with next runs and skip counters.
    List,
    /// Resume a paused schedule (for example one the guard paused after
    /// repeated automation errors).
    Resume {
        /// The schedule's name in the config (`sweep` for `steward-sweep`).
        name: String,
        /// Why (kept in the schedule's note until the next sync).
        #[arg(long, default_value = "")]
        reason: String,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
    /// Pause a schedule: no workflow starts until `resume`; `sync` keeps it
    /// paused, with who and why in its note.
    Pause {
        /// The schedule's name in the config.
        name: String,
        #[command(flatten)]
        why: Recorded,
    },
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Sync => {
            let client = ops.client().await?;
            print_json(&schedules::sync(client, ops.loaded()).await?)?
        }
        Command::List => print_json(&schedules::list(ops.client().await?).await?)?,
        Command::Resume { name, reason, by } => {
            let reason = if reason.trim().is_empty() {
                "resumed".to_string()
            } else {
                reason
            };
            let changed = ops
                .change_schedule(&Actor::typed(ops.loaded(), &by), &name, false, &reason)
                .await?;
            print_json(&changed)?;
        }
        Command::Pause { name, why } => {
            let Recorded { reason, by } = why;
            let changed = ops
                .change_schedule(&Actor::typed(ops.loaded(), &by), &name, true, &reason)
                .await?;
            print_json(&changed)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
