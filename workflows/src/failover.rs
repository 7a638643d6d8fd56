//! `FailoverDrill`: a documented failure of a database primary, drilled.
//! Preflight (a primary with a streaming standby within the lag bound, or
//! the drill refuses, naming why) → the writer and the probe start → after
//! the baseline, the trigger → observation until writes succeed again →
//! verification of every acknowledged marker → optional recovery →
//! evidence, progress event, and an alert when a target was missed, a
//! marker was lost, or the drill failed. A lease lock per drill keeps two
//! drills of one service apart.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use steward_proto::activities::{
    AcquireLock, FailoverObserve, FailoverPreflightActivity, FailoverRecord, FailoverRecover,
    FailoverTrigger, FailoverVerify, ReleaseLock,
};
use steward_proto::v1::{
    FailoverDrillInput, FailoverDrillResult, FailoverMeasured, FailoverObserved, FailoverPreflight,
    FailoverStatus, FailoverStep, LockRelease, LockRequest, RecoveryResult, TriggerResult,
};
use steward_proto::vocab::{
    FailoverOutcome, FailoverPhase, FailoverStage, PlacementKind, Severity, probe_line,
};
use steward_proto::{ids, names};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::join;
use temporalio_sdk::{
    ActivityOptions, TimerOptions, WorkflowCancellationToken, WorkflowContext, WorkflowContextView,
    WorkflowResult,
};

use crate::alert::{NewAlert, detail};
use crate::failure::failure_message;
use crate::hosts;
use crate::options::summarized;
use crate::time::rfc3339;

/// The failover drill workflow.
/// Patch that made a drill whose preflight failed record its failure and
/// release its lease instead of failing the run.
pub const FAILED_PREFLIGHT_PATCH: &str = "steward-failover-failed-preflight";

#[workflow]
#[derive(Default)]
pub struct FailoverDrill {
    input: FailoverDrillInput,
    stage: FailoverStage,
}

