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

/// Progress events as JSON objects with their detail parsed.
pub fn events_json(events: &[steward_proto::v1::ProgressEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id,
                "event_type": e.event_type,
                "source": e.source,
                "created_at": e.created_at,
                "workflow_id": e.workflow_id,
                "run_id": e.run_id,
                "detail": serde_json::from_str::<Value>(&e.detail_json).unwrap_or(Value::Null),
            })
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
