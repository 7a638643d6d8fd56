//! Running the worker (with the guard and the archiver beside it) until
//! Ctrl-C or SIGTERM, then shutting down
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

use steward_activities::claims::ClaimActivities;
use steward_activities::metrics::Metrics;
use steward_activities::placement::PlacementActivities;
use steward_activities::restore::RestoreActivities;
use steward_activities::roster::Roster;
use steward_proto::names;
use steward_proto::v1::OperatorGroups;
use steward_proto::vocab::PlacementKind;
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{Runtime, Worker};

use crate::api::Api;
use crate::archive::Archiver;
use crate::config::Loaded;
use crate::config::watch::Watched;
use crate::guard::Guard;
use crate::hostcheck::HostCheck;
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
    let a = &loaded.config.alerts;
    let links = steward_activities::alertmanager::Links {
        page: a.page_url.clone(),
        temporal_ui: a.temporal_ui_url.clone().map(|ui| {
            let namespace =
                std::env::var("TEMPORAL_NAMESPACE").unwrap_or_else(|_| "default".into());
            (ui, namespace)
        }),
    };
    AlertSink::new(loaded.alerts_dir(), a.webhook.clone())
        .with_alertmanager(a.alertmanager.clone(), links)
}

/// The operators `loaded` declares (with when their credentials expire,
/// in UTC), the API's key and `[[permissions]]`, as runs record them.
pub fn roster(loaded: &Loaded) -> Roster {
    Roster {
        operators: loaded
            .config
            .operators
            .iter()
            .map(|o| OperatorGroups {
                name: o.name.clone(),
                groups: o.groups.clone(),
                expires: o
                    .expires
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| {
                        t.with_timezone(&chrono::Utc)
                            .format("%Y-%m-%dT%H:%M:%SZ")
                            .to_string()
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        verify_key: loaded.config.api.verify_key.clone().unwrap_or_default(),
        rules: loaded.config.permissions.clone(),
    }
}

/// The activities of `loaded` over `store`, recording into `metrics`.
pub fn activities(loaded: &Loaded, store: Store, metrics: &Metrics, client: &Client) -> Activities {
    let wait = loaded.config.worker.host_wait_alert_seconds();
    let alerts = alert_sink(loaded).with_metrics(metrics.clone());
    Activities {
        sweep: SweepActivities::new(
            store.clone(),
            loaded.config.repos.clone(),
            loaded.config.sweep.clone(),
        )
        .with_metrics(metrics.clone())
        .with_host_wait_alert(wait)
        .with_holder_runs(std::sync::Arc::new(crate::ops::locks::TemporalRuns(
            client.clone(),
        ))),
        backfill: BackfillActivities::new(loaded.config.backfills.clone(), loaded.artifacts_dir())
            .with_store(store.clone())
            .with_metrics(metrics.clone())
            .with_alerts(alerts.clone())
            .with_roster(roster(loaded))
            .with_host_wait_alert(wait),
        placement: placement(loaded),
        upgrade: UpgradeActivities::new(loaded.config.apps.clone(), store.clone())
            .with_shared(loaded.config.shared.clone())
            .with_forge(loaded.config.forge.clone())
            .with_runs(std::sync::Arc::new(crate::ops::locks::TemporalRuns(
                client.clone(),
            )))
            .with_cold_sweep(loaded.config.cold_sweep.clone())
            .with_metrics(metrics.clone())
            .with_roster(roster(loaded)),
        alerts: AlertActivities::new(alerts.clone()),
        claims: ClaimActivities::new(store.clone()),
        metrics: metrics.clone(),
        restore: RestoreActivities::new(
            loaded.database_url(),
            loaded.config.restore.clone(),
            loaded.backup_dir(),
            loaded.config.data_dir.join("restore-target"),
            loaded.artifacts_dir(),
            store.clone(),
        )
        .with_metrics(metrics.clone())
        .with_alerts(alerts),
        failover: steward_activities::failover::FailoverActivities::new(
            loaded.config.drills.clone(),
            store.clone(),
            loaded.artifacts_dir(),
        )
        .with_metrics(metrics.clone()),
    }
}

/// Where the config pins apps, drills and the restore drill.
fn placement(loaded: &Loaded) -> PlacementActivities {
    let c = &loaded.config;
    let mut p = PlacementActivities::new(c.worker.host_wait_alert_seconds());
    for a in &c.apps {
        p = p.pin(PlacementKind::App, &a.name, a.runs_on.as_deref());
    }
    for d in &c.drills {
        p = p.pin(PlacementKind::Drill, &d.name, d.runs_on.as_deref());
    }
    p.pin(PlacementKind::Restore, "", c.restore.runs_on.as_deref())
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
        // Counters end in `_total`, as Prometheus' conventions (and
        // `promtool check metrics`) want.
        PrometheusExporterOptions::builder()
            .socket_addr(socket_addr)
            .counters_total_suffix(true)
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
    store.record_failovers_into(&metrics);
    let options = registration::worker_options(
        &loaded.config.task_queue,
        activities(loaded, store.clone(), &metrics, &client),
        &loaded.config.worker,
    )?;
    let guard = Guard::new(
        loaded,
        store.clone(),
        client.clone(),
        alert_sink(loaded).with_metrics(metrics.clone()),
    )
    .run();
    tokio::pin!(guard);
    let archiver = Archiver::new(
        store.clone(),
        client.clone(),
        std::time::Duration::from_secs(loaded.config.audit.archive_seconds),
    )
    .run();
    tokio::pin!(archiver);
    let folders = loaded.watched_folders();
    let gauge = metrics.clone();
    let disks = crate::periodic::periodically(
        std::time::Duration::from_secs(loaded.config.guard.check_seconds.max(1)),
        "measuring free disk space",
        move || {
            let (folders, gauge) = (folders.clone(), gauge.clone());
            async move {
                for (path, what) in folders {
                    let free = steward_activities::upgrade::disk::free_bytes(&path)
                        .map_err(anyhow::Error::msg)?;
                    gauge.disk_free(&path.display().to_string(), &what, free);
                }
                Ok(())
            }
        },
    );
    tokio::pin!(disks);
    // Alerts on their way to Alertmanager: retried with backoff, firing
    // conditions sent again, beside the worker.
    let outbox = alert_sink(loaded).with_metrics(metrics.clone());
    let deliveries = crate::periodic::periodically(
        std::time::Duration::from_secs(2),
        "handing alerts to Alertmanager",
        move || {
            let outbox = outbox.clone();
            async move {
                outbox.deliver().await;
                Ok(())
            }
        },
    );
    tokio::pin!(deliveries);
    let hosts = std::sync::Arc::new(tokio::sync::Mutex::new(HostCheck::new(
        crate::ops::Ops::new(loaded.clone())
            .with_client(client.clone())
            .with_store(store.clone()),
        metrics.clone(),
    )));
    let host_check = crate::periodic::periodically(
        std::time::Duration::from_secs(loaded.config.guard.check_seconds.max(1)),
        "checking the workers of each host",
        move || {
            let hosts = hosts.clone();
            async move { hosts.lock().await.check().await }
        },
    );
    tokio::pin!(host_check);
    let replication = std::sync::Arc::new(tokio::sync::Mutex::new(
        crate::replication::ReplicationWatch::new(loaded, metrics.clone()),
    ));
    let replication_check = crate::periodic::periodically(
        std::time::Duration::from_secs(loaded.config.guard.check_seconds.max(1)),
        "reading the replication of the drilled services",
        move || {
            let replication = replication.clone();
            async move { replication.lock().await.check().await }
        },
    );
    tokio::pin!(replication_check);
    let _probes = match &loaded.config.worker.health_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("serving the worker's probes on {addr}"))?;
            eprintln!(
                "probes at http://{}/healthz and /readyz",
                listener.local_addr()?
            );
            let ops = crate::ops::Ops::new(loaded.clone())
                .with_client(client.clone())
                .with_store(store.clone());
            let identity = registration::identity(&loaded.config.worker);
            Some(AbortOnDrop(tokio::spawn(crate::health::serve(
                listener, ops, identity,
            ))))
        }
        None => None,
    };
    eprintln!("worker build id `{}`", loaded.config.worker.build_id());
    // A worker on a host also polls the host's own queue, for the steps
    // pinned there; it stops when the worker stops.
    let mut on_host = match &loaded.config.worker.host {
        Some(host) => {
            let queue = names::host_queue(&loaded.config.task_queue, host);
            eprintln!("worker on host `{host}`: also polling `{queue}`");
            let options = registration::host_worker_options(
                &queue,
                activities(loaded, store.clone(), &metrics, &client),
                &loaded.config.worker,
            );
            Some(
                Worker::new(&runtime, client.clone(), options)
                    .context("creating the host's worker")?,
            )
        }
        None => None,
    };
    let mut worker = Worker::new(&runtime, client, options).context("creating the worker")?;
    let shutdown = worker.shutdown_handle();
    let host_shutdown = on_host.as_ref().map(|w| w.shutdown_handle());
    let host_run = async {
        match on_host.as_mut() {
            Some(w) => w.run().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(host_run);
    let run = worker.run();
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => return result.context("worker stopped"),
        result = &mut host_run => return result.context("the host's worker stopped"),
        () = &mut guard => unreachable!("the guard checks until it is dropped"),
        () = &mut archiver => unreachable!("the archiver passes until it is dropped"),
        () = &mut disks => unreachable!("the disk gauge measures until it is dropped"),
        () = &mut deliveries => unreachable!("the alert deliveries run until they are dropped"),
        () = &mut host_check => unreachable!("the host check checks until it is dropped"),
        () = &mut replication_check => unreachable!("the replication watch runs until it is dropped"),
        _ = stop => {
            tracing::info!("shutting down the worker");
            shutdown();
            if let Some(stop_host) = &host_shutdown {
                stop_host();
            }
        }
    }
    if host_shutdown.is_some() {
        let (shared, host) = tokio::join!(run, host_run);
        host.context("the host's worker shutdown")?;
        return shared.context("worker shutdown");
    }
    run.await.context("worker shutdown")
}

/// `steward api`: serves the HTTP API and the operator page on `listen`
/// (else `[api] listen`) for the config at `config`, watched for changes,
/// until SIGTERM or Ctrl-C.
pub async fn api(
    config: &std::path::Path,
    listen: Option<String>,
    profile: Option<&str>,
) -> anyhow::Result<()> {
    let watched = Watched::load(config)?;
    let loaded = watched.current();
    let listen = listen.unwrap_or_else(|| loaded.config.api.listen.clone());
    let store = Store::connect(&loaded.database_url()).await?;
    let client = crate::connect::from_env(profile).await?;
    let listener = bind(&listen).await?;
    eprintln!("steward api: operator page and API at {}", url(&listener));
    crate::api::serve(
        Api::new(watched, client, store)?,
        listener,
        shutdown_signal(),
    )
    .await
}

/// `steward api read-only`: the store-backed routes over `database_url`
/// opened read-only, on `listen`, until SIGTERM or Ctrl-C.
pub async fn read_only_api(database_url: &str, listen: &str) -> anyhow::Result<()> {
    use crate::api::read_only;
    let token = std::env::var(read_only::TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .with_context(|| {
            format!(
                "set {} to the token every route but /healthz will ask for",
                read_only::TOKEN_ENV
            )
        })?;
    let store = Store::open_read_only(database_url).await?;
    let listener = bind(listen).await?;
    eprintln!("{}{}", read_only::LISTENING, url(&listener));
    read_only::serve(
        store,
        steward_activities::dburl::redact(database_url),
        &token,
        listener,
        shutdown_signal(),
    )
    .await
}

/// Binds `listen`, naming the address when it cannot.
async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("the API cannot listen on {listen} (set `[api] listen` or pass --listen)")
        })
}

