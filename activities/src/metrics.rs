//! steward's own metrics, recorded by activities (never by workflow code,
//! which replays) through the same meter as the SDK's metrics, so one
//! Prometheus endpoint serves both. Without a meter every call is a no-op.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use steward_proto::v1::SweepResult;
use steward_proto::vocab::{BackfillStage, RepoStatus};
use temporalio_common::telemetry::metrics::{
    CoreMeter, Counter, GaugeF64, HistogramF64, MetricKeyValue, MetricParameters, NewAttributes,
    NoOpCoreMeter,
};

/// Every family steward's worker exports, as Prometheus shows it (a
/// counter with `_total`, a histogram by its base name): what the rules
/// and the dashboard under `deploy/` may query. The metrics test checks
/// the worker's endpoint against it.
pub const EXPORTED: &[&str] = &[
    "steward_sweeps_total",
    "steward_sweep_duration_seconds",
    "steward_sweep_repos_total",
    "steward_sweep_automation_errors_total",
    "steward_findings_opened_total",
    "steward_findings_open",
    "steward_sweep_lock_skips_total",
    "steward_backfill_rows_total",
    "steward_backfill_rows_per_second",
    "steward_backfill_phase",
    "steward_backfill_lag_seconds",
    "steward_backfill_max_lag_seconds",
    "steward_backfill_job_errors_total",
    "steward_backfill_idempotency_violations_total",
    "steward_backfill_throttle_value",
    "steward_backfill_throttle_max",
    "steward_upgrades_total",
    "steward_alerts_total",
    "steward_restore_drills_total",
    "steward_restore_drill_restore_seconds",
    "steward_disk_free_bytes",
    "steward_failover_drills_total",
    "steward_failover_rto_seconds",
    "steward_failover_lost_writes",
    "steward_retries_total",
    "steward_host_workers",
    "steward_drill_standbys_streaming",
    "steward_drill_standby_lag_bytes",
    "steward_drill_standby_lag_seconds",
    "steward_store_failovers_total",
    "steward_store_failover_seconds",
    "steward_alert_delivery_failures_total",
    "steward_alert_deliveries_pending",
    "steward_backfill_validation_value",
    "steward_backfill_validation_ok",
];

/// Handles to every steward metric. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    meter: Arc<dyn CoreMeter>,
    sweeps: Counter,
    sweep_duration: HistogramF64,
    sweep_repos: Counter,
    automation_errors: Counter,
    findings_opened: Counter,
    findings_open: GaugeF64,
    lock_skips: Counter,
    backfill_rows: Counter,
    backfill_rate: GaugeF64,
    backfill_phase: GaugeF64,
    upgrades: Counter,
    alerts: Counter,
    restore_drills: Counter,
    restore_seconds: GaugeF64,
    disk_free: GaugeF64,
    failover_drills: Counter,
    failover_rto: GaugeF64,
    failover_lost: GaugeF64,
    retries: Counter,
    host_workers: GaugeF64,
    standbys_streaming: GaugeF64,
    standby_lag: GaugeF64,
    standby_lag_seconds: GaugeF64,
    store_failovers: Counter,
    store_failover_seconds: GaugeF64,
    backfill_lag: GaugeF64,
    backfill_max_lag: GaugeF64,
    job_errors: Counter,
    idempotency_violations: Counter,
    throttle_value: GaugeF64,
    throttle_max: GaugeF64,
    alert_delivery_failures: Counter,
    alert_deliveries_pending: GaugeF64,
    validation_value: GaugeF64,
    validation_ok: GaugeF64,
    /// The phase each backfill was last seen in, so the old phase's gauge
    /// drops to 0 when a new one is set.
    phases: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Arc::new(NoOpCoreMeter))
    }
}

fn param(name: &'static str, description: &'static str, unit: &'static str) -> MetricParameters {
    MetricParameters::builder()
        .name(name)
        .description(description)
        .unit(unit)
        .build()
}

