//! `steward progress`: latest progress events from the state store.

use std::process::ExitCode;

use serde_json::Value;
use steward_activities::Store;

use crate::cli::print_json;
use crate::config::Loaded;

/// Options of `steward progress`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only events of this type, e.g. `consistency_sweep_remote_all`.
    #[arg(long)]
    event_type: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 10)]
    limit: i64,
}

/// A progress event with its detail parsed, as `steward progress` and the
/// API show it.
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

/// Progress events as JSON objects with their detail parsed.
pub fn events_json(events: &[steward_proto::v1::ProgressEvent]) -> Vec<EventView> {
    events
        .iter()
        .map(|e| EventView {
            id: e.id.clone(),
            event_type: e.event_type.clone(),
            source: e.source.clone(),
            created_at: e.created_at.clone(),
            workflow_id: e.workflow_id.clone(),
            run_id: e.run_id.clone(),
            detail: serde_json::from_str::<Value>(&e.detail_json).unwrap_or(Value::Null),
        })
        .collect()
}

pub(super) async fn run(loaded: Loaded, args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.limit > 0, "--limit must be at least 1");
    let store = Store::connect(&loaded.database_url()).await?;
    let events = store
        .progress(args.event_type.as_deref(), 0, args.limit)
        .await?;
    print_json(&events_json(&events))?;
    Ok(ExitCode::SUCCESS)
}
