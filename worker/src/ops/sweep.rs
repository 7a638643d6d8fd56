//! Consistency sweeps: start one, follow it, compare the runners that
//! recorded sweeps.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use serde::Serialize;
use steward_activities::roster::Target;
use steward_proto::v1::{ProgressEvent, SweepInput, SweepResult};
use steward_proto::vocab::OperatorVerb;
use steward_proto::{ids, names};
use steward_workflows::ConsistencySweep;
use steward_workflows::sweep::SweepProgress;
use temporalio_client::WorkflowGetResultOptions;

use super::{Actor, Error, Ops, Result, Started};

/// What a sweep's start asks for.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// The source tag of its progress event (and workflow id).
    pub source: String,
    /// The budget in seconds (None: `[sweep].max_seconds`).
    pub max_seconds: Option<u32>,
    /// Reassess every repo.
    pub full: bool,
    /// Repos at once (None: `[sweep].concurrency`).
    pub concurrency: Option<u32>,
}

/// The longest budget a sweep may be given: a day.
pub const MAX_SECONDS: u32 = 86_400;

/// The most repos a sweep may process at once.
pub const MAX_CONCURRENCY: u32 = 256;

impl Ops {
    /// Starts a consistency sweep as `actor`.
    pub async fn start_sweep(&self, actor: &Actor, start: Start) -> Result<Started> {
        if start
            .max_seconds
            .is_some_and(|s| !(1..=MAX_SECONDS).contains(&s))
        {
            return Err(Error::BadRequest(format!(
                "max_seconds must be 1 to {MAX_SECONDS}"
            )));
        }
        if start
            .concurrency
            .is_some_and(|c| !(1..=MAX_CONCURRENCY).contains(&c))
        {
            return Err(Error::BadRequest(format!(
                "concurrency must be 1 to {MAX_CONCURRENCY}"
            )));
        }
        if !crate::config::valid_name(&start.source) {
            return Err(Error::BadRequest(
                "source must be 1 to 63 lowercase letters, digits or inner `-` (it names the sweep's workflow id)"
                    .into(),
            ));
        }
        self.permit(actor, Target::Sweep, OperatorVerb::Start.as_str(), &[])?;
        let input = SweepInput {
            source: start.source,
            max_seconds: start.max_seconds.unwrap_or(0),
            full: start.full,
            concurrency: start.concurrency.unwrap_or(0),
            schedule_id: String::new(),
        };
        let shown = crate::summary::sweep(self.loaded(), &input);
        let id = ids::sweep(
            &input.source,
            &chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string(),
        );
        let (started, _) = self
            .start(ConsistencySweep::run, input, &id, shown, || {
                format!("sweep {id} is already running")
            })
            .await?;
        Ok(started)
    }

    /// Waits for the sweep `started` to end.
    pub async fn sweep_result(&self, started: &Started) -> Result<SweepResult> {
        self.client()
            .await?
            .get_workflow_handle::<ConsistencySweep>(started.workflow_id.clone())
            .get_result(WorkflowGetResultOptions::default())
            .await
            .map_err(|e| {
                Error::result(format!("sweep {} did not complete", started.workflow_id), e)
            })
    }

    /// The sweep whose run is `holder` (a sweep lock's holder), while it
    /// runs; None when the lock is held by something else or the run ended.
    pub async fn sweep_holding(&self, holder: &str) -> Result<Option<Started>> {
        if uuid::Uuid::parse_str(holder).is_err() {
            return Ok(None);
        }
        let query = format!(
            "WorkflowType = '{}' AND RunId = '{holder}' AND ExecutionStatus = 'Running'",
            names::CONSISTENCY_SWEEP
        );
        let mut runs = self
            .client()
            .await?
            .list_workflows(query.clone(), Default::default());
        match runs.next().await {
            Some(Ok(run)) => Ok(Some(Started {
                workflow_id: run.id().to_string(),
                run_id: run.run_id().to_string(),
            })),
            Some(Err(e)) => Err(Error::upstream(format!("listing `{query}`"), e)),
            None => Ok(None),
        }
    }

