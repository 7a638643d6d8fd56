//! `WarmUpgrade`: safety gate → (hold and approve) → undeploy → snapshot →
//! deploy → health gate → commit last_good, or roll back (undeploy,
//! restore, redeploy last good, health). A trial always restores. Every
//! step is an activity, so a crash between any two steps resumes the
//! sequence and ends `upgraded` or `rolled-back`, never in between.
//!
//! `run` reads top-down: inspect and judge the start, take the app's lock,
//! then [`WarmUpgrade::gate`] (already there, held until a cold run passes,
//! held for an approval, not enough disk), [`WarmUpgrade::swap`] (undeploy,
//! snapshot, deploy, health, commit) and, when the candidate fails,
//! [`WarmUpgrade::roll_back`]. The cold path is `cold.rs`; who may start
//! and approve is `approval.rs`. What the patches decide is computed once,
//! in [`Choices`].

mod approval;
mod cold;

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use steward_proto::activities::{
    AcquireLock, ReleaseLock, UpgradeForgeStatus, UpgradeInspect, UpgradeRecord, UpgradeStep,
};
use steward_proto::v1::{
    AppStep, ApproveReply, ApproveRequest, ForgeStatus, LockRelease, LockRequest, OperatorAction,
    StepResult, UpgradeInput, UpgradePlan, UpgradeResult, UpgradeStatus,
};
use steward_proto::vocab::{
    Advance, Hold, OnUnhealthy, OperatorVerb, PlacementKind, ScheduleKind, Severity, UpgradeMode,
    UpgradeOutcome, UpgradePhase, UpgradeStage, UpgradeStepKind,
};
use steward_proto::{ids, names, signing};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityOptions, SyncWorkflowContext, TimerOptions, WorkflowCancellationToken, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};

use crate::alert::{NewAlert, detail};
use crate::attributes::{self, SEARCH_ATTRIBUTES_PATCH};
use crate::backfill::SIGNATURE_BINDING_PATCH;
use crate::hosts::{self, Pins};
use crate::operator;
use crate::options::summarized;
use crate::time::rfc3339;

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
    /// Where the steps that touch the app run.
    pins: Pins,
    /// Whether the API's signature on the start held.
    start_verified: bool,
    /// Whether signatures are bound to the run (false for runs recorded
    /// before the binding).
    bound: bool,
    /// Signatures of the approvals accepted: none counts twice.
    signatures: Vec<String>,
    /// The run's resources on its shared services may exist: they are
    /// deleted when the run ends, however it ends.
    shared: bool,
    /// A cold run's deployment may be running: it is undeployed however
    /// the run ends.
    cold_up: bool,
}

/// Patch that introduced the per-app lease lock; histories recorded before
/// it replay without the lock activities.
pub const APP_LOCK_PATCH: &str = "upgrade-per-app-lock";

/// Patch that brought pruning, disk safety, what the canonical deployment
/// runs apart from last good, first runs, stateless apps, cold runs and
/// `on_unhealthy`; histories recorded before it replay the older steps.
pub const UPGRADE_MODES_PATCH: &str = "upgrade-modes";

/// Patch: in `advance = "cold"` mode, a cold run of a held release (a major
/// bump, a manual migration) moves last_good only once approved, as a warm
/// upgrade does. Runs recorded before it moved it unasked.
pub const COLD_HOLD_PATCH: &str = "upgrade-cold-hold";

/// Patch: a cold run or trial of an app that `uses` shared services makes
/// its own resource on each before its first step and deletes it on every
/// ending. Runs recorded before it made none.
pub const SHARED_RESOURCES_PATCH: &str = "upgrade-shared-resources";

/// Patch: a cold run that ends in an error or an operator's cancel
/// undeploys its cold deployment too. Runs recorded before it left it.
pub const COLD_CLEANUP_PATCH: &str = "upgrade-cold-cleanup";

/// How often a run asks again whether a shared service it uses is still
/// being upgraded.
const SHARED_POLL_SECONDS: u64 = 5;

