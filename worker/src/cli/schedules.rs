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
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    let client = connect::from_env(None).await?;
    match cmd {
        Command::Sync => print_json(
            &schedules::sync(&client, &loaded.config.task_queue, &loaded.schedules()).await?,
        )?,
        Command::List => print_json(&schedules::list(&client).await?)?,
    }
    Ok(ExitCode::SUCCESS)
}
