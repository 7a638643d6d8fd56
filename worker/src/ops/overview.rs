//! `/v1/summary`: the store at a glance (repos, workstreams, tasks, open
//! findings, pending changes, the last sweep of each source) and how many
//! runs wait for an operator.

use steward_activities::store::summary::StoreSummary;

use super::{Error, Ops, Result};

/// The summary the API serves.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// What the state store holds.
    #[serde(flatten)]
    pub store: StoreSummary,
    /// Runs waiting for an operator (`steward inbox`).
    pub runs_waiting: usize,
    /// Schedules paused.
    pub paused_schedules: usize,
}

impl Ops {
    /// The store's summary and the inbox's counts.
    pub async fn overview(&self) -> Result<Overview> {
        let store = self
            .store()
            .await?
            .summary()
            .await
            .map_err(Error::store("reading the summary"))?;
        let inbox = self.inbox().await?;
        Ok(Overview {
            store,
            runs_waiting: inbox.runs.len(),
            paused_schedules: inbox.paused_schedules.len(),
        })
    }
}