/// The URL of `listener`.
fn url(listener: &tokio::net::TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| format!("http://{a}/"))
        .unwrap_or_else(|_| "an unknown address".into())
}

/// The API `steward dev` serves beside its worker.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevApi {
    /// Where it listens.
    pub url: String,
    /// The link that signs the session's local operator in, once (only
    /// when the config declares no operators).
    pub sign_in: Option<String>,
    /// Who the local operator is.
    pub operator: Option<String>,
}

/// Serves the API beside `steward dev`'s worker until the process ends,
/// with a local operator for the session when the config declares none;
/// where, or why it could not listen.
pub async fn api_beside_dev(
    loaded: &Loaded,
    client: &Client,
    store: &Store,
) -> Result<DevApi, String> {
    let listener = bind(&loaded.config.api.listen)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let url = url(&listener);
    let text = std::fs::read(&loaded.path).unwrap_or_default();
    let mut api = Api::new(
        Watched::of(loaded.clone(), &text),
        client.clone(),
        store.clone(),
    )
    .map_err(|e| format!("{e:#}"))?;
    let mut dev = DevApi {
        url: url.clone(),
        sign_in: None,
        operator: None,
    };
    if loaded.config.operators.is_empty() {
        let name = std::env::var("USER")
            .ok()
            .filter(|u| {
                !u.is_empty()
                    && u.len() <= 63
                    && u.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            .unwrap_or_else(|| "local".into());
        let (local, secret) =
            crate::api::auth::LocalOperator::new(&name).map_err(|e| format!("{e:#}"))?;
        api = api.with_local(local);
        dev.sign_in = Some(format!(
            "{}/ui/signin/local?secret={secret}",
            url.trim_end_matches('/')
        ));
        dev.operator = Some(name);
    }
    tokio::spawn(async move {
        if let Err(e) = crate::api::serve(api, listener, std::future::pending()).await {
            eprintln!("steward dev: {e:#}");
        }
    });
    Ok(dev)
}

/// A spawned task that stops when its holder is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
