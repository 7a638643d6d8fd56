//! The failover drill's side effects: the preflight of the service's
//! primary and standbys (`service.rs` speaks to the hosts), the writer and
//! the probe that run across the failure (`observe.rs`), the trigger and the
//! recovery commands, the verification of every acknowledged marker and
//! the measurements (`measure.rs`, pure), the evidence. The drill's spec is
//! `spec.rs`.
//!
//! Everything a drill saw goes into its log in the state store
//! (`store/drill_log.rs`) as it happens, keyed by the workflow run, so each
//! step is idempotent and a drill whose worker was killed resumes and still
//! measures.

pub mod measure;
pub mod observe;
pub mod service;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use steward_proto::names;
use steward_proto::v1::{
    FailoverDrillInput, FailoverDrillResult, FailoverMeasured, FailoverObserved, FailoverPreflight,
    FailoverStep, RecoveryResult, TriggerResult,
};
use steward_proto::vocab::probe_line;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::command::Command;
use crate::failure::{permanent, retryable};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::drill_log::TRIGGER;
use crate::time::now_ms;
use service::{Service, timed};
pub use spec::{DrillSpec, Probe};

/// Log rows of the markers verification found, and that it finished.
const FOUND: &str = "found";
const VERIFIED: &str = "verified";

/// How long the trigger and the recovery command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// The failover drill's activities.
#[derive(Debug)]
pub struct FailoverActivities {
    drills: BTreeMap<String, DrillSpec>,
    store: Store,
    artifacts: PathBuf,
    metrics: Metrics,
}

impl FailoverActivities {
    /// Activities over `drills`, logging into `store`, writing evidence
    /// under `artifacts`.
    pub fn new(drills: Vec<DrillSpec>, store: Store, artifacts: PathBuf) -> Self {
        Self {
            drills: drills.into_iter().map(|d| (d.name.clone(), d)).collect(),
            store,
            artifacts,
            metrics: Metrics::default(),
        }
    }

