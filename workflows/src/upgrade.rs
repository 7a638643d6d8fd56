//! `WarmUpgrade`: safety gate → (hold and approve) → undeploy → snapshot →
//! deploy → health gate → commit last_good, or roll back (undeploy,
//! restore, redeploy last good, health). A trial always restores. Every
//! step is an activity, so a crash between any two steps resumes the
//! sequence and ends `upgraded` or `rolled-back`, never in between.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use steward_proto::activities::{
    AcquireLock, ClaimStart, ReleaseLock, UpgradeInspect, UpgradeRecord, UpgradeStep,
};
use steward_proto::v1::{
    AppStep, ApproveReply, ApproveRequest, LockRelease, LockRequest, OperatorAction, StartClaim,
    StepResult, UpgradeInput, UpgradePlan, UpgradeResult, UpgradeStatus,
};
use steward_proto::vocab::{
    Advance, Hold, OnUnhealthy, OperatorVerb, Severity, UpgradeOutcome, UpgradePhase, UpgradeStage,
    UpgradeStepKind,
};
use steward_proto::{ids, names};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityOptions, SyncWorkflowContext, TimerOptions, WorkflowCancellationToken, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};

use crate::alert::{NewAlert, detail};
use crate::attributes::{self, SEARCH_ATTRIBUTES_PATCH};
use crate::backfill::SIGNATURE_BINDING_PATCH;
use crate::operator::{self, Seal, Starter};
use crate::options::summarized;
use crate::time::rfc3339;
use steward_proto::signing;

type Rejection = Box<dyn std::error::Error + Send + Sync>;

/// The warm upgrade workflow. Its id is `warm-upgrade-<app>`.
#[workflow]
#[derive(Default)]
pub struct WarmUpgrade {
    input: UpgradeInput,
    plan: UpgradePlan,
    stage: UpgradeStage,
    approved: Option<OperatorAction>,
    actions: Vec<OperatorAction>,
    alerts: u32,
    locked: bool,
    /// Whether this run keeps its search attributes up to date (runs
    /// recorded before the patch do not).
    attributes: bool,
    /// Whether the upgrade waits for an operator's approval.
    waiting: bool,
    /// The workflow id, which an approval's signature names.
    workflow_id: String,
    /// Why the candidate was judged failed (the failing step's result).
    failure: StepResult,
    /// What the prune step removed.
    pruned: Vec<String>,
    /// The run id, which an approval's signature names (an upgrade never
    /// continues as new, so it is its chain's first).
    chain: String,
    /// When the server started this run: a signed start must be fresh then.
    started: Option<SystemTime>,
    /// Whether a Temporal Schedule started it.
    scheduled: bool,
    /// Whether steward's cold sweep started it as a child.
    child: bool,
    /// Whether the API's signature on the start held.
    start_verified: bool,
    /// Whether signatures are bound to the run (false for runs recorded
    /// before the binding).
    bound: bool,
    /// Signatures of the approvals accepted: none counts twice.
    signatures: Vec<String>,
}

/// Patch that introduced the per-app lease lock; histories recorded before
/// it replay without the lock activities.
pub const APP_LOCK_PATCH: &str = "upgrade-per-app-lock";

/// Patch that brought pruning, disk safety, what the canonical deployment
/// runs apart from last good, first runs, stateless apps, cold runs and
/// `on_unhealthy`; histories recorded before it replay the older steps.
pub const UPGRADE_MODES_PATCH: &str = "upgrade-modes";

#[workflow_methods]
impl WarmUpgrade {
    /// Takes the input before any update is validated.
    #[init]
    pub fn new(ctx: &WorkflowContextView, input: UpgradeInput) -> Self {
        Self {
            input,
            workflow_id: ctx.workflow_id().to_string(),
            chain: ctx.first_execution_run_id().to_string(),
            started: ctx.start_time(),
            scheduled: operator::scheduled(ctx),
            child: ctx.parent().is_some(),
            bound: true,
            ..Default::default()
        }
    }

