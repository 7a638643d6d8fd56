//! `BackfillRollout`: the backfill runbook as a workflow. preconditions →
//! awaiting_freeze → frozen → dry_run → awaiting_approval → executing →
//! validating → unfreezing → replay_probe → done; or rolling_back →
//! rolled_back_frozen until an operator unfreezes. Every step is an
//! activity; operators drive it with validated updates that carry their
//! name and reason.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use steward_proto::activities::{
    BackfillAction, BackfillBatch, BackfillDryRun, BackfillLag, BackfillPlanActivity,
    BackfillPreconditions, BackfillReplayProbe, BackfillRollback, BackfillThrottles,
    BackfillValidate, BackfillWriteEvidence, ClaimStart,
};
use steward_proto::v1::{
    BackfillCarry, BackfillEvidence, BackfillInput, BackfillPlan, BackfillRef, BackfillResult,
    BackfillStatus, BatchRequest, CheckResult, DryRunRequest, OperatorAction, OperatorReply,
    OperatorRequest, ProbeResult, RollbackResult, SkippedBatch, StartClaim, ThrottleReading,
    ThrottleRequest, ValidationRequest,
};
use steward_proto::vocab::{
    BackfillOutcome, BackfillPhase, BackfillStage, OperatorVerb, Severity, SpecAction,
};
use steward_proto::{limits, names};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityCancellationType, ActivityOptions, ContinueAsNewOptions, SyncWorkflowContext,
    TimerOptions, WorkflowContext, WorkflowContextView, WorkflowResult,
};

use crate::alert::{NewAlert, detail};
use crate::attributes::{self, SEARCH_ATTRIBUTES_PATCH};
use crate::hosts::Pins;
use crate::operator::{self, Seal, Starter};
use crate::options::summarized;
use crate::time::{parse_rfc3339, rfc3339};
use steward_proto::signing;
use temporalio_common::ActivityDefinition;
use temporalio_common::data_converters::TemporalDeserializable;
use temporalio_common::error::ActivityExecutionError;

mod protocol;

pub use protocol::verbs_in;

type Rejection = Box<dyn std::error::Error + Send + Sync>;

/// Patch that made each batch activity apply a run of batches; histories
/// recorded before it replay with one batch per activity.
pub const BATCH_RUNS_PATCH: &str = "backfill-batch-runs";

/// Patch that measures `max_runtime` from the start of execution;
/// histories recorded before it measured it from the rollout's creation.
pub const RUNTIME_FROM_EXECUTION_PATCH: &str = "backfill-runtime-from-execution";

/// Patch that binds operator signatures to the run: a signed start claims
/// its nonce, and updates are signed for the chain's first run. Runs
/// recorded before it replay the unbound check they made then.
pub const SIGNATURE_BINDING_PATCH: &str = "operator-signatures-bound";

/// Patch: a rollout says when it waits for people (a freeze by hand, the
/// approvals, with the groups that may give them), when that wait runs out
/// (`approval_timeout`) and when it is approved. Runs recorded before it
/// raised none of these.
pub const NOTICES_PATCH: &str = "backfill-notices";

/// Patch that ends a rollout's run tag with its first run's id: two
/// rollouts of one backfill started within the same second shared a tag,
/// so the second found the first's batches recorded as its own and its
/// rollback removed the first's rows. Runs recorded before it keep the
/// tag they made then.
pub const UNIQUE_RUN_TAG_PATCH: &str = "backfill-unique-run-tag";

/// What a rollout waiting for approvals tells the people who may give
/// them.
fn awaiting_approval(name: &str, plan: &BackfillPlan) -> String {
    format!(
        "backfill `{name}` waits for the approval of each of {}: a member of each group approves \
         with `steward backfill approve {name} --group G --reason \"...\"` (or the API, or the \
         page)",
        plan.approvals.join(", ")
    )
}

/// Patch: a pause, an abort or a new setting cancels the run of batches
/// in flight, which ends before its next batch and returns what it
/// applied, so a run may last [`STOPPABLE_RUN_BUDGET_MS`]. Runs recorded
/// before it lasted [`RUN_BUDGET_MS`] and were never cancelled.
pub const STOPPABLE_RUNS_PATCH: &str = "backfill-stoppable-runs";

/// A batch activity recorded before [`STOPPABLE_RUNS_PATCH`] starts no
/// batch after this long, so that pause, abort and live settings took
/// effect within about a second.
const RUN_BUDGET_MS: u32 = 1_000;

/// A batch activity starts no batch after this long: the status and the
/// history show a run's progress when it ends. Each run costs a round
/// trip through the server, which batches of a second (a job's) would
/// otherwise pay one by one.
const STOPPABLE_RUN_BUDGET_MS: u32 = 5_000;

/// The backfill rollout workflow. Its id is `backfill-<name>`.
#[workflow]
#[derive(Default)]
pub struct BackfillRollout {
    input: BackfillInput,
    stage: BackfillStage,
    plan: BackfillPlan,
    /// What continue-as-new hands to the next run.
    carry: BackfillCarry,
    freeze_requested: bool,
    unfreeze_requested: bool,
    abort_requested: bool,
    throttled: bool,
    /// The named throttles as last read.
    throttles: Vec<ThrottleReading>,
    /// The named throttles over their maximum in this episode, each
    /// alerted once.
    throttles_alerted: std::collections::BTreeSet<String>,
    batches_this_run: u32,
    /// A run of more than one batch is in flight: a pause replies when it
    /// ends.
    batch_in_flight: bool,
    /// Batch activities that have returned in this run: a pause waits for
    /// the one in flight when it came, not for a moment with none in flight.
    batch_runs_done: u64,
    /// A pause, an abort or a new setting came while a run of batches was
    /// in flight: the run is cancelled (see [`STOPPABLE_RUNS_PATCH`]).
    stop_run: bool,
    /// Workflow time at the last step, for the status query.
    now: Option<SystemTime>,
    /// Whether this run keeps its search attributes up to date (runs
    /// recorded before the patch do not).
    attributes: bool,
    /// The workflow id, which an operator action's signature names.
    workflow_id: String,
    /// The first run id of this rollout's chain (kept across
    /// continue-as-new), which an update's signature names.
    chain: String,
    /// When the server started this run: a signed start must be fresh then.
    started: Option<SystemTime>,
    /// Whether a Temporal Schedule started it.
    scheduled: bool,
    /// Whether the API's signature on the start held.
    start_verified: bool,
    /// Whether signatures are bound to the run (false for runs recorded
    /// before the binding).
    bound: bool,
    /// Where pinned actions run (`runs_on`), and which hosts they wait for.
    pins: Pins,
}

