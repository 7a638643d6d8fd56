//! The `steward` command line: one module per noun. Data for scripts goes
//! to stdout as JSON; progress and errors go to stderr.

mod alerts;
pub mod backfill;
mod dev;
mod history;
mod progress;
mod replay;
mod restore;
mod schedules;
mod sweep;
mod task;
pub(crate) mod upgrade;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Loaded};
use steward_proto::limits;

/// steward: an operations team's recurring and risky jobs as durable
/// Temporal workflows.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "STEWARD_CONFIG",
        default_value = "steward.toml"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the embedded Temporal dev server and a worker, sync schedules.
    Dev(dev::Args),
    /// Run a worker against an existing Temporal server (standard client config).
    Worker(worker::Args),
    /// Consistency sweeps.
    #[command(subcommand)]
    Sweep(sweep::Command),
    /// Backfill rollouts.
    #[command(subcommand)]
    Backfill(backfill::Command),
    /// Warm upgrades of long-lived apps.
    #[command(subcommand)]
    Upgrade(upgrade::Command),
    /// Alerts raised by every workflow.
    #[command(subcommand)]
    Alerts(alerts::Command),
    /// Restore drills of the state store's backups.
    #[command(subcommand)]
    RestoreDrill(restore::Command),
    /// Latest progress events from the state store.
    Progress(progress::Args),
    /// Workplan tasks.
    #[command(subcommand)]
    Task(task::Command),
    /// A workflow's history as an audit timeline.
    History(history::Args),
    /// Temporal Schedules declared in the config.
    #[command(subcommand)]
    Schedules(schedules::Command),
    /// Replay exported histories against this binary's workflows; exit 1 if any would break.
    ReplayCheck(replay::Args),
    /// Validate the config and print what it resolves to.
    CheckConfig,
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Refuses an operator's `--by` and `--reason` before anything is sent: an
/// empty reason, or either over [`limits::OPERATOR_TEXT_CHARS`] (each is
/// kept in the workflow's state and history, which must stay far below
/// the server's payload limit).
pub fn check_operator(by: &str, reason: &str) -> anyhow::Result<()> {
    anyhow::ensure!(!reason.trim().is_empty(), "--reason must not be empty");
    for (flag, text) in [("--by", by), ("--reason", reason)] {
        if let Some(refusal) = limits::operator_text_too_long(flag, text) {
            anyhow::bail!(refusal);
        }
    }
    Ok(())
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let loaded = || config::load(&cli.config);
    match cli.command {
        Command::Dev(args) => dev::run(loaded()?, args).await,
        Command::Worker(args) => worker::run(loaded()?, args).await,
        Command::Sweep(cmd) => sweep::run(loaded()?, cmd).await,
        Command::Backfill(cmd) => backfill::run(loaded()?, cmd).await,
        Command::Upgrade(cmd) => upgrade::run(loaded()?, cmd).await,
        Command::Alerts(cmd) => alerts::run(loaded()?, cmd).await,
        Command::RestoreDrill(cmd) => restore::run(loaded()?, cmd).await,
        Command::Progress(args) => progress::run(loaded()?, args).await,
        Command::Task(cmd) => task::run(loaded()?, cmd).await,
        Command::History(args) => history::run(args).await,
        Command::Schedules(cmd) => schedules::run(loaded()?, cmd).await,
        Command::ReplayCheck(args) => replay::run(args).await,
        Command::CheckConfig => check_config(loaded()?),
    }
}

fn check_config(loaded: Loaded) -> anyhow::Result<ExitCode> {
    print_json(&serde_json::json!({
        "config": loaded.path,
        "database_url": steward_activities::store::redact(&loaded.database_url()),
        "task_queue": loaded.config.task_queue,
        "repos": loaded.config.repos,
        "sweep": loaded.config.sweep,
        "schedules": loaded.schedules(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