#[workflow_methods]
impl FailoverDrill {
    /// Takes the input.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: FailoverDrillInput) -> Self {
        Self {
            input,
            stage: FailoverStage::default(),
        }
    }

    /// Runs the drill to a measured, verified result.
    #[run(name = names::FAILOVER_DRILL)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<FailoverDrillResult> {
        let input = ctx.state(|s| s.input.clone());
        let started = ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH);
        let mut result = FailoverDrillResult {
            drill: input.drill.clone(),
            workflow_id: ctx.workflow_id().to_string(),
            run_id: ctx.run_id().to_string(),
            started_at: rfc3339(started),
            source: input.source.clone(),
            operator: input.operator.clone(),
            ..Default::default()
        };
        let lock = ids::failover_lock(&input.drill);
        let grant = ctx
            .execute_activity(
                AcquireLock,
                LockRequest {
                    name: lock.clone(),
                    holder: ctx.run_id().to_string(),
                    ttl_seconds: 3600,
                },
                summarized(short(), format!("lock {lock}")),
            )
            .await?;
        if !grant.acquired {
            result.outcome = FailoverOutcome::Refused.into();
            result.message = format!(
                "another drill of `{}` is running (workflow run {})",
                input.drill, grant.holder
            );
            return Self::finish(ctx, result, false).await;
        }

        let pins = hosts::place(ctx, "failover", PlacementKind::Drill, &input.drill).await?;
        let pre = match ctx
            .execute_activity(
                FailoverPreflightActivity,
                input.clone(),
                summarized(
                    heartbeating(120, 3),
                    format!("preflight of {}", input.drill),
                ),
            )
            .await
        {
            Ok(pre) => pre,
            // A drill that fails before it begins (one the worker's config
            // does not have, a service it cannot parse) still leaves its
            // evidence, progress event and alert, and lets go of its lease.
            Err(e) if ctx.patched(FAILED_PREFLIGHT_PATCH) => {
                result.outcome = FailoverOutcome::Failed.into();
                result.message = format!("the preflight failed: {}", failure_message(&e));
                result.left = "as found (nothing was done)".into();
                return Self::finish(ctx, result, true).await;
            }
            Err(e) => return Err(e.into()),
        };
        result.preflight = Some(pre.clone());
        if !pre.refusal.is_empty() {
            result.outcome = FailoverOutcome::Refused.into();
            result.message = format!("refused to start: {}", pre.refusal);
            result.left = "as found (nothing was done)".into();
            return Self::finish(ctx, result, true).await;
        }

        let step = FailoverStep {
            drill: input.drill.clone(),
            run: ctx.run_id().to_string(),
            created_table: pre.created_table,
        };
        enter(ctx, FailoverPhase::Baseline);
        ctx.set_current_details(format!(
            "writing markers to {} for {}s before the trigger",
            pre.service, pre.baseline_seconds
        ));
        let observe_budget = u64::from(pre.baseline_seconds) + u64::from(pre.observe_seconds) + 300;
        let observing = ctx.execute_activity(
            FailoverObserve,
            step.clone(),
            summarized(
                heartbeating(observe_budget, 5),
                format!("write markers every 100 ms and probe {}", pre.service),
            ),
        );
        let triggering = async {
            let baseline = TimerOptions::builder(Duration::from_secs(pre.baseline_seconds.into()))
                .summary(format!(
                    "{}s of writes before the trigger",
                    pre.baseline_seconds
                ))
                .build();
            ctx.timer(baseline).await;
            enter(ctx, FailoverPhase::Observing);
            ctx.set_current_details(format!(
                "trigger `{}`; waiting for writes to succeed again (up to {}s)",
                pre.trigger.join(" "),
                pre.observe_seconds
            ));
            pins.run(
                ctx,
                &input.drill,
                FailoverTrigger,
                step.clone(),
                summarized(
                    heartbeating(600, 3),
                    format!("trigger: {}", pre.trigger.join(" ")),
                ),
            )
            .await
        };
        let (observed, triggered) = join!(observing, triggering);
        let trigger = triggered.unwrap_or_else(|e| TriggerResult {
            ok: false,
            message: failure_message(&e),
            at: String::new(),
        });
        let observed = observed.unwrap_or_else(|e| FailoverObserved {
            ended: format!("observation failed: {}", failure_message(&e)),
            ..Default::default()
        });

        enter(ctx, FailoverPhase::Verifying);
        let measured = ctx
            .execute_activity(
                FailoverVerify,
                step.clone(),
                summarized(heartbeating(300, 5), "verify every acknowledged marker"),
            )
            .await
            .unwrap_or_else(|e| FailoverMeasured {
                error: failure_message(&e),
                ..Default::default()
            });
        let mut after = measured.hosts.clone();
        if pre.has_recovery {
            enter(ctx, FailoverPhase::Recovering);
            let recovery = pins
                .run(
                    ctx,
                    &input.drill,
                    FailoverRecover,
                    step.clone(),
                    summarized(heartbeating(600, 3), "run the recovery command"),
                )
                .await
                .unwrap_or_else(|e| RecoveryResult {
                    ran: true,
                    ok: false,
                    message: failure_message(&e),
                    hosts: vec![],
                });
            if !recovery.hosts.is_empty() {
                after = recovery.hosts.clone();
            }
            result.recovery = Some(recovery);
        }
        result.left = left(&pre, &after);
        let (outcome, message) = judge(&pre, &trigger, &observed, &measured);
        result.outcome = outcome.into();
        result.message = message;
        result.trigger = Some(trigger);
        result.observed = Some(observed);
        result.measured = Some(measured);
        Self::finish(ctx, result, true).await
    }

    /// Records, alerts, releases the lock.
    async fn finish(
        ctx: &mut WorkflowContext<Self>,
        result: FailoverDrillResult,
        locked: bool,
    ) -> WorkflowResult<FailoverDrillResult> {
        enter(ctx, FailoverPhase::Recording);
        let result = ctx
            .execute_activity(
                FailoverRecord,
                result.clone(),
                summarized(short(), format!("record the {} drill", result.outcome)),
            )
            .await?;
        let outcome: FailoverOutcome = result.outcome.parse().unwrap_or(FailoverOutcome::Failed);
        let lost = result.measured.as_ref().map_or(0, |m| m.lost_writes);
        let severity = match outcome {
            FailoverOutcome::Passed if lost == 0 => Severity::Info,
            FailoverOutcome::Refused => Severity::Warning,
            FailoverOutcome::Passed | FailoverOutcome::TargetMissed | FailoverOutcome::Failed => {
                Severity::Critical
            }
        };
        let m = result.measured.clone().unwrap_or_default();
        NewAlert {
            id: format!("{}-failover-drill", ctx.run_id()),
            severity,
            kind: format!("failover.{outcome}"),
            subject: result.drill.clone(),
            message: format!(
                "failover drill `{}` {outcome}: {}",
                result.drill, result.message
            ),
            at: ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH),
            detail: detail([
                ("workflow_id", result.workflow_id.clone().into()),
                ("rto_seconds", Value::from(m.rto_seconds)),
                ("lost_writes", Value::from(m.lost_writes)),
                ("rpo_seconds", Value::from(m.rpo_seconds)),
                ("left", result.left.clone().into()),
                ("evidence", result.evidence_json.clone().into()),
            ]),
        }
        .raise(ctx)
        .await?;
        if locked {
            let lock = ids::failover_lock(&result.drill);
            let mut release = summarized(short(), format!("unlock {lock}"));
            release.cancellation_token = Some(WorkflowCancellationToken::new());
            ctx.execute_activity(
                ReleaseLock,
                LockRelease {
                    name: lock,
                    holder: ctx.run_id().to_string(),
                },
                release,
            )
            .await?;
        }
        ctx.state_mut(|s| s.stage = FailoverStage::Ended(outcome));
        ctx.set_current_details(format!("ended: {outcome}: {}", result.message));
        Ok(result)
    }

    /// The drill's phase, or its outcome once ended.
    #[query(name = names::FAILOVER_STATUS_QUERY)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> FailoverStatus {
        FailoverStatus {
            drill: self.input.drill.clone(),
            phase: self.stage.as_str().into(),
            outcome: self.stage.outcome().map(String::from).unwrap_or_default(),
        }
    }
}

