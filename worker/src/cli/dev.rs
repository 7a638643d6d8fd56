//! `steward dev`: the embedded default on one machine. Starts the Temporal
//! CLI dev server with a persistent SQLite file under the data directory,
//! runs the worker in this process, syncs the schedules, prints where to
//! look, and on Ctrl-C or SIGTERM stops the worker gracefully, then the
//! server. History survives restarts.

use std::path::PathBuf;
use std::process::ExitCode;

use steward_activities::Store;

use crate::cli::print_json;
use crate::config::Loaded;
use crate::devserver::{self, DevServer, DevServerOptions};
use crate::ops::{Actor, Ops};
use crate::{connect, namespace, schedules, serve};

/// Options of `steward dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `temporal` executable (else STEWARD_TEMPORAL_BIN, .venv, PATH).
    #[arg(long)]
    temporal_bin: Option<PathBuf>,
    /// Frontend port (default `[dev].port`, 7233).
    #[arg(long)]
    port: Option<u16>,
    /// Web UI port (default `[dev].ui_port`, 8233).
    #[arg(long)]
    ui_port: Option<u16>,
    /// Run the server without its web UI.
    #[arg(long)]
    headless: bool,
    /// Start one consistency sweep at once and print its result.
    #[arg(long)]
    sweep_now: bool,
    #[command(flatten)]
    process: super::worker::ProcessArgs,
}

pub(super) async fn run(mut loaded: Loaded, args: Args) -> anyhow::Result<ExitCode> {
    args.process.apply(&mut loaded)?;
    let config_dir = loaded.path.parent().map(PathBuf::from).unwrap_or_default();
    let bin = devserver::find_temporal(
        args.temporal_bin.as_deref(),
        &devserver::project_dirs(&config_dir),
    )?;
    let data = &loaded.config.data_dir;
    let store = Store::connect(&loaded.database_url()).await?;
    let opts = DevServerOptions {
        bin,
        port: args.port.unwrap_or(loaded.config.dev.port),
        ui_port: args.ui_port.unwrap_or(loaded.config.dev.ui_port),
        db_file: data.join("temporal.db"),
        log_file: data.join("temporal.log"),
        headless: args.headless,
    };
    let server = DevServer::start(&opts).await?;
    // The commands run beside it (`steward inbox`, `steward backfill ...`)
    // find the server here when nothing else says where.
    let told = connect::dev_address_file(data);
    if let Err(e) =
        steward_activities::files::write_private(&told, format!("{}\n", server.address).as_bytes())
    {
        eprintln!(
            "steward dev: warning: {}: {e}; other commands need TEMPORAL_ADDRESS={}",
            told.display(),
            server.address
        );
    }
    let outcome = serve_on(&loaded, &server, store, args.sweep_now).await;
    eprintln!("stopping the Temporal dev server");
    let _ = std::fs::remove_file(&told);
    server.stop().await;
    outcome
}

async fn serve_on(
    loaded: &Loaded,
    server: &DevServer,
    store: Store,
    sweep_now: bool,
) -> anyhow::Result<ExitCode> {
    let client = connect::to_address(
        &server.address,
        "default",
        loaded.config.worker.grpc_compression,
    )
    .await?;
    let days = loaded.config.temporal.retention_days;
    namespace::set_retention(&client, days).await?;
    if let Some(warning) = namespace::retention_warning(&client, days).await {
        eprintln!("steward dev: {warning}");
    }
    let synced = schedules::sync(&client, loaded).await?;
    let api = serve::api_beside_dev(loaded, &client, &store).await;
    if let Err(why) = &api {
        eprintln!("steward dev: no API: {why}");
    }
    print_json(&serde_json::json!({
        "frontend": server.address,
        "ui": server.ui_url,
        "api": api.as_ref().ok().map(|a| a.url.clone()),
        "sign_in": api.as_ref().ok().and_then(|a| a.sign_in.clone()),
        "namespace": "default",
        "retention_days": days,
        "task_queue": loaded.config.task_queue,
        "state_store": steward_activities::dburl::redact(&loaded.database_url()),
        "schedules": synced,
    }))?;
    eprintln!(
        "steward dev: Temporal at {}{}{}; worker on `{}`. Ctrl-C stops.",
        server.address,
        server
            .ui_url
            .as_deref()
            .map(|u| format!(", UI at {u}"))
            .unwrap_or_default(),
        api.as_ref()
            .map(|a| match (&a.sign_in, &a.operator) {
                (Some(link), Some(who)) => format!(
                    ", operator page and API at {}; open {link} to sign in as `{who}` \
                     (a link that works once, for this session)",
                    a.url
                ),
                _ => format!(", operator page and API at {}", a.url),
            })
            .unwrap_or_default(),
        loaded.config.task_queue
    );
    let ops = Ops::new(loaded.clone())
        .with_client(client.clone())
        .with_store(store.clone());
    let first_sweep = async {
        if !sweep_now {
            return;
        }
        let start = crate::ops::sweep::Start {
            source: "manual".into(),
            ..Default::default()
        };
        let first = super::sweep::start_and_wait(&ops, &Actor::process("steward dev"), start).await;
        // A schedule that fired at the same moment holds the lock: its
        // sweep is the first one, so it is the one shown.
        let first = match first {
            Ok(r) if r.lock_skipped => match ops.sweep_holding(&r.lock_holder).await {
                Ok(Some(running)) => {
                    eprintln!(
                        "a scheduled sweep ({}) took the lock first; waiting for it",
                        running.workflow_id
                    );
                    ops.sweep_result(&running)
                        .await
                        .map_err(anyhow::Error::from)
                }
                _ => Ok(r),
            },
            other => other,
        };
        match first {
            Ok(result) => {
                let _ = print_json(&result);
                eprintln!(
                    "first sweep done (exit_code {}). Look at: {}`steward progress --limit 1`, `steward history {}`",
                    result.exit_code,
                    server
                        .ui_url
                        .as_deref()
                        .map(|u| format!("the Temporal UI at {u}, "))
                        .unwrap_or_default(),
                    result.workflow_id
                );
            }
            Err(e) => eprintln!("first sweep failed: {e:#}"),
        }
    };
    let worker = serve::run_until(client.clone(), loaded, store, serve::shutdown_signal());
    let (worker, ()) = futures::join!(worker, first_sweep);
    worker?;
    Ok(ExitCode::SUCCESS)
}
