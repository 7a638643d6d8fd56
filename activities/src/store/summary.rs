//! The store at a glance: what `/v1/summary` serves, and what a restore
//! drill asks a restored copy's API for.

use std::collections::BTreeMap;

use sqlx::Row;
use steward_proto::names;

use super::{Error, Store};

/// Counts and the last sweep per source, read from the store alone.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct StoreSummary {
    /// Repos a sweep has recorded.
    pub repos: i64,
    /// Workstreams (workplan files) not archived.
    pub workstreams: i64,
    /// Tasks not archived.
    pub tasks: i64,
    /// Findings open now.
    pub open_findings: i64,
    /// Status changes waiting for writeback.
    pub pending_changes: i64,
    /// The last recorded sweep of each source (`schedule`, `manual`, ...).
    pub last_sweep: BTreeMap<String, LastSweep>,
}

/// One source's last recorded sweep.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct LastSweep {
    /// When it was recorded (RFC 3339).
    pub at: String,
    /// Its workflow.
    pub workflow_id: String,
    /// Its run.
    pub run_id: String,
}

impl Store {
    /// The summary as the store holds it now.
    pub async fn summary(&self) -> Result<StoreSummary, Error> {
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&self.pool)
                .await
                .map_err(Error::from)
        };
        let mut summary = StoreSummary {
            repos: count("SELECT COUNT(*) FROM repo_state").await?,
            workstreams: count("SELECT COUNT(*) FROM workstreams WHERE archived = 0").await?,
            tasks: count("SELECT COUNT(*) FROM tasks WHERE archived = 0").await?,
            open_findings: count("SELECT COUNT(*) FROM findings WHERE resolved_ms IS NULL").await?,
            pending_changes: count("SELECT COUNT(*) FROM status_changes WHERE state = 'pending'")
                .await?,
            ..Default::default()
        };
        let rows = sqlx::query(
            "SELECT p.source, p.created_at_ms, p.workflow_id, p.run_id FROM progress_events p \
             JOIN (SELECT source, MAX(created_at_ms) AS latest FROM progress_events \
                   WHERE event_type = $1 GROUP BY source) l \
             ON p.source = l.source AND p.created_at_ms = l.latest WHERE p.event_type = $1 \
             ORDER BY p.source, p.id",
        )
        .bind(names::SWEEP_EVENT_TYPE)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let ms: i64 = r.try_get("created_at_ms")?;
            summary.last_sweep.insert(
                r.try_get("source")?,
                LastSweep {
                    at: crate::time::millis_text(ms),
                    workflow_id: r.try_get("workflow_id")?,
                    run_id: r.try_get("run_id")?,
                },
            );
        }
        Ok(summary)
    }
}