impl Metrics {
    /// Metrics recorded into `meter`.
    pub fn new(meter: Arc<dyn CoreMeter>) -> Self {
        Self {
            sweeps: meter.counter(param(
                "steward_sweeps",
                "Consistency sweeps finished, by source and outcome",
                "",
            )),
            sweep_duration: meter.histogram_f64(param(
                "steward_sweep_duration_seconds",
                "Wall time of a consistency sweep",
                "s",
            )),
            sweep_repos: meter.counter(param(
                "steward_sweep_repos",
                "Repos visited by sweeps, by status (processed, skipped_clean, skipped_missing, skipped_budget, error)",
                "",
            )),
            automation_errors: meter.counter(param(
                "steward_sweep_automation_errors",
                "Repos whose sweep activity failed",
                "",
            )),
            findings_opened: meter.counter(param(
                "steward_findings_opened",
                "Findings sweeps opened in the ledger, by check",
                "",
            )),
            findings_open: meter.gauge_f64(param(
                "steward_findings_open",
                "Open findings of the whole estate after the last sweep",
                "",
            )),
            lock_skips: meter.counter(param(
                "steward_sweep_lock_skips",
                "Sweeps that found the sweep lock held and did nothing",
                "",
            )),
            backfill_rows: meter.counter(param(
                "steward_backfill_rows",
                "Rows applied by backfill batches",
                "",
            )),
            backfill_rate: meter.gauge_f64(param(
                "steward_backfill_rows_per_second",
                "Rows per second of the last applied batch",
                "",
            )),
            backfill_phase: meter.gauge_f64(param(
                "steward_backfill_phase",
                "1 for the phase a backfill was last seen in, 0 for the others",
                "",
            )),
            upgrades: meter.counter(param(
                "steward_upgrades",
                "Warm upgrades finished, by app and outcome",
                "",
            )),
            alerts: meter.counter(param(
                "steward_alerts",
                "Alerts raised, by severity and kind",
                "",
            )),
            restore_drills: meter.counter(param(
                "steward_restore_drills",
                "Restore drills finished, by outcome",
                "",
            )),
            restore_seconds: meter.gauge_f64(param(
                "steward_restore_drill_restore_seconds",
                "Time the last restore drill took to restore the backup",
                "s",
            )),
            disk_free: meter.gauge_f64(param(
                "steward_disk_free_bytes",
                "Bytes free on the filesystem of each folder steward writes to, by path and use",
                "By",
            )),
            failover_drills: meter.counter(param(
                "steward_failover_drills",
                "Failover drills finished, by drill and outcome",
                "",
            )),
            failover_rto: meter.gauge_f64(param(
                "steward_failover_rto_seconds",
                "RTO the last failover drill measured, by drill",
                "s",
            )),
            failover_lost: meter.gauge_f64(param(
                "steward_failover_lost_writes",
                "Acknowledged writes the last failover drill found lost, by drill",
                "",
            )),
            retries: meter.counter(param(
                "steward_retries",
                "Work done again after it failed: a repo's pass inside a sweep batch, or an \
                 activity attempt after the first, by step and reason",
                "",
            )),
            host_workers: meter.gauge_f64(param(
                "steward_host_workers",
                "Workers polling each host's task queue, for the hosts `runs_on` pins steps to",
                "",
            )),
            standbys_streaming: meter.gauge_f64(param(
                "steward_drill_standbys_streaming",
                "Standbys streaming from the primary of each drilled service (-1: no primary \
                 reachable), checked outside drills",
                "",
            )),
            standby_lag: meter.gauge_f64(param(
                "steward_drill_standby_lag_bytes",
                "Replay lag of each standby of a drilled service, in bytes",
                "By",
            )),
            standby_lag_seconds: meter.gauge_f64(param(
                "steward_drill_standby_lag_seconds",
                "Replay lag of each standby of a drilled service, in seconds (replay_lag)",
                "s",
            )),
            store_failovers: meter.counter(param(
                "steward_store_failovers",
                "Failovers of the state store this process followed, by the host it writes to now",
                "",
            )),
            store_failover_seconds: meter.gauge_f64(param(
                "steward_store_failover_seconds",
                "The last failover's RTO as this process saw it: from the old primary's last answer to the switch",
                "s",
            )),
            backfill_lag: meter.gauge_f64(param(
                "steward_backfill_lag_seconds",
                "The replication lag a backfill's lag_sql last read",
                "s",
            )),
            backfill_max_lag: meter.gauge_f64(param(
                "steward_backfill_max_lag_seconds",
                "The lag over which a backfill throttles, as configured (max_lag_seconds)",
                "s",
            )),
            job_errors: meter.counter(param(
                "steward_backfill_job_errors",
                "Errors a job-driven backfill's job reported",
                "",
            )),
            idempotency_violations: meter.counter(param(
                "steward_backfill_idempotency_violations",
                "Idempotency violations a job-driven backfill's job reported",
                "",
            )),
            throttle_value: meter.gauge_f64(param(
                "steward_backfill_throttle_value",
                "A backfill's named throttle as last read (batches wait while it is over its max)",
                "",
            )),
            throttle_max: meter.gauge_f64(param(
                "steward_backfill_throttle_max",
                "The value over which a backfill's named throttle holds its batches",
                "",
            )),
            alert_delivery_failures: meter.counter(param(
                "steward_alert_delivery_failures",
                "Tries to hand an alert to a sink (alertmanager) that failed; each is retried",
                "",
            )),
            alert_deliveries_pending: meter.gauge_f64(param(
                "steward_alert_deliveries_pending",
                "Alerts not yet handed to a sink (alertmanager)",
                "",
            )),
            validation_value: meter.gauge_f64(param(
                "steward_backfill_validation_value",
                "The number each validation of a backfill last returned (the runbook's idempotency violations are one)",
                "",
            )),
            validation_ok: meter.gauge_f64(param(
                "steward_backfill_validation_ok",
                "1 when a backfill's validation last held, 0 when it did not",
                "",
            )),
            phases: Arc::default(),
            meter,
        }
    }