    /// The same activities, recording drills into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn drill(&self, name: &str) -> Result<(&DrillSpec, Service), ActivityError> {
        let d = self
            .drills
            .get(name)
            .ok_or_else(|| permanent(format!("no drill named `{name}` in the config")))?;
        let s =
            Service::parse(&d.url).map_err(|e| permanent(format!("drill `{name}`: url {e}")))?;
        Ok((d, s))
    }

    async fn log(
        &self,
        run: &str,
        kind: &str,
        seq: i64,
        ok: bool,
        detail: String,
    ) -> Result<(), ActivityError> {
        observe::append(&self.store, run, kind, seq, ok, detail)
            .await
            .map_err(retryable)
    }

    /// The hosts' roles, the primary's streaming standbys and their lag;
    /// why the drill must not start, if it must not; the marker table.
    pub async fn preflight(
        &self,
        input: &FailoverDrillInput,
    ) -> Result<FailoverPreflight, ActivityError> {
        let (d, service) = self.drill(&input.drill)?;
        let max_lag = crate::upgrade::disk::parse_size(&d.max_standby_lag).map_err(permanent)?;
        let mut pre = FailoverPreflight {
            drill: d.name.clone(),
            hosts: service.roles().await,
            rto_seconds: d.rto_seconds,
            rpo_seconds: d.rpo_seconds,
            baseline_seconds: d.baseline_seconds,
            observe_seconds: d.observe_seconds,
            has_recovery: d.recovery.is_some(),
            trigger: d.trigger.clone(),
            trigger_note: d.trigger_note.clone(),
            service: service.redacted(),
            probe: d.probe.describe(),
            ..Default::default()
        };
        let primaries: Vec<&str> = pre
            .hosts
            .iter()
            .filter(|h| h.role == "primary")
            .map(|h| h.host.as_str())
            .collect();
        if primaries.len() > 1 {
            pre.refusal = format!(
                "more than one host accepts writes ({}): the cluster is split, not ready for a drill",
                primaries.join(", ")
            );
            return Ok(pre);
        }
        let Some(primary) = primaries.first().map(|h| h.to_string()) else {
            pre.refusal = format!(
                "no host accepts writes: {}",
                pre.hosts
                    .iter()
                    .map(|h| format!("{} {} {}", h.host, h.role, h.detail)
                        .trim()
                        .to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return Ok(pre);
        };
        let mut c = service.connect(&primary).await.map_err(retryable)?;
        let standbys = service::standbys(&mut c).await.map_err(retryable)?;
        // Every streaming standby is recorded with its lag, within the
        // limit or not, so a refusal shows how far behind they were.
        let mut seen = Vec::new();
        let mut within = false;
        for s in &standbys {
            if s.streaming() {
                within |= s.lag_bytes as u64 <= max_lag;
                pre.max_lag_bytes_seen = pre.max_lag_bytes_seen.max(s.lag_bytes as u64);
                pre.streaming.push(s.line());
            }
            seen.push(s.line());
        }
        if !within {
            pre.refusal = if seen.is_empty() {
                format!(
                    "no standby is streaming from the primary {primary} (pg_stat_replication is empty)"
                )
            } else {
                format!(
                    "no standby of the primary {primary} is streaming within max_standby_lag {}: {}",
                    d.max_standby_lag,
                    seen.join("; ")
                )
            };
            return Ok(pre);
        }
        let table = &d.marker_table;
        let existed: Option<String> = timed(
            sqlx::query_scalar(&format!("SELECT to_regclass('{table}')::text")).fetch_one(&mut c),
        )
        .await
        .map_err(retryable)?;
        timed(
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (run TEXT NOT NULL, seq BIGINT NOT NULL, \
                 written_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (run, seq))"
            ))
            .execute(&mut c),
        )
        .await
        .map_err(retryable)?;
        pre.created_table = existed.is_none();
        Ok(pre)
    }

    /// Runs the trigger once for the run: a retry after it was logged as
    /// ended returns that outcome without running it again.
    pub async fn trigger(&self, step: &FailoverStep) -> Result<TriggerResult, ActivityError> {
        let (d, _) = self.drill(&step.drill)?;
        let log = self
            .store
            .drill_log(&step.run)
            .await
            .map_err(|e| retryable(e.to_string()))?;
        if let Some(done) = log.iter().find(|r| r.kind == TRIGGER && r.seq == 1) {
            return Ok(TriggerResult {
                ok: done.ok,
                message: done.detail.clone(),
                at: crate::time::millis_text(
                    log.iter()
                        .find(|r| r.kind == TRIGGER && r.seq == 0)
                        .map_or(done.at_ms, |r| r.at_ms),
                ),
            });
        }
        let started = now_ms();
        self.log(&step.run, TRIGGER, 0, true, d.trigger.join(" "))
            .await?;
        let outcome = Command::new(d.trigger.iter().cloned())
            .timeout(COMMAND_TIMEOUT)
            .run_both()
            .await;
        let (ok, message) = match outcome {
            Ok((out, err)) => (
                true,
                format!("ran `{}`{}", d.trigger.join(" "), shown_output(&out, &err)),
            ),
            Err(e) => (false, e.to_string()),
        };
        self.log(&step.run, TRIGGER, 1, ok, message.clone()).await?;
        Ok(TriggerResult {
            ok,
            message,
            at: crate::time::millis_text(started),
        })
    }

    /// Which markers are on the service, recorded in the log before the
    /// drill's rows are removed (so a retry measures the same); the
    /// measurements; the hosts afterwards.
    pub async fn verify(&self, step: &FailoverStep) -> Result<FailoverMeasured, ActivityError> {
        let (d, service) = self.drill(&step.drill)?;
        let table = &d.marker_table;
        let mut log = self
            .store
            .drill_log(&step.run)
            .await
            .map_err(|e| retryable(e.to_string()))?;
        let mut verified_on = log
            .iter()
            .find(|r| r.kind == VERIFIED)
            .map(|r| r.detail.clone());
        if verified_on.is_none() {
            // The service may still be settling: give it a while.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let (host, mut c) = loop {
                match service.primary().await {
                    Ok(p) => break p,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Ok(FailoverMeasured {
                            error: format!("cannot verify the markers: {e}"),
                            hosts: service.roles().await,
                            ..Default::default()
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            };
            let found: Vec<i64> = timed(
                sqlx::query_scalar(&format!("SELECT seq FROM {table} WHERE run = $1"))
                    .bind(&step.run)
                    .fetch_all(&mut c),
            )
            .await
            .map_err(retryable)?;
            for seq in found {
                self.log(&step.run, FOUND, seq, true, host.clone()).await?;
            }
            self.log(&step.run, VERIFIED, 0, true, host.clone()).await?;
            verified_on = Some(host);
            log = self
                .store
                .drill_log(&step.run)
                .await
                .map_err(|e| retryable(e.to_string()))?;
        }
        let found: BTreeSet<i64> = log
            .iter()
            .filter(|r| r.kind == FOUND)
            .map(|r| r.seq)
            .collect();
        let mut measured = measure::measure(&log, &found);
        measured.verified_on = verified_on.unwrap_or_default();
        // The drill's rows go; its table too when the drill made it.
        if let Ok((_, mut c)) = service.primary().await {
            let _ = timed(
                sqlx::query(&format!("DELETE FROM {table} WHERE run = $1"))
                    .bind(&step.run)
                    .execute(&mut c),
            )
            .await;
            if step.created_table {
                let left: Result<i64, String> = timed(
                    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut c),
                )
                .await;
                if left == Ok(0) {
                    let _ = timed(
                        sqlx::query(&format!("DROP TABLE IF EXISTS {table}")).execute(&mut c),
                    )
                    .await;
                }
            }
        }
        measured.hosts = service.roles().await;
        Ok(measured)
    }

    /// Runs the recovery command (if any), then reads the hosts' roles.
    pub async fn recover(&self, step: &FailoverStep) -> Result<RecoveryResult, ActivityError> {
        let (d, service) = self.drill(&step.drill)?;
        let Some(argv) = &d.recovery else {
            return Ok(RecoveryResult {
                hosts: service.roles().await,
                ..Default::default()
            });
        };
        let outcome = Command::new(argv.iter().cloned())
            .timeout(COMMAND_TIMEOUT)
            .run_both()
            .await;
        let (ok, message) = match outcome {
            Ok((out, err)) => (
                true,
                format!("ran `{}`{}", argv.join(" "), shown_output(&out, &err)),
            ),
            Err(e) => (false, e.to_string()),
        };
        // A recovered cluster may take a moment to take its roles.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(RecoveryResult {
            ran: true,
            ok,
            message,
            hosts: service.roles().await,
        })
    }

    /// Writes `failover/<drill>/<started>-<run id>/report.json`, `report.md` and
    /// `report.json.sha256`, the progress event and the metrics.
    pub async fn record(
        &self,
        r: &FailoverDrillResult,
    ) -> Result<FailoverDrillResult, ActivityError> {
        let dir = self
            .artifacts
            .join("failover")
            .join(&r.drill)
            .join(crate::evidence::folder(&r.started_at, &r.run_id));
        let mut r = r.clone();
        let (json_path, md_path) = crate::evidence::paths(&dir);
        r.evidence_json = json_path.display().to_string();
        r.evidence_markdown = md_path.display().to_string();
        r.evidence_sha256.clear();
        let bytes = serde_json::to_vec_pretty(&r).unwrap_or_default();
        let written = crate::evidence::write(&dir, &bytes, &markdown(&r)).map_err(retryable)?;
        r.evidence_sha256 = written.sha256;
        let fresh = self
            .store
            .record_run(
                names::FAILOVER_EVENT_TYPE,
                &r.source,
                &r.workflow_id,
                &r.run_id,
                &r,
            )
            .await
            .map_err(|e| retryable(e.to_string()))?;
        if fresh {
            let m = r.measured.clone().unwrap_or_default();
            self.metrics
                .failover_drill(&r.drill, &r.outcome, m.rto_seconds, m.lost_writes);
        }
        Ok(r)
    }
}

