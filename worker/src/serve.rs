//! Running the worker until Ctrl-C or SIGTERM, then shutting down
//! gracefully: in-flight activities finish or are cancelled, workflow tasks
//! are completed, and only then does the process (and `steward dev`'s
//! server) stop.

use std::future::Future;

use anyhow::Context as _;
use std::sync::Arc;
use steward_activities::alerts::{AlertActivities, AlertSink};
use steward_activities::backfill::BackfillActivities;
use steward_activities::upgrade::UpgradeActivities;
use steward_activities::{Store, SweepActivities};
use temporalio_client::Client;

use steward_activities::metrics::Metrics;
use steward_activities::restore::RestoreActivities;
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{Runtime, Worker};

use crate::config::Loaded;
use crate::guard::Guard;
use crate::registration::{self, Activities};

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The alert sink of `loaded`.
pub fn alert_sink(loaded: &Loaded) -> AlertSink {
    AlertSink::new(loaded.alerts_dir(), loaded.config.alerts.webhook.clone())
}

/// The activities of `loaded` over `store`, recording into `metrics`.
pub fn activities(loaded: &Loaded, store: Store, metrics: &Metrics) -> Activities {
    Activities {
        sweep: SweepActivities::new(
            store.clone(),
            loaded.config.repos.clone(),
            loaded.config.sweep.clone(),
        )
        .with_metrics(metrics.clone()),
        backfill: BackfillActivities::new(loaded.config.backfills.clone(), loaded.artifacts_dir())
            .with_metrics(metrics.clone()),
        upgrade: UpgradeActivities::new(loaded.config.apps.clone(), store.clone())
            .with_metrics(metrics.clone()),
        alerts: AlertActivities::new(alert_sink(loaded).with_metrics(metrics.clone())),
        restore: RestoreActivities::new(
            loaded.database_url(),
            loaded.backup_dir(),
            loaded.config.restore.keep,
            store.clone(),
        )
        .with_metrics(metrics.clone()),
    }
}

/// The SDK runtime, with a Prometheus endpoint when `[worker].metrics_addr`
/// is set; the same meter records steward's own metrics.
fn runtime(loaded: &Loaded) -> anyhow::Result<(Runtime, Metrics)> {
    let Some(addr) = &loaded.config.worker.metrics_addr else {
        let runtime =
            Runtime::from_current_tokio(Default::default()).context("starting the SDK runtime")?;
        return Ok((runtime, Metrics::default()));
    };
    let socket_addr = addr
        .parse()
        .with_context(|| format!("metrics address `{addr}`"))?;
    let server = start_prometheus_metric_exporter(
        PrometheusExporterOptions::builder()
            .socket_addr(socket_addr)
            .build(),
    )
    .with_context(|| format!("starting the metrics endpoint on {addr}"))?;
    eprintln!("metrics at http://{}/metrics", server.bound_addr);
    let meter: Arc<dyn CoreMeter> = server.meter;
    let telemetry = TelemetryOptions::builder().metrics(meter.clone()).build();
    let options = RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(anyhow::Error::msg)?;
    let runtime = Runtime::from_current_tokio(options).context("starting the SDK runtime")?;
    Ok((runtime, Metrics::new(meter)))
}

/// Runs a worker on the current task until `stop` resolves, then shuts it
/// down gracefully. The worker's future is not `Send`, so it is driven here
/// rather than spawned.
pub async fn run_until(
    client: Client,
    loaded: &Loaded,
    store: Store,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (runtime, metrics) = runtime(loaded)?;
    let options = registration::worker_options(
        &loaded.config.task_queue,
        activities(loaded, store.clone(), &metrics),
        &loaded.config.worker,
    )?;
    let guard = Guard::new(
        loaded,
        store,
        client.clone(),
        alert_sink(loaded).with_metrics(metrics.clone()),
    )
    .run();
    tokio::pin!(guard);
    eprintln!("worker build id `{}`", loaded.config.worker.build_id());
    let mut worker = Worker::new(&runtime, client, options).context("creating the worker")?;
    let shutdown = worker.shutdown_handle();
    let run = worker.run();
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => return result.context("worker stopped"),
        () = &mut guard => unreachable!("the guard checks until it is dropped"),
        _ = stop => {
            tracing::info!("shutting down the worker");
            shutdown();
        }
    }
    run.await.context("worker shutdown")
}