#[workflow_methods]
impl BackfillRollout {
    /// Takes the input before any update is validated, so a run that
    /// continued as new answers operators with its carried state at once.
    #[init]
    pub fn new(ctx: &WorkflowContextView, input: BackfillInput) -> Self {
        let resumed = input.carry.is_some();
        let mut carry = input.carry.clone().unwrap_or_default();
        Self {
            workflow_id: ctx.workflow_id().to_string(),
            chain: ctx.first_execution_run_id().to_string(),
            started: ctx.start_time(),
            scheduled: operator::scheduled(ctx),
            bound: true,
            plan: carry.plan.take().unwrap_or_default(),
            carry,
            stage: BackfillStage::Running(if resumed {
                BackfillPhase::Executing
            } else {
                BackfillPhase::Preconditions
            }),
            input,
            ..Default::default()
        }
    }

    /// Runs (or, after continue-as-new, resumes) the rollout.
    #[run(name = names::BACKFILL_ROLLOUT)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<BackfillResult> {
        let input = ctx.state(|s| s.input.clone());
        let name = input.name.clone();
        let attributes = ctx.patched(SEARCH_ATTRIBUTES_PATCH);
        ctx.state_mut(|s| s.attributes = attributes);
        let plan = ctx
            .execute_activity(BackfillPlanActivity, name.clone(), short("plan"))
            .await?;
        let now = time(ctx);
        let resumed = input.carry.is_some();
        let bound = ctx.patched(SIGNATURE_BINDING_PATCH);
        let unique =
            (!resumed && ctx.patched(UNIQUE_RUN_TAG_PATCH)).then(|| ctx.run_id().to_string());
        ctx.state_mut(|s| {
            s.input = input.clone();
            s.plan = plan.clone();
            s.bound = bound;
            s.pins = Pins::new("backfill", "", plan.host_wait_alert_seconds);
        });
        let refused_start = if resumed {
            None
        } else {
            Self::judge_start(ctx).await?
        };
        ctx.state_mut(|s| {
            if !resumed {
                // Updates may have arrived before the plan: keep what they set.
                s.carry.run_tag = run_tag_for(&s.input.name, now, unique.as_deref());
                s.carry.started_at = rfc3339(now);
                if s.carry.batch_size == 0 {
                    s.carry.batch_size = if input.batch_size > 0 {
                        input.batch_size
                    } else {
                        plan.batch_size
                    };
                }
                if s.carry.max_lag_seconds == 0.0 {
                    s.carry.max_lag_seconds = plan.max_lag_seconds;
                }
                s.carry.operator_actions.insert(
                    0,
                    OperatorAction {
                        action: OperatorVerb::Start.into(),
                        operator: input.operator.clone(),
                        reason: input.reason.clone(),
                        detail: format!(
                            "dry_run={} batch_size={} freeze_at={}",
                            input.dry_run, input.batch_size, input.freeze_at
                        ),
                        at: rfc3339(now),
                        credential_id: input.credential_id.clone(),
                        verified: s.start_verified,
                    },
                );
            }
            s.carry.runs += 1;
        });
        if resumed {
            enter(ctx, BackfillPhase::Executing);
            return Self::execute(ctx).await;
        }
        if let Some(why) = refused_start {
            return Self::finish(ctx, Ending::new(BackfillOutcome::PreconditionsFailed, why)).await;
        }

        // Preconditions.
        enter(ctx, BackfillPhase::Preconditions);
        let pre = ctx
            .execute_activity(BackfillPreconditions, name.clone(), short("preconditions"))
            .await?;
        ctx.state_mut(|s| s.carry.baseline = pre.baseline.clone());
        if let Some(bad) = pre.checks.iter().find(|c| !c.ok) {
            alert(
                ctx,
                Severity::Warning,
                "preconditions",
                format!("precondition `{}` failed: {}", bad.name, bad.message),
            )
            .await;
            return Self::finish(
                ctx,
                Ending {
                    preconditions: pre.checks.clone(),
                    ..Ending::new(
                        BackfillOutcome::PreconditionsFailed,
                        format!("precondition `{}` does not hold", bad.name),
                    )
                },
            )
            .await;
        }