    /// Runs the upgrade or the trial.
    #[run(name = names::WARM_UPGRADE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<UpgradeResult> {
        let input = ctx.state(|s| s.input.clone());
        let attributes = ctx.patched(SEARCH_ATTRIBUTES_PATCH);
        ctx.state_mut(|s| s.attributes = attributes);
        enter(ctx, UpgradePhase::Inspecting);
        let plan = ctx
            .execute_activity(
                UpgradeInspect,
                input.clone(),
                short(format!("inspect {}", input.app)),
            )
            .await?;
        let bound = ctx.patched(SIGNATURE_BINDING_PATCH);
        ctx.state_mut(|s| {
            s.plan = plan.clone();
            s.bound = bound;
        });
        if bound && let Some(why) = Self::judge_start(ctx).await? {
            let last_good = plan.last_good.clone();
            return Self::finish(ctx, UpgradeOutcome::Refused, &last_good, true, why).await;
        }
        // Scheduled runs get timestamped workflow ids, so the id alone does
        // not keep two upgrades of one app apart: a lease lock per app does.
        if ctx.patched(APP_LOCK_PATCH) {
            let grant = ctx
                .execute_activity(
                    AcquireLock,
                    LockRequest {
                        name: ids::upgrade_lock(&plan.app),
                        holder: ctx.run_id().to_string(),
                        ttl_seconds: u32::try_from(plan.approval_wait_seconds + 7200)
                            .unwrap_or(u32::MAX),
                    },
                    short(format!("lock {}", ids::upgrade_lock(&plan.app))),
                )
                .await?;
            if !grant.acquired {
                let last_good = plan.last_good.clone();
                return Self::finish(
                    ctx,
                    UpgradeOutcome::SkippedBusy,
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
        let step = |kind: UpgradeStepKind, version: &str| AppStep {
            app: app.clone(),
            step: kind.into(),
            version: version.into(),
            tag: ctx.run_id().to_string(),
        };
        let modern = ctx.patched(UPGRADE_MODES_PATCH);
        if modern {
            enter(ctx, UpgradePhase::Pruning);
            let pruned = run_step(ctx, step(UpgradeStepKind::Prune, "")).await?;
            ctx.state_mut(|s| s.pruned = pruned.removed.clone());
            if input.cold {
                return Self::cold_run(ctx).await;
            }
        }
        // What the canonical deployment runs now, and goes back to on a
        // rollback (empty on a first run).
        let from = if modern {
            plan.deployed.clone()
        } else {
            last_good.clone()
        };

        if !input.trial && target == from {
            enter(ctx, UpgradePhase::HealthGate);
            let h = run_step(ctx, step(UpgradeStepKind::Health, &from)).await?;
            if h.ok {
                return Self::finish(
                    ctx,
                    UpgradeOutcome::NoopHealthy,
                    &last_good,
                    true,
                    "already on the latest version and healthy".into(),
                )
                .await;
            }
            alert(
                ctx,
                Severity::Warning,
                UpgradeOutcome::NoopUnhealthy.as_str(),
                false,
                format!(
                    "{app} is on the latest version {from} but unhealthy: {}",
                    h.message
                ),
                failure_detail(&h),
            )
            .await;
            ctx.state_mut(|s| s.failure = h.clone());
            return Self::finish(
                ctx,
                UpgradeOutcome::NoopUnhealthy,
                &last_good,
                false,
                h.message,
            )
            .await;
        }

        let cold_mode = plan.advance.parse::<Advance>().ok() == Some(Advance::Cold);
        if modern && cold_mode && !input.trial && !plan.cold_proven {
            alert(
                ctx,
                Severity::Warning,
                UpgradeOutcome::HeldCold.as_str(),
                true,
                format!(
                    "upgrade of {app} to {target} is held: no cold run passed {target} \
                     (advance = \"cold\"); run `steward upgrade run {app} --cold --version {target}`"
                ),
                Map::new(),
            )
            .await;
            return Self::finish(
                ctx,
                UpgradeOutcome::HeldCold,
                &last_good,
                true,
                format!(
                    "no cold run passed {target}; {app} stays on {}",
                    shown(&from)
                ),
            )
            .await;
        }

        if !input.trial && !plan.hold.is_empty() {
            enter(ctx, UpgradePhase::Held);
            // A hold this workflow does not know still holds.
            let hold: Hold = plan.hold.parse().unwrap_or(Hold::ManualMigration);
            let outcome = UpgradeOutcome::held(hold);
            alert(
                ctx,
                Severity::Warning,
                outcome.as_str(),
                true,
                format!("upgrade of {app} from {} to {target} is held ({}); approve with `steward upgrade approve {app} --version {target}`", shown(&from), plan.hold),
                detail([("matching_notes", plan.matches.clone().into())]),
            )
            .await;
            ctx.set_current_details(format!(
                "held ({}): waiting for `steward upgrade approve {app} --version {target}`",
                plan.hold
            ));
            let wait = TimerOptions::builder(Duration::from_secs(plan.approval_wait_seconds))
                .summary(format!(
                    "wait {}s for an approval of {target}",
                    plan.approval_wait_seconds
                ))
                .build();
            select! {
                _ = ctx.timer(wait) => {}
                _ = ctx.wait_condition(|s| s.approved.is_some()) => {}
            };
            if ctx.state(|s| s.approved.is_none()) {
                return Self::finish(
                    ctx,
                    outcome,
                    &last_good,
                    true,
                    format!(
                        "not approved within {}s; stays on {}",
                        plan.approval_wait_seconds,
                        shown(&from)
                    ),
                )
                .await;
            }
        }

        if modern {
            enter(ctx, UpgradePhase::CheckingDisk);
            let room = run_step(ctx, step(UpgradeStepKind::DiskCheck, &target)).await?;
            if !room.ok {
                return Self::held_disk(ctx, &room).await;
            }
        }
        if !modern || !from.is_empty() {
            enter(ctx, UpgradePhase::Undeploying);
            run_step(ctx, step(UpgradeStepKind::Undeploy, &from)).await?;
        }
        enter(ctx, UpgradePhase::Snapshotting);
        let snap = run_step(ctx, step(UpgradeStepKind::Snapshot, "")).await?;
        if !snap.ok {
            if !modern || !from.is_empty() {
                run_step(ctx, step(UpgradeStepKind::Deploy, &from)).await?;
            }
            alert(
                ctx,
                Severity::Critical,
                "snapshot-failed",
                true,
                format!("{app}: snapshot failed, nothing upgraded: {}", snap.message),
                Map::new(),
            )
            .await;
            return Self::finish(
                ctx,
                UpgradeOutcome::RolledBack,
                &last_good,
                true,
                format!("snapshot failed: {}", snap.message),
            )
            .await;
        }
        enter(ctx, UpgradePhase::Deploying);
        let deployed = run_step(ctx, step(UpgradeStepKind::Deploy, &target)).await?;
        let mut verdict: StepResult = deployed.clone();
        if deployed.ok {
            enter(ctx, UpgradePhase::HealthGate);
            verdict = run_step(ctx, step(UpgradeStepKind::Health, &target)).await?;
            if verdict.ok && input.trial {
                enter(ctx, UpgradePhase::Asserting);
                verdict = run_step(ctx, step(UpgradeStepKind::Asserts, &target)).await?;
            }
        }
        if verdict.ok && !input.trial {
            enter(ctx, UpgradePhase::Committing);
            let commit = if modern && cold_mode {
                UpgradeStepKind::SetDeployed
            } else {
                UpgradeStepKind::SetLastGood
            };
            let done = run_step(ctx, step(commit, &target)).await?;
            if done.ok {
                let now_good = if commit == UpgradeStepKind::SetLastGood {
                    target.clone()
                } else {
                    last_good.clone()
                };
                ctx.state_mut(|s| s.plan.deployed = target.clone());
                let message = match (from.is_empty(), last_good.is_empty(), commit) {
                    (true, true, UpgradeStepKind::SetLastGood) => format!(
                        "first deploy: {target} is healthy; nothing ran before, last_good seeded with {target}"
                    ),
                    (true, _, _) => {
                        format!("first deploy: {target} is healthy; nothing ran before")
                    }
                    _ => format!("{target} is healthy"),
                };
                return Self::finish(ctx, UpgradeOutcome::Upgraded, &now_good, true, message).await;
            }
            verdict = done;
        }
        ctx.state_mut(|s| s.failure = verdict.clone());
        let why = verdict.message.clone();

        let notify = plan.on_unhealthy.parse::<OnUnhealthy>().ok() == Some(OnUnhealthy::Notify);
        if modern && notify && deployed.ok && !input.trial {
            // Kept running as asked: recorded as what runs, never as good.
            run_step(ctx, step(UpgradeStepKind::SetDeployed, &target)).await?;
            ctx.state_mut(|s| s.plan.deployed = target.clone());
            alert(
                ctx,
                Severity::Critical,
                UpgradeOutcome::UnhealthyKept.as_str(),
                false,
                format!(
                    "{app}: {target} is unhealthy ({why}) and kept running (on_unhealthy = \"notify\"); last good stays {}",
                    shown(&last_good)
                ),
                failure_detail(&verdict),
            )
            .await;
            return Self::finish(ctx, UpgradeOutcome::UnhealthyKept, &last_good, false, why).await;
        }

        // Roll back: a trial always comes back to what ran before.
        enter(ctx, UpgradePhase::RollingBack);
        run_step(ctx, step(UpgradeStepKind::Undeploy, &target)).await?;
        let restored = run_step(ctx, step(UpgradeStepKind::Restore, "")).await?;
        let nothing_before = modern && from.is_empty();
        let (redeployed, healthy) = if nothing_before {
            (restored.clone(), restored.clone())
        } else {
            (
                run_step(ctx, step(UpgradeStepKind::Deploy, &from)).await?,
                run_step(ctx, step(UpgradeStepKind::Health, &from)).await?,
            )
        };
        if nothing_before {
            ctx.state_mut(|s| s.plan.deployed = String::new());
        }
        let recovered = restored.ok && redeployed.ok && healthy.ok;
        let back = if nothing_before {
            "nothing ran before: left undeployed, data restored".to_string()
        } else {
            format!("back on {from}")
        };
        if input.trial {
            let outcome = if verdict.ok {
                UpgradeOutcome::TrialPassed
            } else {
                UpgradeOutcome::TrialFailed
            };
            if !recovered {
                alert(
                    ctx,
                    Severity::Critical,
                    UpgradeOutcome::RollbackFailed.as_str(),
                    false,
                    format!("{app}: restoring after the trial of {target} failed"),
                    failure_detail(&verdict),
                )
                .await;
            }
            return Self::finish(ctx, outcome, &last_good, recovered, verdict.message).await;
        }
        if recovered {
            alert(
                ctx,
                Severity::Warning,
                UpgradeOutcome::RolledBack.as_str(),
                true,
                format!("{app}: {target} failed ({why}); {back}"),
                failure_detail(&verdict),
            )
            .await;
            let message = if nothing_before {
                format!("{why}; {back}")
            } else {
                why
            };
            Self::finish(ctx, UpgradeOutcome::RolledBack, &last_good, true, message).await
        } else {
            let how = [&restored, &redeployed, &healthy]
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            alert(
                ctx,
                Severity::Critical,
                UpgradeOutcome::RollbackFailed.as_str(),
                false,
                format!("{app}: {target} failed ({why}) and the rollback failed too: {how}"),
                failure_detail(&verdict),
            )
            .await;
            Self::finish(
                ctx,
                UpgradeOutcome::RollbackFailed,
                &last_good,
                false,
                format!("{why}; rollback: {how}"),
            )
            .await
        }
    }

    /// A cold run: the candidate on fresh data in a scratch folder, its
    /// health gate and cold asserts, always undeployed and removed after;
    /// a green one is recorded (and moves last good in cold mode).
    async fn cold_run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<UpgradeResult> {
        let plan = ctx.state(|s| s.plan.clone());
        let (app, target) = (plan.app.clone(), plan.target.clone());
        let step = |kind: UpgradeStepKind| AppStep {
            app: app.clone(),
            step: kind.into(),
            version: target.clone(),
            tag: ctx.run_id().to_string(),
        };
        enter(ctx, UpgradePhase::CheckingDisk);
        let room = run_step(ctx, step(UpgradeStepKind::ColdDiskCheck)).await?;
        if !room.ok {
            return Self::held_disk(ctx, &room).await;
        }
        enter(ctx, UpgradePhase::ColdTesting);
        let mut verdict = run_step(ctx, step(UpgradeStepKind::ColdDeploy)).await?;
        if verdict.ok {
            verdict = run_step(ctx, step(UpgradeStepKind::ColdHealth)).await?;
        }
        if verdict.ok {
            verdict = run_step(ctx, step(UpgradeStepKind::ColdAsserts)).await?;
        }
        let cleaned = run_step(ctx, step(UpgradeStepKind::ColdUndeploy)).await?;
        if !cleaned.ok {
            alert(
                ctx,
                Severity::Warning,
                "cold-leftover",
                true,
                format!(
                    "{app}: the cold deployment of {target} did not undeploy: {}",
                    cleaned.message
                ),
                Map::new(),
            )
            .await;
        }
        if !verdict.ok {
            ctx.state_mut(|s| s.failure = verdict.clone());
            alert(
                ctx,
                Severity::Warning,
                UpgradeOutcome::ColdFailed.as_str(),
                true,
                format!(
                    "{app}: the cold run of {target} failed: {}",
                    verdict.message
                ),
                failure_detail(&verdict),
            )
            .await;
            return Self::finish(
                ctx,
                UpgradeOutcome::ColdFailed,
                &plan.last_good,
                true,
                verdict.message,
            )
            .await;
        }
        let recorded = run_step(ctx, step(UpgradeStepKind::ColdPassed)).await?;
        let moves = plan.advance.parse::<Advance>().ok() == Some(Advance::Cold);
        let last_good = if moves && recorded.ok {
            target.clone()
        } else {
            plan.last_good.clone()
        };
        let message = match (moves, plan.last_good.is_empty()) {
            (true, true) => {
                format!("{target} passed on fresh data; last_good seeded with {target}")
            }
            (true, false) => format!(
                "{target} passed on fresh data; last_good {} → {target}",
                plan.last_good
            ),
            (false, _) => recorded.message.clone(),
        };
        Self::finish(ctx, UpgradeOutcome::ColdPassed, &last_good, true, message).await
    }

    /// Ends a run whose snapshot or cold data does not fit: nothing touched.
    async fn held_disk(
        ctx: &mut WorkflowContext<Self>,
        room: &StepResult,
    ) -> WorkflowResult<UpgradeResult> {
        let (app, last_good) = ctx.state(|s| (s.plan.app.clone(), s.plan.last_good.clone()));
        alert(
            ctx,
            Severity::Critical,
            UpgradeOutcome::HeldDisk.as_str(),
            true,
            format!("{app}: not started, {}", room.message),
            detail([("figures", room.message.clone().into())]),
        )
        .await;
        Self::finish(
            ctx,
            UpgradeOutcome::HeldDisk,
            &last_good,
            true,
            format!("{}; {app} untouched", room.message),
        )
        .await
    }

    async fn finish(
        ctx: &mut WorkflowContext<Self>,
        outcome: UpgradeOutcome,
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
            failed_check: s.failure.check.clone(),
            failed_answer: s.failure.answer.clone(),
            failed_at: s.failure.at.clone(),
            pruned: s.pruned.clone(),
            deployed: s.plan.deployed.clone(),
            cold: s.input.cold,
        });
        let result = UpgradeResult {
            workflow_id: ctx.workflow_id().into(),
            run_id: ctx.run_id().into(),
            ..result
        };
        // The status query shows where the run left the app.
        ctx.state_mut(|s| {
            s.stage = UpgradeStage::Ended(outcome);
            s.waiting = false;
            s.plan.last_good = last_good.into();
        });
        mark(ctx);
        ctx.set_current_details(format!("ended: {outcome}"));
        if ctx.state(|s| s.locked) {
            let mut release = short(format!("unlock {}", ids::upgrade_lock(&result.app)));
            release.cancellation_token = Some(WorkflowCancellationToken::new());
            ctx.execute_activity(
                ReleaseLock,
                LockRelease {
                    name: ids::upgrade_lock(&result.app),
                    holder: ctx.run_id().to_string(),
                },
                release,
            )
            .await?;
        }
        ctx.execute_activity(
            UpgradeRecord,
            result.clone(),
            short(format!("record {outcome}")),
        )
        .await?;
        Ok(result)
    }

