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
    BackfillPreconditions, BackfillReplayProbe, BackfillRollback, BackfillValidate,
    BackfillWriteEvidence, RaiseAlert,
};
use steward_proto::v1::{
    Alert, BackfillCarry, BackfillEvidence, BackfillInput, BackfillPlan, BackfillRef,
    BackfillResult, BackfillStatus, BatchRequest, CheckResult, DryRunRequest, OperatorAction,
    OperatorReply, OperatorRequest, ProbeResult, RollbackResult, SkippedBatch, ValidationRequest,
};
use steward_proto::{limits, names};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityOptions, ContinueAsNewOptions, SyncWorkflowContext, WorkflowContext,
    WorkflowContextView, WorkflowResult,
};

use crate::sweep::rfc3339;

type Rejection = Box<dyn std::error::Error + Send + Sync>;

/// Phases in which approvals are still accepted.
const BEFORE_EXECUTION: &[&str] = &[
    "preconditions",
    "awaiting_freeze",
    "frozen",
    "dry_run",
    "awaiting_approval",
];

/// Patch that made each batch activity apply a run of batches; histories
/// recorded before it replay with one batch per activity.
pub const BATCH_RUNS_PATCH: &str = "backfill-batch-runs";

/// A batch activity starts no batch after this long, so pause, abort and
/// live settings take effect within about a second.
const RUN_BUDGET_MS: u32 = 1_000;

/// The backfill rollout workflow. Its id is `backfill-<name>`.
#[workflow]
#[derive(Default)]
pub struct BackfillRollout {
    input: BackfillInput,
    phase: String,
    plan: BackfillPlan,
    c: BackfillCarry,
    freeze_requested: bool,
    unfreeze_requested: bool,
    abort_requested: bool,
    throttled: bool,
    batches_this_run: u32,
    /// A run of more than one batch is in flight: a pause replies when it
    /// ends.
    batch_in_flight: bool,
    /// Batch activities that have returned in this run: a pause waits for
    /// the one in flight when it came, not for a moment with none in flight.
    batch_runs_done: u64,
    /// Workflow time at the last step, for the status query.
    now: Option<SystemTime>,
}

