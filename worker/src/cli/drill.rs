//! `steward drill failover run|last`: drill a database service's failover,
//! and show the last drill.

use std::process::ExitCode;

use steward_proto::vocab::FailoverOutcome;

use crate::cli::print_json;
use crate::ops::{Actor, Ops};

/// Drill commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Failover drills of a `[[drills]]` service.
    #[command(subcommand)]
    Failover(Failover),
}

/// Failover drill commands.
#[derive(Debug, clap::Subcommand)]
pub enum Failover {
    /// Fail the primary as the config documents, measure RTO and RPO, verify every acknowledged write; waits for the outcome (exit 1 unless passed).
    Run {
        /// The `[[drills]]` name.
        drill: String,
        /// Why.
        #[arg(long, default_value = "failover drill")]
        reason: String,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
        /// Start and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// The last drill of the service, and the last one that passed.
    Last {
        /// The `[[drills]]` name.
        drill: String,
    },
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Failover(cmd) = cmd;
    match cmd {
        Failover::Run {
            drill,
            reason,
            by,
            no_wait,
        } => {
            let actor = Actor::typed(ops.loaded(), &by);
            let started = ops
                .start_failover_drill(&actor, &drill, &reason, "cli")
                .await?;
            if no_wait {
                print_json(&started)?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "failover drill {} started; waiting for it",
                started.workflow_id
            );
            let result = ops.failover_result(&started).await?;
            print_json(&result)?;
            Ok(if FailoverOutcome::Passed == result.outcome {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Failover::Last { drill } => {
            print_json(&ops.last_failover(&drill).await?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
