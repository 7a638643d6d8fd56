//! `ConsistencySweep`: plan, lock, the repos in batch activities with
//! bounded concurrency and a budget in workflow time, the findings ledger,
//! unlock, record.
//!
//! Repos go in batches (`limits::sweep_batch_size`): at most
//! `limits::MAX_SWEEP_BATCHES` batch activities per sweep, so the history
//! stays bounded whatever the number of repos, and the plan tells local
//! repos that have not changed apart, so an unchanged estate runs none.
//! Histories recorded before batches (one activity per repo) replay behind
//! the [`BATCHES_PATCH`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use steward_proto::activities::{
    AcquireLock, PlanSweep, RecordSweep, ReleaseLock, SweepBatch, SweepFindings, SweepRepo,
};
use steward_proto::v1::{
    FindingsRequest, FindingsSummary, LockGrant, LockRelease, LockRequest, PlanRequest,
    RecordSweepRequest, RepoAction, RepoError, RepoSweepOutcome, RepoSweepRequest, RepoTarget,
    SweepBatchRequest, SweepInput, SweepResult,
};
use steward_proto::vocab::{RepoStatus, SweepPhase};
use steward_proto::{ids, limits, names};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, WorkflowCancellationToken, WorkflowContext, WorkflowContextView,
    WorkflowResult, workflows::join_all,
};

use crate::hosts::Pins;
use crate::options::summarized;

/// Default budget when neither the input nor the config sets one.
pub const DEFAULT_MAX_SECONDS: u32 = 300;
/// Default number of repos processed at once.
pub const DEFAULT_CONCURRENCY: u32 = 4;

/// Patch that made a sweep report the findings ledger (the estate's open
/// findings, and what the sweep opened and resolved) instead of the
/// findings of its own repos; histories recorded before it replay without
/// the ledger activity.
pub const FINDINGS_LEDGER_PATCH: &str = "sweep-findings-ledger";

/// Patch that moved the repos into batch activities and let the plan tell
/// unchanged local repos apart; histories recorded before it replay one
/// activity per repo.
pub const BATCHES_PATCH: &str = "sweep-batches";

/// Live view of a running sweep, returned by the `progress` query.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SweepProgress {
    /// Where the sweep is.
    pub phase: SweepPhase,
    /// Repos in the plan.
    pub repos_total: u32,
    /// Repos whose activity has finished.
    pub repos_done: u32,
}