    /// Phase, target, last good, hold.
    #[query(name = names::UPGRADE_STATUS_QUERY)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> UpgradeStatus {
        UpgradeStatus {
            app: self.input.app.clone(),
            phase: self.stage.as_str().into(),
            outcome: self.stage.outcome().map(String::from).unwrap_or_default(),
            target: self.plan.target.clone(),
            last_good: self.plan.last_good.clone(),
            hold: self.plan.hold.clone(),
            trial: self.input.trial,
            deployed: self.plan.deployed.clone(),
            cold: self.input.cold,
        }
    }

    #[update_validator(approve)]
    fn validate_approve(
        &self,
        ctx: &WorkflowContextView,
        req: &ApproveRequest,
    ) -> Result<(), Rejection> {
        self.check_approve(req, operator::arrived_at(ctx))
            .map_err(Into::into)
    }

    /// Operator: release a held upgrade, for this exact version only.
    #[update(name = names::UPDATE_APPROVE_VERSION)]
    pub fn approve(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: ApproveRequest,
    ) -> ApproveReply {
        let detail = signing::approve_detail(&req);
        let signed = signing::Action::of(
            &self.workflow_id,
            &self.chain,
            OperatorVerb::Approve.as_str(),
            &req,
            &detail,
        );
        let action = OperatorAction {
            action: OperatorVerb::Approve.into(),
            operator: req.operator.clone(),
            reason: req.reason.clone(),
            detail: req.version.clone(),
            at: rfc3339(ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH)),
            credential_id: req.credential_id.clone(),
            verified: operator::signed(&self.plan.verify_key, &signed, &req.signature, self.bound),
        };
        if !req.signature.is_empty() {
            self.signatures.push(req.signature.clone());
        }
        self.actions.push(action.clone());
        self.approved = Some(action);
        ApproveReply {
            message: format!("upgrade to {} approved", req.version),
        }
    }
}

