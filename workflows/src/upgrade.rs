//! `WarmUpgrade`: safety gate → (hold and approve) → undeploy → snapshot →
//! deploy → health gate → commit last_good, or roll back (undeploy,
//! restore, redeploy last good, health). A trial always restores. Every
//! step is an activity, so a crash between any two steps resumes the
//! sequence and ends `upgraded` or `rolled-back`, never in between.

use std::time::{Duration, SystemTime};

use steward_proto::activities::{
    AcquireLock, RaiseAlert, ReleaseLock, UpgradeInspect, UpgradeRecord, UpgradeStep,
};
use steward_proto::v1::{
    Alert, AppStep, ApproveReply, ApproveRequest, LockRelease, LockRequest, OperatorAction,
    StepResult, UpgradeInput, UpgradePlan, UpgradeResult, UpgradeStatus,
};
use steward_proto::{limits, names};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityOptions, SyncWorkflowContext, WorkflowCancellationToken, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};

use crate::sweep::rfc3339;

type Rejection = Box<dyn std::error::Error + Send + Sync>;

/// The warm upgrade workflow. Its id is `warm-upgrade-<app>`.
#[workflow]
#[derive(Default)]
pub struct WarmUpgrade {
    input: UpgradeInput,
    plan: UpgradePlan,
    phase: String,
    approved: Option<OperatorAction>,
    actions: Vec<OperatorAction>,
    alerts: u32,
    locked: bool,
}

/// Patch that introduced the per-app lease lock; histories recorded before
/// it replay without the lock activities.
pub const APP_LOCK_PATCH: &str = "upgrade-per-app-lock";