/// The consistency sweep workflow.
#[workflow]
#[derive(Default)]
pub struct ConsistencySweep {
    phase: SweepPhase,
    /// The next repo (per-repo sweeps) or batch (batched ones) a lane takes.
    next_repo: usize,
    repos_total: u32,
    /// Repos the plan found clean: done without an activity.
    clean: u32,
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
            started_at: crate::time::rfc3339(started),
            full: input.full,
            schedule_id: input.schedule_id.clone(),
            ..Default::default()
        };

        ctx.state_mut(|s| s.phase = SweepPhase::Planning);
        let batched = ctx.patched(BATCHES_PATCH);
        let plan_options = if batched {
            // The plan reads every local repo: it heartbeats.
            crate::options::heartbeating(1800, 5)
        } else {
            short_activity()
        };
        let plan = ctx
            .execute_activity(
                PlanSweep,
                PlanRequest {
                    full: input.full,
                    batched,
                },
                summarized(plan_options, "plan the sweep"),
            )
            .await?;
        let ttl = plan.lock_ttl_seconds.max(30);

        ctx.state_mut(|s| s.phase = SweepPhase::Locking);
        let grant: LockGrant = ctx
            .execute_activity(
                AcquireLock,
                LockRequest {
                    name: ids::SWEEP_LOCK.into(),
                    holder: holder.clone(),
                    ttl_seconds: ttl,
                },
                summarized(short_activity(), "take the sweep lock"),
            )
            .await?;
        let ledger = ctx.patched(FINDINGS_LEDGER_PATCH);
        let mut record_lists = RecordLists::default();

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
            let targets: Vec<RepoTarget> = if batched {
                plan.names
                    .iter()
                    .map(|name| RepoTarget {
                        name: name.clone(),
                        ..Default::default()
                    })
                    .collect()
            } else {
                plan.repos.clone()
            };
            ctx.state_mut(|s| {
                s.phase = SweepPhase::Sweeping;
                s.repos_total = (targets.len() + plan.clean.len()) as u32;
                s.clean = plan.clean.len() as u32;
            });
            if batched {
                let size = limits::sweep_batch_size(targets.len(), concurrency, plan.batch_size);
                let batch = Batching {
                    names: plan.names.clone(),
                    ranges: batch_ranges(&plan.names, &plan.hosts, size),
                    hosts: plan.hosts.clone(),
                    pins: Pins::new("sweep", "", plan.host_wait_alert_seconds),
                    full: input.full,
                    holder: holder.clone(),
                    ttl,
                    started,
                    max_seconds,
                };
                let lanes =
                    (0..concurrency.max(1)).map(|_| run_batch_lane(ctx.clone(), batch.clone()));
                join_all(lanes).await;
            } else {
                let lanes = (0..concurrency.max(1)).map(|_| {
                    run_lane(
                        ctx.clone(),
                        targets.clone(),
                        input.full,
                        holder.clone(),
                        ttl,
                        started,
                        max_seconds,
                    )
                });
                join_all(lanes).await;
            }

            let outcomes = ctx.state(|s| s.outcomes.clone());
            fold_outcomes(&mut result, &targets, &outcomes);
            result.skipped_clean.extend(plan.clean.iter().cloned());
            record_lists = bound_repo_lists(&mut result);
            if ledger {
                read_ledger(ctx, &mut result, &holder).await?;
            }

            // Release even when the workflow is being cancelled: a detached
            // token keeps this activity alive past the workflow's own.
            let mut release = summarized(short_activity(), "give the sweep lock back");
            release.cancellation_token = Some(WorkflowCancellationToken::new());
            ctx.execute_activity(
                ReleaseLock,
                LockRelease {
                    name: ids::SWEEP_LOCK.into(),
                    holder: holder.clone(),
                },
                release,
            )
            .await?;
        } else {
            result.lock_skipped = true;
            result.lock_holder = grant.holder;
            if ledger {
                read_ledger(ctx, &mut result, &holder).await?;
            }
        }

        let finished = ctx.workflow_time().unwrap_or(started);
        result.duration_seconds = finished
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();

        ctx.state_mut(|s| s.phase = SweepPhase::Recording);
        ctx.execute_activity(
            RecordSweep,
            RecordSweepRequest {
                result: Some(result.clone()),
                skipped_budget: record_lists.skipped_budget,
                skipped_clean: record_lists.skipped_clean,
            },
            summarized(short_activity(), "record the sweep"),
        )
        .await?;
        ctx.state_mut(|s| s.phase = SweepPhase::Done);
        Ok(result)
    }

    /// Phase and repo counts of the running sweep.
    #[query(name = names::SWEEP_PROGRESS_QUERY)]
    pub fn progress(&self, _ctx: &WorkflowContextView) -> SweepProgress {
        SweepProgress {
            phase: self.phase,
            repos_total: self.repos_total,
            repos_done: self.outcomes.len() as u32 + self.clean,
        }
    }
}

/// Replaces the findings of this sweep's repos in `result` with the
/// ledger's: every open finding of the estate (so a sweep that skipped
/// clean repos still reports their findings), and what this run opened and
/// resolved.
async fn read_ledger(
    ctx: &WorkflowContext<ConsistencySweep>,
    result: &mut SweepResult,
    run_id: &str,
) -> WorkflowResult<()> {
    let summary: FindingsSummary = ctx
        .execute_activity(
            SweepFindings,
            FindingsRequest {
                run_id: run_id.into(),
            },
            summarized(short_activity(), "read the findings ledger"),
        )
        .await?;
    apply_ledger(result, summary);
    Ok(())
}

