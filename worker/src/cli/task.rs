//! `steward task set-status`: queue a status change that the next sweep
//! writes into the workplan file (C-15 writeback).

use std::process::ExitCode;

use steward_activities::Store;
use steward_activities::workplan::checks::TASK_STATUSES;

use crate::cli::print_json;
use crate::config::Loaded;

/// Task commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Queue a status change for a task; the next sweep writes it back.
    SetStatus {
        /// The task id, e.g. STATE-WP-0064-T03.
        task_id: String,
        /// The new status.
        status: String,
        /// Why (recorded with the change).
        #[arg(long)]
        reason: String,
        /// Who asks; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::SetStatus {
            task_id,
            status,
            reason,
            by,
        } => {
            anyhow::ensure!(
                TASK_STATUSES.contains(&status.as_str()),
                "status `{status}` is not one of {}",
                TASK_STATUSES.join(", ")
            );
            super::check_operator(&by, &reason)?;
            let store = Store::connect(&loaded.database_url()).await?;
            let Some(task) = store.task_by_task_id(&task_id).await? else {
                anyhow::bail!(
                    "unknown task `{task_id}`: no sweep has recorded it (run `steward sweep run` first)"
                );
            };
            anyhow::ensure!(
                !task.archived,
                "task `{task_id}` is archived: its file or block is gone"
            );
            let change = store
                .queue_status_change(
                    &task_id,
                    &status,
                    &reason,
                    &by,
                    chrono::Utc::now().timestamp_millis(),
                )
                .await?;
            print_json(&serde_json::json!({
                "id": change.id,
                "task_id": change.task_id,
                "status": change.status,
                "previous_status": task.status,
                "reason": change.reason,
                "requested_by": change.requested_by,
                "state": change.state,
            }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
