//! Everything that waits for an operator: runs whose `StewardWaiting`
//! search attribute says so (a held upgrade, a backfill waiting for its
//! freeze, an approval, an unfreeze or a resume) or whose pinned steps wait
//! for a host with no worker (`StewardHostWait`), from one visibility
//! query, and the schedules that are paused.

use futures::StreamExt as _;
use steward_proto::names;
use steward_workflows::attributes;
use temporalio_client::WorkflowListOptions;

use steward_activities::time;

use super::{Error, Ops, Result};

/// The visibility query of the runs waiting for an operator, or for a
/// worker of a host their pinned steps need.
pub fn waiting_query() -> String {
    format!(
        "ExecutionStatus = 'Running' AND ({} = true OR {} IS NOT NULL)",
        names::SA_WAITING,
        names::SA_HOST_WAIT
    )
}

/// A run waiting for an operator.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct WaitingRun {
    /// The run.
    pub workflow_id: String,
    /// The run.
    pub run_id: String,
    /// `BackfillRollout`, `WarmUpgrade`.
    pub workflow_type: String,
    /// The backfill or app.
    pub subject: Option<String>,
    /// Where it waits (`held`, `awaiting_freeze`, ...).
    pub phase: Option<String>,
    /// When it started (RFC 3339).
    pub started: Option<String>,
    /// The hosts whose workers its pinned steps wait for (`runs_on`):
    /// start a worker there.
    pub waiting_for_hosts: Vec<String>,
}

/// A paused schedule.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PausedSchedule {
    /// The schedule.
    pub schedule_id: String,
    /// Why, when steward or an operator said.
    pub paused_reason: Option<String>,
    /// The schedule's note.
    pub note: String,
}

/// Everything waiting for an operator.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Inbox {
    /// Runs, from one visibility query.
    pub runs: Vec<WaitingRun>,
    /// Paused schedules.
    pub paused_schedules: Vec<PausedSchedule>,
    /// Critical alerts no one has acknowledged (`steward alerts ack`).
    #[schema(value_type = Vec<Object>)]
    pub unacknowledged_critical: Vec<serde_json::Value>,
}

impl Ops {
    /// The runs and schedules waiting for an operator.
    pub async fn inbox(&self) -> Result<Inbox> {
        let client = self.client().await?;
        let query = waiting_query();
        let mut runs = Vec::new();
        let mut stream = client.list_workflows(query.clone(), WorkflowListOptions::default());
        while let Some(run) = stream.next().await {
            let run = run.map_err(|e| Error::upstream(format!("listing `{query}`"), e))?;
            let attrs = run.search_attributes();
            runs.push(WaitingRun {
                workflow_id: run.id().into(),
                run_id: run.run_id().into(),
                workflow_type: run.workflow_type().into(),
                subject: attrs.get(&attributes::SUBJECT),
                phase: attrs.get(&attributes::PHASE),
                started: run.start_time().map(|t| time::secs_text(time::ms(t))),
                waiting_for_hosts: attrs.get(&attributes::HOST_WAIT).unwrap_or_default(),
            });
        }
        let paused_schedules = self
            .schedules()
            .await?
            .into_iter()
            .filter(|s| s.paused)
            .map(|s| PausedSchedule {
                schedule_id: s.id,
                paused_reason: s.paused_reason,
                note: s.note,
            })
            .collect();
        Ok(Inbox {
            runs,
            paused_schedules,
            unacknowledged_critical: self.unacknowledged_critical(),
        })
    }
}