/// A program's output as `: <first line>`, or nothing.
/// A script's output as its drill keeps it: the last
/// [`OUTPUT_TAIL_CHARS`] characters of its stdout and of its stderr, each
/// said when cut.
fn shown_output(stdout: &[u8], stderr: &str) -> String {
    let mut shown = String::new();
    for (name, text) in [
        ("stdout", String::from_utf8_lossy(stdout).into_owned()),
        ("stderr", stderr.to_string()),
    ] {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let n = text.chars().count();
        let tail: String = text
            .chars()
            .skip(n.saturating_sub(OUTPUT_TAIL_CHARS))
            .collect();
        let cut = if n > OUTPUT_TAIL_CHARS {
            " (its end)"
        } else {
            ""
        };
        shown.push_str(&format!("\n{name}{cut}:\n{tail}"));
    }
    shown
}

/// How much of each of a script's outputs a drill keeps.
const OUTPUT_TAIL_CHARS: usize = 2000;

/// What a report shows for a figure the drill did not measure.
const NOT_MEASURED: &str = "not measured";

/// The drill report as an operator reads it.
pub fn markdown(r: &FailoverDrillResult) -> String {
    let pre = r.preflight.clone().unwrap_or_default();
    let m = r.measured.clone().unwrap_or_default();
    let t = r.trigger.clone().unwrap_or_default();
    let o = r.observed.clone().unwrap_or_default();
    let mut s = String::new();
    let mut line = |text: String| {
        s.push_str(&text);
        s.push('\n');
    };
    line(format!("# Failover drill `{}`: {}", r.drill, r.outcome));
    line(String::new());
    line(r.message.clone());
    line(String::new());
    line(format!(
        "- run: `{}` (`{}`), started {} by {} ({})",
        r.workflow_id, r.run_id, r.started_at, r.operator, r.source
    ));
    line(format!("- service: `{}`", pre.service));
    line(format!(
        "- trigger: `{}`{}",
        pre.trigger.join(" "),
        if pre.trigger_note.is_empty() {
            String::new()
        } else {
            format!(" — {}", pre.trigger_note)
        }
    ));
    line(format!("- probe: {}", pre.probe));
    line(String::new());
    line("| | measured | target |".into());
    line("| --- | --- | --- |".into());
    // A drill refused, or whose writes never failed or were never
    // verified, measured nothing: it says so rather than print zeros.
    let rto = if m.first_failed_write.is_empty() || m.first_write_after.is_empty() {
        NOT_MEASURED.to_string()
    } else {
        format!("{:.2} s", m.rto_seconds)
    };
    let rpo = if r.measured.is_none() || m.verified_on.is_empty() {
        NOT_MEASURED.to_string()
    } else {
        format!("{} writes, {:.2} s", m.lost_writes, m.rpo_seconds)
    };
    line(format!(
        "| RTO (first failed write → first write after) | {rto} | {:.2} s |",
        pre.rto_seconds
    ));
    line(format!(
        "| RPO (acknowledged writes lost) | {rpo} | {:.2} s |",
        pre.rpo_seconds
    ));
    line(String::new());
    line("## Before".into());
    for h in &pre.hosts {
        line(format!("- {} {} {}", h.host, h.role, h.detail));
    }
    for s in &pre.streaming {
        line(format!("- streaming: {s}"));
    }
    line(String::new());
    line("## During".into());
    if t.at.is_empty() {
        line("- the trigger did not run".into());
    } else {
        line(format!("- trigger at {}: {}", t.at, t.message));
    }
    line(format!(
        "- writes: {} attempted, {} acknowledged, {} failed; observation ended: {}",
        o.writes_attempted, o.writes_acknowledged, o.writes_failed, o.ended
    ));
    line(format!(
        "- first failed write {}, first write after {}",
        m.first_failed_write, m.first_write_after
    ));
    for g in &m.writer_gaps {
        line(format!("- writer gap: {g}"));
    }
    line(format!("- probe: {}", probe_line(&m.probe)));
    if m.lost_writes > 0 {
        line(format!("- lost markers: {:?}", m.lost_markers));
    }
    line(String::new());
    line("## After".into());
    if m.verified_on.is_empty() {
        line(format!("- markers: {NOT_MEASURED}"));
    } else {
        line(format!("- markers verified on {}", m.verified_on));
    }
    for h in &m.hosts {
        line(format!("- {} {} {}", h.host, h.role, h.detail));
    }
    if let Some(rec) = &r.recovery
        && rec.ran
    {
        line(format!("- recovery: {}", rec.message));
        for h in &rec.hosts {
            line(format!(
                "- after recovery: {} {} {}",
                h.host, h.role, h.detail
            ));
        }
    }
    line(format!("- left: {}", r.left));
    line(String::new());
    line("Evidence: `report.json`, SHA-256 `{sha256}`.".into());
    s
}

