//! A cold run: the candidate on fresh data in a scratch folder, its
//! health gate and cold asserts, always undeployed and removed after; a
//! green one is recorded (and moves last good in cold mode). Also the end
//! of a run whose snapshot or cold data does not fit the disk.

use super::*;

impl WarmUpgrade {
    /// A cold run: the candidate on fresh data in a scratch folder, its
    /// health gate and cold asserts, always undeployed and removed after;
    /// a green one is recorded (and moves last good in cold mode).
    pub(super) async fn cold_run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<UpgradeResult> {
        let plan = ctx.state(|s| s.plan.clone());
        let (app, target) = (plan.app.clone(), plan.target.clone());
        let run_id = ctx.run_id().to_string();
        let shared = ctx.state(|s| s.shared);
        let step = |kind: UpgradeStepKind| AppStep {
            app: app.clone(),
            step: kind.into(),
            version: target.clone(),
            tag: run_id.clone(),
            revision: plan.revision.clone(),
            shared,
        };
        enter(ctx, UpgradePhase::CheckingDisk);
        let room = run_step(ctx, step(UpgradeStepKind::ColdDiskCheck)).await?;
        if !room.ok {
            let end = Self::held_disk(ctx, &room).await;
            return Self::finish(ctx, end).await;
        }
        enter(ctx, UpgradePhase::ColdTesting);
        ctx.state_mut(|s| s.cold_up = true);
        let mut verdict = run_step(ctx, step(UpgradeStepKind::ColdDeploy)).await?;
        if verdict.ok {
            verdict = run_step(ctx, step(UpgradeStepKind::ColdHealth)).await?;
        }
        if verdict.ok {
            verdict = run_step(ctx, step(UpgradeStepKind::ColdAsserts)).await?;
        }
        let cleaned = run_step(ctx, step(UpgradeStepKind::ColdUndeploy)).await?;
        ctx.state_mut(|s| s.cold_up = false);
        if !cleaned.ok {
            Self::cold_leftover(ctx, &app, &target, &cleaned.message).await;
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
            let end = Ending::fine(UpgradeOutcome::ColdFailed, &plan.last_good, verdict.message);
            return Self::finish(ctx, end).await;
        }
        if plan.unreleased {
            // A branch or a pull request's head is no release: its green
            // cold run is reported, never recorded as a pass or promoted.
            let message = format!(
                "revision {target} ({}) passed on fresh data; a revision is not a release: \
                 last_good stays {}",
                plan.revision,
                shown(&plan.last_good)
            );
            let end = Ending::fine(UpgradeOutcome::ColdPassed, &plan.last_good, message);
            return Self::finish(ctx, end).await;
        }
        let moves = plan.advance.parse::<Advance>().ok() == Some(Advance::Cold);
        // Passing on fresh data is not an approval: a held release moves
        // last_good only once an operator approves it.
        if moves && !plan.hold.is_empty() && ctx.patched(COLD_HOLD_PATCH) {
            let headline = format!(
                "the cold run of {target} passed, but {app}'s last_good moves to it only with an \
                 approval ({})",
                plan.hold
            );
            let stays = format!(
                "the cold run passed, last_good stays {}",
                shown(&plan.last_good)
            );
            // A cold sweep's child never waits (the sweep would wait with
            // it): it ends held, and says how to approve.
            let wait = ctx.state(|s| s.input.operator != ScheduleKind::ColdSweep.as_str());
            let said = (headline, stays);
            if let Some(end) = Self::held(ctx, &plan, &plan.last_good, said, wait).await {
                return Self::finish(ctx, end).await;
            }
        }
        let recorded = run_step(ctx, step(UpgradeStepKind::ColdPassed)).await?;
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
        Self::finish(
            ctx,
            Ending::fine(UpgradeOutcome::ColdPassed, &last_good, message),
        )
        .await
    }

    /// The alert for a cold deployment that did not undeploy.
    pub(super) async fn cold_leftover(
        ctx: &mut WorkflowContext<Self>,
        app: &str,
        target: &str,
        why: &str,
    ) {
        alert(
            ctx,
            Severity::Warning,
            "cold-leftover",
            true,
            format!("{app}: the cold deployment of {target} did not undeploy: {why}"),
            Map::new(),
        )
        .await;
    }

    /// How a run whose snapshot or cold data does not fit ends: nothing
    /// touched.
    pub(super) async fn held_disk(ctx: &mut WorkflowContext<Self>, room: &StepResult) -> Ending {
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
        Ending::fine(
            UpgradeOutcome::HeldDisk,
            &last_good,
            format!("{}; {app} untouched", room.message),
        )
    }
}