#[workflow_methods]
impl BackfillRollout {
    /// Takes the input before any update is validated, so a run that
    /// continued as new answers operators with its carried state at once.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: BackfillInput) -> Self {
        let resumed = input.carry.is_some();
        Self {
            c: input.carry.clone().unwrap_or_default(),
            phase: if resumed {
                "executing"
            } else {
                "preconditions"
            }
            .into(),
            input,
            ..Default::default()
        }
    }

    /// Runs (or, after continue-as-new, resumes) the rollout.
    #[run(name = names::BACKFILL_ROLLOUT)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<BackfillResult> {
        let input = ctx.state(|s| s.input.clone());
        let name = input.name.clone();
        let plan = ctx
            .execute_activity(BackfillPlanActivity, name.clone(), short())
            .await?;
        let now = time(ctx);
        let resumed = input.carry.is_some();
        ctx.state_mut(|s| {
            s.input = input.clone();
            s.plan = plan.clone();
            if !resumed {
                // Updates may have arrived before the plan: keep what they set.
                s.c.run_tag = ctx_run_tag(&s.input, &now);
                s.c.started_at = rfc3339(now);
                if s.c.batch_size == 0 {
                    s.c.batch_size = if input.batch_size > 0 {
                        input.batch_size
                    } else {
                        plan.batch_size
                    };
                }
                if s.c.max_lag_seconds == 0.0 {
                    s.c.max_lag_seconds = plan.max_lag_seconds;
                }
                s.c.operator_actions.insert(
                    0,
                    OperatorAction {
                        action: "start".into(),
                        operator: input.operator.clone(),
                        reason: input.reason.clone(),
                        detail: format!(
                            "dry_run={} batch_size={} freeze_at={}",
                            input.dry_run, input.batch_size, input.freeze_at
                        ),
                        at: rfc3339(now),
                    },
                );
            }
            s.c.runs += 1;
        });
        if resumed {
            ctx.state_mut(|s| s.phase = "executing".into());
            return Self::execute(ctx).await;
        }

        // Preconditions.
        ctx.state_mut(|s| s.phase = "preconditions".into());
        let pre = ctx
            .execute_activity(BackfillPreconditions, name.clone(), short())
            .await?;
        ctx.state_mut(|s| s.c.baseline = pre.baseline.clone());
        if let Some(bad) = pre.checks.iter().find(|c| !c.ok) {
            alert(
                ctx,
                "preconditions",
                "warning",
                format!("precondition `{}` failed: {}", bad.name, bad.message),
            )
            .await;
            return Self::finish(
                ctx,
                "preconditions_failed",
                pre.checks.clone(),
                vec![],
                None,
                None,
                format!("precondition `{}` does not hold", bad.name),
            )
            .await;
        }

        // Freeze window.
        ctx.state_mut(|s| s.phase = "awaiting_freeze".into());
        if let Some(at) = parse_rfc3339(&input.freeze_at) {
            alert(
                ctx,
                "freeze-window",
                "info",
                format!(
                    "freeze window for backfill `{name}` announced for {}",
                    input.freeze_at
                ),
            )
            .await;
            let wait = at.duration_since(time(ctx)).unwrap_or_default();
            if !wait.is_zero() {
                select! {
                    _ = ctx.timer(wait) => {}
                    _ = ctx.wait_condition(|s| s.freeze_requested || s.abort_requested) => {}
                };
            }
        } else {
            ctx.wait_condition(|s| s.freeze_requested || s.abort_requested)
                .await?;
        }
        if ctx.state(|s| s.abort_requested) {
            return Self::finish(
                ctx,
                "aborted",
                pre.checks.clone(),
                vec![],
                None,
                None,
                "aborted before the freeze".into(),
            )
            .await;
        }
        ctx.state_mut(|s| s.phase = "frozen".into());
        let tag = ctx.state(|s| s.c.run_tag.clone());
        ctx.execute_activity(BackfillAction, r(&name, &tag, "freeze"), short())
            .await?;
        if plan.has_snapshot {
            ctx.execute_activity(BackfillAction, r(&name, &tag, "snapshot"), long())
                .await?;
        }

        // Dry-run.
        ctx.state_mut(|s| s.phase = "dry_run".into());
        let evidence_dir = ctx.state(|s| s.c.started_at.replace(':', "-"));
        let report = ctx
            .execute_activity(
                BackfillDryRun,
                DryRunRequest {
                    name: name.clone(),
                    run_tag: tag.clone(),
                    evidence_dir,
                },
                long(),
            )
            .await?;
        ctx.state_mut(|s| s.c.dry_run = Some(report.clone()));
        if !report.within_tolerance {
            alert(
                ctx,
                "dry-run",
                "warning",
                format!(
                    "dry-run counted {} records, expected {}",
                    report.counted, report.expected
                ),
            )
            .await;
            ctx.state_mut(|s| s.phase = "unfreezing".into());
            ctx.execute_activity(BackfillAction, r(&name, &tag, "unfreeze"), short())
                .await?;
            return Self::finish(
                ctx,
                "dry_run_failed",
                pre.checks.clone(),
                vec![],
                None,
                None,
                "dry-run count outside the tolerance".into(),
            )
            .await;
        }
        if input.dry_run {
            ctx.state_mut(|s| s.phase = "unfreezing".into());
            ctx.execute_activity(BackfillAction, r(&name, &tag, "unfreeze"), short())
                .await?;
            return Self::finish(
                ctx,
                "dry_run",
                pre.checks.clone(),
                vec![],
                None,
                None,
                String::new(),
            )
            .await;
        }

        // Approvals.
        ctx.state_mut(|s| s.phase = "awaiting_approval".into());
        ctx.wait_condition(|s| s.approved() || s.abort_requested)
            .await?;
        if ctx.state(|s| s.abort_requested) {
            return Self::roll_back(ctx, "aborted before execution".into()).await;
        }
        let since = rfc3339(time(ctx));
        ctx.state_mut(|s| {
            s.phase = "executing".into();
            s.c.executing_since = since;
        });
        Self::execute(ctx).await
    }

    /// The batch loop, then validation, unfreeze and the probe.
    async fn execute(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<BackfillResult> {
        let (name, tag, plan) =
            ctx.state(|s| (s.input.name.clone(), s.c.run_tag.clone(), s.plan.clone()));
        let runs = ctx.patched(BATCH_RUNS_PATCH);
        loop {
            let now = time(ctx);
            ctx.state_mut(|s| s.now = Some(now));
            ctx.wait_condition(|s| !s.c.paused || s.abort_requested)
                .await?;
            if ctx.state(|s| s.abort_requested) {
                return Self::roll_back(ctx, "aborted by an operator".into()).await;
            }
            let started =
                parse_rfc3339(&ctx.state(|s| s.c.started_at.clone())).unwrap_or(time(ctx));
            let elapsed = time(ctx).duration_since(started).unwrap_or_default();
            if elapsed > Duration::from_secs(plan.max_runtime_seconds)
                && !ctx.state(|s| s.c.runtime_alerted)
            {
                ctx.state_mut(|s| s.c.runtime_alerted = true);
                alert(
                    ctx,
                    "runtime",
                    "warning",
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
                    .execute_activity(BackfillLag, name.clone(), short())
                    .await?;
                let limit = ctx.state(|s| s.c.max_lag_seconds);
                if lag.seconds > limit {
                    if !ctx.state(|s| s.throttled) {
                        ctx.state_mut(|s| s.throttled = true);
                        alert(
                            ctx,
                            "lag",
                            "warning",
                            format!(
                                "replication lag {:.1}s is over {limit}s: batches wait",
                                lag.seconds
                            ),
                        )
                        .await;
                    }
                    ctx.timer(Duration::from_secs(u64::from(plan.throttle_seconds.max(1))))
                        .await;
                    continue;
                }
                ctx.state_mut(|s| s.throttled = false);
            }
            if ctx.state(|s| s.batches_this_run >= s.plan.batches_per_run) {
                // A pause that arrived during the last run of batches
                // replies before this run closes, or its sender would be
                // told the rollout ended.
                let handlers = ctx.clone();
                ctx.wait_condition(move |_| handlers.all_handlers_finished())
                    .await?;
                let next = ctx.state(|s| BackfillInput {
                    carry: Some(s.c.clone()),
                    ..s.input.clone()
                });
                ctx.continue_as_new(next, ContinueAsNewOptions::default())?;
            }
            let request = ctx.state(|s| BatchRequest {
                name: name.clone(),
                run_tag: tag.clone(),
                batch_no: s.c.batches + 1,
                cursor: s.c.cursor,
                batch_size: s.c.batch_size,
                stop_on_error: s.plan.stop_on_error,
                max_batches: if runs {
                    (s.plan.batches_per_run - s.batches_this_run)
                        .min(s.plan.batches_per_activity.max(1))
                } else {
                    0
                },
                budget_ms: if runs { RUN_BUDGET_MS } else { 0 },
                max_lag_seconds: s.c.max_lag_seconds,
            });
            ctx.state_mut(|s| s.batch_in_flight = request.max_batches > 1);
            let result = ctx.execute_activity(BackfillBatch, request, long()).await;
            ctx.state_mut(|s| {
                s.batch_in_flight = false;
                s.batch_runs_done += 1;
            });
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    let message = crate::sweep::failure_message(&e);
                    alert(
                        ctx,
                        "batch-error",
                        "critical",
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
                s.c.batches += u64::from(used);
                s.batches_this_run += used;
                s.c.rows += result.rows;
                s.c.cursor = result.cursor;
                s.c.failed_batches += skipped.len() as u64;
            });
            for b in &skipped {
                alert(
                    ctx,
                    "batch-error",
                    "warning",
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

        ctx.state_mut(|s| s.phase = "validating".into());
        let baseline = ctx.state(|s| s.c.baseline.clone());
        let validation = ctx
            .execute_activity(
                BackfillValidate,
                ValidationRequest {
                    name: name.clone(),
                    run_tag: tag.clone(),
                    baseline,
                },
                long(),
            )
            .await?;
        if let Some(bad) = validation.checks.iter().find(|c| !c.ok) {
            let why = format!(
                "validation `{}` failed: got {}, expected {}",
                bad.name, bad.value, bad.expect
            );
            alert(ctx, "validation", "critical", why.clone()).await;
            return Self::roll_back_with(ctx, why, validation.checks.clone()).await;
        }
        ctx.state_mut(|s| s.phase = "unfreezing".into());
        ctx.execute_activity(BackfillAction, r(&name, &tag, "unfreeze"), short())
            .await?;
        let mut probe = None;
        if plan.has_replay_probe {
            ctx.state_mut(|s| s.phase = "replay_probe".into());
            let p = ctx
                .execute_activity(BackfillReplayProbe, r(&name, &tag, "probe"), long())
                .await?;
            if !p.ok {
                alert(
                    ctx,
                    "replay-probe",
                    "warning",
                    format!("replay probe failed after unfreeze: {}", p.message),
                )
                .await;
            }
            probe = Some(p);
        }
        Self::finish(
            ctx,
            "done",
            vec![],
            validation.checks,
            None,
            probe,
            String::new(),
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
        let (name, tag) = ctx.state(|s| (s.input.name.clone(), s.c.run_tag.clone()));
        ctx.state_mut(|s| s.phase = "rolling_back".into());
        let rb = ctx
            .execute_activity(BackfillRollback, r(&name, &tag, "rollback"), long())
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
            alert(ctx, "rollback", "critical", msg).await;
        }
        alert(
            ctx,
            "rolled-back",
            "warning",
            format!("backfill `{name}` rolled back ({why}); ingest stays frozen until `unfreeze`"),
        )
        .await;
        ctx.state_mut(|s| s.phase = "rolled_back_frozen".into());
        ctx.wait_condition(|s| s.unfreeze_requested).await?;
        ctx.state_mut(|s| s.phase = "unfreezing".into());
        ctx.execute_activity(BackfillAction, r(&name, &tag, "unfreeze"), short())
            .await?;
        Self::finish(ctx, "rolled_back", vec![], validations, Some(rb), None, why).await
    }

    /// Writes the evidence and returns the result.
    async fn finish(
        ctx: &mut WorkflowContext<Self>,
        outcome: &str,
        preconditions: Vec<CheckResult>,
        validations: Vec<CheckResult>,
        rollback: Option<RollbackResult>,
        probe: Option<ProbeResult>,
        error: String,
    ) -> WorkflowResult<BackfillResult> {
        let now = time(ctx);
        let wf = ctx.workflow_id().to_string();
        let evidence = ctx.state(|s| BackfillEvidence {
            name: s.input.name.clone(),
            workflow_id: wf,
            run_tag: s.c.run_tag.clone(),
            outcome: outcome.into(),
            spec_sha256: s.plan.spec_sha256.clone(),
            command: Some(BackfillInput {
                carry: None,
                ..s.input.clone()
            }),
            dry_run: s.c.dry_run.clone(),
            batches: s.c.batches,
            rows: s.c.rows,
            failed_batches: s.c.failed_batches,
            rows_per_second: s.rate(now),
            preconditions,
            violations: validations.iter().filter(|c| !c.ok).count() as u64,
            validations,
            operator_actions: s.c.operator_actions.clone(),
            alerts: s.c.alerts.clone(),
            rollback,
            replay_probe: probe,
            started_at: s.c.started_at.clone(),
            finished_at: rfc3339(now),
            error: error.clone(),
        });
        ctx.state_mut(|s| {
            s.phase = if outcome == "done" {
                "done".into()
            } else {
                outcome.into()
            }
        });
        let written = ctx
            .execute_activity(BackfillWriteEvidence, evidence.clone(), short())
            .await?;
        Ok(BackfillResult {
            name: evidence.name,
            outcome: outcome.into(),
            batches: evidence.batches,
            rows: evidence.rows,
            evidence_path: written.path,
            evidence_sha256: written.sha256,
            error,
        })
    }

    /// Phase, batches, rows, rate and ETA.
    #[query(name = names::BACKFILL_STATUS_QUERY)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> BackfillStatus {
        let now = self.now.unwrap_or(SystemTime::UNIX_EPOCH);
        let rate = self.rate(now);
        let expected = self.c.dry_run.as_ref().map(|d| d.counted).unwrap_or(0);
        BackfillStatus {
            name: self.input.name.clone(),
            phase: self.phase.clone(),
            batches: self.c.batches,
            rows: self.c.rows,
            cursor: self.c.cursor,
            paused: self.c.paused,
            batch_size: self.c.batch_size,
            max_lag_seconds: self.c.max_lag_seconds,
            approvals: self.c.approvals.clone(),
            approvals_required: self.plan.approvals.clone(),
            expected,
            rows_per_second: rate,
            eta_seconds: if rate > 0.0 && expected >= self.c.rows {
                (expected - self.c.rows) as f64 / rate
            } else {
                -1.0
            },
            throttled: self.throttled,
            runs: self.c.runs,
            operator_actions: self.c.operator_actions.clone(),
        }
    }

    #[update_validator(freeze)]
    fn validate_freeze(
        &self,
        _ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check("freeze", req).map_err(Into::into)
    }

    /// Operator: freeze now (ends `awaiting_freeze`).
    #[update(name = names::UPDATE_FREEZE)]
    pub fn freeze(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.freeze_requested = true;
        self.record(ctx.workflow_time(), "freeze", &req, String::new())
    }

    #[update_validator(unfreeze)]
    fn validate_unfreeze(
        &self,
        _ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check("unfreeze", req).map_err(Into::into)
    }

    /// Operator: unfreeze after a rollback.
    #[update(name = names::UPDATE_UNFREEZE)]
    pub fn unfreeze(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.unfreeze_requested = true;
        self.record(ctx.workflow_time(), "unfreeze", &req, String::new())
    }

    #[update_validator(approve)]
    fn validate_approve(
        &self,
        _ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check("approve", req).map_err(Into::into)
    }

    /// Operator: approve execution for a group.
    #[update(name = names::UPDATE_APPROVE)]
    pub fn approve(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.c.approvals.push(req.group.clone());
        let detail = req.group.clone();
        self.record(ctx.workflow_time(), "approve", &req, detail)
    }

    #[update_validator(pause)]
    fn validate_pause(
        &self,
        _ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check("pause", req).map_err(Into::into)
    }

    /// Operator: no batch starts after the reply (unless a resume came
    /// meanwhile). A batch activity in flight finishes its run first (about
    /// a second at most), so the reply also means no batch is running.
    #[update(name = names::UPDATE_PAUSE)]
    pub async fn pause(ctx: &mut WorkflowContext<Self>, req: OperatorRequest) -> OperatorReply {
        let at = ctx.workflow_time();
        let reply = ctx.state_mut(|s| {
            s.c.paused = true;
            s.record(at, "pause", &req, String::new())
        });
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
        _ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check("resume", req).map_err(Into::into)
    }

    /// Operator: resume batches.
    #[update(name = names::UPDATE_RESUME)]
    pub fn resume(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.c.paused = false;
        self.record(ctx.workflow_time(), "resume", &req, String::new())
    }

    #[update_validator(abort)]
    fn validate_abort(
        &self,
        _ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check("abort", req).map_err(Into::into)
    }

    /// Operator: stop and roll back.
    #[update(name = names::UPDATE_ABORT)]
    pub fn abort(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        self.abort_requested = true;
        self.record(ctx.workflow_time(), "abort", &req, String::new())
    }

    #[update_validator(set)]
    fn validate_set(
        &self,
        _ctx: &WorkflowContextView,
        req: &OperatorRequest,
    ) -> Result<(), Rejection> {
        self.check("set", req).map_err(Into::into)
    }

    /// Operator: live settings (gh-ost style), applied from the next batch.
    #[update(name = names::UPDATE_SET)]
    pub fn set(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        req: OperatorRequest,
    ) -> OperatorReply {
        let mut detail = Vec::new();
        if req.batch_size > 0 {
            self.c.batch_size = req.batch_size;
            detail.push(format!("batch_size={}", req.batch_size));
        }
        if req.max_lag_seconds > 0.0 {
            self.c.max_lag_seconds = req.max_lag_seconds;
            detail.push(format!("max_lag={}", req.max_lag_seconds));
        }
        self.record(ctx.workflow_time(), "set", &req, detail.join(" "))
    }
}

impl BackfillRollout {
    /// Whether an operator request is valid now; the reason when not.
    pub fn check(&self, action: &str, req: &OperatorRequest) -> Result<(), String> {
        who(req)?;
        match action {
            "freeze" => self.in_phase(&["awaiting_freeze"], "freeze"),
            "unfreeze" => self.in_phase(&["rolled_back_frozen"], "unfreeze"),
            "approve" => {
                self.in_phase(BEFORE_EXECUTION, "approve")?;
                if !self.plan.approvals.contains(&req.group) {
                    return Err(format!(
                        "`{}` is not an approving group of this backfill (expected one of: {})",
                        req.group,
                        self.plan.approvals.join(", ")
                    ));
                }
                if self.c.approvals.contains(&req.group) {
                    return Err(format!("group `{}` has already approved", req.group));
                }
                Ok(())
            }
            "pause" => {
                self.in_phase(&["executing"], "pause")?;
                if self.c.paused {
                    Err("already paused".into())
                } else {
                    Ok(())
                }
            }
            "resume" => {
                if self.c.paused {
                    Ok(())
                } else {
                    Err("not paused".into())
                }
            }
            "abort" => {
                if self.abort_requested {
                    return Err("already aborting".into());
                }
                let mut phases = BEFORE_EXECUTION.to_vec();
                phases.push("executing");
                self.in_phase(&phases, "abort")
            }
            "set" => {
                if req.batch_size == 0 && req.max_lag_seconds == 0.0 {
                    return Err(
                        "nothing to set: give batch_size=N (N > 0) or max_lag=S (S > 0)".into(),
                    );
                }
                if req.batch_size > 1_000_000 {
                    return Err(format!(
                        "batch_size {} is over the limit of 1000000",
                        req.batch_size
                    ));
                }
                if req.max_lag_seconds < 0.0 || !req.max_lag_seconds.is_finite() {
                    return Err("max_lag must be a positive number of seconds".into());
                }
                if matches!(
                    self.phase.as_str(),
                    "done"
                        | "rolling_back"
                        | "rolled_back_frozen"
                        | "validating"
                        | "unfreezing"
                        | "replay_probe"
                ) {
                    return Err(format!("settings cannot change in phase `{}`", self.phase));
                }
                Ok(())
            }
            other => Err(format!("unknown operator action `{other}`")),
        }
    }

    fn approved(&self) -> bool {
        let have: BTreeSet<&String> = self.c.approvals.iter().collect();
        self.plan.approvals.iter().all(|g| have.contains(g))
    }

    fn rate(&self, now: SystemTime) -> f64 {
        let Some(since) = parse_rfc3339(&self.c.executing_since) else {
            return 0.0;
        };
        let secs = now.duration_since(since).unwrap_or_default().as_secs_f64();
        if secs > 0.0 {
            self.c.rows as f64 / secs
        } else {
            0.0
        }
    }

    fn in_phase(&self, phases: &[&str], what: &str) -> Result<(), String> {
        if phases.contains(&self.phase.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "`{what}` is not allowed in phase `{}` (allowed in: {})",
                self.phase,
                phases.join(", ")
            ))
        }
    }

    fn record(
        &mut self,
        at: Option<SystemTime>,
        action: &str,
        req: &OperatorRequest,
        detail: String,
    ) -> OperatorReply {
        let at = rfc3339(at.unwrap_or(SystemTime::UNIX_EPOCH));
        self.c.operator_actions.push(OperatorAction {
            action: action.into(),
            operator: req.operator.clone(),
            reason: req.reason.clone(),
            detail,
            at,
        });
        OperatorReply {
            phase: self.phase.clone(),
            message: format!("{action} accepted"),
        }
    }
}