fn enter(ctx: &WorkflowContext<FailoverDrill>, phase: FailoverPhase) {
    ctx.state_mut(|s| s.stage = FailoverStage::Running(phase));
}

/// What the drill left, against what it found.
fn left(pre: &FailoverPreflight, after: &[steward_proto::v1::HostRole]) -> String {
    let moved: Vec<String> = pre
        .hosts
        .iter()
        .filter_map(|b| {
            let now = after
                .iter()
                .find(|a| a.host == b.host)
                .map_or("unknown", |a| a.role.as_str());
            (now != b.role).then(|| format!("{}: {} → {now}", b.host, b.role))
        })
        .collect();
    if moved.is_empty() {
        "as found".into()
    } else {
        format!("changed: {}", moved.join("; "))
    }
}

/// The outcome and its one-line message, from what the drill saw.
pub fn judge(
    pre: &FailoverPreflight,
    trigger: &TriggerResult,
    observed: &FailoverObserved,
    m: &FailoverMeasured,
) -> (FailoverOutcome, String) {
    let probe = probe_line(&m.probe);
    if !trigger.ok {
        return (
            FailoverOutcome::Failed,
            format!("the trigger failed: {}", trigger.message),
        );
    }
    if !m.error.is_empty() {
        return (
            FailoverOutcome::Failed,
            format!("the markers could not be verified: {}", m.error),
        );
    }
    match observed.ended.as_str() {
        "recovered" => {}
        "never failed" => {
            return (
                FailoverOutcome::Failed,
                format!(
                    "the trigger did not interrupt writes: every write in {}s after it succeeded ({} acknowledged); the probe: {probe}",
                    pre.observe_seconds, m.writes_acknowledged
                ),
            );
        }
        "not recovered" => {
            return (
                FailoverOutcome::Failed,
                format!(
                    "writes did not succeed again within {}s of the trigger (first failed {}); the probe: {probe}",
                    pre.observe_seconds, m.first_failed_write
                ),
            );
        }
        other => {
            return (
                FailoverOutcome::Failed,
                format!("the observation ended: {other}; the probe: {probe}"),
            );
        }
    }
    let mut missed = Vec::new();
    if m.rto_seconds > pre.rto_seconds {
        missed.push(format!(
            "RTO {:.2}s over the target {:.2}s",
            m.rto_seconds, pre.rto_seconds
        ));
    }
    if m.lost_writes > 0 && m.rpo_seconds > pre.rpo_seconds {
        missed.push(format!(
            "RPO {:.2}s ({} acknowledged writes lost) over the target {:.2}s",
            m.rpo_seconds, m.lost_writes, pre.rpo_seconds
        ));
    }
    let figures = format!(
        "RTO {:.2}s (target {:.2}s), {} acknowledged writes lost (RPO {:.2}s, target {:.2}s), verified on {}",
        m.rto_seconds,
        pre.rto_seconds,
        m.lost_writes,
        m.rpo_seconds,
        pre.rpo_seconds,
        m.verified_on
    );
    if missed.is_empty() {
        (FailoverOutcome::Passed, figures)
    } else {
        (
            FailoverOutcome::TargetMissed,
            format!("{}; {figures}", missed.join("; ")),
        )
    }
}

