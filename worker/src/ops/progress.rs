//! Progress events from the state store, as the CLI and the API show them.

use serde_json::Value;

use super::{Error, Ops, Result};

/// The most events one read returns.
pub const MAX_EVENTS: i64 = 1000;

/// A progress event with its detail parsed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// `workflow_id:run_id` for a run's event.
    pub id: String,
    /// `consistency_sweep_remote_all`, `warm_upgrade`, `restore_drill`, ...
    pub event_type: String,
    /// Who started the run: `schedule`, `manual`, an app, ...
    pub source: String,
    /// RFC 3339.
    pub created_at: String,
    /// The run's workflow id.
    pub workflow_id: String,
    /// The run's id.
    pub run_id: String,
    /// The run's result.
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<&steward_proto::v1::ProgressEvent> for EventView {
    fn from(e: &steward_proto::v1::ProgressEvent) -> Self {
        Self {
            id: e.id.clone(),
            event_type: e.event_type.clone(),
            source: e.source.clone(),
            created_at: e.created_at.clone(),
            workflow_id: e.workflow_id.clone(),
            run_id: e.run_id.clone(),
            detail: serde_json::from_str::<Value>(&e.detail_json).unwrap_or(Value::Null),
        }
    }
}

impl Ops {
    /// The latest `limit` progress events (of `event_type` when given),
    /// newest first.
    pub async fn progress(&self, event_type: Option<&str>, limit: i64) -> Result<Vec<EventView>> {
        if !(1..=MAX_EVENTS).contains(&limit) {
            return Err(Error::BadRequest(format!(
                "limit must be 1 to {MAX_EVENTS}"
            )));
        }
        let events = self
            .store()
            .await?
            .progress(event_type.filter(|t| !t.is_empty()), 0, limit)
            .await
            .map_err(Error::store("reading progress events"))?;
        Ok(events.iter().map(EventView::from).collect())
    }
}
