//! `steward locks list|release`: the leases workflows hold, and an
//! operator's release of one (recorded with who and why).

use std::process::ExitCode;

use crate::cli::{Recorded, print_json};
use crate::ops::Ops;

/// Lease commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The leases held now (with the holder's run and its status) and the
    /// latest releases and takeovers.
    List,
    /// Release a lease whoever holds it. A lease whose run has closed is
    /// taken over by the next run anyway: release by hand only what that
    /// cannot see (a holder that is not a run, a run that will not end).
    Release {
        /// The lock, as `steward locks list` names it (e.g. `failover-pg`).
        name: String,
        #[command(flatten)]
        why: Recorded,
    },
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List => print_json(&ops.leases().await?)?,
        Command::Release { name, why } => {
            print_json(
                &ops.release_lease(&why.actor(&ops), &name, &why.reason)
                    .await?,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
