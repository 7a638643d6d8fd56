//! `ConsistencySweep`: lock, plan, one activity per repo with bounded
//! concurrency and a budget in workflow time, record, unlock.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use steward_proto::activities::{AcquireLock, PlanSweep, RecordSweep, ReleaseLock, SweepRepo};
use steward_proto::v1::{
    Finding, LockGrant, LockRelease, LockRequest, PlanRequest, RecordSweepRequest, RepoAction,
    RepoError, RepoSweepOutcome, RepoSweepRequest, RepoTarget, SweepInput, SweepResult,
};
use steward_proto::{limits, names};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, WorkflowCancellationToken, WorkflowContext, WorkflowContextView,
    WorkflowResult, workflows::join_all,
};

/// Default budget when neither the input nor the config sets one.
pub const DEFAULT_MAX_SECONDS: u32 = 300;
/// Default number of repos processed at once.
pub const DEFAULT_CONCURRENCY: u32 = 4;

/// Live view of a running sweep, returned by the `progress` query.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SweepProgress {
    /// `locking`, `planning`, `sweeping`, `recording` or `done`.
    pub phase: String,
    /// Repos in the plan.
    pub repos_total: u32,
    /// Repos whose activity has finished.
    pub repos_done: u32,
}

/// The consistency sweep workflow.
#[workflow]
#[derive(Default)]
pub struct ConsistencySweep {
    phase: String,
    next_repo: usize,
    repos_total: u32,
    outcomes: BTreeMap<usize, Result<RepoSweepOutcome, String>>,
}

#[workflow_methods]
impl ConsistencySweep {
    /// Runs one sweep. Never fails for a repo's sake: a repo whose activity
    /// fails after retries becomes an automation error in the result.
    #[run(name = names::CONSISTENCY_SWEEP)]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: SweepInput,
    ) -> WorkflowResult<SweepResult> {
        let started = ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH);
        let holder = ctx.run_id().to_string();
        let mut result = SweepResult {
            source: if input.source.is_empty() {
                "manual".into()
            } else {
                input.source.clone()
            },
            workflow_id: ctx.workflow_id().to_string(),
            run_id: holder.clone(),
            started_at: rfc3339(started),
            full: input.full,
            schedule_id: input.schedule_id.clone(),
            ..Default::default()
        };

        ctx.state_mut(|s| s.phase = "planning".into());
        let plan = ctx
            .execute_activity(
                PlanSweep,
                PlanRequest { full: input.full },
                short_activity(),
            )
            .await?;
        let ttl = plan.lock_ttl_seconds.max(30);

        ctx.state_mut(|s| s.phase = "locking".into());
        let grant: LockGrant = ctx
            .execute_activity(
                AcquireLock,
                LockRequest {
                    name: names::SWEEP_LOCK.into(),
                    holder: holder.clone(),
                    ttl_seconds: ttl,
                },
                short_activity(),
            )
            .await?;

        if grant.acquired {
            let max_seconds = pick(
                input.max_seconds,
                plan.default_max_seconds,
                DEFAULT_MAX_SECONDS,
            );
            let concurrency = pick(
                input.concurrency,
                plan.default_concurrency,
                DEFAULT_CONCURRENCY,
            );
            ctx.state_mut(|s| {
                s.phase = "sweeping".into();
                s.repos_total = plan.repos.len() as u32;
            });
            let repos = plan.repos.clone();
            let lanes = (0..concurrency.max(1)).map(|_| {
                run_lane(
                    ctx.clone(),
                    repos.clone(),
                    input.full,
                    holder.clone(),
                    ttl,
                    started,
                    max_seconds,
                )
            });
            join_all(lanes).await;

            let outcomes = ctx.state(|s| s.outcomes.clone());
            fold_outcomes(&mut result, &plan.repos, &outcomes);

            // Release even when the workflow is being cancelled: a detached
            // token keeps this activity alive past the workflow's own.
            let mut release = short_activity();
            release.cancellation_token = Some(WorkflowCancellationToken::new());
            ctx.execute_activity(
                ReleaseLock,
                LockRelease {
                    name: names::SWEEP_LOCK.into(),
                    holder: holder.clone(),
                },
                release,
            )
            .await?;
        } else {
            result.lock_skipped = true;
            result.lock_holder = grant.holder;
        }

        let finished = ctx.workflow_time().unwrap_or(started);
        result.duration_seconds = finished
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();

        ctx.state_mut(|s| s.phase = "recording".into());
        ctx.execute_activity(
            RecordSweep,
            RecordSweepRequest {
                result: Some(result.clone()),
            },
            short_activity(),
        )
        .await?;
        ctx.state_mut(|s| s.phase = "done".into());
        Ok(result)
    }

    /// Phase and repo counts of the running sweep.
    #[query(name = "progress")]
    pub fn progress(&self, _ctx: &WorkflowContextView) -> SweepProgress {
        SweepProgress {
            phase: self.phase.clone(),
            repos_total: self.repos_total,
            repos_done: self.outcomes.len() as u32,
        }
    }
}

