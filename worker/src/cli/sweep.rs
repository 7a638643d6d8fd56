//! `steward sweep run|compare`.

use std::process::ExitCode;
use std::time::Duration;

use steward_proto::v1::SweepResult;

use crate::cli::{ProgressLine, print_json};
use crate::ops::sweep::Start;
use crate::ops::{Actor, Ops};

/// Sweep commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start a sweep, wait for it, print its result; exit 1 on automation errors.
    Run {
        /// Budget in seconds (default: `[sweep].max_seconds`).
        #[arg(long)]
        max_seconds: Option<u32>,
        /// Source tag recorded in the progress event.
        #[arg(long, default_value = "manual")]
        source: String,
        /// Reassess every repo, ignoring the clean fingerprint.
        #[arg(long)]
        full: bool,
        /// Repos processed at once (default: `[sweep].concurrency`).
        #[arg(long)]
        concurrency: Option<u32>,
        /// Who starts it; defaults to $USER (with `[[operators]]` declared,
        /// it must be one of them, allowed to start sweeps).
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
    /// Per source: sweeps, completed, lock-skipped, automation errors, open findings.
    Compare {
        /// Look back this many hours.
        #[arg(long, default_value_t = 24.0)]
        since_hours: f64,
    },
}

/// Starts a sweep and waits for its result, showing progress on stderr.
pub(super) async fn start_and_wait(
    ops: &Ops,
    actor: &Actor,
    start: Start,
) -> anyhow::Result<SweepResult> {
    let started = ops.start_sweep(actor, start).await?;
    let id = &started.workflow_id;
    eprintln!("started {id}; follow it with `steward history {id}`");
    let result = ops.sweep_result(&started);
    tokio::pin!(result);
    let mut line = ProgressLine::default();
    loop {
        tokio::select! {
            r = &mut result => {
                line.finish();
                return Ok(r?);
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Ok(p) = ops.sweep_progress(&started).await {
                    line.show(format!("{id}: {} {}/{} repos", p.phase, p.repos_done, p.repos_total));
                }
            }
        }
    }
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run {
            max_seconds,
            source,
            full,
            concurrency,
            by,
        } => {
            let start = Start {
                source,
                max_seconds,
                full,
                concurrency,
            };
            let result = start_and_wait(&ops, &Actor::typed(ops.loaded(), &by), start).await?;
            print_json(&result)?;
            Ok(ExitCode::from(result.exit_code.clamp(0, 255) as u8))
        }
        Command::Compare { since_hours } => {
            print_json(&serde_json::json!({
                "since_hours": since_hours,
                "by_source": ops.compare_sweeps(since_hours).await?,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
