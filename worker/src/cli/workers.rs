//! `steward workers`: the workers polling the shared queue and each host's.

use std::process::ExitCode;

use crate::cli::print_json;
use crate::ops::Ops;

pub(super) async fn run(ops: Ops) -> anyhow::Result<ExitCode> {
    print_json(&ops.workers().await?)?;
    Ok(ExitCode::SUCCESS)
}