/// The ledger's findings as the sweep result reports them.
pub fn apply_ledger(result: &mut SweepResult, summary: FindingsSummary) {
    let listed = summary.open.len() as u32;
    result.assessment_failures = summary.open;
    result.open_findings = summary.open_count;
    result.findings_omitted = summary.open_count.saturating_sub(listed);
    result.findings_opened = summary.opened;
    result.opened_count = summary.opened_count;
    result.findings_resolved = summary.resolved;
    result.resolved_count = summary.resolved_count;
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
        let summary = format!("repo {}", repo.name);
        let request = RepoSweepRequest {
            repo: Some(repo),
            full,
            lock_name: ids::SWEEP_LOCK.into(),
            lock_holder: holder.clone(),
            lock_ttl_seconds: ttl,
        };
        let outcome = ctx
            .execute_activity(SweepRepo, request, summarized(repo_activity(), summary))
            .await
            .map_err(|e| crate::failure::failure_message(&e));
        let (done, total) = ctx.state_mut(|s| {
            s.outcomes.insert(index, outcome);
            (s.outcomes.len(), s.repos_total)
        });
        ctx.set_current_details(format!("sweeping: {done} of {total} repos done"));
    }
}

/// What every batch lane of a sweep shares.
#[derive(Debug, Clone)]
struct Batching {
    names: Vec<String>,
    /// Each batch's `[from, to)` in `names`: one host's repos each.
    ranges: Vec<(usize, usize)>,
    /// The host of each of `names` (empty when none is pinned).
    hosts: Vec<String>,
    pins: Pins,
    full: bool,
    holder: String,
    ttl: u32,
    started: SystemTime,
    max_seconds: u32,
}

/// One of `concurrency` lanes of a batched sweep: takes the next batch from
/// the shared cursor until none is left or the budget is spent; the batch
/// activity itself starts no repo past the budget's end.
async fn run_batch_lane(ctx: WorkflowContext<ConsistencySweep>, b: Batching) {
    let deadline_ms = (b.started + Duration::from_secs(b.max_seconds.into()))
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    loop {
        let now = ctx.workflow_time().unwrap_or(b.started);
        if budget_spent(b.started, now, b.max_seconds) {
            return;
        }
        let next = ctx.state_mut(|s| {
            let i = s.next_repo;
            s.next_repo += 1;
            i
        });
        let Some(&(from, to)) = b.ranges.get(next) else {
            return;
        };
        let repos = b.names[from..to].to_vec();
        let host = b.hosts.get(from).cloned().unwrap_or_default();
        let summary = if repos.len() == 1 {
            format!("repo {}", repos[0])
        } else {
            format!("repos {}–{} of {}", from + 1, to, b.names.len())
        };
        let request = SweepBatchRequest {
            repos,
            full: b.full,
            lock_name: ids::SWEEP_LOCK.into(),
            lock_holder: b.holder.clone(),
            lock_ttl_seconds: b.ttl,
            deadline_ms,
        };
        let options = crate::options::heartbeating(600 + 120 * (to - from) as u64, 3);
        let outcome = b
            .pins
            .run_at(
                &ctx,
                &host,
                &summary,
                SweepBatch,
                request,
                summarized(options, summary.clone()),
            )
            .await;
        let (done, total) = ctx.state_mut(|s| {
            match outcome {
                Ok(batch) => {
                    for (i, slot) in batch.slots.into_iter().enumerate() {
                        if slot.not_started {
                            continue;
                        }
                        let result = if slot.error.is_empty() {
                            Ok(slot.outcome.unwrap_or_default())
                        } else {
                            Err(slot.error)
                        };
                        s.outcomes.insert(from + i, result);
                    }
                }
                Err(e) => {
                    let message = crate::failure::failure_message(&e);
                    for i in from..to {
                        s.outcomes.insert(i, Err(message.clone()));
                    }
                }
            }
            (s.outcomes.len() as u32 + s.clean, s.repos_total)
        });
        ctx.set_current_details(format!("sweeping: {done} of {total} repos done"));
    }
}

/// The batches of `names`: runs of `size` within each host's repos (the
/// plan groups them by host; `hosts` is empty when none is pinned), so a
/// batch never mixes hosts.
fn batch_ranges(names: &[String], hosts: &[String], size: usize) -> Vec<(usize, usize)> {
    let size = size.max(1);
    let host = |i: usize| hosts.get(i).map_or("", String::as_str);
    let mut ranges = Vec::new();
    let mut from = 0;
    while from < names.len() {
        let mut to = from + 1;
        while to < names.len() && to - from < size && host(to) == host(from) {
            to += 1;
        }
        ranges.push((from, to));
        from = to;
    }
    ranges
}