/// Patch: an approved hold raises `upgrade.approved` (a notice, and what
/// resolves the hold's alert). Runs recorded before it raised nothing.
pub const APPROVAL_NOTICE_PATCH: &str = "upgrade-approval-notice";

/// What the plan and the patches decide for the rest of the run, computed
/// once.
#[derive(Debug, Clone)]
struct Choices {
    /// The run has the `upgrade-modes` steps (prune, disk check, deployed
    /// apart from last good, first runs, `on_unhealthy`).
    modern: bool,
    app: String,
    target: String,
    last_good: String,
    /// What the canonical deployment runs now, and goes back to on a
    /// rollback (empty on a first run).
    from: String,
    trial: bool,
    /// `advance = "cold"`: only a cold run moves last good.
    cold_mode: bool,
    /// `on_unhealthy = "notify"`: an unhealthy candidate is kept.
    notify: bool,
}

impl Choices {
    fn of(plan: &UpgradePlan, input: &UpgradeInput, modern: bool) -> Self {
        Self {
            modern,
            app: plan.app.clone(),
            target: plan.target.clone(),
            last_good: plan.last_good.clone(),
            from: if modern {
                plan.deployed.clone()
            } else {
                plan.last_good.clone()
            },
            trial: input.trial,
            cold_mode: plan.advance.parse::<Advance>().ok() == Some(Advance::Cold),
            notify: plan.on_unhealthy.parse::<OnUnhealthy>().ok() == Some(OnUnhealthy::Notify),
        }
    }

    /// Whether something runs that must stop before the snapshot.
    fn runs_something(&self) -> bool {
        !self.modern || !self.from.is_empty()
    }

    /// Whether nothing ran before (a first run): a rollback leaves the app
    /// undeployed.
    fn first_run(&self) -> bool {
        self.modern && self.from.is_empty()
    }

    /// The record a healthy candidate commits: last good, or in cold mode
    /// only what the deployment runs.
    fn commit(&self) -> UpgradeStepKind {
        if self.modern && self.cold_mode {
            UpgradeStepKind::SetDeployed
        } else {
            UpgradeStepKind::SetLastGood
        }
    }
}

/// How a run ends: its outcome, the last good it leaves, whether the app
/// is back on a healthy version, and what to say.
#[derive(Debug)]
struct Ending {
    outcome: UpgradeOutcome,
    last_good: String,
    recovered: bool,
    message: String,
}

impl Ending {
    /// The app is where it was (or better): recovered.
    fn fine(outcome: UpgradeOutcome, last_good: &str, message: impl Into<String>) -> Self {
        Self {
            outcome,
            last_good: last_good.to_string(),
            recovered: true,
            message: message.into(),
        }
    }