    /// Where the sweep `started` is.
    pub async fn sweep_progress(&self, started: &Started) -> Result<SweepProgress> {
        self.client()
            .await?
            .get_workflow_handle::<ConsistencySweep>(started.workflow_id.clone())
            .query(ConsistencySweep::progress, (), Default::default())
            .await
            .map_err(|e| Error::query(format!("querying {}", started.workflow_id), e))
    }

    /// Per source: sweeps, completed, lock-skipped, automation errors and
    /// open findings over the last `since_hours` hours.
    pub async fn compare_sweeps(&self, since_hours: f64) -> Result<BTreeMap<String, SourceStats>> {
        if !(since_hours > 0.0 && since_hours <= 24.0 * 366.0) {
            return Err(Error::BadRequest(
                "since_hours must be above 0 and at most a year".into(),
            ));
        }
        let since = chrono::Utc::now().timestamp_millis() - (since_hours * 3_600_000.0) as i64;
        let events = self
            .store()
            .await?
            .progress(Some(names::SWEEP_EVENT_TYPE), since, i64::MAX)
            .await
            .map_err(Error::store("reading sweep events"))?;
        Ok(compare(&events))
    }
}

/// Per-source counts for a parallel run of two runners.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SourceStats {
    /// Sweep events.
    pub sweeps: u32,
    /// Sweeps that took the lock and ran.
    pub completed: u32,
    /// Sweeps skipped because another held the lock.
    pub lock_skipped: u32,
    /// Sweeps with at least one automation error.
    pub automation_errors: u32,
    /// Open findings of the estate as the source's newest completed sweep
    /// reported them: the same ledger, so two runners compare like with
    /// like.
    pub open_findings: u32,
}

/// The open findings a sweep reported: the ledger's count, or (a sweep
/// recorded before the ledger, or another runner's) what it listed.
fn open_findings(r: &SweepResult) -> u32 {
    r.open_findings
        .max(r.assessment_failures.len() as u32 + r.findings_omitted)
}

/// Groups sweep progress events (newest first) by source.
pub fn compare(events: &[ProgressEvent]) -> BTreeMap<String, SourceStats> {
    let mut out: BTreeMap<String, SourceStats> = BTreeMap::new();
    for e in events {
        let Ok(r) = serde_json::from_str::<SweepResult>(&e.detail_json) else {
            continue;
        };
        let s = out.entry(e.source.clone()).or_default();
        s.sweeps += 1;
        if r.lock_skipped {
            s.lock_skipped += 1;
        } else {
            if s.completed == 0 {
                s.open_findings = open_findings(&r);
            }
            s.completed += 1;
        }
        s.automation_errors += u32::from(r.automation_error);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_proto::v1::Finding;

    fn event(source: &str, r: SweepResult) -> ProgressEvent {
        ProgressEvent {
            source: source.into(),
            detail_json: serde_json::to_string(&r).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn compare_counts_per_source() {
        let events = vec![
            event(
                "schedule",
                SweepResult {
                    lock_skipped: true,
                    ..Default::default()
                },
            ),
            event(
                "schedule",
                SweepResult {
                    automation_error: true,
                    assessment_failures: vec![Finding::default(), Finding::default()],
                    open_findings: 5,
                    findings_omitted: 3,
                    ..Default::default()
                },
            ),
            event(
                "schedule",
                SweepResult {
                    open_findings: 9,
                    ..Default::default()
                },
            ),
            event(
                "local-timer",
                SweepResult {
                    assessment_failures: vec![Finding::default()],
                    ..Default::default()
                },
            ),
        ];
        let c = compare(&events);
        assert_eq!(
            c["schedule"],
            SourceStats {
                sweeps: 3,
                completed: 2,
                lock_skipped: 1,
                automation_errors: 1,
                open_findings: 5,
            },
            "the newest completed sweep's open findings, not a sum"
        );
        assert_eq!(c["local-timer"].completed, 1);
        assert_eq!(
            c["local-timer"].open_findings, 1,
            "a runner without the ledger counts what it listed"
        );
    }
}
