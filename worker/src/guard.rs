//! What every worker watches besides its tasks, from the progress events
//! the sweeps record:
//!
//! - the dead-man's switch: an alert when no sweep has succeeded within
//!   `max_sweep_age` (twice the schedule interval by default);
//! - the failure pause: a sweep schedule is paused, with an alert and a
//!   note saying why, after `pause_after_errors` consecutive sweeps it
//!   started ended with automation errors. Assessment failures (findings
//!   in the workplans) do not count: they are the operators' to fix, not a
//!   broken automation.
//!
//! Several workers may run the guard at once. Each decision is recorded as
//! a progress event whose id names it, and only the worker that inserts it
//! raises the alert, so every alert is raised once.

use std::collections::BTreeSet;
use std::time::Duration;
use steward_activities::time::{now_ms, secs_text};

use anyhow::Context as _;
use steward_activities::Store;
use steward_activities::alerts::AlertSink;
use steward_proto::names;
use steward_proto::v1::{Alert, ProgressEvent, SweepResult};
use steward_proto::vocab::ScheduleKind;
use temporalio_client::Client;

use crate::config::Loaded;
use crate::schedules;

/// Event type of the guard's own decisions.
pub const GUARD_EVENT_TYPE: &str = "steward_guard";

/// How far back the guard reads sweep events.
const EVENTS_READ: i64 = 500;

/// One recorded sweep, as the guard sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSeen {
    /// The progress event id.
    pub id: String,
    /// When it was recorded, ms since the epoch.
    pub at_ms: i64,
    /// The sweep result.
    pub result: SweepResult,
}

impl SweepSeen {
    fn succeeded(&self) -> bool {
        !self.result.lock_skipped && !self.result.automation_error
    }
}

/// The newest successful sweep of `newest_first`.
pub fn last_success(newest_first: &[SweepSeen]) -> Option<&SweepSeen> {
    newest_first.iter().find(|s| s.succeeded())
}

/// The current run of consecutive automation errors of `schedule_id`,
/// newest first. It ends at a sweep without automation errors, or at a
/// sweep that already caused a pause (`paused_for`), so a schedule an
/// operator resumed needs a fresh run of errors to be paused again. Lock
/// skips neither count nor break the run.
pub fn error_streak<'a>(
    newest_first: &'a [SweepSeen],
    schedule_id: &str,
    paused_for: &BTreeSet<String>,
) -> Vec<&'a SweepSeen> {
    let mut streak = Vec::new();
    for s in newest_first
        .iter()
        .filter(|s| s.result.schedule_id == schedule_id && !s.result.lock_skipped)
    {
        if !s.result.automation_error || paused_for.contains(&s.id) {
            break;
        }
        streak.push(s);
    }
    streak
}

/// Id of the guard event for a dead-man alert about `last` (None: no
/// sweep ever succeeded).
pub fn deadman_key(last: Option<&SweepSeen>) -> String {
    format!("deadman:{}", last.map(|s| s.id.as_str()).unwrap_or("never"))
}

/// Id of the guard event for pausing `schedule_id` because of the sweep
/// `newest` (the newest of the streak).
pub fn pause_key(schedule_id: &str, newest: &str) -> String {
    format!("pause:{schedule_id}:{newest}")
}

/// The guard of one worker process.
#[derive(Debug)]
pub struct Guard {
    store: Store,
    client: Client,
    sink: AlertSink,
    every: Duration,
    max_sweep_age: Option<Duration>,
    pause_after: usize,
    schedules: Vec<(String, String)>,
    started_ms: i64,
}

impl Guard {
    /// The guard `loaded` configures.
    pub fn new(loaded: &Loaded, store: Store, client: Client, sink: AlertSink) -> Self {
        Self {
            store,
            client,
            sink,
            every: Duration::from_secs(loaded.config.guard.check_seconds),
            max_sweep_age: loaded.max_sweep_age(),
            pause_after: loaded.config.guard.pause_after_errors as usize,
            schedules: loaded
                .schedules()
                .iter()
                .filter(|s| s.workflow == ScheduleKind::Sweep)
                .map(|s| (schedules::schedule_id(s), s.name.clone()))
                .collect(),
            started_ms: now_ms(),
        }
    }

