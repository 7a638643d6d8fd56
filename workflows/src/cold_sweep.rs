//! `ColdSweep`: the nightly cold test of every app with a cold setup (or
//! those a filter names). Each app's cold run is a `WarmUpgrade` child with
//! `cold = true`, so it takes the app's lock (one run per app at a time),
//! prunes, checks disk and cleans up as a hand-started cold run does, and
//! has its own history. At most `max_parallel` run at once, at most
//! `max_total` in all; the summary (passed, failed, skipped and why) is a
//! progress event and an alert.

use std::collections::BTreeMap;

use serde_json::Value;
use steward_proto::activities::{ColdSweepPlanActivity, ColdSweepRecord};
use steward_proto::v1::{ColdSkip, ColdSweepInput, ColdSweepResult, UpgradeInput, UpgradeResult};
use steward_proto::vocab::{ScheduleKind, Severity, UpgradeOutcome};
use steward_proto::{ids, names};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::join_all;
use temporalio_sdk::{ChildWorkflowOptions, WorkflowContext, WorkflowContextView, WorkflowResult};

use crate::alert::{NewAlert, detail};
use crate::options::summarized;
use crate::upgrade::WarmUpgrade;

/// The cold sweep workflow.
#[workflow]
#[derive(Default)]
pub struct ColdSweep {
    input: ColdSweepInput,
    /// The apps to test, in order, and the next one a lane takes.
    apps: Vec<String>,
    next: usize,
    /// What each tested app's cold run came to, by plan index.
    verdicts: BTreeMap<usize, Verdict>,
    /// The child workflow of each app started, by plan index.
    runs: BTreeMap<usize, String>,
}

/// How one app's cold run ended, as the sweep reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Passed(String),
    Failed(String),
    Skipped(String),
}

#[workflow_methods]
impl ColdSweep {
    /// Takes the input.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: ColdSweepInput) -> Self {
        Self {
            input,
            ..Default::default()
        }
    }

    /// Plans, runs the cold runs in lanes, records and alerts.
    #[run(name = names::COLD_SWEEP)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<ColdSweepResult> {
        let input = ctx.state(|s| s.input.clone());
        let plan = ctx
            .execute_activity(
                ColdSweepPlanActivity,
                input.clone(),
                summarized(short(), "plan the cold sweep"),
            )
            .await?;
        ctx.state_mut(|s| s.apps = plan.apps.clone());
        ctx.set_current_details(format!(
            "cold runs of {} apps, {} at a time",
            plan.apps.len(),
            plan.max_parallel
        ));
        let lanes = (0..plan.max_parallel.max(1)).map(|_| run_lane(ctx.clone()));
        join_all(lanes).await;

        let (apps, verdicts, runs) =
            ctx.state(|s| (s.apps.clone(), s.verdicts.clone(), s.runs.clone()));
        let mut result = ColdSweepResult {
            workflow_id: ctx.workflow_id().to_string(),
            run_id: ctx.run_id().to_string(),
            source: input.source.clone(),
            skipped: plan.skipped.clone(),
            max_parallel: plan.max_parallel,
            max_total: plan.max_total,
            ..Default::default()
        };
        for (i, app) in apps.iter().enumerate() {
            let entry = |why: &str| ColdSkip {
                app: app.clone(),
                why: why.to_string(),
            };
            match verdicts.get(&i) {
                Some(Verdict::Passed(m)) => result.passed.push(entry(m)),
                Some(Verdict::Failed(m)) => result.failed.push(entry(m)),
                Some(Verdict::Skipped(m)) => result.skipped.push(entry(m)),
                None => result.skipped.push(entry("not started")),
            }
            if let Some(run) = runs.get(&i) {
                result.runs.push(entry(run));
            }
        }
        ctx.execute_activity(
            ColdSweepRecord,
            result.clone(),
            summarized(short(), "record the cold sweep"),
        )
        .await?;
        let severity = if result.failed.is_empty() {
            Severity::Info
        } else {
            Severity::Warning
        };
        let list = |v: &[ColdSkip]| -> Value {
            v.iter()
                .map(|e| Value::from(format!("{}: {}", e.app, e.why)))
                .collect()
        };
        NewAlert {
            id: format!("{}-cold-sweep", ctx.run_id()),
            severity,
            kind: "upgrade.cold-sweep".into(),
            subject: ScheduleKind::ColdSweep.as_str().into(),
            message: format!(
                "cold sweep: {} passed, {} failed, {} skipped{}",
                result.passed.len(),
                result.failed.len(),
                result.skipped.len(),
                if result.failed.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (failed: {})",
                        result
                            .failed
                            .iter()
                            .map(|f| f.app.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
            at: ctx
                .workflow_time()
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH),
            detail: detail([
                ("workflow_id", result.workflow_id.clone().into()),
                ("passed", list(&result.passed)),
                ("failed", list(&result.failed)),
                ("skipped", list(&result.skipped)),
            ]),
        }
        .raise(ctx)
        .await?;
        ctx.set_current_details(format!(
            "ended: {} passed, {} failed, {} skipped",
            result.passed.len(),
            result.failed.len(),
            result.skipped.len()
        ));
        Ok(result)
    }

    /// What the sweep has tested so far.
    #[query(name = names::COLD_SWEEP_STATUS_QUERY)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> ColdSweepResult {
        let mut shown = ColdSweepResult::default();
        for (i, verdict) in &self.verdicts {
            let (list, why) = match verdict {
                Verdict::Passed(m) => (&mut shown.passed, m),
                Verdict::Failed(m) => (&mut shown.failed, m),
                Verdict::Skipped(m) => (&mut shown.skipped, m),
            };
            list.push(ColdSkip {
                app: self.apps[*i].clone(),
                why: why.clone(),
            });
        }
        shown
    }
}