/// The whole lists the record step needs when the result's were cut.
#[derive(Debug, Default, PartialEq)]
pub struct RecordLists {
    /// Every repo the budget left out (fairness marks them starved).
    pub skipped_budget: Vec<String>,
    /// Every repo found clean (a starved one counts as visited).
    pub skipped_clean: Vec<String>,
}

/// Cuts each per-repo list of `result` to [`limits::SWEEP_REPOS_LISTED`]
/// entries, so that the result and the record step's input stay far under
/// the server's payload limit whatever the estate; every repo is counted
/// in `repo_counts`, what was cut in `repos_omitted`. Returns the whole
/// budget and clean lists when either was cut (names only), else nothing.
pub fn bound_repo_lists(result: &mut SweepResult) -> RecordLists {
    result.repo_counts = Some(result.counts());
    let cut = |n: usize| n.saturating_sub(limits::SWEEP_REPOS_LISTED);
    let omitted = cut(result.repos_processed.len())
        + cut(result.skipped_clean.len())
        + cut(result.skipped_missing.len())
        + cut(result.skipped_budget.len())
        + cut(result.automation_errors.len());
    let lists = if cut(result.skipped_budget.len()) + cut(result.skipped_clean.len()) > 0 {
        RecordLists {
            skipped_budget: result.skipped_budget.clone(),
            skipped_clean: result.skipped_clean.clone(),
        }
    } else {
        RecordLists::default()
    };
    result.repos_processed.truncate(limits::SWEEP_REPOS_LISTED);
    result.skipped_clean.truncate(limits::SWEEP_REPOS_LISTED);
    result.skipped_missing.truncate(limits::SWEEP_REPOS_LISTED);
    result.skipped_budget.truncate(limits::SWEEP_REPOS_LISTED);
    result
        .automation_errors
        .truncate(limits::SWEEP_REPOS_LISTED);
    result.repos_omitted = u32::try_from(omitted).unwrap_or(u32::MAX);
    lists
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
            }
            Some(Ok(outcome)) => {
                result.findings_omitted += outcome.findings_omitted;
                result
                    .assessment_failures
                    .extend(outcome.findings.iter().cloned());
                // A status this workflow does not know is a repo the
                // activity did process.
                let status = outcome.status.parse().unwrap_or(RepoStatus::Processed);
                match status {
                    RepoStatus::SkippedClean => result.skipped_clean.push(repo.name.clone()),
                    RepoStatus::SkippedMissing => result.skipped_missing.push(repo.name.clone()),
                    RepoStatus::Processed => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use steward_proto::v1::Finding;
    use steward_proto::vocab::CheckCode;

    fn repo(name: &str) -> RepoTarget {
        RepoTarget {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn batches_keep_their_size_and_never_mix_hosts() {
        let names: Vec<String> = (0..7).map(|i| format!("r{i}")).collect();
        // None pinned: runs of the size, as before hosts.
        assert_eq!(batch_ranges(&names, &[], 3), [(0, 3), (3, 6), (6, 7)]);
        let hosts: Vec<String> = ["", "", "a", "a", "a", "a", "b"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert_eq!(
            batch_ranges(&names, &hosts, 3),
            [(0, 2), (2, 5), (5, 6), (6, 7)]
        );
        assert!(batch_ranges(&[], &[], 3).is_empty());
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
                status: RepoStatus::Processed.into(),
                actions: vec!["upserted 1 workstream".into()],
                findings: vec![Finding {
                    check: CheckCode::InvalidTaskStatus.into(),
                    repo: "a".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
        outcomes.insert(
            1,
            Ok(RepoSweepOutcome {
                status: RepoStatus::SkippedClean.into(),
                ..Default::default()
            }),
        );
        outcomes.insert(
            2,
            Ok(RepoSweepOutcome {
                status: RepoStatus::SkippedMissing.into(),
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
                status: RepoStatus::Processed.into(),
                findings: vec![Finding {
                    check: CheckCode::DuplicateTaskId.into(),
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
                    status: RepoStatus::Processed.into(),
                    findings: vec![
                        Finding {
                            check: CheckCode::DuplicateTaskId.into(),
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

    /// A cold sweep of 10,000 repos with long names, each processed with
    /// the actions a real workplan gives, 2,000 more left by the budget and
    /// 12,000 found clean: the result and the record step's input stay far
    /// under the server's 2 MiB payload limit, and nothing goes uncounted.
    #[test]
    fn a_sweep_result_of_any_estate_stays_small_and_counts_every_repo() {
        let name = |i: usize| format!("estate-of-a-large-team-with-long-repo-names-{i:06}");
        let plan: Vec<RepoTarget> = (0..12_000).map(|i| repo(&name(i))).collect();
        let outcomes: BTreeMap<usize, Result<RepoSweepOutcome, String>> = (0..10_000)
            .map(|i| {
                let outcome = RepoSweepOutcome {
                    repo: name(i),
                    status: RepoStatus::Processed.into(),
                    actions: vec![
                        "upserted 3 workstreams".into(),
                        "upserted 12 tasks".into(),
                        "wrote state_hub_task_id into 4 task blocks".into(),
                    ],
                    commit: "0123456789abcdef0123456789abcdef01234567".into(),
                    ..Default::default()
                };
                (
                    i,
                    if i % 1000 == 7 {
                        Err("git: fetch failed".into())
                    } else {
                        Ok(outcome)
                    },
                )
            })
            .collect();
        let mut result = SweepResult::default();
        fold_outcomes(&mut result, &plan, &outcomes);
        result.skipped_clean.extend((12_000..24_000).map(name));
        let unbounded = serde_json::to_vec(&result).unwrap().len();
        assert!(
            unbounded > 2 << 20,
            "the case is one that broke: {unbounded} bytes"
        );

        let lists = bound_repo_lists(&mut result);
        let counts = result.repo_counts.unwrap();
        assert_eq!(
            (
                counts.processed,
                counts.automation_errors,
                counts.skipped_budget,
                counts.skipped_clean
            ),
            (9_990, 10, 2_000, 12_000)
        );
        assert_eq!(result.counts(), counts);
        assert_eq!(result.repos_processed.len(), limits::SWEEP_REPOS_LISTED);
        assert_eq!(result.skipped_clean.len(), limits::SWEEP_REPOS_LISTED);
        assert_eq!(result.skipped_budget.len(), limits::SWEEP_REPOS_LISTED);
        assert_eq!(result.automation_errors.len(), 10);
        assert_eq!(
            result.repos_omitted,
            (9_990 - 1000) + (12_000 - 1000) + (2_000 - 1000)
        );
        assert_eq!(
            lists.skipped_budget.len(),
            2_000,
            "fairness sees every budget skip"
        );
        assert_eq!(lists.skipped_clean.len(), 12_000);
        let record = RecordSweepRequest {
            result: Some(result.clone()),
            skipped_budget: lists.skipped_budget,
            skipped_clean: lists.skipped_clean,
        };
        let record_bytes = serde_json::to_vec(&record).unwrap().len();
        let result_bytes = serde_json::to_vec(&result).unwrap().len();
        assert!(result_bytes < 512 << 10, "result: {result_bytes} bytes");
        // Names only, as many as the plan's own result carries.
        assert!(record_bytes < 3 << 19, "record input: {record_bytes} bytes");
    }

    #[test]
    fn a_small_sweep_keeps_its_whole_lists_and_sends_no_extra_names() {
        let plan = vec![repo("a"), repo("b")];
        let mut outcomes = BTreeMap::new();
        outcomes.insert(
            0,
            Ok(RepoSweepOutcome {
                status: RepoStatus::SkippedClean.into(),
                ..Default::default()
            }),
        );
        let mut result = SweepResult::default();
        fold_outcomes(&mut result, &plan, &outcomes);
        assert_eq!(bound_repo_lists(&mut result), RecordLists::default());
        assert_eq!(result.skipped_clean, vec!["a"]);
        assert_eq!(result.skipped_budget, vec!["b"]);
        assert_eq!(result.repos_omitted, 0);
        assert_eq!(result.repo_counts.unwrap().skipped_budget, 1);
    }
}
