//! The `steward` command line: one module per noun. Data for scripts goes
//! to stdout as JSON; progress and errors go to stderr.

mod alerts;
mod api;
mod audit;
pub mod backfill;
mod dev;
mod drill;
pub mod findings;
mod history;
pub mod inbox;
pub mod progress;
mod replay;
mod restore;
mod schedules;
pub mod sweep;
mod task;
pub mod upgrade;
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
    /// Serve the HTTP API and the operator page; make tokens and keys for it.
    Api(api::Args),
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
    /// Failover drills of database services (`[[drills]]`).
    #[command(subcommand)]
    Drill(drill::Command),
    /// Latest progress events from the state store.
    Progress(progress::Args),
    /// The findings ledger: open findings (and recently resolved ones), newest first.
    Findings(findings::Args),
    /// Workplan tasks.
    #[command(subcommand)]
    Task(task::Command),
    /// A workflow's history as an audit timeline.
    History(history::Args),
    /// Everything that waits for an operator: held upgrades, backfills waiting, paused schedules.
    Inbox,
    /// The audit archive of closed runs: verify its hash chain, export it.
    #[command(subcommand)]
    Audit(audit::Command),
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
        if let Some(refusal) = limits::operator_text(flag, text) {
            anyhow::bail!(refusal);
        }
    }
    Ok(())
}

/// The validator's reason, without the transport's wrapping
/// (`Update failed: Failure { message: "…", … }`).
pub fn rejection(e: &dyn std::error::Error) -> String {
    let text = e.to_string();
    text.split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once("\", "))
        .map(|(m, _)| m.replace("\\\"", "\""))
        .unwrap_or(text)
}

/// The error of a workflow start: `already` when a run with that id is
/// still open, else the server's reason.
pub fn start_error(e: &dyn std::fmt::Display, id: &str, already: String) -> anyhow::Error {
    let text = e.to_string();
    if text.to_lowercase().contains("already") {
        anyhow::anyhow!(already)
    } else {
        anyhow::anyhow!("starting {id}: {text}")
    }
}

/// Refuses `name` unless the config declares it among `names`; `what` is
/// the kind of thing (`backfill`, `app`), `key` the config's list.
pub fn configured<'a>(
    loaded: &Loaded,
    what: &str,
    name: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    let names: Vec<&str> = names.into_iter().collect();
    anyhow::ensure!(
        names.contains(&name),
        "no {what} named `{name}` in {} (configured: {})",
        loaded.path.display(),
        names.join(", ")
    );
    Ok(())
}

/// A line of progress on stderr: redrawn in place on a terminal, printed
/// once per change otherwise (a log keeps every step).
#[derive(Debug)]
pub struct ProgressLine {
    tty: bool,
    last: String,
}

impl Default for ProgressLine {
    fn default() -> Self {
        use std::io::IsTerminal as _;
        Self {
            tty: std::io::stderr().is_terminal(),
            last: String::new(),
        }
    }
}

impl ProgressLine {
    /// Shows `line` unless it is the one shown last.
    pub fn show(&mut self, line: String) {
        if line == self.last {
            return;
        }
        if self.tty {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
        self.last = line;
    }

    /// Ends the line, so what follows starts on a fresh one.
    pub fn finish(&self) {
        if self.tty && !self.last.is_empty() {
            eprintln!();
        }
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let loaded = || config::load(&cli.config);
    match cli.command {
        Command::Dev(args) => dev::run(loaded()?, args).await,
        Command::Worker(args) => worker::run(loaded()?, args).await,
        Command::Api(args) => api::run(&cli.config, args).await,
        Command::Sweep(cmd) => sweep::run(loaded()?, cmd).await,
        Command::Backfill(cmd) => backfill::run(loaded()?, cmd).await,
        Command::Upgrade(cmd) => upgrade::run(loaded()?, cmd).await,
        Command::Alerts(cmd) => alerts::run(loaded()?, cmd).await,
        Command::RestoreDrill(cmd) => restore::run(&cli.config, cmd).await,
        Command::Drill(cmd) => drill::run(loaded()?, cmd).await,
        Command::Progress(args) => progress::run(loaded()?, args).await,
        Command::Findings(args) => findings::run(loaded()?, args).await,
        Command::Task(cmd) => task::run(loaded()?, cmd).await,
        Command::History(args) => history::run(&cli.config, args).await,
        Command::Schedules(cmd) => schedules::run(loaded()?, cmd).await,
        Command::Inbox => inbox::run().await,
        Command::Audit(cmd) => audit::run(loaded()?, cmd).await,
        Command::ReplayCheck(args) => replay::run(args).await,
        Command::CheckConfig => check_config(loaded()?),
    }
}

fn check_config(loaded: Loaded) -> anyhow::Result<ExitCode> {
    print_json(&serde_json::json!({
        "config": loaded.path,
        "database_url": steward_activities::dburl::redact(&loaded.database_url()),
        "task_queue": loaded.config.task_queue,
        "repos": loaded.config.repos,
        "sweep": loaded.config.sweep,
        "schedules": loaded.schedules(),
        "temporal": loaded.config.temporal,
        "audit": loaded.config.audit,
        "cold_sweep": loaded.config.cold_sweep,
        "drills": loaded.config.drills.iter().map(|d| {
            let mut shown = serde_json::to_value(d).unwrap_or_default();
            shown["url"] = steward_activities::failover::service::Service::parse(&d.url)
                .map(|s| s.redacted())
                .unwrap_or_default()
                .into();
            shown
        }).collect::<Vec<_>>(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