/// One lane: takes the next app from the shared cursor and runs its cold
/// run to the end, until none is left. Lanes are polled in a fixed order
/// by `join_all`, so the assignment of apps is deterministic.
async fn run_lane(ctx: WorkflowContext<ColdSweep>) {
    loop {
        let (index, app, source) = ctx.state_mut(|s| {
            let i = s.next;
            s.next += 1;
            (i, s.apps.get(i).cloned(), s.input.source.clone())
        });
        let Some(app) = app else {
            return;
        };
        let id = ids::cold_run(&app, ctx.run_id());
        ctx.state_mut(|s| s.runs.insert(index, id.clone()));
        let input = UpgradeInput {
            app: app.clone(),
            cold: true,
            operator: ScheduleKind::ColdSweep.as_str().into(),
            reason: format!("cold sweep {}", ctx.workflow_id()),
            ..Default::default()
        };
        let mut options = ChildWorkflowOptions::workflow_id(id);
        options.static_summary = Some(format!("cold run of {app} (cold sweep, {source})"));
        let verdict = match ctx
            .start_child_workflow(WarmUpgrade::run, input, options)
            .await
        {
            Ok(started) => match started.result().await {
                Ok(r) => verdict_of(&r),
                Err(e) => Verdict::Failed(format!("the cold run failed: {e}")),
            },
            Err(e) => Verdict::Failed(format!("the cold run did not start: {e}")),
        };
        let (done, total) = ctx.state_mut(|s| {
            s.verdicts.insert(index, verdict);
            (s.verdicts.len(), s.apps.len())
        });
        ctx.set_current_details(format!("cold runs: {done} of {total} done"));
    }
}

/// What a cold run's result means for the sweep.
fn verdict_of(r: &UpgradeResult) -> Verdict {
    let outcome = r.outcome.parse::<UpgradeOutcome>();
    match outcome {
        Ok(UpgradeOutcome::ColdPassed) => Verdict::Passed(r.message.clone()),
        Ok(UpgradeOutcome::ColdFailed) => Verdict::Failed(r.message.clone()),
        Ok(UpgradeOutcome::SkippedBusy | UpgradeOutcome::HeldDisk) => {
            Verdict::Skipped(format!("{}: {}", r.outcome, r.message))
        }
        Ok(
            UpgradeOutcome::NoopHealthy
            | UpgradeOutcome::NoopUnhealthy
            | UpgradeOutcome::HeldMajor
            | UpgradeOutcome::HeldManualMigration
            | UpgradeOutcome::Upgraded
            | UpgradeOutcome::RolledBack
            | UpgradeOutcome::RollbackFailed
            | UpgradeOutcome::TrialPassed
            | UpgradeOutcome::TrialFailed
            | UpgradeOutcome::HeldCold
            | UpgradeOutcome::UnhealthyKept
            | UpgradeOutcome::Refused,
        )
        | Err(_) => Verdict::Failed(format!(
            "a cold run ended `{}`, which is not a cold outcome: {}",
            r.outcome, r.message
        )),
    }
}

fn short() -> temporalio_sdk::ActivityOptions {
    crate::options::quick(60, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_or_full_app_is_skipped_with_why_and_anything_else_is_a_failure() {
        let r = |outcome: UpgradeOutcome| UpgradeResult {
            outcome: outcome.into(),
            message: "m".into(),
            ..Default::default()
        };
        assert_eq!(
            verdict_of(&r(UpgradeOutcome::ColdPassed)),
            Verdict::Passed("m".into())
        );
        assert_eq!(
            verdict_of(&r(UpgradeOutcome::SkippedBusy)),
            Verdict::Skipped("skipped-busy: m".into())
        );
        assert!(matches!(
            verdict_of(&r(UpgradeOutcome::Upgraded)),
            Verdict::Failed(m) if m.contains("not a cold outcome")
        ));
    }
}