#[workflow_methods]
impl WarmUpgrade {
    /// Takes the input before any update is validated.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: UpgradeInput) -> Self {
        Self {
            input,
            phase: "inspecting".into(),
            ..Default::default()
        }
    }

    /// Runs the upgrade or the trial.
    #[run(name = names::WARM_UPGRADE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<UpgradeResult> {
        let input = ctx.state(|s| s.input.clone());
        let plan = ctx
            .execute_activity(UpgradeInspect, input.clone(), short())
            .await?;
        ctx.state_mut(|s| s.plan = plan.clone());
        // Scheduled runs get timestamped workflow ids, so the id alone does
        // not keep two upgrades of one app apart: a lease lock per app does.
        if ctx.patched(APP_LOCK_PATCH) {
            let grant = ctx
                .execute_activity(
                    AcquireLock,
                    LockRequest {
                        name: format!("upgrade-{}", plan.app),
                        holder: ctx.run_id().to_string(),
                        ttl_seconds: u32::try_from(plan.approval_wait_seconds + 7200)
                            .unwrap_or(u32::MAX),
                    },
                    short(),
                )
                .await?;
            if !grant.acquired {
                let last_good = plan.last_good.clone();
                return Self::finish(
                    ctx,
                    "skipped-busy",
                    &last_good,
                    true,
                    format!(
                        "another upgrade of {} is running (workflow run {})",
                        plan.app, grant.holder
                    ),
                )
                .await;
            }
            ctx.state_mut(|s| s.locked = true);
        }
        let (app, target, last_good) = (
            plan.app.clone(),
            plan.target.clone(),
            plan.last_good.clone(),
        );
        let step = |name: &str, version: &str| AppStep {
            app: app.clone(),
            step: name.into(),
            version: version.into(),
            tag: ctx.run_id().to_string(),
        };

        if !input.trial && target == last_good {
            ctx.state_mut(|s| s.phase = "health_gate".into());
            let h = ctx
                .execute_activity(UpgradeStep, step("health", &last_good), long())
                .await?;
            if h.ok {
                return Self::finish(
                    ctx,
                    "noop-healthy",
                    &last_good,
                    true,
                    "already on the latest version and healthy".into(),
                )
                .await;
            }
            alert(
                ctx,
                "warning",
                "noop-unhealthy",
                format!(
                    "{app} is on the latest version {last_good} but unhealthy: {}",
                    h.message
                ),
                "",
            )
            .await;
            return Self::finish(ctx, "noop-unhealthy", &last_good, false, h.message).await;
        }

        if !input.trial && !plan.hold.is_empty() {
            ctx.state_mut(|s| s.phase = "held".into());
            let outcome = format!("held-{}", plan.hold);
            let notes = serde_json::to_string(&plan.matches).unwrap_or_default();
            alert(
                ctx,
                "warning",
                &outcome,
                format!("upgrade of {app} from {last_good} to {target} is held ({}); approve with `steward upgrade approve {app} --version {target}`", plan.hold),
                &format!("{{\"matching_notes\":{notes}}}"),
            )
            .await;
            select! {
                _ = ctx.timer(Duration::from_secs(plan.approval_wait_seconds)) => {}
                _ = ctx.wait_condition(|s| s.approved.is_some()) => {}
            };
            if ctx.state(|s| s.approved.is_none()) {
                return Self::finish(
                    ctx,
                    &outcome,
                    &last_good,
                    true,
                    format!(
                        "not approved within {}s; stays on {last_good}",
                        plan.approval_wait_seconds
                    ),
                )
                .await;
            }
        }

        ctx.state_mut(|s| s.phase = "undeploying".into());
        ctx.execute_activity(UpgradeStep, step("undeploy", &last_good), long())
            .await?;
        ctx.state_mut(|s| s.phase = "snapshotting".into());
        let snap = ctx
            .execute_activity(UpgradeStep, step("snapshot", ""), long())
            .await?;
        if !snap.ok {
            ctx.execute_activity(UpgradeStep, step("deploy", &last_good), long())
                .await?;
            alert(
                ctx,
                "critical",
                "snapshot-failed",
                format!("{app}: snapshot failed, nothing upgraded: {}", snap.message),
                "",
            )
            .await;
            return Self::finish(
                ctx,
                "rolled-back",
                &last_good,
                true,
                format!("snapshot failed: {}", snap.message),
            )
            .await;
        }
        ctx.state_mut(|s| s.phase = "deploying".into());
        let deployed = ctx
            .execute_activity(UpgradeStep, step("deploy", &target), long())
            .await?;
        let mut verdict: StepResult = deployed.clone();
        if deployed.ok {
            ctx.state_mut(|s| s.phase = "health_gate".into());
            verdict = ctx
                .execute_activity(UpgradeStep, step("health", &target), long())
                .await?;
            if verdict.ok && input.trial {
                ctx.state_mut(|s| s.phase = "asserting".into());
                verdict = ctx
                    .execute_activity(UpgradeStep, step("asserts", &target), long())
                    .await?;
            }
        }
        if verdict.ok && !input.trial {
            ctx.state_mut(|s| s.phase = "committing".into());
            let done = ctx
                .execute_activity(UpgradeStep, step("set_last_good", &target), short())
                .await?;
            if done.ok {
                return Self::finish(
                    ctx,
                    "upgraded",
                    &target,
                    true,
                    format!("{target} is healthy"),
                )
                .await;
            }
            verdict = done;
        }

        // Roll back: a trial always comes back to last good.
        ctx.state_mut(|s| s.phase = "rolling_back".into());
        ctx.execute_activity(UpgradeStep, step("undeploy", &target), long())
            .await?;
        let restored = ctx
            .execute_activity(UpgradeStep, step("restore", ""), long())
            .await?;
        let redeployed = ctx
            .execute_activity(UpgradeStep, step("deploy", &last_good), long())
            .await?;
        let healthy = ctx
            .execute_activity(UpgradeStep, step("health", &last_good), long())
            .await?;
        let recovered = restored.ok && redeployed.ok && healthy.ok;
        if input.trial {
            let outcome = if verdict.ok {
                "trial-passed"
            } else {
                "trial-failed"
            };
            if !recovered {
                alert(
                    ctx,
                    "critical",
                    "rollback-failed",
                    format!("{app}: restoring after the trial of {target} failed"),
                    "",
                )
                .await;
            }
            return Self::finish(ctx, outcome, &last_good, recovered, verdict.message).await;
        }
        let why = verdict.message.clone();
        if recovered {
            alert(
                ctx,
                "warning",
                "rolled-back",
                format!("{app}: {target} failed ({why}); back on {last_good}"),
                "",
            )
            .await;
            Self::finish(ctx, "rolled-back", &last_good, true, why).await
        } else {
            let how = [&restored, &redeployed, &healthy]
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            alert(
                ctx,
                "critical",
                "rollback-failed",
                format!("{app}: {target} failed ({why}) and the rollback failed too: {how}"),
                "",
            )
            .await;
            Self::finish(
                ctx,
                "rollback-failed",
                &last_good,
                false,
                format!("{why}; rollback: {how}"),
            )
            .await
        }
    }

    async fn finish(
        ctx: &mut WorkflowContext<Self>,
        outcome: &str,
        last_good: &str,
        recovered: bool,
        message: String,
    ) -> WorkflowResult<UpgradeResult> {
        let result = ctx.state(|s| UpgradeResult {
            app: s.plan.app.clone(),
            outcome: outcome.into(),
            attempted: s.plan.target.clone(),
            last_good: last_good.into(),
            recovered,
            message,
            workflow_id: String::new(),
            run_id: String::new(),
            operator_actions: s.actions.clone(),
        });
        let result = UpgradeResult {
            workflow_id: ctx.workflow_id().into(),
            run_id: ctx.run_id().into(),
            ..result
        };
        // The status query shows where the run left the app.
        ctx.state_mut(|s| {
            s.phase = outcome.into();
            s.plan.last_good = last_good.into();
        });
        if ctx.state(|s| s.locked) {
            let mut release = short();
            release.cancellation_token = Some(WorkflowCancellationToken::new());
            ctx.execute_activity(
                ReleaseLock,
                LockRelease {
                    name: format!("upgrade-{}", result.app),
                    holder: ctx.run_id().to_string(),
                },
                release,
            )
            .await?;
        }
        ctx.execute_activity(UpgradeRecord, result.clone(), short())
            .await?;
        Ok(result)
    }

    /// Phase, target, last good, hold.
    #[query(name = names::UPGRADE_STATUS_QUERY)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> UpgradeStatus {
        UpgradeStatus {
            app: self.input.app.clone(),
            phase: self.phase.clone(),
            target: self.plan.target.clone(),
            last_good: self.plan.last_good.clone(),
            hold: self.plan.hold.clone(),
            trial: self.input.trial,
        }
    }

    #[update_validator(approve)]
    fn validate_approve(
        &self,
        _ctx: &WorkflowContextView,
        req: &ApproveRequest,
    ) -> Result<(), Rejection> {
        self.check_approve(req).map_err(Into::into)
    }

    /// Operator: release a held upgrade, for this exact version only.
    #[update(name = names::UPDATE_APPROVE_VERSION)]
    pub fn approve(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: ApproveRequest,
    ) -> ApproveReply {
        let action = OperatorAction {
            action: "approve".into(),
            operator: req.operator.clone(),
            reason: req.reason.clone(),
            detail: req.version.clone(),
            at: rfc3339(ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH)),
        };
        self.actions.push(action.clone());
        self.approved = Some(action);
        ApproveReply {
            message: format!("upgrade to {} approved", req.version),
        }
    }
}

