//! `steward worker`: a worker against an existing Temporal server, using
//! the SDK's standard client config so it runs unchanged on a cluster.

use std::process::ExitCode;

use steward_activities::Store;

use crate::config::Loaded;
use crate::{connect, namespace, serve};

/// Options of `steward worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `temporal.toml` profile to use.
    #[arg(long, env = "TEMPORAL_PROFILE")]
    profile: Option<String>,
    #[command(flatten)]
    process: ProcessArgs,
}

/// Overrides of `[worker]`, shared by `steward worker` and `steward dev`.
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Serve Prometheus metrics on this address (`host:port`).
    #[arg(long, env = "STEWARD_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// Serve the probes `/healthz` and `/readyz` on this address (`host:port`).
    #[arg(long, env = "STEWARD_HEALTH_ADDR")]
    health_addr: Option<String>,
    /// Build id reported to the server (default `[worker].build_id`,
    /// else `steward-<version>`).
    #[arg(long, env = "STEWARD_BUILD_ID")]
    build_id: Option<String>,
    /// The host this worker runs on (default `[worker].host`): it also
    /// polls the host's own queue, for the steps pinned there (`runs_on`).
    #[arg(long, env = "STEWARD_HOST")]
    host: Option<String>,
}

impl ProcessArgs {
    /// Applies the overrides to `loaded`, checked like the config is.
    pub fn apply(&self, loaded: &mut Loaded) -> anyhow::Result<()> {
        for (flag, addr, example, into) in [
            (
                "--metrics-addr",
                &self.metrics_addr,
                "0.0.0.0:9464",
                &mut loaded.config.worker.metrics_addr,
            ),
            (
                "--health-addr",
                &self.health_addr,
                "0.0.0.0:9465",
                &mut loaded.config.worker.health_addr,
            ),
        ] {
            if let Some(addr) = addr {
                addr.parse::<std::net::SocketAddr>().map_err(|_| {
                    anyhow::anyhow!("{flag} `{addr}` is not host:port (for example {example})")
                })?;
                *into = Some(addr.clone());
            }
        }
        if let Some(id) = &self.build_id {
            anyhow::ensure!(
                !id.trim().is_empty() && id.len() <= 255,
                "--build-id must be 1 to 255 characters"
            );
            loaded.config.worker.build_id = Some(id.clone());
        }
        if let Some(host) = self.host.as_deref().filter(|h| !h.is_empty()) {
            anyhow::ensure!(
                crate::config::valid_host(host),
                "--host `{host}` is not a host name: lowercase letters, digits, `-` and `.`, \
                 1 to 63 characters"
            );
            loaded.config.worker.host = Some(host.to_string());
        }
        Ok(())
    }
}

pub(super) async fn run(mut loaded: Loaded, args: Args) -> anyhow::Result<ExitCode> {
    args.process.apply(&mut loaded)?;
    let store = Store::connect(&loaded.database_url()).await?;
    let client = connect::from_env_with(
        args.profile.as_deref(),
        loaded.config.worker.grpc_compression,
    )
    .await?;
    eprintln!(
        "steward worker on task queue `{}` (state store: {})",
        loaded.config.task_queue,
        steward_activities::dburl::redact(&loaded.database_url())
    );
    if let Some(warning) =
        namespace::retention_warning(&client, loaded.config.temporal.retention_days).await
    {
        eprintln!("steward worker: {warning}");
    }
    match namespace::ensure_search_attributes(&client).await {
        Ok(added) if !added.is_empty() => {
            eprintln!(
                "steward worker: registered the search attributes {}",
                added.join(", ")
            )
        }
        Ok(_) => {}
        Err(e) => eprintln!(
            "steward worker: warning: {e:#}; backfills and upgrades stall at their first \
             phase until the namespace has them (`temporal operator search-attribute create`)"
        ),
    }
    serve::run_until(client, &loaded, store, serve::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