/// One of `concurrency` lanes: takes the next repo from the shared cursor
/// until the plan is exhausted or the budget is spent. Lanes are polled in a
/// fixed order by `join_all`, so the assignment of repos is deterministic.
async fn run_lane(
    ctx: WorkflowContext<ConsistencySweep>,
    repos: Vec<RepoTarget>,
    full: bool,
    holder: String,
    ttl: u32,
    started: SystemTime,
    max_seconds: u32,
) {
    loop {
        let now = ctx.workflow_time().unwrap_or(started);
        if budget_spent(started, now, max_seconds) {
            return;
        }
        let index = ctx.state_mut(|s| {
            let i = s.next_repo;
            s.next_repo += 1;
            i
        });
        let Some(repo) = repos.get(index).cloned() else {
            return;
        };
        let request = RepoSweepRequest {
            repo: Some(repo),
            full,
            lock_name: names::SWEEP_LOCK.into(),
            lock_holder: holder.clone(),
            lock_ttl_seconds: ttl,
        };
        let outcome = ctx
            .execute_activity(SweepRepo, request, repo_activity())
            .await
            .map_err(|e| failure_message(&e));
        ctx.state_mut(|s| {
            s.outcomes.insert(index, outcome);
        });
    }
}

/// The activity's own failure message: the SDK wraps it in layers that
/// start with "Activity ..." or "Failure(...", and below it come its causes.
pub fn failure_message(e: &dyn std::error::Error) -> String {
    let mut current: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = current {
        let msg = err.to_string();
        if !msg.starts_with("Activity ") && !msg.starts_with("Failure(") {
            return msg;
        }
        current = err.source();
    }
    e.to_string()
}

/// Whether a sweep started at `started` may not start another repo at `now`.
pub fn budget_spent(started: SystemTime, now: SystemTime, max_seconds: u32) -> bool {
    now.duration_since(started).unwrap_or_default() >= Duration::from_secs(max_seconds.into())
}

fn pick(requested: u32, configured: u32, default: u32) -> u32 {
    [requested, configured]
        .into_iter()
        .find(|v| *v > 0)
        .unwrap_or(default)
}

/// Folds the per-repo outcomes, by plan index, into the sweep result. Repos
/// of the plan without an outcome were never started: skipped_budget.
pub fn fold_outcomes(
    result: &mut SweepResult,
    plan: &[RepoTarget],
    outcomes: &BTreeMap<usize, Result<RepoSweepOutcome, String>>,
) {
    for (index, repo) in plan.iter().enumerate() {
        match outcomes.get(&index) {
            None => result.skipped_budget.push(repo.name.clone()),
            Some(Err(message)) => {
                result.automation_errors.push(RepoError {
                    repo: repo.name.clone(),
                    message: message.clone(),
                });
                result.assessment_failures.push(Finding {
                    check: "C-00".into(),
                    repo: repo.name.clone(),
                    file: String::new(),
                    message: format!("automation error: {message}"),
                });
            }
            Some(Ok(outcome)) => {
                result.findings_omitted += outcome.findings_omitted;
                result
                    .assessment_failures
                    .extend(outcome.findings.iter().cloned());
                match outcome.status.as_str() {
                    "skipped_clean" => result.skipped_clean.push(repo.name.clone()),
                    "skipped_missing" => result.skipped_missing.push(repo.name.clone()),
                    _ => {
                        if !outcome.actions.is_empty() || !outcome.commit.is_empty() {
                            result.repos_processed.push(RepoAction {
                                repo: repo.name.clone(),
                                actions: outcome.actions.clone(),
                                commit: outcome.commit.clone(),
                                pushed: outcome.pushed,
                            });
                        }
                    }
                }
            }
        }
    }
    // C-00 rows are kept with the automation errors, not as assessment failures.
    result.assessment_failures.retain(|f| f.check != "C-00");
    // The result must stay well under the server's payload limit.
    let over = result
        .assessment_failures
        .len()
        .saturating_sub(limits::FINDINGS_PER_SWEEP);
    result
        .assessment_failures
        .truncate(limits::FINDINGS_PER_SWEEP);
    result.findings_omitted += u32::try_from(over).unwrap_or(u32::MAX);
    result.automation_error = !result.automation_errors.is_empty();
    result.exit_code = i32::from(result.automation_error);
}