impl WarmUpgrade {
    /// Whether an approval is valid now; the reason when not.
    pub fn check_approve(&self, req: &ApproveRequest) -> Result<(), String> {
        if req.operator.trim().is_empty() || req.reason.trim().is_empty() {
            return Err("an operator name and a reason are required".into());
        }
        for (what, text) in [("operator name", &req.operator), ("reason", &req.reason)] {
            if let Some(refusal) = limits::operator_text_too_long(what, text) {
                return Err(refusal);
            }
        }
        if self.phase != "held" {
            return Err(format!(
                "nothing to approve: the upgrade is in phase `{}`",
                self.phase
            ));
        }
        if req.version != self.plan.target {
            return Err(format!(
                "the held upgrade is to {}, not {}; an approval is for that exact version",
                self.plan.target, req.version
            ));
        }
        Ok(())
    }
}

async fn alert(
    ctx: &WorkflowContext<WarmUpgrade>,
    severity: &str,
    kind: &str,
    message: String,
    extra: &str,
) {
    let now = rfc3339(ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH));
    let wf = ctx.workflow_id().to_string();
    let run = ctx.run_id().to_string();
    let n = ctx.state_mut(|s| {
        s.alerts += 1;
        s.alerts
    });
    let (app, target, last_good) = ctx.state(|s| {
        (
            s.plan.app.clone(),
            s.plan.target.clone(),
            s.plan.last_good.clone(),
        )
    });
    let recovered = !matches!(kind, "rollback-failed" | "noop-unhealthy");
    let mut detail = format!(
        "{{\"workflow_id\":\"{wf}\",\"attempted\":\"{target}\",\"last_good\":\"{last_good}\",\"recovered\":{recovered}"
    );
    if let Some(inner) = extra
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .filter(|e| !e.is_empty())
    {
        detail.push(',');
        detail.push_str(inner);
    }
    detail.push('}');
    let a = Alert {
        id: format!("{wf}-{run}-{n}-{kind}"),
        severity: severity.into(),
        kind: format!("upgrade.{kind}"),
        subject: app,
        message,
        at: now,
        detail_json: detail,
    };
    let _ = ctx.execute_activity(RaiseAlert, a, short()).await;
}

fn short() -> ActivityOptions {
    crate::options::quick(60, 5)
}

/// Steps heartbeat, so a worker killed mid-step is noticed in 10 s and the
/// step is retried (every step is idempotent).
fn long() -> ActivityOptions {
    crate::options::heartbeating(3600, 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_is_for_the_held_version_only() {
        let mut w = WarmUpgrade {
            phase: "held".into(),
            ..Default::default()
        };
        w.plan.target = "10.8.0+26.6.2".into();
        let req = |v: &str| ApproveRequest {
            version: v.into(),
            operator: "ana".into(),
            reason: "read the notes".into(),
        };
        assert!(w.check_approve(&req("10.8.0+26.6.2")).is_ok());
        assert!(
            w.check_approve(&req("10.9.0+26.6.2"))
                .unwrap_err()
                .contains("exact version")
        );
        assert!(
            w.check_approve(&ApproveRequest {
                reason: "".into(),
                ..req("10.8.0+26.6.2")
            })
            .is_err()
        );
        w.phase = "deploying".into();
        assert!(
            w.check_approve(&req("10.8.0+26.6.2"))
                .unwrap_err()
                .contains("nothing to approve")
        );
    }
}
