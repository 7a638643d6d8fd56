//! The `steward` command line: one module per noun. Data for scripts goes
//! to stdout as JSON; progress and errors go to stderr.

mod alerts;
mod api;
mod audit;
mod backfill;
mod dev;
mod drill;
mod findings;
mod history;
mod inbox;
mod locks;
mod progress;
mod replay;
mod restore;
mod schedules;
mod shared;
mod sweep;
mod task;
mod upgrade;
mod worker;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Loaded};
use crate::ops::{Error, Ops};

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
    /// The leases workflows hold (sweep, upgrades, drills); release one by hand.
    #[command(subcommand)]
    Locks(locks::Command),
    /// The per-run resources on shared services (`[[shared]]`): list them, reap leftovers.
    #[command(subcommand)]
    Shared(shared::Command),
    /// The workers polling the shared task queue and each host's (`[worker] host`, `runs_on`).
    Workers,
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

/// Who takes an operator action and why, as every such command asks.
#[derive(Debug, clap::Args)]
pub struct Recorded {
    /// Why (recorded with the action).
    #[arg(long)]
    pub reason: String,
    /// Who acts; defaults to $USER.
    #[arg(long, env = "USER", default_value = "unknown")]
    pub by: String,
}

impl Recorded {
    /// The actor: the name typed, with the groups the config gives it.
    pub fn actor(&self, ops: &Ops) -> crate::ops::Actor {
        crate::ops::Actor::typed(ops.loaded(), &self.by)
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The exit code of a failed command, by what failed: 1 when the run
/// ended without a result (failed, cancelled, terminated, timed out), 2
/// when the request is wrong or refused (bad input, an unknown name, not
/// permitted, refused by the workflow, already running), 4 when Temporal
/// or the state store failed underneath (try again), 2 for anything else.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    match e.downcast_ref::<Error>() {
        Some(Error::RunFailed(_)) => ExitCode::from(1),
        Some(Error::Upstream { .. }) => ExitCode::from(4),
        Some(
            Error::BadRequest(_)
            | Error::NotFound(_)
            | Error::Forbidden(_)
            | Error::AlreadyRunning { .. }
            | Error::Refused(_),
        )
        | None => ExitCode::from(2),
    }
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
    let ops = || loaded().map(Ops::new);
    match cli.command {
        Command::Dev(args) => dev::run(loaded()?, args).await,
        Command::Worker(args) => worker::run(loaded()?, args).await,
        Command::Api(args) => api::run(&cli.config, args).await,
        Command::Sweep(cmd) => sweep::run(ops()?, cmd).await,
        Command::Backfill(cmd) => backfill::run(ops()?, cmd).await,
        Command::Upgrade(cmd) => upgrade::run(ops()?, cmd).await,
        Command::Alerts(cmd) => alerts::run(ops()?, cmd).await,
        Command::RestoreDrill(cmd) => restore::run(&cli.config, cmd).await,
        Command::Drill(cmd) => drill::run(ops()?, cmd).await,
        Command::Progress(args) => progress::run(ops()?, args).await,
        Command::Findings(args) => findings::run(ops()?, args).await,
        Command::Task(cmd) => task::run(ops()?, cmd).await,
        Command::History(args) => {
            history::run(Ops::new(config::load_or_defaults(&cli.config)?), args).await
        }
        Command::Schedules(cmd) => schedules::run(ops()?, cmd).await,
        Command::Inbox => inbox::run(ops()?).await,
        Command::Workers => workers::run(ops()?).await,
        Command::Locks(cmd) => locks::run(ops()?, cmd).await,
        Command::Shared(cmd) => shared::run(ops()?, cmd).await,
        Command::Audit(cmd) => audit::run(ops()?, cmd).await,
        Command::ReplayCheck(args) => replay::run(args).await,
        Command::CheckConfig => check_config(loaded()?),
    }
}

fn check_config(loaded: Loaded) -> anyhow::Result<ExitCode> {
    print_json(&serde_json::json!({
        "config": loaded.path,
        "database_url": steward_activities::dburl::redact(&loaded.database_url()),
        "task_queue": loaded.config.task_queue,
        "worker": loaded.config.worker,
        "hosts": loaded.config.hosts().into_iter().map(|(host, pinned)| serde_json::json!({
            "host": host,
            "task_queue": steward_proto::names::host_queue(&loaded.config.task_queue, &host),
            "pinned": pinned,
        })).collect::<Vec<_>>(),
        "repos": loaded.config.repos,
        "sweep": loaded.config.sweep,
        "schedules": loaded.schedules(),
        "temporal": loaded.config.temporal,
        "audit": loaded.config.audit,
        "cold_sweep": loaded.config.cold_sweep,
        "restore": loaded.config.restore,
        "api": loaded.config.api,
        "alerts": {
            "dir": loaded.alerts_dir(),
            // A webhook's URL often carries its token.
            "webhook": loaded.config.alerts.webhook.as_ref().map(|_| "set (not shown: it may carry a token)"),
            "alertmanager": loaded.config.alerts.alertmanager,
            "page_url": loaded.config.alerts.page_url,
            "temporal_ui_url": loaded.config.alerts.temporal_ui_url,
        },
        "operators": loaded.config.operators.iter().map(|o| serde_json::json!({
            "name": o.name,
            "groups": o.groups,
            "credential_id": o.credential_id(),
            "expires": o.expires,
        })).collect::<Vec<_>>(),
        "permissions": if loaded.config.permissions.is_empty() {
            serde_json::json!("defaults: a backfill's actions to its approving groups, an app's to its \
                approval group, everything else to any operator with a group; no group, no action")
        } else {
            serde_json::to_value(&loaded.config.permissions).unwrap_or_default()
        },
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