impl WarmUpgrade {
    /// Whether an approval arriving at `now` is valid; the reason when not.
    pub fn check_approve(
        &self,
        req: &ApproveRequest,
        now: Option<SystemTime>,
    ) -> Result<(), String> {
        operator::text(&req.operator, &req.reason)?;
        if self.stage != UpgradeStage::Running(UpgradePhase::Held) {
            return Err(format!(
                "nothing to approve: the upgrade is in phase `{}`",
                self.stage
            ));
        }
        if req.version != self.plan.target {
            return Err(format!(
                "the held upgrade is to {}, not {}; an approval is for that exact version",
                self.plan.target, req.version
            ));
        }
        let detail = signing::approve_detail(req);
        let action = signing::Action::of(
            &self.workflow_id,
            &self.chain,
            OperatorVerb::Approve.as_str(),
            req,
            &detail,
        );
        let seal = Seal {
            key: &self.plan.verify_key,
            require_verified: self.plan.require_verified,
            operators: &self.plan.operators,
            seen: &self.signatures,
        };
        let verified = operator::admit(&seal, &action, &req.signature, now)
            .map_err(|refused| refused.explain("approve", "upgrade"))?;
        operator::may_approve(
            &self.plan.operators,
            &self.plan.approval_group,
            &self.starter(),
            &req.operator,
            verified,
            "upgrade",
        )
    }

