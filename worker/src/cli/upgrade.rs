//! `steward upgrade run|status|approve|cold-sweep`.

use std::process::ExitCode;

use crate::cli::{Recorded, print_json};
use crate::ops::upgrade::{ColdSweepStart, Start};
use crate::ops::{Actor, Ops};
use steward_proto::vocab::{UpgradeMode, UpgradeOutcome};

/// Upgrade commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Upgrade an app to its latest release (or `--version`), or try a candidate (`--trial`); waits for the outcome.
    Run {
        /// The `[[apps]]` name.
        app: String,
        /// Target version instead of the latest.
        #[arg(long, conflicts_with = "trial")]
        version: Option<String>,
        /// Try this release tag or git revision of the recipe (a branch, a
        /// commit) on the canonical data, then always restore.
        #[arg(long, conflicts_with = "cold")]
        trial: Option<String>,
        /// A cold run: the version on fresh, empty data in a scratch
        /// folder, never the canonical volumes; with `advance = "cold"` a
        /// green one moves last_good.
        #[arg(long)]
        cold: bool,
        /// Why.
        #[arg(long, default_value = "routine upgrade")]
        reason: String,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
        /// Start and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Phase, target, last good, hold of the running (or last) upgrade.
    Status {
        /// The app.
        app: String,
    },
    /// The cold run of every app with a cold setup (or those matching
    /// `--filter`), a few at a time; prints the summary.
    ColdSweep {
        /// Only apps whose name contains this.
        #[arg(long, default_value = "")]
        filter: String,
        /// At most this many at a time (default `[cold_sweep] max_parallel`).
        #[arg(long, default_value_t = 0)]
        max_parallel: u32,
        /// At most this many in all (default `[cold_sweep] max_total`).
        #[arg(long, default_value_t = 0)]
        max_total: u32,
        /// Who starts it; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
        /// Start and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Approve a held upgrade, for that exact version.
    Approve {
        /// The app.
        app: String,
        /// The held version.
        #[arg(long)]
        version: String,
        #[command(flatten)]
        why: Recorded,
    },
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run {
            app,
            version,
            trial,
            cold,
            reason,
            by,
            no_wait,
        } => {
            let mode = match (&trial, cold) {
                (Some(_), _) => UpgradeMode::Trial,
                (None, true) => UpgradeMode::Cold,
                (None, false) => UpgradeMode::Warm,
            };
            let start = Start {
                mode,
                version: trial.or(version).unwrap_or_default(),
                reason,
                forge: None,
            };
            let started = ops
                .start_upgrade(&Actor::typed(ops.loaded(), &by), &app, start)
                .await?;
            if no_wait {
                print_json(&started)?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "started {}; `steward upgrade status {app}` shows its phase",
                started.workflow_id
            );
            let result = ops.upgrade_result(&started).await?;
            print_json(&result)?;
            // An outcome this binary does not know (a newer worker's) is
            // not a success it can vouch for.
            let code = result
                .outcome
                .parse::<UpgradeOutcome>()
                .map_or(1, UpgradeOutcome::exit_code);
            return Ok(ExitCode::from(code));
        }
        Command::ColdSweep {
            filter,
            max_parallel,
            max_total,
            by,
            no_wait,
        } => {
            let started = ops
                .start_cold_sweep(
                    &Actor::typed(ops.loaded(), &by),
                    ColdSweepStart {
                        filter,
                        max_parallel,
                        max_total,
                        source: "cli".into(),
                    },
                )
                .await?;
            if no_wait {
                print_json(&started)?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("started {}", started.workflow_id);
            let result = ops.cold_sweep_result(&started).await?;
            print_json(&result)?;
            if !result.failed.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Status { app } => {
            let view = ops.upgrade_status(&app).await?;
            let mut out = serde_json::to_value(&view.status)?;
            out["workflow_id"] = view.workflow_id.into();
            print_json(&out)?;
        }
        Command::Approve { app, version, why } => {
            let reply = ops
                .approve_upgrade(&why.actor(&ops), &app, &version, &why.reason)
                .await?;
            print_json(&reply)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