fn failure(e: String) -> ActivityError {
    retryable(e)
}

#[activities]
impl FailoverActivities {
    /// Preflight. Idempotent: reads the hosts; creating the marker table
    /// is `IF NOT EXISTS`.
    #[activity(name = names::FAILOVER_PREFLIGHT)]
    pub async fn failover_preflight(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: FailoverDrillInput,
    ) -> Result<FailoverPreflight, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, self.preflight(&input)).await
    }

    /// Writer and probe. Idempotent: a retry resumes from the run's log
    /// (marker numbers go on from the last logged one; a marker written
    /// but not logged is written again with `ON CONFLICT DO NOTHING`).
    #[activity(name = names::FAILOVER_OBSERVE)]
    pub async fn failover_observe(
        self: Arc<Self>,
        ctx: ActivityContext,
        step: FailoverStep,
    ) -> Result<FailoverObserved, ActivityError> {
        let (d, service) = self.drill(&step.drill)?;
        let work = observe::observe(d, &service, &self.store, &step.run);
        crate::heartbeat::with_heartbeat(&ctx, async { work.await.map_err(failure) }).await
    }

    /// Trigger. Idempotent: logged when it starts and when it ends; a
    /// retry after the end returns the logged outcome, a retry in between
    /// runs it again (the command must be idempotent, as documented).
    #[activity(name = names::FAILOVER_TRIGGER)]
    pub async fn failover_trigger(
        self: Arc<Self>,
        ctx: ActivityContext,
        step: FailoverStep,
    ) -> Result<TriggerResult, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, self.trigger(&step)).await
    }

    /// Verification. Idempotent: the markers found are logged before the
    /// drill's rows are removed, and a retry measures from the log.
    #[activity(name = names::FAILOVER_VERIFY)]
    pub async fn failover_verify(
        self: Arc<Self>,
        ctx: ActivityContext,
        step: FailoverStep,
    ) -> Result<FailoverMeasured, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, self.verify(&step)).await
    }

    /// Recovery. Idempotent as the configured command is (documented).
    #[activity(name = names::FAILOVER_RECOVER)]
    pub async fn failover_recover(
        self: Arc<Self>,
        ctx: ActivityContext,
        step: FailoverStep,
    ) -> Result<RecoveryResult, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, self.recover(&step)).await
    }

    /// Evidence and progress event. Idempotent: the same result writes the
    /// same bytes; the event's id is the workflow run.
    #[activity(name = names::FAILOVER_RECORD)]
    pub async fn failover_record(
        self: Arc<Self>,
        _ctx: ActivityContext,
        r: FailoverDrillResult,
    ) -> Result<FailoverDrillResult, ActivityError> {
        self.record(&r).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_proto::v1::{FailoverMeasured, FailoverPreflight};

    #[test]
    fn a_refused_drill_says_not_measured_instead_of_zeros() {
        let refused = FailoverDrillResult {
            drill: "db".into(),
            outcome: "refused".into(),
            preflight: Some(FailoverPreflight {
                rto_seconds: 30.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        let md = markdown(&refused);
        assert!(
            md.contains(
                "| RTO (first failed write → first write after) | not measured | 30.00 s |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| RPO (acknowledged writes lost) | not measured |"),
            "{md}"
        );
        assert!(md.contains("the trigger did not run"), "{md}");
        assert!(!md.contains("0.00 s |  30"), "{md}");

        let measured = FailoverDrillResult {
            measured: Some(FailoverMeasured {
                rto_seconds: 0.25,
                first_failed_write: "2026-12-07T05:00:00.100Z".into(),
                first_write_after: "2026-12-07T05:00:00.350Z".into(),
                verified_on: "127.0.0.1:5433".into(),
                ..Default::default()
            }),
            ..refused
        };
        let md = markdown(&measured);
        assert!(md.contains("| 0.25 s | 30.00 s |"), "{md}");
        assert!(md.contains("| 0 writes, 0.00 s |"), "{md}");
        assert!(md.contains("markers verified on 127.0.0.1:5433"), "{md}");
    }

    #[test]
    fn a_scripts_output_is_kept_whole_up_to_a_bound_from_both_streams() {
        let shown = shown_output(
            b"waiting for server to shut down.... done\nserver stopped\n",
            "Cluster is not running.\n",
        );
        assert_eq!(
            shown,
            "\nstdout:\nwaiting for server to shut down.... done\nserver stopped\nstderr:\nCluster is not running."
        );
        let long = "x".repeat(OUTPUT_TAIL_CHARS) + "the end";
        let shown = shown_output(long.as_bytes(), "");
        assert!(shown.starts_with("\nstdout (its end):\n"), "{shown}");
        assert!(shown.ends_with("the end"));
        assert_eq!(
            shown.chars().count(),
            "\nstdout (its end):\n".len() + OUTPUT_TAIL_CHARS
        );
        assert_eq!(shown_output(b"", "  \n"), "");
    }
}