    /// Who started the upgrade, as far as it can tell.
    fn starter(&self) -> Starter {
        Starter::of(&self.input.operator, self.start_verified, self.scheduled)
    }

    /// Judges the start: a signature must be the API's, bound to a nonce no
    /// other run used, and fresh when the server started the run; a person
    /// who starts it must be allowed to. Sets `start_verified`; the refusal
    /// ends the run before anything is touched.
    async fn judge_start(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<Option<String>> {
        let (input, plan, workflow_id, started) = ctx.state(|s| {
            (
                s.input.clone(),
                s.plan.clone(),
                s.workflow_id.clone(),
                s.started,
            )
        });
        if !input.signature.is_empty() {
            let detail = signing::upgrade_start_detail(&input);
            let action = signing::Action::of(
                &workflow_id,
                &input.nonce,
                OperatorVerb::Start.as_str(),
                &input,
                &detail,
            );
            if let Err(refused) =
                operator::admit_start(&plan.verify_key, &action, &input.signature, started)
            {
                return Ok(Some(refused.explain("start", "upgrade")));
            }
            let claim = ctx
                .execute_activity(
                    ClaimStart,
                    StartClaim {
                        nonce: input.nonce.clone(),
                        workflow_id,
                        run_id: ctx.run_id().to_string(),
                    },
                    short("claim the signed start"),
                )
                .await?;
            if !claim.claimed {
                return Ok(Some(format!(
                    "this start's signature was already used by run {}: a signed start starts one run",
                    claim.used_by
                )));
            }
            ctx.state_mut(|s| s.start_verified = true);
        }
        let (starter, child) = ctx.state(|s| (s.starter(), s.child));
        if starter == Starter::Schedule || child {
            return Ok(None);
        }
        Ok(operator::permitted(
            &plan.operators,
            &plan.permissions,
            OperatorVerb::Start.as_str(),
            &input.operator,
            &format!("upgrades of `{}`", plan.app),
        )
        .err())
    }
}

/// The upgrade is now in `phase`.
fn enter(ctx: &WorkflowContext<WarmUpgrade>, phase: UpgradePhase) {
    ctx.state_mut(|s| {
        s.stage = UpgradeStage::Running(phase);
        s.waiting = phase == UpgradePhase::Held;
    });
    mark(ctx);
}

/// Sets the upgrade's search attributes to where it is now.
fn mark(ctx: &WorkflowContext<WarmUpgrade>) {
    let (on, app, stage, waiting) =
        ctx.state(|s| (s.attributes, s.input.app.clone(), s.stage, s.waiting));
    if on {
        ctx.upsert_search_attributes(attributes::stage(&app, stage.as_str(), waiting));
    }
}

/// Raises an alert about the app; `recovered` says whether the app is back
/// on a healthy last good. A sink that keeps failing does not stop the
/// upgrade.
async fn alert(
    ctx: &WorkflowContext<WarmUpgrade>,
    severity: Severity,
    kind: &str,
    recovered: bool,
    message: String,
    extra: Map<String, Value>,
) {
    let at = ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH);
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
    let mut detail = detail([
        ("workflow_id", wf.clone().into()),
        ("attempted", target.into()),
        ("last_good", last_good.into()),
        ("recovered", recovered.into()),
    ]);
    detail.extend(extra);
    let new = NewAlert {
        id: format!("{wf}-{run}-{n}-{kind}"),
        severity,
        kind: format!("upgrade.{kind}"),
        subject: app,
        message,
        at,
        detail,
    };
    let _ = new.raise(ctx).await;
}

