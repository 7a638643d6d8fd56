//! `steward replay-check <dir>`: replay exported histories; run it before
//! every deploy.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::print_json;
use crate::replay;

/// Options of `steward replay-check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder of exported histories (`steward history <id> --export FILE`).
    dir: PathBuf,
}

pub(super) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = replay::history_files(&args.dir)?;
    anyhow::ensure!(
        !files.is_empty(),
        "no *.json histories in {}",
        args.dir.display()
    );
    let outcomes = replay::replay_files(&files).await?;
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    print_json(
        &serde_json::json!({ "replayed": outcomes.len(), "failed": failed, "histories": outcomes }),
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
