//! `steward worker`: a worker against an existing Temporal server, using
//! the SDK's standard client config so it runs unchanged on a cluster.

use std::process::ExitCode;

use steward_activities::Store;

use crate::config::Loaded;
use crate::{connect, serve};

/// Options of `steward worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `temporal.toml` profile to use.
    #[arg(long, env = "TEMPORAL_PROFILE")]
    profile: Option<String>,
}

pub(super) async fn run(loaded: Loaded, args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&loaded.database_url()).await?;
    let client = connect::from_env(args.profile.as_deref()).await?;
    eprintln!(
        "steward worker on task queue `{}` (state store: {})",
        loaded.config.task_queue,
        steward_activities::store::redact(&loaded.database_url())
    );
    serve::run_until(client, &loaded, store, serve::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