fn who(req: &OperatorRequest) -> Result<(), String> {
    if req.operator.trim().is_empty() {
        return Err("an operator name is required".into());
    }
    if req.reason.trim().is_empty() {
        return Err("a reason is required".into());
    }
    for (what, text) in [("operator name", &req.operator), ("reason", &req.reason)] {
        if let Some(refusal) = limits::operator_text_too_long(what, text) {
            return Err(refusal);
        }
    }
    Ok(())
}

fn time(ctx: &WorkflowContext<BackfillRollout>) -> SystemTime {
    ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The run tag: the first run's id, which every written row carries.
fn ctx_run_tag(input: &BackfillInput, now: &SystemTime) -> String {
    format!("{}-{}", input.name, rfc3339(*now).replace([':', '-'], ""))
}

fn r(name: &str, tag: &str, action: &str) -> BackfillRef {
    BackfillRef {
        name: name.into(),
        run_tag: tag.into(),
        action: action.into(),
    }
}

/// Raises an alert; a sink that keeps failing does not stop the backfill
/// (the alert stays in the evidence).
async fn alert(
    ctx: &WorkflowContext<BackfillRollout>,
    kind: &str,
    severity: &str,
    message: String,
) {
    let now = rfc3339(time(ctx));
    let wf = ctx.workflow_id().to_string();
    let a = ctx.state_mut(|s| {
        let a = Alert {
            id: format!("{wf}-{}-{}-{kind}", s.c.run_tag, s.c.alerts.len() + 1),
            severity: severity.into(),
            kind: format!("backfill.{kind}"),
            subject: s.input.name.clone(),
            message,
            at: now,
            detail_json: format!("{{\"workflow_id\":\"{wf}\",\"phase\":\"{}\"}}", s.phase),
        };
        s.c.alerts.push(a.clone());
        a
    });
    let _ = ctx.execute_activity(RaiseAlert, a, short()).await;
}

fn short() -> ActivityOptions {
    crate::options::quick(120, 5)
}

/// Batches and long SQL heartbeat, so a dead worker is noticed within the
/// heartbeat timeout; batches are exactly-once, so the retry is safe.
fn long() -> ActivityOptions {
    crate::options::heartbeating(3600, 5)
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (the form the CLI and [`rfc3339`] write).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-06-21T13:45:07Z",
            "2000-02-29T23:59:59Z",
        ] {
            assert_eq!(rfc3339(parse_rfc3339(s).unwrap()), s);
        }
        for bad in [
            "",
            "2026-06-21 13:45:07",
            "2026-13-01T00:00:00Z",
            "2026-06-21T13:45:07+02:00",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    fn wf(phase: &str, required: &[&str]) -> BackfillRollout {
        BackfillRollout {
            phase: phase.into(),
            plan: BackfillPlan {
                approvals: required.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn req(group: &str) -> OperatorRequest {
        OperatorRequest {
            operator: "ana".into(),
            reason: "ok".into(),
            group: group.into(),
            ..Default::default()
        }
    }

    #[test]
    fn invalid_operator_requests_are_rejected_with_a_reason() {
        let w = wf("executing", &["storage"]);
        let e = w.check("approve", &req("storage")).unwrap_err();
        assert!(e.contains("not allowed in phase `executing`"), "{e}");
        let e = w.check("unfreeze", &req("")).unwrap_err();
        assert!(
            e.contains("`unfreeze` is not allowed in phase `executing`"),
            "{e}"
        );
        let e = w
            .check(
                "set",
                &OperatorRequest {
                    batch_size: 0,
                    ..req("")
                },
            )
            .unwrap_err();
        assert!(e.contains("nothing to set"), "{e}");
        let e = w
            .check(
                "pause",
                &OperatorRequest {
                    reason: " ".into(),
                    ..req("")
                },
            )
            .unwrap_err();
        assert!(e.contains("reason is required"), "{e}");
        let w = wf("awaiting_approval", &["storage"]);
        let e = w.check("approve", &req("marketing")).unwrap_err();
        assert!(e.contains("not an approving group"), "{e}");
        assert!(w.check("approve", &req("storage")).is_ok());
        assert!(
            w.check("pause", &req(""))
                .unwrap_err()
                .contains("not allowed in phase `awaiting_approval`")
        );
        let mut w = wf("executing", &[]);
        assert!(w.check("pause", &req("")).is_ok());
        w.c.paused = true;
        assert_eq!(w.check("pause", &req("")).unwrap_err(), "already paused");
        assert!(w.check("resume", &req("")).is_ok());
        assert!(
            w.check(
                "set",
                &OperatorRequest {
                    batch_size: 2_000_000,
                    ..req("")
                }
            )
            .unwrap_err()
            .contains("over the limit")
        );
    }

    #[test]
    fn approval_needs_every_group() {
        let mut w = wf("awaiting_approval", &["a", "b"]);
        assert!(!w.approved());
        w.c.approvals.push("a".into());
        assert!(!w.approved());
        w.c.approvals.push("b".into());
        assert!(w.approved());
        assert!(wf("x", &[]).approved());
    }
}