        // Freeze window.
        enter(ctx, BackfillPhase::AwaitingFreeze);
        if let Some(at) = parse_rfc3339(&input.freeze_at) {
            ctx.set_current_details(format!(
                "waiting for the freeze window at {}, or `steward backfill freeze {name}`",
                input.freeze_at
            ));
            alert(
                ctx,
                Severity::Info,
                "freeze-window",
                format!(
                    "freeze window for backfill `{name}` announced for {}",
                    input.freeze_at
                ),
            )
            .await;
            let wait = at.duration_since(time(ctx)).unwrap_or_default();
            if !wait.is_zero() {
                let timer = TimerOptions::builder(wait)
                    .summary(format!("wait for freeze until {}", input.freeze_at))
                    .build();
                select! {
                    _ = ctx.timer(timer) => {}
                    _ = ctx.wait_condition(|s| s.freeze_requested || s.abort_requested) => {}
                };
            }
        } else {
            ctx.set_current_details(format!(
                "waiting for an operator: `steward backfill freeze {name}`"
            ));
            if ctx.patched(NOTICES_PATCH) {
                alert(
                    ctx,
                    Severity::Info,
                    "awaiting-freeze",
                    format!(
                        "backfill `{name}` waits for an operator to freeze ingest: \
                         `steward backfill freeze {name} --reason \"...\"`"
                    ),
                )
                .await;
            }
            ctx.wait_condition(|s| s.freeze_requested || s.abort_requested)
                .await?;
        }
        if ctx.state(|s| s.abort_requested) {
            return Self::finish(
                ctx,
                Ending {
                    preconditions: pre.checks.clone(),
                    ..Ending::new(BackfillOutcome::Aborted, "aborted before the freeze")
                },
            )
            .await;
        }
        enter(ctx, BackfillPhase::Frozen);
        let tag = ctx.state(|s| s.carry.run_tag.clone());
        ctx.set_current_details(format!("frozen: running backfill `{name}`"));
        on_its_host(
            ctx,
            BackfillAction,
            spec_ref(&name, &tag, SpecAction::Freeze),
            short("freeze ingest"),
        )
        .await?;
        if plan.has_snapshot {
            on_its_host(
                ctx,
                BackfillAction,
                spec_ref(&name, &tag, SpecAction::Snapshot),
                long("snapshot before the backfill"),
            )
            .await?;
        }

        // Dry-run.
        enter(ctx, BackfillPhase::DryRun);
        let evidence_dir = ctx.state(|s| s.carry.started_at.replace(':', "-"));
        let report = ctx
            .execute_activity(
                BackfillDryRun,
                DryRunRequest {
                    name: name.clone(),
                    run_tag: tag.clone(),
                    evidence_dir,
                },
                long("dry run: count the records to write"),
            )
            .await?;
        ctx.state_mut(|s| s.carry.dry_run = Some(report.clone()));
        if !report.within_tolerance {
            alert(
                ctx,
                Severity::Warning,
                "dry-run",
                format!(
                    "dry-run counted {} records, expected {}",
                    report.counted, report.expected
                ),
            )
            .await;
            unfreeze(ctx, &name, &tag).await?;
            return Self::finish(
                ctx,
                Ending {
                    preconditions: pre.checks.clone(),
                    ..Ending::new(
                        BackfillOutcome::DryRunFailed,
                        "dry-run count outside the tolerance",
                    )
                },
            )
            .await;
        }
        if input.dry_run {
            unfreeze(ctx, &name, &tag).await?;
            return Self::finish(
                ctx,
                Ending {
                    preconditions: pre.checks.clone(),
                    ..Ending::new(BackfillOutcome::DryRun, String::new())
                },
            )
            .await;
        }

