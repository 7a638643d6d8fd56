//! `steward schedules sync|list`.

use std::process::ExitCode;

use crate::cli::print_json;
use crate::config::Loaded;
use crate::{connect, schedules};

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
    },
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    let client = connect::from_env(None).await?;
    match cmd {
        Command::Sync => print_json(
            &schedules::sync(&client, &loaded.config.task_queue, &loaded.schedules()).await?,
        )?,
        Command::List => print_json(&schedules::list(&client).await?)?,
        Command::Resume { name } => {
            let wanted = loaded.schedules();
            let s = wanted.iter().find(|s| s.name == name).ok_or_else(|| {
                anyhow::anyhow!(
                    "no schedule `{name}` in the config (known: {})",
                    wanted
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            schedules::resume(&client, s).await?;
            print_json(&serde_json::json!({ "resumed": schedules::schedule_id(s) }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