    fn labels(
        &self,
        pairs: &[(&str, &str)],
    ) -> temporalio_common::telemetry::metrics::MetricAttributes {
        self.meter.new_attributes(NewAttributes::from(
            pairs
                .iter()
                .map(|(k, v)| MetricKeyValue::new(*k, v.to_string())),
        ))
    }

    /// A finished sweep.
    pub fn sweep(&self, r: &SweepResult) {
        let outcome = if r.lock_skipped {
            "lock_skipped"
        } else if r.automation_error {
            "automation_error"
        } else {
            "ok"
        };
        let source = r.source.as_str();
        self.sweeps
            .add(1, &self.labels(&[("source", source), ("outcome", outcome)]));
        self.sweep_duration
            .record(r.duration_seconds, &self.labels(&[("source", source)]));
        if r.lock_skipped {
            self.lock_skips.add(1, &self.labels(&[("source", source)]));
            return;
        }
        let counts = r.counts();
        for (status, n) in [
            (RepoStatus::Processed.as_str(), counts.processed),
            (RepoStatus::SkippedClean.as_str(), counts.skipped_clean),
            (RepoStatus::SkippedMissing.as_str(), counts.skipped_missing),
            ("skipped_budget", counts.skipped_budget),
            ("error", counts.automation_errors),
        ] {
            self.sweep_repos
                .add(u64::from(n), &self.labels(&[("status", status)]));
        }
        for e in &r.automation_errors {
            self.automation_errors
                .add(1, &self.labels(&[("repo", &e.repo)]));
        }
        for f in &r.findings_opened {
            self.findings_opened
                .add(1, &self.labels(&[("check", &f.check)]));
        }
        self.findings_open
            .record(f64::from(r.open_findings), &self.labels(&[]));
    }

    /// A batch of `backfill` applied `rows` in `seconds`.
    pub fn backfill_batch(&self, backfill: &str, rows: u64, seconds: f64) {
        let labels = self.labels(&[("backfill", backfill)]);
        self.backfill_rows.add(rows, &labels);
        if seconds > 0.0 {
            self.backfill_rate.record(rows as f64 / seconds, &labels);
        }
    }

    /// `backfill` is now at `stage` (a phase, or its outcome once ended).
    pub fn backfill_phase(&self, backfill: &str, stage: BackfillStage) {
        let phase = stage.as_str();
        let previous = {
            let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
            phases.insert(backfill.to_string(), phase.to_string())
        };
        if let Some(old) = previous.filter(|old| old != phase) {
            self.backfill_phase.record(
                0.0,
                &self.labels(&[("backfill", backfill), ("phase", &old)]),
            );
        }
        self.backfill_phase.record(
            1.0,
            &self.labels(&[("backfill", backfill), ("phase", phase)]),
        );
    }

    /// A warm upgrade of `app` ended with `outcome`.
    pub fn upgrade(&self, app: &str, outcome: &str) {
        self.upgrades
            .add(1, &self.labels(&[("app", app), ("outcome", outcome)]));
    }

    /// An alert was raised.
    pub fn alert(&self, severity: &str, kind: &str) {
        self.alerts
            .add(1, &self.labels(&[("severity", severity), ("kind", kind)]));
    }