        // Approvals.
        enter(ctx, BackfillPhase::AwaitingApproval);
        ctx.set_current_details(format!(
            "waiting for approvals of {}: `steward backfill approve {name} --group G`",
            plan.approvals.join(", ")
        ));
        if ctx.patched(NOTICES_PATCH) {
            // Whoever may approve hears that the rollout waits for them,
            // again when the wait runs out (`renotify`), and when it is
            // approved.
            let asked = awaiting_approval(&name, &plan);
            alert(ctx, Severity::Info, "awaiting-approval", asked.clone()).await;
            let limit = plan.approval_timeout_seconds;
            while limit > 0 && ctx.state(|s| !s.approved() && !s.abort_requested) {
                let timer = TimerOptions::builder(Duration::from_secs(limit))
                    .summary(format!("wait {limit}s for the approvals"))
                    .build();
                select! {
                    _ = ctx.timer(timer) => {}
                    _ = ctx.wait_condition(|s| s.approved() || s.abort_requested) => {}
                };
                if ctx.state(|s| s.approved() || s.abort_requested) {
                    continue;
                }
                let missing = ctx.state(|s| s.missing_approvals());
                if plan.on_approval_timeout == "abort" {
                    alert(
                        ctx,
                        Severity::Warning,
                        "approval-timed-out",
                        format!(
                            "backfill `{name}`: no approval of {} within {limit}s; aborted as \
                             configured (on_approval_timeout = \"abort\")",
                            missing.join(", ")
                        ),
                    )
                    .await;
                    return Self::roll_back(
                        ctx,
                        format!("not approved within {limit}s (on_approval_timeout = \"abort\")"),
                    )
                    .await;
                }
                alert(
                    ctx,
                    Severity::Warning,
                    "approval-timed-out",
                    format!(
                        "backfill `{name}`: no approval of {} within {limit}s; still waiting. {asked}",
                        missing.join(", ")
                    ),
                )
                .await;
            }
        }
        ctx.wait_condition(|s| s.approved() || s.abort_requested)
            .await?;
        if ctx.state(|s| s.abort_requested) {
            return Self::roll_back(ctx, "aborted before execution".into()).await;
        }
        if ctx.patched(NOTICES_PATCH) && !plan.approvals.is_empty() {
            let who = ctx.state(|s| {
                s.carry
                    .operator_actions
                    .iter()
                    .filter(|a| a.action == "approve")
                    .map(|a| format!("{} for {} ({})", a.operator, a.detail, a.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            alert(
                ctx,
                Severity::Info,
                "approved",
                format!("backfill `{name}` approved: {who}"),
            )
            .await;
        }
        let since = rfc3339(time(ctx));
        ctx.state_mut(|s| s.carry.executing_since = since);
        enter(ctx, BackfillPhase::Executing);
        Self::execute(ctx).await
    }

    /// The batch loop, then validation, unfreeze and the probe.
    async fn execute(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<BackfillResult> {
        let (name, tag, plan) = ctx.state(|s| {
            (
                s.input.name.clone(),
                s.carry.run_tag.clone(),
                s.plan.clone(),
            )
        });
        let runs = ctx.patched(BATCH_RUNS_PATCH);
        let runtime_from_execution = ctx.patched(RUNTIME_FROM_EXECUTION_PATCH);
        let stoppable = runs && ctx.patched(STOPPABLE_RUNS_PATCH);
        let budget_ms = if stoppable {
            STOPPABLE_RUN_BUDGET_MS
        } else {
            RUN_BUDGET_MS
        };
        loop {
            let now = time(ctx);
            ctx.state_mut(|s| s.now = Some(now));
            ctx.wait_condition(|s| !s.carry.paused || s.abort_requested)
                .await?;
            if ctx.state(|s| s.abort_requested) {
                return Self::roll_back(ctx, "aborted by an operator".into()).await;
            }
            // The runbook's runtime is the job's: from the start of
            // execution, not from the rollout's creation (a freeze window
            // announced a day ahead is not runtime).
            let since = ctx.state(|s| {
                if runtime_from_execution && !s.carry.executing_since.is_empty() {
                    s.carry.executing_since.clone()
                } else {
                    s.carry.started_at.clone()
                }
            });
            let started = parse_rfc3339(&since).unwrap_or(time(ctx));
            let elapsed = time(ctx).duration_since(started).unwrap_or_default();
            if elapsed > Duration::from_secs(plan.max_runtime_seconds)
                && !ctx.state(|s| s.carry.runtime_alerted)
            {
                ctx.state_mut(|s| s.carry.runtime_alerted = true);
                alert(
                    ctx,
                    Severity::Warning,
                    "runtime",
                    format!(
                        "backfill `{name}` has run {}s, over its {}s limit",
                        elapsed.as_secs(),
                        plan.max_runtime_seconds
                    ),
                )
                .await;
            }
            if plan.has_lag_sql {
                let lag = ctx
                    .execute_activity(BackfillLag, name.clone(), short("replication lag"))
                    .await?;
                let limit = ctx.state(|s| s.carry.max_lag_seconds);
                if lag.seconds > limit {
                    if !ctx.state(|s| s.throttled) {
                        ctx.state_mut(|s| s.throttled = true);
                        alert(
                            ctx,
                            Severity::Warning,
                            "lag",
                            format!(
                                "replication lag {:.1}s is over {limit}s: batches wait",
                                lag.seconds
                            ),
                        )
                        .await;
                    }
                    ctx.set_current_details(format!(
                        "throttled: replication lag {:.1}s is over {limit}s",
                        lag.seconds
                    ));
                    ctx.timer(
                        TimerOptions::builder(Duration::from_secs(u64::from(
                            plan.throttle_seconds.max(1),
                        )))
                        .summary("throttle: replication lag over the limit".to_string())
                        .build(),
                    )
                    .await;
                    continue;
                }
                ctx.state_mut(|s| s.throttled = false);
            }
            // Plans recorded before named throttles existed have none:
            // their histories schedule nothing new here.
            if !plan.throttles.is_empty() {
                let request = ctx.state(|s| ThrottleRequest {
                    name: name.clone(),
                    max: s.carry.throttle_max.clone(),
                });
                let readings = ctx
                    .execute_activity(BackfillThrottles, request, short("throttles"))
                    .await?
                    .readings;
                let over: Vec<ThrottleReading> =
                    readings.iter().filter(|r| r.over).cloned().collect();
                ctx.state_mut(|s| s.throttles = readings);
                if !over.is_empty() {
                    let said = over
                        .iter()
                        .map(throttle_text)
                        .collect::<Vec<_>>()
                        .join("; ");
                    let new: Vec<&ThrottleReading> = over
                        .iter()
                        .filter(|r| !ctx.state(|s| s.throttles_alerted.contains(&r.name)))
                        .collect();
                    if !new.is_empty() {
                        ctx.state_mut(|s| {
                            s.throttles_alerted
                                .extend(new.iter().map(|r| r.name.clone()))
                        });
                        alert(
                            ctx,
                            Severity::Warning,
                            "throttle",
                            format!("backfill `{name}` is throttled: {said}: batches wait"),
                        )
                        .await;
                    }
                    ctx.set_current_details(format!("throttled: {said}"));
                    let wait = over
                        .iter()
                        .filter_map(|r| plan.throttles.iter().find(|t| t.name == r.name))
                        .map(|t| t.wait_seconds)
                        .max()
                        .unwrap_or(plan.throttle_seconds)
                        .max(1);
                    ctx.timer(
                        TimerOptions::builder(Duration::from_secs(u64::from(wait)))
                            .summary(format!("throttle: {said}"))
                            .build(),
                    )
                    .await;
                    continue;
                }
                ctx.state_mut(|s| s.throttles_alerted.clear());
            }
            if ctx.state(|s| s.batches_this_run >= s.plan.batches_per_run) {
                // A pause that arrived during the last run of batches
                // replies before this run closes, or its sender would be
                // told the rollout ended.
                let handlers = ctx.clone();
                ctx.wait_condition(move |_| handlers.all_handlers_finished())
                    .await?;
                let next = ctx.state(|s| BackfillInput {
                    carry: Some(BackfillCarry {
                        plan: Some(s.plan.clone()),
                        ..s.carry.clone()
                    }),
                    ..s.input.clone()
                });
                ctx.continue_as_new(next, ContinueAsNewOptions::default())?;
            }
            let request = ctx.state(|s| BatchRequest {
                name: name.clone(),
                run_tag: tag.clone(),
                batch_no: s.carry.batches + 1,
                cursor: s.carry.cursor,
                batch_size: s.carry.batch_size,
                stop_on_error: s.plan.stop_on_error,
                max_batches: if runs {
                    (s.plan.batches_per_run - s.batches_this_run)
                        .min(s.plan.batches_per_activity.max(1))
                } else {
                    0
                },
                budget_ms: if runs { budget_ms } else { 0 },
                max_lag_seconds: s.carry.max_lag_seconds,
                throttle_max: s.carry.throttle_max.clone(),
                job_cursor: s.carry.job_cursor.clone(),
            });
            ctx.state_mut(|s| s.batch_in_flight = request.max_batches > 1);
            let summary = batches_summary(&request);
            ctx.set_current_details(format!(
                "executing: {} rows in {} batches so far; {summary}",
                ctx.state(|s| s.carry.rows),
                request.batch_no - 1
            ));
            let mut options = long(summary);
            let stop = stoppable.then(|| ctx.cancellation_token().child_token());
            if let Some(stop) = &stop {
                options.cancellation_token = Some(stop.clone());
                options.cancellation_type = ActivityCancellationType::WaitCancellationCompleted;
                // What came before this run is in its request.
                ctx.state_mut(|s| s.stop_run = false);
            }
            let result = {
                let mut activity =
                    std::pin::pin!(ctx.execute_activity(BackfillBatch, request, options));
                let ended = if stoppable {
                    select! {
                        r = activity.as_mut() => Some(r),
                        _ = ctx.wait_condition(|s| s.stop_run) => None,
                    }
                } else {
                    Some(activity.as_mut().await)
                };
                match ended {
                    Some(r) => r,
                    None => {
                        if let Some(stop) = &stop {
                            stop.cancel();
                        }
                        activity.await
                    }
                }
            };
            ctx.state_mut(|s| {
                s.batch_in_flight = false;
                s.batch_runs_done += 1;
            });
            let result = match result {
                Ok(r) => r,
                // Stopped before it started: no batch ran. (A run that
                // started returns what it applied.)
                Err(ActivityExecutionError::Cancelled(_))
                    if stoppable && !ctx.cancellation_token().is_cancelled() =>
                {
                    continue;
                }
                Err(e) => {
                    let message = crate::failure::failure_message(&e);
                    alert(
                        ctx,
                        Severity::Critical,
                        "batch-error",
                        format!("backfill `{name}` stopped: {message}"),
                    )
                    .await;
                    return Self::roll_back(ctx, message).await;
                }
            };
            // Results recorded before runs of batches say 0 batches (one)
            // and carry a skipped batch's error in `error`.
            let used = result.batches.max(1);
            let skipped = if result.error.is_empty() {
                result.skipped.clone()
            } else {
                vec![SkippedBatch {
                    lo: result.lo,
                    hi: result.hi,
                    error: result.error.clone(),
                }]
            };
            ctx.state_mut(|s| {
                s.carry.batches += u64::from(used);
                s.batches_this_run += used;
                s.carry.rows += result.rows;
                s.carry.cursor = result.cursor;
                s.carry.job_cursor = result.job_cursor.clone();
                s.carry.job_errors += result.job_errors;
                s.carry.idempotency_violations += result.idempotency_violations;
                s.carry.failed_batches += skipped.len() as u64;
            });
            if !result.stopped.is_empty() {
                let message = format!("backfill `{name}` stopped: {}", result.stopped);
                alert(ctx, Severity::Critical, "batch-error", message.clone()).await;
                return Self::roll_back(ctx, result.stopped.clone()).await;
            }
            for b in &skipped {
                alert(
                    ctx,
                    Severity::Warning,
                    "batch-error",
                    format!(
                        "batch {}..={} failed and was skipped: {}",
                        b.lo, b.hi, b.error
                    ),
                )
                .await;
            }
            if result.done {
                break;
            }
        }

        enter(ctx, BackfillPhase::Validating);
        let baseline = ctx.state(|s| s.carry.baseline.clone());
        let validation = ctx
            .execute_activity(
                BackfillValidate,
                ValidationRequest {
                    name: name.clone(),
                    run_tag: tag.clone(),
                    baseline,
                },
                long("validations"),
            )
            .await?;
        if let Some(bad) = validation.checks.iter().find(|c| !c.ok) {
            let why = format!(
                "validation `{}` failed: got {}, expected {}",
                bad.name, bad.value, bad.expect
            );
            alert(ctx, Severity::Critical, "validation", why.clone()).await;
            return Self::roll_back_with(ctx, why, validation.checks.clone()).await;
        }
        unfreeze(ctx, &name, &tag).await?;
        let mut probe = None;
        if plan.has_replay_probe {
            enter(ctx, BackfillPhase::ReplayProbe);
            let p = on_its_host(
                ctx,
                BackfillReplayProbe,
                spec_ref(&name, &tag, SpecAction::Probe),
                long("replay probe after the unfreeze"),
            )
            .await?;
            if !p.ok {
                alert(
                    ctx,
                    Severity::Warning,
                    "replay-probe",
                    format!("replay probe failed after unfreeze: {}", p.message),
                )
                .await;
            }
            probe = Some(p);
        }
        Self::finish(
            ctx,
            Ending {
                validations: validation.checks,
                probe,
                ..Ending::new(BackfillOutcome::Done, String::new())
            },
        )
        .await
    }

    async fn roll_back(
        ctx: &mut WorkflowContext<Self>,
        why: String,
    ) -> WorkflowResult<BackfillResult> {
        Self::roll_back_with(ctx, why, vec![]).await
    }

    /// Removes what the run wrote, keeps ingest frozen, waits for an
    /// operator's `unfreeze`.
    async fn roll_back_with(
        ctx: &mut WorkflowContext<Self>,
        why: String,
        validations: Vec<CheckResult>,
    ) -> WorkflowResult<BackfillResult> {
        let (name, tag) = ctx.state(|s| (s.input.name.clone(), s.carry.run_tag.clone()));
        enter(ctx, BackfillPhase::RollingBack);
        let rb = on_its_host(
            ctx,
            BackfillRollback,
            spec_ref(&name, &tag, SpecAction::Rollback),
            long(format!("roll back what run {tag} wrote")),
        )
        .await?;
        if !rb.rolled_back {
            let msg = if rb.restored {
                format!(
                    "rollback SQL failed ({}); the snapshot was restored",
                    rb.error
                )
            } else {
                format!(
                    "rollback SQL failed ({}) and the restore failed too ({})",
                    rb.error, rb.restore_error
                )
            };
            alert(ctx, Severity::Critical, "rollback", msg).await;
        }
        alert(
            ctx,
            Severity::Warning,
            "rolled-back",
            format!("backfill `{name}` rolled back ({why}); ingest stays frozen until `unfreeze`"),
        )
        .await;
        enter(ctx, BackfillPhase::RolledBackFrozen);
        ctx.set_current_details(format!(
            "rolled back ({why}); ingest stays frozen until `steward backfill unfreeze {name}`"
        ));
        ctx.wait_condition(|s| s.unfreeze_requested).await?;
        unfreeze(ctx, &name, &tag).await?;
        Self::finish(
            ctx,
            Ending {
                validations,
                rollback: Some(rb),
                ..Ending::new(BackfillOutcome::RolledBack, why)
            },
        )
        .await
    }

    /// Writes the evidence and returns the result.
    async fn finish(
        ctx: &mut WorkflowContext<Self>,
        end: Ending,
    ) -> WorkflowResult<BackfillResult> {
        let now = time(ctx);
        let wf = ctx.workflow_id().to_string();
        let outcome = end.outcome;
        let evidence = ctx.state(|s| BackfillEvidence {
            name: s.input.name.clone(),
            workflow_id: wf,
            run_tag: s.carry.run_tag.clone(),
            outcome: outcome.into(),
            spec_sha256: s.plan.spec_sha256.clone(),
            command: Some(BackfillInput {
                carry: None,
                ..s.input.clone()
            }),
            dry_run: s.carry.dry_run.clone(),
            batches: s.carry.batches,
            rows: s.carry.rows,
            failed_batches: s.carry.failed_batches,
            rows_per_second: s.rate(now),
            preconditions: end.preconditions,
            violations: end.validations.iter().filter(|c| !c.ok).count() as u64,
            validations: end.validations,
            operator_actions: s.carry.operator_actions.clone(),
            alerts: s.carry.alerts.clone(),
            rollback: end.rollback,
            replay_probe: end.probe,
            started_at: s.carry.started_at.clone(),
            finished_at: rfc3339(now),
            error: end.error.clone(),
            job_command: s.plan.job_command.clone(),
            job_errors: s.carry.job_errors,
            idempotency_violations: s.carry.idempotency_violations,
        });
        ctx.state_mut(|s| s.stage = BackfillStage::Ended(outcome));
        mark(ctx);
        ctx.set_current_details(format!("ended: {outcome}"));
        let written = ctx
            .execute_activity(
                BackfillWriteEvidence,
                evidence.clone(),
                short(format!("evidence of the {outcome} rollout")),
            )
            .await?;
        Ok(BackfillResult {
            name: evidence.name,
            outcome: outcome.into(),
            batches: evidence.batches,
            rows: evidence.rows,
            evidence_path: written.path,
            evidence_sha256: written.sha256,
            error: end.error,
        })
    }

    /// Phase, batches, rows, rate and ETA.
    #[query(name = names::BACKFILL_STATUS_QUERY)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> BackfillStatus {
        let now = self.now.unwrap_or(SystemTime::UNIX_EPOCH);
        let rate = self.rate(now);
        let expected = self.carry.dry_run.as_ref().map(|d| d.counted).unwrap_or(0);
        BackfillStatus {
            name: self.input.name.clone(),
            phase: self.stage.as_str().into(),
            outcome: self.stage.outcome().map(String::from).unwrap_or_default(),
            batches: self.carry.batches,
            rows: self.carry.rows,
            cursor: self.carry.cursor,
            paused: self.carry.paused,
            batch_size: self.carry.batch_size,
            max_lag_seconds: self.carry.max_lag_seconds,
            approvals: self.carry.approvals.clone(),
            approvals_required: self.plan.approvals.clone(),
            expected,
            rows_per_second: rate,
            eta_seconds: if rate > 0.0 && expected >= self.carry.rows {
                (expected - self.carry.rows) as f64 / rate
            } else {
                -1.0
            },
            throttled: self.throttled || self.throttles.iter().any(|r| r.over),
            throttles: self.throttles.clone(),
            job_errors: self.carry.job_errors,
            idempotency_violations: self.carry.idempotency_violations,
            runs: self.carry.runs,
            operator_actions: self.carry.operator_actions.clone(),
        }
    }

    #[update_validator(freeze)]
    fn validate_freeze(
        &self,
        ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check(OperatorVerb::Freeze, req, operator::arrived_at(ctx))
            .map_err(Into::into)
    }

    /// Operator: freeze now (ends `awaiting_freeze`).
    #[update(name = names::UPDATE_FREEZE)]
    pub fn freeze(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.freeze_requested = true;
        self.record(
            ctx.workflow_time(),
            OperatorVerb::Freeze,
            &req,
            String::new(),
        )
    }

    #[update_validator(unfreeze)]
    fn validate_unfreeze(
        &self,
        ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check(OperatorVerb::Unfreeze, req, operator::arrived_at(ctx))
            .map_err(Into::into)
    }

    /// Operator: unfreeze after a rollback.
    #[update(name = names::UPDATE_UNFREEZE)]
    pub fn unfreeze(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.unfreeze_requested = true;
        self.record(
            ctx.workflow_time(),
            OperatorVerb::Unfreeze,
            &req,
            String::new(),
        )
    }

    #[update_validator(approve)]
    fn validate_approve(
        &self,
        ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check(OperatorVerb::Approve, req, operator::arrived_at(ctx))
            .map_err(Into::into)
    }

    /// Operator: approve execution for a group.
    #[update(name = names::UPDATE_APPROVE)]
    pub fn approve(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.carry.approvals.push(req.group.clone());
        let detail = req.group.clone();
        self.record(ctx.workflow_time(), OperatorVerb::Approve, &req, detail)
    }

    #[update_validator(pause)]
    fn validate_pause(
        &self,
        ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check(OperatorVerb::Pause, req, operator::arrived_at(ctx))
            .map_err(Into::into)
    }

    /// Operator: no batch starts after the reply (unless a resume came
    /// meanwhile). The run of batches in flight is cancelled and stops after
    /// its batch in flight (runs recorded before [`STOPPABLE_RUNS_PATCH`]
    /// end within about a second); the reply waits for it, so it also means
    /// no batch is running.
    #[update(name = names::UPDATE_PAUSE)]
    pub async fn pause(ctx: &mut WorkflowContext<Self>, req: OperatorRequest) -> OperatorReply {
        let at = ctx.workflow_time();
        let reply = ctx.state_mut(|s| {
            s.carry.paused = true;
            s.stop_run();
            s.record(at, OperatorVerb::Pause, &req, String::new())
        });
        mark(ctx);
        let name = ctx.state(|s| s.input.name.clone());
        ctx.set_current_details(format!(
            "paused by {} ({}): waiting for `steward backfill resume {name}`",
            req.operator, req.reason
        ));
        // The next run may start in the same step as this one ends (a
        // resume came meanwhile), so wait for a run to end, not for none
        // to be in flight.
        let seen = ctx.state(|s| s.batch_runs_done);
        let _ = ctx
            .wait_condition(|s| !s.batch_in_flight || s.batch_runs_done > seen)
            .await;
        reply
    }

    #[update_validator(resume)]
    fn validate_resume(
        &self,
        ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check(OperatorVerb::Resume, req, operator::arrived_at(ctx))
            .map_err(Into::into)
    }

    /// Operator: resume batches.
    #[update(name = names::UPDATE_RESUME)]
    pub fn resume(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.carry.paused = false;
        if self.attributes {
            ctx.upsert_search_attributes(attributes::stage(
                &self.input.name,
                self.stage.as_str(),
                waits(self.stage, false),
            ));
        }
        self.record(
            ctx.workflow_time(),
            OperatorVerb::Resume,
            &req,
            String::new(),
        )
    }

    #[update_validator(abort)]
    fn validate_abort(
        &self,
        ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check(OperatorVerb::Abort, req, operator::arrived_at(ctx))
            .map_err(Into::into)
    }

    /// Operator: stop and roll back.
    #[update(name = names::UPDATE_ABORT)]
    pub fn abort(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.abort_requested = true;
        self.stop_run();
        self.record(
            ctx.workflow_time(),
            OperatorVerb::Abort,
            &req,
            String::new(),
        )
    }

    #[update_validator(set)]
    fn validate_set(
        &self,
        ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check(OperatorVerb::Set, req, operator::arrived_at(ctx))
            .map_err(Into::into)
    }

    /// Operator: live settings (gh-ost style), applied from the next batch.
    #[update(name = names::UPDATE_SET)]
    pub fn set(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        // Each setting with the value it replaces, for the audit trail.
        let mut detail = Vec::new();
        if req.batch_size > 0 {
            detail.push(format!(
                "batch_size {} → {}",
                self.carry.batch_size, req.batch_size
            ));
            self.carry.batch_size = req.batch_size;
        }
        if req.max_lag_seconds > 0.0 {
            detail.push(format!(
                "max_lag {}s → {}s",
                self.carry.max_lag_seconds, req.max_lag_seconds
            ));
            self.carry.max_lag_seconds = req.max_lag_seconds;
        }
        let mut throttles: Vec<_> = req.throttle_max.iter().collect();
        throttles.sort_by(|a, b| a.0.cmp(b.0));
        for (name, max) in throttles {
            let before = self.carry.throttle_max.get(name).copied().or_else(|| {
                self.plan
                    .throttles
                    .iter()
                    .find(|t| &t.name == name)
                    .map(|t| t.max)
            });
            detail.push(format!(
                "throttle.{name} {} → {max}",
                before.map(|b| b.to_string()).unwrap_or_else(|| "?".into())
            ));
            self.carry.throttle_max.insert(name.clone(), *max);
        }
        // The next batch takes them.
        self.stop_run();
        self.record(
            ctx.workflow_time(),
            OperatorVerb::Set,
            &req,
            detail.join(", "),
        )
    }
}

impl BackfillRollout {
    /// Ends the run of batches in flight before its next batch (runs
    /// recorded before [`STOPPABLE_RUNS_PATCH`] have no way to).
    fn stop_run(&mut self) {
        self.stop_run = true;
    }

    fn rate(&self, now: SystemTime) -> f64 {
        let Some(since) = parse_rfc3339(&self.carry.executing_since) else {
            return 0.0;
        };
        let secs = now.duration_since(since).unwrap_or_default().as_secs_f64();
        if secs > 0.0 {
            self.carry.rows as f64 / secs
        } else {
            0.0
        }
    }
}

/// How a rollout ends: its outcome and what the evidence records of it.
struct Ending {
    outcome: BackfillOutcome,
    preconditions: Vec<CheckResult>,
    validations: Vec<CheckResult>,
    rollback: Option<RollbackResult>,
    probe: Option<ProbeResult>,
    /// Why it did not end `done`; empty when it did.
    error: String,
}

impl Ending {
    fn new(outcome: BackfillOutcome, error: impl Into<String>) -> Self {
        Self {
            outcome,
            preconditions: vec![],
            validations: vec![],
            rollback: None,
            probe: None,
            error: error.into(),
        }
    }
}

/// The rollout is now in `phase`.
fn enter(ctx: &WorkflowContext<BackfillRollout>, phase: BackfillPhase) {
    ctx.state_mut(|s| s.stage = BackfillStage::Running(phase));
    mark(ctx);
}

/// Whether a rollout in `phase` that its `StewardWaiting` attribute says
/// waits (`waiting`) is paused: the one reason an executing rollout waits
/// ([`waits`]). What the operator page reads instead of a query per run.
pub fn paused_by_attributes(phase: BackfillPhase, waiting: bool) -> bool {
    waiting && phase == BackfillPhase::Executing
}

/// Whether the rollout, where it is, waits for an operator.
fn waits(stage: BackfillStage, paused: bool) -> bool {
    paused
        || matches!(
            stage,
            BackfillStage::Running(
                BackfillPhase::AwaitingFreeze
                    | BackfillPhase::AwaitingApproval
                    | BackfillPhase::RolledBackFrozen
            )
        )
}

/// Sets the rollout's search attributes to where it is now.
fn mark(ctx: &WorkflowContext<BackfillRollout>) {
    let (on, name, stage, paused) =
        ctx.state(|s| (s.attributes, s.input.name.clone(), s.stage, s.carry.paused));
    if on {
        ctx.upsert_search_attributes(attributes::stage(
            &name,
            stage.as_str(),
            waits(stage, paused),
        ));
    }
}

/// Unfreezes ingest (the spec's `unfreeze` action).
async fn unfreeze(
    ctx: &WorkflowContext<BackfillRollout>,
    name: &str,
    tag: &str,
) -> WorkflowResult<()> {
    enter(ctx, BackfillPhase::Unfreezing);
    on_its_host(
        ctx,
        BackfillAction,
        spec_ref(name, tag, SpecAction::Unfreeze),
        short("unfreeze ingest"),
    )
    .await?;
    Ok(())
}

/// Runs `activity` on the action `reference` names where the spec pins it
/// (`runs_on`), else on any worker.
async fn on_its_host<AD>(
    ctx: &WorkflowContext<BackfillRollout>,
    activity: AD,
    reference: BackfillRef,
    options: ActivityOptions,
) -> Result<AD::Output, ActivityExecutionError>
where
    AD: ActivityDefinition<Input = BackfillRef> + Clone,
    AD::Output: TemporalDeserializable,
{
    let (pins, host) = ctx.state(|s| {
        (
            s.pins.clone(),
            s.plan
                .action_hosts
                .get(&reference.action)
                .cloned()
                .unwrap_or_default(),
        )
    });
    let name = reference.name.clone();
    pins.run_at(ctx, &host, &name, activity, reference, options)
        .await
}

fn time(ctx: &WorkflowContext<BackfillRollout>) -> SystemTime {
    ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The run tag, which every written row carries: the backfill's name, the
/// first run's start and the end of the first run's id (the random part of
/// a UUID v4 or v7), so no two rollouts share it. Without `run_id`, the tag
/// runs recorded before [`UNIQUE_RUN_TAG_PATCH`] made.
fn run_tag_for(name: &str, started: SystemTime, run_id: Option<&str>) -> String {
    let at = rfc3339(started).replace([':', '-'], "");
    match run_id {
        Some(id) => {
            let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
            format!("{name}-{at}-{}", &hex[hex.len().saturating_sub(12)..])
        }
        None => format!("{name}-{at}"),
    }
}

/// The reference an action, rollback or probe activity gets.
fn spec_ref(name: &str, tag: &str, action: SpecAction) -> BackfillRef {
    BackfillRef {
        name: name.into(),
        run_tag: tag.into(),
        action: action.into(),
    }
}

/// A throttle's reading as an operator reads it.
fn throttle_text(r: &ThrottleReading) -> String {
    if r.error.is_empty() {
        format!("{} {} is over {}", r.name, r.value, r.max)
    } else {
        format!("{} unreadable ({})", r.name, r.error)
    }
}

/// Raises an alert; a sink that keeps failing does not stop the backfill
/// (the alert stays in the evidence).
async fn alert(
    ctx: &WorkflowContext<BackfillRollout>,
    severity: Severity,
    kind: &str,
    message: String,
) {
    let at = time(ctx);
    let wf = ctx.workflow_id().to_string();
    let new = ctx.state_mut(|s| {
        let new = NewAlert {
            id: format!(
                "{wf}-{}-{}-{kind}",
                s.carry.run_tag,
                s.carry.alerts.len() + 1
            ),
            severity,
            kind: format!("backfill.{kind}"),
            subject: s.input.name.clone(),
            message,
            at,
            detail: detail([
                ("workflow_id", wf.clone().into()),
                ("phase", s.stage.as_str().into()),
            ]),
        };
        s.carry.alerts.push(new.clone().build());
        new
    });
    let _ = new.raise(ctx).await;
}

fn short(summary: impl Into<String>) -> ActivityOptions {
    summarized(crate::options::quick(120, 5), summary)
}

/// Batches and long SQL heartbeat, so a dead worker is noticed within the
/// heartbeat timeout; batches are exactly-once, so the retry is safe.
fn long(summary: impl Into<String>) -> ActivityOptions {
    summarized(crate::options::heartbeating(3600, 5), summary)
}

/// What a run of batches covers, for the Temporal UI.
fn batches_summary(r: &BatchRequest) -> String {
    let last = r.batch_no + u64::from(r.max_batches.max(1)) - 1;
    if last == r.batch_no {
        format!("batch {} from id {}", r.batch_no, r.cursor)
    } else {
        format!("batches {}–{last} from id {}", r.batch_no, r.cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollouts_started_in_the_same_second_have_different_run_tags() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_782_000_000);
        // Two UUID v7 run ids of the same millisecond differ in their end.
        let first = run_tag_for("users", at, Some("019b0f3c-5a10-7c21-8f3e-2b7d4c9a1e01"));
        let second = run_tag_for("users", at, Some("019b0f3c-5a10-7d44-a1b2-c3d4e5f60718"));
        assert_eq!(first, "users-20260621T000000Z-2b7d4c9a1e01");
        assert_ne!(first, second);
        // Runs recorded before the patch keep their tag.
        assert_eq!(run_tag_for("users", at, None), "users-20260621T000000Z");
    }

    #[test]
    fn the_page_reads_paused_from_the_attributes_as_the_run_sets_them() {
        for phase in BackfillPhase::ALL.iter().copied() {
            let stage = BackfillStage::Running(phase);
            for paused in [false, true] {
                // What the run sets, read back: paused only while executing,
                // the one phase that offers pause and resume.
                let offered = verbs_in(phase, paused).contains(&OperatorVerb::Resume);
                assert_eq!(
                    paused_by_attributes(phase, waits(stage, paused)),
                    offered,
                    "{phase:?} paused={paused}"
                );
            }
        }
    }
}