fn short() -> ActivityOptions {
    crate::options::quick(60, 5)
}

fn heartbeating(start_to_close: u64, attempts: u32) -> ActivityOptions {
    crate::options::heartbeating(start_to_close, attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre() -> FailoverPreflight {
        FailoverPreflight {
            rto_seconds: 5.0,
            rpo_seconds: 0.0,
            observe_seconds: 30,
            ..Default::default()
        }
    }

    #[test]
    fn targets_decide_passed_or_missed_and_a_quiet_trigger_fails() {
        let ok = TriggerResult {
            ok: true,
            ..Default::default()
        };
        let recovered = FailoverObserved {
            ended: "recovered".into(),
            ..Default::default()
        };
        let fast = FailoverMeasured {
            rto_seconds: 1.5,
            ..Default::default()
        };
        assert_eq!(
            judge(&pre(), &ok, &recovered, &fast).0,
            FailoverOutcome::Passed
        );
        let slow = FailoverMeasured {
            rto_seconds: 9.0,
            ..Default::default()
        };
        let (o, m) = judge(&pre(), &ok, &recovered, &slow);
        assert_eq!(o, FailoverOutcome::TargetMissed);
        assert!(m.contains("RTO 9.00s over the target 5.00s"), "{m}");
        let lossy = FailoverMeasured {
            rto_seconds: 1.0,
            lost_writes: 2,
            rpo_seconds: 0.2,
            ..Default::default()
        };
        assert_eq!(
            judge(&pre(), &ok, &recovered, &lossy).0,
            FailoverOutcome::TargetMissed
        );
        let quiet = FailoverObserved {
            ended: "never failed".into(),
            ..Default::default()
        };
        let (o, m) = judge(&pre(), &ok, &quiet, &fast);
        assert_eq!(o, FailoverOutcome::Failed);
        assert!(m.contains("did not interrupt writes"), "{m}");
        let broken = TriggerResult {
            ok: false,
            message: "exit 1".into(),
            ..Default::default()
        };
        assert_eq!(
            judge(&pre(), &broken, &recovered, &fast).0,
            FailoverOutcome::Failed
        );
    }
}
