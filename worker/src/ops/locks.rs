//! The leases steward's workflows take (a sweep's, each app's upgrade, each
//! drill's): which are held and by which run, and an operator's release
//! of one, recorded with who and why. A lease whose run has closed is
//! taken over by the next run that asks ([`TemporalRuns`]), so a release by
//! hand is for what that cannot see.

use futures::StreamExt as _;
use futures::future::BoxFuture;
use steward_activities::roster::Target;
use steward_activities::store::locks::{HolderRuns, LeaseEvent};
use steward_activities::time::{now_ms, secs_text};
use temporalio_client::{Client, WorkflowExecutionStatus, WorkflowListOptions};

use super::{Actor, Error, Ops, Result};
use crate::archive::status_word;

/// A lease held now, with its holder's run as Temporal knows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LeaseRow {
    /// The lock.
    pub name: String,
    /// The holder: a run id, or `external:PATH`.
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires_at: String,
    /// The holder's workflow, when the holder is a run Temporal knows.
    pub workflow_id: Option<String>,
    /// The holder run's status (`running`, `completed`, ...), when known.
    pub run_status: Option<String>,
}

/// The leases and the latest releases and takeovers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Leases {
    /// Held now.
    pub locks: Vec<LeaseRow>,
    /// Released by an operator or taken over, newest first.
    pub events: Vec<LeaseEvent>,
}

/// What a release did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Released {
    /// The lock.
    pub name: String,
    /// The holder it had.
    pub holder: String,
    /// Who released it.
    pub by: String,
    /// Why.
    pub reason: String,
}

impl Ops {
    /// Every lease held now and the latest 20 releases and takeovers.
    pub async fn leases(&self) -> Result<Leases> {
        let store = self.store().await?;
        let held = store
            .leases()
            .await
            .map_err(Error::store("reading the leases"))?;
        let client = self.client().await?;
        let mut locks = Vec::with_capacity(held.len());
        for lease in held {
            let run = run_of(client, &lease.holder).await;
            locks.push(LeaseRow {
                expires_at: secs_text(lease.expires_at_ms),
                workflow_id: run.as_ref().map(|(id, _)| id.clone()),
                run_status: run.map(|(_, status)| status_word(status).to_string()),
                name: lease.name,
                holder: lease.holder,
            });
        }
        let events = store
            .lease_events(20)
            .await
            .map_err(Error::store("reading the lease events"))?;
        Ok(Leases { locks, events })
    }

    /// Releases the lease `name` whoever holds it, recorded with `actor`
    /// and `reason`. The run that held it is not told: release only a
    /// lease whose run will not use it again.
    pub async fn release_lease(&self, actor: &Actor, name: &str, reason: &str) -> Result<Released> {
        super::operator_text(&actor.name, reason, "reason")?;
        self.permit(actor, Target::Lock, "release", &[])?;
        let store = self.store().await?;
        let holder = store
            .release_lease(name, &actor.name, reason, now_ms())
            .await
            .map_err(Error::store("releasing the lease"))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no lease named `{name}` is held (see `steward locks list`)"
                ))
            })?;
        Ok(Released {
            name: name.to_string(),
            holder,
            by: actor.name.clone(),
            reason: reason.to_string(),
        })
    }
}

/// The workflow and status of run `run_id`, when it is a run Temporal
/// knows.
async fn run_of(client: &Client, run_id: &str) -> Option<(String, WorkflowExecutionStatus)> {
    uuid::Uuid::parse_str(run_id).ok()?;
    let query = format!("RunId = '{run_id}'");
    let mut runs = client.list_workflows(query, WorkflowListOptions::default());
    match runs.next().await {
        Some(Ok(run)) => Some((run.id().to_string(), run.status())),
        Some(Err(e)) => {
            tracing::warn!("cannot ask Temporal about run {run_id}: {e}");
            None
        }
        None => None,
    }
}

/// Temporal's answer to "has the run holding this lease closed?", for the
/// lease activities.
#[derive(Debug, Clone)]
pub struct TemporalRuns(pub Client);

impl HolderRuns for TemporalRuns {
    fn closed<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async move {
            let (_, status) = run_of(&self.0, run_id).await?;
            Some(!matches!(
                status,
                WorkflowExecutionStatus::Running | WorkflowExecutionStatus::ContinuedAsNew
            ))
        })
    }
}