fn short_activity() -> ActivityOptions {
    crate::options::quick(60, 5)
}

/// A repo's activity heartbeats, so a worker that dies mid-repo is noticed
/// within the heartbeat timeout, not after the whole start-to-close timeout.
fn repo_activity() -> ActivityOptions {
    crate::options::heartbeating(600, 3)
}

/// RFC 3339 in UTC, computed without a date library so the crate stays
/// free of anything that could read the clock.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepoTarget {
        RepoTarget {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_782_000_000);
        assert_eq!(rfc3339(t), "2026-06-21T00:00:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn budget_is_spent_at_exactly_max_seconds() {
        let t0 = SystemTime::UNIX_EPOCH;
        assert!(!budget_spent(t0, t0 + Duration::from_secs(299), 300));
        assert!(budget_spent(t0, t0 + Duration::from_secs(300), 300));
        assert!(budget_spent(t0, t0, 0));
    }

    #[test]
    fn pick_prefers_request_then_config_then_default() {
        assert_eq!(pick(7, 5, 4), 7);
        assert_eq!(pick(0, 5, 4), 5);
        assert_eq!(pick(0, 0, 4), 4);
    }

    #[test]
    fn fold_sorts_outcomes_into_result_fields() {
        let plan = vec![repo("a"), repo("b"), repo("c"), repo("d"), repo("e")];
        let mut outcomes = BTreeMap::new();
        outcomes.insert(
            0,
            Ok(RepoSweepOutcome {
                repo: "a".into(),
                status: "processed".into(),
                actions: vec!["upserted 1 workstream".into()],
                findings: vec![Finding {
                    check: "C-07".into(),
                    repo: "a".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
        outcomes.insert(
            1,
            Ok(RepoSweepOutcome {
                status: "skipped_clean".into(),
                ..Default::default()
            }),
        );
        outcomes.insert(
            2,
            Ok(RepoSweepOutcome {
                status: "skipped_missing".into(),
                ..Default::default()
            }),
        );
        outcomes.insert(3, Err("git exploded".into()));
        let mut result = SweepResult::default();
        fold_outcomes(&mut result, &plan, &outcomes);
        assert_eq!(result.repos_processed.len(), 1);
        assert_eq!(result.repos_processed[0].repo, "a");
        assert_eq!(result.skipped_clean, vec!["b"]);
        assert_eq!(result.skipped_missing, vec!["c"]);
        assert_eq!(result.skipped_budget, vec!["e"]);
        assert_eq!(result.automation_errors.len(), 1);
        assert_eq!(result.automation_errors[0].repo, "d");
        assert_eq!(result.exit_code, 1);
        assert!(result.automation_error);
        assert_eq!(result.assessment_failures.len(), 1);
        assert_eq!(result.assessment_failures[0].check, "C-07");
    }

    #[test]
    fn assessment_failures_alone_leave_exit_code_zero() {
        let plan = vec![repo("a")];
        let mut outcomes = BTreeMap::new();
        outcomes.insert(
            0,
            Ok(RepoSweepOutcome {
                status: "processed".into(),
                findings: vec![Finding {
                    check: "C-02".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
        let mut result = SweepResult::default();
        fold_outcomes(&mut result, &plan, &outcomes);
        assert_eq!(result.exit_code, 0);
        assert!(!result.automation_error);
        assert!(result.repos_processed.is_empty(), "no action, not listed");
    }

    #[test]
    fn a_sweep_lists_at_most_the_limit_of_findings_and_counts_the_rest() {
        let plan: Vec<RepoTarget> = (0..15).map(|i| repo(&format!("r{i}"))).collect();
        let mut outcomes = BTreeMap::new();
        for i in 0..15 {
            outcomes.insert(
                i,
                Ok(RepoSweepOutcome {
                    status: "processed".into(),
                    findings: vec![
                        Finding {
                            check: "C-02".into(),
                            ..Default::default()
                        };
                        limits::FINDINGS_PER_REPO
                    ],
                    findings_omitted: 7,
                    ..Default::default()
                }),
            );
        }
        let mut result = SweepResult::default();
        fold_outcomes(&mut result, &plan, &outcomes);
        assert_eq!(result.assessment_failures.len(), limits::FINDINGS_PER_SWEEP);
        assert_eq!(
            result.findings_omitted as usize,
            15 * 7 + 15 * limits::FINDINGS_PER_REPO - limits::FINDINGS_PER_SWEEP
        );
    }
}
