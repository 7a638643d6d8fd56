//! `steward schedules sync|list|pause|resume`.

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
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
}

fn configured<'a>(
    wanted: &'a [crate::config::ScheduleConfig],
    name: &str,
) -> anyhow::Result<&'a crate::config::ScheduleConfig> {
    wanted.iter().find(|s| s.name == name).ok_or_else(|| {
        anyhow::anyhow!(
            "no schedule `{name}` in the config (known: {})",
            wanted
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    let client = connect::from_env(None).await?;
    match cmd {
        Command::Sync => print_json(&schedules::sync(&client, &loaded).await?)?,
        Command::List => print_json(&schedules::list(&client).await?)?,
        Command::Resume { name, reason, by } => {
            let wanted = loaded.schedules();
            let s = configured(&wanted, &name)?;
            let resumed_by = if reason.trim().is_empty() {
                by
            } else {
                super::check_operator(&by, &reason)?;
                format!("{by}: {reason}")
            };
            schedules::resume(&client, s, &resumed_by).await?;
            print_json(&serde_json::json!({ "resumed": schedules::schedule_id(s) }))?;
        }
        Command::Pause { name, reason, by } => {
            super::check_operator(&by, &reason)?;
            let wanted = loaded.schedules();
            let s = configured(&wanted, &name)?;
            schedules::pause(&client, s, &by, &reason).await?;
            print_json(
                &serde_json::json!({ "paused": schedules::schedule_id(s), "by": by, "reason": reason }),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