    /// `bytes` are free on the filesystem of `path`, which steward uses
    /// for `what` (`data`, `snapshots sso`, ...).
    pub fn disk_free(&self, path: &str, what: &str, bytes: u64) {
        self.disk_free
            .record(bytes as f64, &self.labels(&[("path", path), ("use", what)]));
    }

    /// A failover drill of `drill` ended with `outcome`, measuring `rto`
    /// seconds and `lost` acknowledged writes lost.
    pub fn failover_drill(&self, drill: &str, outcome: &str, rto: f64, lost: u64) {
        self.failover_drills
            .add(1, &self.labels(&[("drill", drill), ("outcome", outcome)]));
        let labels = self.labels(&[("drill", drill)]);
        self.failover_rto.record(rto, &labels);
        self.failover_lost.record(lost as f64, &labels);
    }

    /// The drilled service `drill` has `n` streaming standbys (-1: no
    /// primary was reachable).
    pub fn standbys_streaming(&self, drill: &str, n: i64) {
        self.standbys_streaming
            .record(n as f64, &self.labels(&[("drill", drill)]));
    }

    /// Standby `standby` of `drill` lags `bytes` behind its primary.
    pub fn standby_lag(&self, drill: &str, standby: &str, bytes: i64, seconds: f64) {
        let labels = self.labels(&[("drill", drill), ("standby", standby)]);
        self.standby_lag.record(bytes as f64, &labels);
        self.standby_lag_seconds.record(seconds, &labels);
    }

    /// Backfill `backfill` read a lag of `seconds`; it throttles over `max`.
    pub fn backfill_lag(&self, backfill: &str, seconds: f64, max: f64) {
        let labels = self.labels(&[("backfill", backfill)]);
        self.backfill_lag.record(seconds, &labels);
        self.backfill_max_lag.record(max, &labels);
    }

    /// Backfill `backfill`'s job reported `errors` and `violations` in a
    /// batch.
    pub fn backfill_job_reported(&self, backfill: &str, errors: u64, violations: u64) {
        let labels = self.labels(&[("backfill", backfill)]);
        self.job_errors.add(errors, &labels);
        self.idempotency_violations.add(violations, &labels);
    }

    /// Backfill `backfill`'s throttle `throttle` read `value` against
    /// `max`.
    pub fn backfill_throttle(&self, backfill: &str, throttle: &str, value: f64, max: f64) {
        let labels = self.labels(&[("backfill", backfill), ("throttle", throttle)]);
        self.throttle_value.record(value, &labels);
        self.throttle_max.record(max, &labels);
    }

    /// Backfill `backfill`'s validation `validation` returned `value`
    /// (when a number) and held or not.
    pub fn backfill_validation(
        &self,
        backfill: &str,
        validation: &str,
        value: Option<f64>,
        ok: bool,
    ) {
        let labels = self.labels(&[("backfill", backfill), ("validation", validation)]);
        if let Some(v) = value {
            self.validation_value.record(v, &labels);
        }
        self.validation_ok
            .record(if ok { 1.0 } else { 0.0 }, &labels);
    }

    /// A try to hand an alert to `sink` failed.
    pub fn alert_delivery_failed(&self, sink: &str) {
        self.alert_delivery_failures
            .add(1, &self.labels(&[("sink", sink)]));
    }

    /// `n` alerts wait to be handed to `sink`.
    pub fn alert_deliveries_pending(&self, sink: &str, n: usize) {
        self.alert_deliveries_pending
            .record(n as f64, &self.labels(&[("sink", sink)]));
    }

    /// The store failed over to `host` after `seconds`.
    pub fn store_failover(&self, host: &str, seconds: f64) {
        let labels = self.labels(&[("host", host)]);
        self.store_failovers.add(1, &labels);
        self.store_failover_seconds.record(seconds, &labels);
    }

    /// `n` workers poll the queue of `host`.
    pub fn host_workers(&self, host: &str, n: usize) {
        self.host_workers
            .record(n as f64, &self.labels(&[("host", host)]));
    }

    /// `step` failed for `reason` and is done again.
    pub fn retry(&self, step: &str, reason: &str) {
        self.retries
            .add(1, &self.labels(&[("step", step), ("reason", reason)]));
    }

    /// A restore drill ended with `outcome` after restoring in `seconds`.
    pub fn restore_drill(&self, backend: &str, outcome: &str, seconds: f64) {
        self.restore_drills.add(
            1,
            &self.labels(&[("backend", backend), ("outcome", outcome)]),
        );
        self.restore_seconds
            .record(seconds, &self.labels(&[("backend", backend)]));
    }
}