    /// Checks every `check_seconds` until dropped. A failed check is
    /// logged and tried again next time.
    pub async fn run(self) {
        crate::periodic::periodically(self.every, "guard check", || self.check()).await
    }

    /// One look at the recorded sweeps.
    pub async fn check(&self) -> anyhow::Result<()> {
        let sweeps = self.sweeps().await?;
        if let Some(max_age) = self.max_sweep_age {
            self.check_deadman(&sweeps, max_age).await?;
        }
        if self.pause_after > 0 {
            let paused_for = self.paused_for().await?;
            for (id, name) in &self.schedules {
                self.check_schedule(&sweeps, id, name, &paused_for).await?;
            }
        }
        Ok(())
    }

    async fn sweeps(&self) -> anyhow::Result<Vec<SweepSeen>> {
        let events = self
            .store
            .progress(Some(names::SWEEP_EVENT_TYPE), 0, EVENTS_READ)
            .await
            .context("reading sweep progress events")?;
        Ok(events
            .into_iter()
            .filter_map(|e| {
                Some(SweepSeen {
                    at_ms: chrono::DateTime::parse_from_rfc3339(&e.created_at)
                        .ok()?
                        .timestamp_millis(),
                    result: serde_json::from_str(&e.detail_json).ok()?,
                    id: e.id,
                })
            })
            .collect())
    }

    /// The sweep event ids that already caused a pause.
    async fn paused_for(&self) -> anyhow::Result<BTreeSet<String>> {
        Ok(self
            .store
            .progress(Some(GUARD_EVENT_TYPE), 0, EVENTS_READ)
            .await
            .context("reading guard events")?
            .into_iter()
            .filter_map(|e| {
                let rest = e.id.strip_prefix("pause:")?;
                let (_, sweep) = rest.split_once(':')?;
                Some(sweep.to_string())
            })
            .collect())
    }