    /// The app is not back on a healthy version.
    fn unrecovered(outcome: UpgradeOutcome, last_good: &str, message: impl Into<String>) -> Self {
        Self {
            recovered: false,
            ..Self::fine(outcome, last_good, message)
        }
    }
}

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

    /// Runs the upgrade, the trial or the cold run; the run's shared
    /// resources are deleted however it ends (an operator's cancel, a
    /// failed step), not only on the endings it reports.
    #[run(name = names::WARM_UPGRADE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<UpgradeResult> {
        let ended = Self::upgrade(ctx).await;
        if ended.is_err() {
            Self::cold_cleanup(ctx).await?;
            Self::unshare(ctx).await?;
            report(ctx, "error", "the run ended without a result".into()).await;
        }
        ended
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
            // A trial never holds: it shows no hold.
            hold: if self.input.trial {
                String::new()
            } else {
                self.plan.hold.clone()
            },
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
    /// The upgrade, the trial or the cold run.
    async fn upgrade(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<UpgradeResult> {
        let input = ctx.state(|s| s.input.clone());
        if let Some(origin) = &input.forge {
            let asked = format!(
                "{} by {} on {}#{}",
                origin.command, origin.commenter, origin.repo, origin.pull
            );
            report(ctx, "pending", asked).await;
        }
        let attributes = ctx.patched(SEARCH_ATTRIBUTES_PATCH);
        ctx.state_mut(|s| s.attributes = attributes);
        enter(ctx, UpgradePhase::Inspecting);
        let pins = hosts::place(ctx, "upgrade", PlacementKind::App, &input.app).await?;
        ctx.state_mut(|s| s.pins = pins.clone());
        let plan = pins
            .run(
                ctx,
                &input.app,
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
            let end = Ending::fine(UpgradeOutcome::Refused, &plan.last_good, why);
            return Self::finish(ctx, end).await;
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
                let end = Ending::fine(
                    UpgradeOutcome::SkippedBusy,
                    &plan.last_good,
                    format!(
                        "another upgrade of {} is running (workflow run {})",
                        plan.app, grant.holder
                    ),
                );
                return Self::finish(ctx, end).await;
            }
            ctx.state_mut(|s| s.locked = true);
        }
        let choices = Choices::of(&plan, &input, ctx.patched(UPGRADE_MODES_PATCH));
        if choices.modern {
            enter(ctx, UpgradePhase::Pruning);
            let pruned = run_step(ctx, step(ctx, &choices.app, UpgradeStepKind::Prune, "")).await?;
            ctx.state_mut(|s| s.pruned = pruned.removed.clone());
            if (input.cold || input.trial)
                && !plan.shared.is_empty()
                && ctx.patched(SHARED_RESOURCES_PATCH)
                && let Some(end) = Self::share(ctx, &choices).await?
            {
                return Self::finish(ctx, end).await;
            }
            if input.cold {
                return Self::cold_run(ctx).await;
            }
        }
        if let Some(end) = Self::gate(ctx, &choices).await? {
            return Self::finish(ctx, end).await;
        }
        let end = Self::swap(ctx, &choices).await?;
        Self::finish(ctx, end).await
    }

    /// Holds the run for an operator's approval of `plan.target` (a major
    /// bump, or release notes that ask for a manual migration): an alert
    /// (`headline`, the notes, how to approve), then the wait (none when
    /// `wait` is false: the run ends held at once). How it ends when no one
    /// approved in time (on `last_good`; the message says what `stays`), or
    /// None once approved.
    async fn held(
        ctx: &mut WorkflowContext<Self>,
        plan: &UpgradePlan,
        last_good: &str,
        (headline, stays): (String, String),
        wait: bool,
    ) -> Option<Ending> {
        enter(ctx, UpgradePhase::Held);
        // A hold this workflow does not know still holds.
        let hold: Hold = plan.hold.parse().unwrap_or(Hold::ManualMigration);
        let outcome = UpgradeOutcome::held(hold);
        let target = &plan.target;
        let how = if wait {
            how_to_approve(plan, target)
        } else {
            format!(
                "`steward upgrade run {} --cold --version {target}` and an approval of that run",
                plan.app
            )
        };
        alert(
            ctx,
            Severity::Warning,
            outcome.as_str(),
            true,
            format!("{headline}; approve with {how}"),
            detail([
                ("matching_notes", plan.matches.clone().into()),
                ("notes", plan.notes.clone().into()),
            ]),
        )
        .await;
        ctx.set_current_details(format!("held ({}): waiting for {how}", plan.hold));
        if !wait {
            return Some(Ending::fine(outcome, last_good, stays));
        }
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
        // The approval, or the wait that ran out, is announced; an
        // approval ends the hold's alert (the sink resolves `upgrade.held-*`
        // of the app when `upgrade.approved` is raised).
        let approved = ctx.state(|s| s.approved.clone());
        if ctx.patched(APPROVAL_NOTICE_PATCH) {
            let (kind, message) = match &approved {
                Some(by) => (
                    "approved",
                    format!(
                        "upgrade of {} to {target} approved by {}: {}",
                        plan.app, by.operator, by.reason
                    ),
                ),
                None => (
                    "approval-timed-out",
                    format!(
                        "upgrade of {} to {target}: not approved within {}s; the run ends held",
                        plan.app, plan.approval_wait_seconds
                    ),
                ),
            };
            alert(ctx, Severity::Info, kind, true, message, Map::new()).await;
        }
        approved.is_none().then(|| {
            Ending::fine(
                outcome,
                last_good,
                format!(
                    "not approved within {}s; {stays}",
                    plan.approval_wait_seconds
                ),
            )
        })
    }

    /// Whether the upgrade goes ahead; how it ends when not: the app is
    /// already on the target (healthy or not), no cold run passed the
    /// target in cold mode, a hold no one approved in time, or not enough
    /// disk for the snapshot.
    async fn gate(ctx: &mut WorkflowContext<Self>, c: &Choices) -> WorkflowResult<Option<Ending>> {
        let (app, target, last_good, from) = (&c.app, &c.target, &c.last_good, &c.from);
        if !c.trial && target == from {
            enter(ctx, UpgradePhase::HealthGate);
            let h = run_step(ctx, step(ctx, app, UpgradeStepKind::Health, from)).await?;
            if h.ok {
                return Ok(Some(Ending::fine(
                    UpgradeOutcome::NoopHealthy,
                    last_good,
                    "already on the latest version and healthy",
                )));
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
            return Ok(Some(Ending::unrecovered(
                UpgradeOutcome::NoopUnhealthy,
                last_good,
                h.message,
            )));
        }
        let plan = ctx.state(|s| s.plan.clone());
        if c.modern && c.cold_mode && !c.trial && !plan.cold_proven {
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
            return Ok(Some(Ending::fine(
                UpgradeOutcome::HeldCold,
                last_good,
                format!(
                    "no cold run passed {target}; {app} stays on {}",
                    shown(from)
                ),
            )));
        }
        if !c.trial && !plan.hold.is_empty() {
            let headline = format!(
                "upgrade of {app} from {} to {target} is held ({})",
                shown(from),
                plan.hold
            );
            let stays = format!("stays on {}", shown(from));
            if let Some(end) = Self::held(ctx, &plan, last_good, (headline, stays), true).await {
                return Ok(Some(end));
            }
        }
        if c.modern {
            enter(ctx, UpgradePhase::CheckingDisk);
            let room = run_step(ctx, step(ctx, app, UpgradeStepKind::DiskCheck, target)).await?;
            if !room.ok {
                return Ok(Some(Self::held_disk(ctx, &room).await));
            }
        }
        Ok(None)
    }

    /// Swaps the candidate in: undeploy what runs, snapshot, deploy the
    /// target, health (and a trial's asserts), commit; a candidate that
    /// fails is kept (`on_unhealthy = "notify"`) or rolled back.
    async fn swap(ctx: &mut WorkflowContext<Self>, c: &Choices) -> WorkflowResult<Ending> {
        let (app, target, last_good, from) = (&c.app, &c.target, &c.last_good, &c.from);
        if c.runs_something() {
            enter(ctx, UpgradePhase::Undeploying);
            run_step(ctx, step(ctx, app, UpgradeStepKind::Undeploy, from)).await?;
        }
        enter(ctx, UpgradePhase::Snapshotting);
        let snap = run_step(ctx, step(ctx, app, UpgradeStepKind::Snapshot, "")).await?;
        if !snap.ok {
            if c.runs_something() {
                run_step(ctx, step(ctx, app, UpgradeStepKind::Deploy, from)).await?;
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
            return Ok(Ending::fine(
                UpgradeOutcome::RolledBack,
                last_good,
                format!("snapshot failed: {}", snap.message),
            ));
        }
        enter(ctx, UpgradePhase::Deploying);
        let deployed = run_step(ctx, step(ctx, app, UpgradeStepKind::Deploy, target)).await?;
        let mut verdict: StepResult = deployed.clone();
        if deployed.ok {
            enter(ctx, UpgradePhase::HealthGate);
            verdict = run_step(ctx, step(ctx, app, UpgradeStepKind::Health, target)).await?;
            if verdict.ok && c.trial {
                enter(ctx, UpgradePhase::Asserting);
                verdict = run_step(ctx, step(ctx, app, UpgradeStepKind::Asserts, target)).await?;
            }
        }
        if verdict.ok && !c.trial {
            enter(ctx, UpgradePhase::Committing);
            let commit = c.commit();
            let done = run_step(ctx, step(ctx, app, commit, target)).await?;
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
                return Ok(Ending::fine(UpgradeOutcome::Upgraded, &now_good, message));
            }
            verdict = done;
        }
        ctx.state_mut(|s| s.failure = verdict.clone());
        let why = verdict.message.clone();
        if c.modern && c.notify && deployed.ok && !c.trial {
            // Kept running as asked: recorded as what runs, never as good.
            run_step(ctx, step(ctx, app, UpgradeStepKind::SetDeployed, target)).await?;
            ctx.state_mut(|s| s.plan.deployed = target.clone());
            alert(
                ctx,
                Severity::Critical,
                UpgradeOutcome::UnhealthyKept.as_str(),
                false,
                format!(
                    "{app}: {target} is unhealthy ({why}) and kept running (on_unhealthy = \"notify\"); last good stays {}",
                    shown(last_good)
                ),
                failure_detail(&verdict),
            )
            .await;
            return Ok(Ending::unrecovered(
                UpgradeOutcome::UnhealthyKept,
                last_good,
                why,
            ));
        }
        Self::roll_back(ctx, c, &verdict).await
    }

    /// Rolls back to what ran before (a trial always comes back): undeploy
    /// the candidate, restore the snapshot, redeploy and health-check what
    /// ran (a first run stays undeployed, its data restored).
    async fn roll_back(
        ctx: &mut WorkflowContext<Self>,
        c: &Choices,
        verdict: &StepResult,
    ) -> WorkflowResult<Ending> {
        let (app, target, last_good, from) = (&c.app, &c.target, &c.last_good, &c.from);
        let why = verdict.message.clone();
        enter(ctx, UpgradePhase::RollingBack);
        run_step(ctx, step(ctx, app, UpgradeStepKind::Undeploy, target)).await?;
        let restored = run_step(ctx, step(ctx, app, UpgradeStepKind::Restore, "")).await?;
        let (redeployed, healthy) = if c.first_run() {
            (restored.clone(), restored.clone())
        } else {
            (
                run_step(ctx, step(ctx, app, UpgradeStepKind::Deploy, from)).await?,
                run_step(ctx, step(ctx, app, UpgradeStepKind::Health, from)).await?,
            )
        };
        if c.first_run() {
            ctx.state_mut(|s| s.plan.deployed = String::new());
        }
        let recovered = restored.ok && redeployed.ok && healthy.ok;
        let back = if c.first_run() {
            "nothing ran before: left undeployed, data restored".to_string()
        } else {
            format!("back on {from}")
        };
        if c.trial {
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
                    failure_detail(verdict),
                )
                .await;
            }
            return Ok(Ending {
                outcome,
                last_good: last_good.clone(),
                recovered,
                message: why,
            });
        }
        if recovered {
            alert(
                ctx,
                Severity::Warning,
                UpgradeOutcome::RolledBack.as_str(),
                true,
                format!("{app}: {target} failed ({why}); {back}"),
                failure_detail(verdict),
            )
            .await;
            let message = if c.first_run() {
                format!("{why}; {back}")
            } else {
                why
            };
            return Ok(Ending::fine(UpgradeOutcome::RolledBack, last_good, message));
        }
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
            failure_detail(verdict),
        )
        .await;
        Ok(Ending::unrecovered(
            UpgradeOutcome::RollbackFailed,
            last_good,
            format!("{why}; rollback: {how}"),
        ))
    }

    /// Makes the run's resource on each shared service its app uses,
    /// waiting (up to the services' `wait`) while one is being upgraded;
    /// how the run ends when they cannot be made (nothing else touched).
    async fn share(ctx: &mut WorkflowContext<Self>, c: &Choices) -> WorkflowResult<Option<Ending>> {
        enter(ctx, UpgradePhase::SharingResources);
        let limit = ctx.state(|s| s.plan.shared_wait_seconds);
        // Set before the create: one in flight when the run is cancelled is
        // deleted too.
        ctx.state_mut(|s| s.shared = true);
        let mut waited = 0;
        loop {
            let made = run_step(ctx, step(ctx, &c.app, UpgradeStepKind::SharedCreate, "")).await?;
            if made.ok {
                return Ok(None);
            }
            if made.busy && waited < limit {
                ctx.set_current_details(made.message.clone());
                let again = TimerOptions::builder(Duration::from_secs(SHARED_POLL_SECONDS))
                    .summary("wait while a shared service is upgraded".to_string())
                    .build();
                let _ = ctx.timer(again).await;
                waited += SHARED_POLL_SECONDS;
                continue;
            }
            let message = if made.busy {
                format!("{} for longer than {limit}s", made.message)
            } else {
                made.message.clone()
            };
            let (outcome, mode) = if c.trial {
                (UpgradeOutcome::TrialFailed, "trial")
            } else {
                (UpgradeOutcome::ColdFailed, "cold run")
            };
            alert(
                ctx,
                Severity::Warning,
                "shared-unavailable",
                true,
                format!(
                    "{}: the {mode} of {} did not start: {message}",
                    c.app, c.target
                ),
                Map::new(),
            )
            .await;
            ctx.state_mut(|s| s.failure = made);
            return Ok(Some(Ending::fine(outcome, &c.last_good, message)));
        }
    }

    /// Undeploys a cold run's deployment (and removes its scratch data)
    /// when the run ended in an error or a cancel while it may have been
    /// running, on a detached cancellation token.
    async fn cold_cleanup(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        if !ctx.state(|s| s.cold_up) || !ctx.patched(COLD_CLEANUP_PATCH) {
            return Ok(());
        }
        let (app, target) = ctx.state(|s| (s.input.app.clone(), s.plan.target.clone()));
        let mut options = summarized(long(), format!("cold_undeploy {app} {target}"));
        options.cancellation_token = Some(WorkflowCancellationToken::new());
        let pins = ctx.state(|s| s.pins.clone());
        let undeploy = step(ctx, &app, UpgradeStepKind::ColdUndeploy, &target);
        let done = pins.run(ctx, &app, UpgradeStep, undeploy, options).await?;
        ctx.state_mut(|s| s.cold_up = false);
        if !done.ok {
            Self::cold_leftover(ctx, &app, &target, &done.message).await;
        }
        Ok(())
    }

    /// Deletes the run's resources on its shared services, if it may have
    /// made any, even once the run is cancelled; a resource left behind is
    /// an alert (the reaper deletes it later).
    async fn unshare(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        if !ctx.state(|s| s.shared) {
            return Ok(());
        }
        let app = ctx.state(|s| s.input.app.clone());
        let mut options = summarized(long(), format!("shared_delete {app}"));
        options.cancellation_token = Some(WorkflowCancellationToken::new());
        let pins = ctx.state(|s| s.pins.clone());
        let delete = step(ctx, &app, UpgradeStepKind::SharedDelete, "");
        let done = pins.run(ctx, &app, UpgradeStep, delete, options).await?;
        ctx.state_mut(|s| s.shared = false);
        if !done.ok {
            alert(
                ctx,
                Severity::Warning,
                "shared-leftover",
                true,
                format!("{app}: {}", done.message),
                Map::new(),
            )
            .await;
        }
        Ok(())
    }

    /// Ends the run as `end` says: the result, the status the query shows,
    /// the app's lock given back, the record.
    async fn finish(ctx: &mut WorkflowContext<Self>, end: Ending) -> WorkflowResult<UpgradeResult> {
        let Ending {
            outcome,
            last_good,
            recovered,
            message,
        } = end;
        let result = ctx.state(|s| UpgradeResult {
            app: s.plan.app.clone(),
            outcome: outcome.into(),
            attempted: s.plan.target.clone(),
            last_good: last_good.clone(),
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
            mode: mode_of(&s.input).into(),
            revision: s.plan.revision.clone(),
            compared_with: s.plan.last_good.clone(),
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
            s.plan.last_good = last_good;
        });
        mark(ctx);
        ctx.set_current_details(format!("ended: {outcome}"));
        Self::unshare(ctx).await?;
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
        let state = match outcome {
            UpgradeOutcome::ColdPassed | UpgradeOutcome::TrialPassed | UpgradeOutcome::Upgraded => {
                "success"
            }
            UpgradeOutcome::ColdFailed
            | UpgradeOutcome::TrialFailed
            | UpgradeOutcome::RolledBack => "failure",
            _ => "error",
        };
        report(ctx, state, format!("{outcome}: {}", result.message)).await;
        Ok(result)
    }
}