/// A version for people: `nothing` when empty.
fn shown(version: &str) -> &str {
    if version.is_empty() {
        "nothing"
    } else {
        version
    }
}

/// The failed check of `r` as alert details: which check, its answer, when.
fn failure_detail(r: &StepResult) -> Map<String, Value> {
    if r.check.is_empty() {
        return detail([("reason", r.message.clone().into())]);
    }
    detail([
        ("reason", r.message.clone().into()),
        ("failed_check", r.check.clone().into()),
        ("failed_answer", r.answer.clone().into()),
        ("failed_at", r.at.clone().into()),
    ])
}

fn short(summary: impl Into<String>) -> ActivityOptions {
    summarized(crate::options::quick(60, 5), summary)
}

/// Runs one step of the upgrade, summarized for the Temporal UI.
async fn run_step(ctx: &WorkflowContext<WarmUpgrade>, step: AppStep) -> WorkflowResult<StepResult> {
    let summary = format!("{} {} {}", step.step, step.app, step.version);
    let options = summarized(long(), summary.trim_end());
    Ok(ctx.execute_activity(UpgradeStep, step, options).await?)
}

/// Steps heartbeat, so a worker killed mid-step is noticed in 10 s and the
/// step is retried (every step is idempotent).
fn long() -> ActivityOptions {
    crate::options::heartbeating(3600, 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;
    use steward_proto::v1::OperatorGroups;

    const SIGNED_AT: &str = "2026-12-02T10:00:00Z";

    fn now() -> Option<SystemTime> {
        parse_rfc3339("2026-12-02T10:00:30Z")
    }

    /// A held upgrade of `kc` to 10.8.0 that ana started (through the API
    /// when `verified`), approved by group `release`, with ana and bob in
    /// it and dan outside.
    fn held_by_ana(require_verified: bool, verify_key: &str, verified: bool) -> WarmUpgrade {
        let mut w = WarmUpgrade {
            stage: UpgradeStage::Running(UpgradePhase::Held),
            workflow_id: "warm-upgrade-kc".into(),
            chain: "run-1".into(),
            start_verified: verified,
            bound: true,
            ..Default::default()
        };
        w.input.operator = "ana".into();
        w.plan.app = "kc".into();
        w.plan.target = "10.8.0".into();
        w.plan.approval_group = "release".into();
        w.plan.require_verified = require_verified;
        w.plan.verify_key = verify_key.into();
        w.plan.operators = [("ana", "release"), ("bob", "release"), ("dan", "storage")]
            .into_iter()
            .map(|(name, group)| OperatorGroups {
                name: name.into(),
                groups: vec![group.into()],
                expires: String::new(),
            })
            .collect();
        w
    }

    fn approval(operator: &str) -> ApproveRequest {
        ApproveRequest {
            version: "10.8.0".into(),
            operator: operator.into(),
            reason: "notes read".into(),
            credential_id: format!("{operator}-token"),
            ..Default::default()
        }
    }

    /// Signs `req` for `w`'s run as the API would, with `key`.
    fn sign(w: &WarmUpgrade, key: &ed25519_dalek::SigningKey, req: &mut ApproveRequest) {
        req.signed_at = SIGNED_AT.into();
        let detail = signing::approve_detail(req);
        req.signature = operator::sign(
            key,
            &signing::Action::of(&w.workflow_id, &w.chain, "approve", &*req, &detail),
        );
    }

    #[test]
    fn the_approver_is_declared_in_the_group_and_not_the_starter() {
        let w = held_by_ana(false, "", false);
        for (who, says) in [
            ("ana", "started this upgrade"),
            ("dan", "not in group `release`"),
            ("zed", "not a declared operator"),
        ] {
            let refusal = w.check_approve(&approval(who), now()).unwrap_err();
            assert!(refusal.contains(says), "{who}: {refusal}");
        }
        assert_eq!(w.check_approve(&approval("bob"), now()), Ok(()));
    }

    #[test]
    fn require_verified_takes_only_what_this_deployments_api_signed_for_this_run() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let w = held_by_ana(true, &public, true);
        let refusal = w.check_approve(&approval("bob"), now()).unwrap_err();
        assert!(refusal.contains("require_verified"), "{refusal}");
        let mut signed = approval("bob");
        sign(&w, &key, &mut signed);
        assert_eq!(w.check_approve(&signed, now()), Ok(()));
        let mut forged = approval("bob");
        sign(&w, &other, &mut forged);
        assert!(
            w.check_approve(&forged, now())
                .unwrap_err()
                .contains("does not verify")
        );
        let mut renamed = signed.clone();
        renamed.operator = "dan".into();
        assert!(
            w.check_approve(&renamed, now())
                .unwrap_err()
                .contains("does not verify"),
            "the signature covers the name"
        );
        let mut elsewhere = held_by_ana(true, &public, true);
        elsewhere.workflow_id = "warm-upgrade-other".into();
        assert!(
            elsewhere
                .check_approve(&signed, now())
                .unwrap_err()
                .contains("does not verify"),
            "a signature is for one workflow"
        );
        let mut held_again = held_by_ana(true, &public, true);
        held_again.chain = "run-2".into();
        assert!(
            held_again
                .check_approve(&signed, now())
                .unwrap_err()
                .contains("does not verify"),
            "a signature is for one run: the app held again for the same version"
        );
        let mut used = held_by_ana(true, &public, true);
        used.signatures.push(signed.signature.clone());
        assert!(
            used.check_approve(&signed, now())
                .unwrap_err()
                .contains("already used"),
            "a signature counts once"
        );
        assert!(
            w.check_approve(&signed, parse_rfc3339("2026-12-02T11:00:00Z"))
                .unwrap_err()
                .contains("signed 3600s ago"),
            "a stale signature"
        );
    }

    #[test]
    fn a_verified_approval_needs_a_verified_starter() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        // bob typed `--by carol` on the command line, then approves through
        // the API.
        let mut w = held_by_ana(false, &public, false);
        w.input.operator = "carol".into();
        let mut signed = approval("bob");
        sign(&w, &key, &mut signed);
        let refusal = w.check_approve(&signed, now()).unwrap_err();
        assert!(refusal.contains("typed name (`carol`)"), "{refusal}");
        w.scheduled = true;
        w.input.operator = "schedule".into();
        assert_eq!(
            w.check_approve(&signed, now()),
            Ok(()),
            "a schedule's run has no person to separate from"
        );
    }

    #[test]
    fn an_approval_is_for_the_held_version_only() {
        let mut w = WarmUpgrade {
            stage: UpgradeStage::Running(UpgradePhase::Held),
            ..Default::default()
        };
        w.plan.target = "10.8.0+26.6.2".into();
        let req = |v: &str| ApproveRequest {
            version: v.into(),
            operator: "ana".into(),
            reason: "read the notes".into(),
            ..Default::default()
        };
        assert!(w.check_approve(&req("10.8.0+26.6.2"), now()).is_ok());
        assert!(
            w.check_approve(&req("10.9.0+26.6.2"), now())
                .unwrap_err()
                .contains("exact version")
        );
        assert!(
            w.check_approve(
                &ApproveRequest {
                    reason: "".into(),
                    ..req("10.8.0+26.6.2")
                },
                now()
            )
            .is_err()
        );
        w.stage = UpgradeStage::Running(UpgradePhase::Deploying);
        assert!(
            w.check_approve(&req("10.8.0+26.6.2"), now())
                .unwrap_err()
                .contains("nothing to approve")
        );
    }
}
