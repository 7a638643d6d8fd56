//! `steward shared list|reap`: the per-run resources on the `[[shared]]`
//! services, and the reaper's pass (also a `shared-reap` schedule).

use std::process::ExitCode;

use crate::cli::print_json;
use crate::ops::{Actor, Ops};

/// Shared-service commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// What each shared service lists now: for each resource, whether
    /// steward made it, for which app and run, whether that run has closed,
    /// and its age.
    List,
    /// Delete the resources steward made whose run has closed (or that
    /// Temporal does not know), past the service's `reap_after`; never a
    /// resource steward did not make. Prints what it deleted.
    Reap {
        /// Only this service.
        #[arg(long, default_value = "")]
        service: String,
        /// Who starts it; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
        /// Start and return at once.
        #[arg(long)]
        no_wait: bool,
    },
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List => {
            let list = ops.shared_resources().await?;
            print_json(&list)?;
            if !list.unreadable.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Reap {
            service,
            by,
            no_wait,
        } => {
            let started = ops
                .start_shared_reap(&Actor::typed(ops.loaded(), &by), &service)
                .await?;
            if no_wait {
                print_json(&started)?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("started {}", started.workflow_id);
            let result = ops.shared_reap_result(&started).await?;
            print_json(&result)?;
            if !result.failed.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