    /// Records the decision `id`; true when this call recorded it first.
    async fn decide(
        &self,
        id: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<bool> {
        let event = ProgressEvent {
            id: id.to_string(),
            event_type: GUARD_EVENT_TYPE.into(),
            source: subject.to_string(),
            created_at: String::new(),
            workflow_id: String::new(),
            run_id: String::new(),
            detail_json: detail.to_string(),
        };
        Ok(self.store.insert_progress(&event, now_ms()).await?)
    }

    async fn alert(
        &self,
        id: &str,
        kind: &str,
        subject: &str,
        message: String,
    ) -> anyhow::Result<()> {
        let alert = Alert {
            id: id.replace(':', "-"),
            severity: "critical".into(),
            kind: kind.into(),
            subject: subject.into(),
            message,
            at: secs_text(now_ms()),
            ..Default::default()
        };
        self.sink.raise(&alert).await.context("raising the alert")?;
        Ok(())
    }

    async fn check_deadman(&self, sweeps: &[SweepSeen], max_age: Duration) -> anyhow::Result<()> {
        let last = last_success(sweeps);
        let since = last.map(|s| s.at_ms).unwrap_or(self.started_ms);
        let age = now_ms().saturating_sub(since);
        if age <= max_age.as_millis() as i64 {
            // A sweep completed: a stale-sweep alert still open is over.
            if last.is_some() {
                self.sink
                    .resolve("sweep.deadman", "consistency-sweep")
                    .await;
            }
            return Ok(());
        }
        let key = deadman_key(last);
        let message = match last {
            Some(s) => format!(
                "no successful consistency sweep since {} ({}), more than {}s ago",
                secs_text(s.at_ms),
                s.result.workflow_id,
                max_age.as_secs()
            ),
            None => format!(
                "no successful consistency sweep recorded, and the worker has been up for more than {}s",
                max_age.as_secs()
            ),
        };
        let detail = serde_json::json!({ "message": message });
        if self.decide(&key, "consistency-sweep", detail).await? {
            self.alert(&key, "sweep.deadman", "consistency-sweep", message)
                .await?;
        }
        Ok(())
    }

    async fn check_schedule(
        &self,
        sweeps: &[SweepSeen],
        schedule_id: &str,
        name: &str,
        paused_for: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let streak = error_streak(sweeps, schedule_id, paused_for);
        if streak.len() < self.pause_after {
            return Ok(());
        }
        let newest = streak[0];
        let last_error = newest
            .result
            .automation_errors
            .first()
            .map(|e| format!("{}: {}", e.repo, e.message))
            .unwrap_or_default();
        let reason = format!(
            "{} consecutive sweeps with automation errors (last: {last_error})",
            streak.len()
        );
        // Pause before recording, so a failed pause is tried again.
        schedules::pause_for_errors(&self.client, schedule_id, &reason).await?;
        let key = pause_key(schedule_id, &newest.id);
        let detail = serde_json::json!({ "schedule": schedule_id, "reason": reason });
        if self.decide(&key, schedule_id, detail).await? {
            let message = format!(
                "schedule {schedule_id} paused: {reason}. Fix the cause, then `steward schedules resume {name}`."
            );
            tracing::warn!("{message}");
            self.alert(&key, "schedule.paused", schedule_id, message)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_proto::v1::{Finding, RepoError};

    fn seen(id: &str, schedule: &str, errors: bool, findings: bool) -> SweepSeen {
        SweepSeen {
            id: id.into(),
            at_ms: 0,
            result: SweepResult {
                schedule_id: schedule.into(),
                automation_error: errors,
                automation_errors: if errors {
                    vec![RepoError {
                        repo: "r".into(),
                        message: "boom".into(),
                    }]
                } else {
                    vec![]
                },
                assessment_failures: if findings {
                    vec![Finding {
                        check: "C-07".into(),
                        ..Default::default()
                    }]
                } else {
                    vec![]
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_streak_counts_consecutive_automation_errors_of_one_schedule() {
        let s = "steward-sweep";
        let events = vec![
            seen("e5", s, true, false),
            seen("other", "steward-nightly", false, false),
            seen("e4", s, true, true),
            seen("e3", s, false, true),
            seen("e2", s, true, false),
        ];
        let streak: Vec<&str> = error_streak(&events, s, &BTreeSet::new())
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(streak, ["e5", "e4"], "e3 (findings only) ends the run");
    }

    #[test]
    fn assessment_failures_alone_never_make_a_streak() {
        let s = "steward-sweep";
        let events: Vec<SweepSeen> = (0..10)
            .map(|i| seen(&format!("e{i}"), s, false, true))
            .collect();
        assert!(error_streak(&events, s, &BTreeSet::new()).is_empty());
        assert_eq!(last_success(&events).map(|e| e.id.as_str()), Some("e0"));
    }

    #[test]
    fn lock_skips_neither_count_nor_break_the_streak() {
        let s = "steward-sweep";
        let mut skipped = seen("skip", s, false, false);
        skipped.result.lock_skipped = true;
        let events = vec![
            seen("e3", s, true, false),
            skipped,
            seen("e2", s, true, false),
        ];
        assert_eq!(error_streak(&events, s, &BTreeSet::new()).len(), 2);
        assert!(last_success(&events).is_none(), "a lock skip is no success");
    }

    #[test]
    fn a_resumed_schedule_needs_a_fresh_streak() {
        let s = "steward-sweep";
        let events = vec![
            seen("e4", s, true, false),
            seen("e3", s, true, false),
            seen("e2", s, true, false),
        ];
        let paused_for = BTreeSet::from(["e3".to_string()]);
        let streak = error_streak(&events, s, &paused_for);
        assert_eq!(streak.len(), 1, "only e4 came after the pause");
    }

    #[test]
    fn decision_keys_name_what_they_decided() {
        assert_eq!(deadman_key(None), "deadman:never");
        let e = seen("sweep-1:run", "", false, false);
        assert_eq!(deadman_key(Some(&e)), "deadman:sweep-1:run");
        assert_eq!(
            pause_key("steward-sweep", "sweep-1:run"),
            "pause:steward-sweep:sweep-1:run"
        );
    }
}