/// Which run `input` asks for.
fn mode_of(input: &UpgradeInput) -> UpgradeMode {
    if input.trial {
        UpgradeMode::Trial
    } else if input.cold {
        UpgradeMode::Cold
    } else {
        UpgradeMode::Warm
    }
}

/// Posts the run's commit status (`state`: pending, success, failure,
/// error) to the forge whose comment started it, in the context
/// `steward/<mode>`; never a merge gate, and a forge that does not answer
/// never stops the run. Runs even once the run is cancelled.
async fn report(ctx: &WorkflowContext<WarmUpgrade>, state: &str, said: String) {
    let Some((origin, mode)) = ctx.state(|s| s.input.forge.clone().map(|o| (o, mode_of(&s.input))))
    else {
        return;
    };
    let status = ForgeStatus {
        origin: Some(origin),
        state: state.into(),
        description: format!("informational, not a merge gate: {said}"),
        context: format!("steward/{mode}"),
        workflow_id: ctx.workflow_id().into(),
    };
    let mut options = short(format!("forge status {state}"));
    options.cancellation_token = Some(WorkflowCancellationToken::new());
    let _ = ctx
        .execute_activity(UpgradeForgeStatus, status, options)
        .await;
}

/// How an operator approves `target` of the app `plan` holds: through the
/// API when the app takes only verified approvals (the CLI's would be
/// refused), else the CLI, with the reason every approval needs.
fn how_to_approve(plan: &UpgradePlan, target: &str) -> String {
    let app = &plan.app;
    if plan.require_verified {
        format!(
            "`POST /v1/upgrades/{app}/approve` {{\"version\": \"{target}\", \"reason\": \"...\"}} \
             with an operator's token, or the operator page (require_verified: the CLI's \
             approval is refused)"
        )
    } else {
        format!("`steward upgrade approve {app} --version {target} --reason \"...\"`")
    }
}

/// Step `kind` of `app` at `version`, tagged with this run.
fn step(
    ctx: &WorkflowContext<WarmUpgrade>,
    app: &str,
    kind: UpgradeStepKind,
    version: &str,
) -> AppStep {
    // The commit the run inspected is the target's; another version's
    // (a rollback's) the step resolves from its tag.
    let revision = ctx.state(|s| {
        if s.plan.target == version {
            s.plan.revision.clone()
        } else {
            String::new()
        }
    });
    AppStep {
        app: app.to_string(),
        step: kind.into(),
        version: version.into(),
        tag: ctx.run_id().to_string(),
        revision,
        shared: ctx.state(|s| s.shared),
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
    let pins = ctx.state(|s| s.pins.clone());
    let app = step.app.clone();
    Ok(pins.run(ctx, &app, UpgradeStep, step, options).await?)
}

/// Steps heartbeat, so a worker killed mid-step is noticed in 10 s and the
/// step is retried (every step is idempotent).
fn long() -> ActivityOptions {
    crate::options::heartbeating(3600, 10)
}
