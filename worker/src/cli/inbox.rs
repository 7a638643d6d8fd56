//! `steward inbox`: everything that waits for an operator.

use std::process::ExitCode;

use crate::cli::print_json;
use crate::ops::Ops;

pub(super) async fn run(ops: Ops) -> anyhow::Result<ExitCode> {
    print_json(&ops.inbox().await?)?;
    Ok(ExitCode::SUCCESS)
}
