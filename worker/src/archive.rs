//! The archiver, run beside the guard in every worker: every closed run of
//! every steward workflow goes into the state store's audit archive with
//! its full history, in a hash chain, so the audit trail outlives the
//! server's retention (`store/archive.rs` says how the chain holds).
//!
//! A pass lists the closed runs from visibility (since a while before the
//! last archived close, so a run that became visible late is not missed),
//! and archives each one not archived yet. A pass cut short (a `kill -9`)
//! leaves the chain whole: each append is one transaction. Several workers
//! may archive at once; the chain's unique positions and runs keep it free
//! of gaps and duplicates, and a worker that lost a race tries again next
//! pass.

use std::time::{Duration, SystemTime};
use steward_activities::time::{millis_text, ms};

use anyhow::Context as _;
use futures::StreamExt as _;
use steward_activities::Store;
use steward_activities::store::archive::NewEntry;
use steward_proto::names;
use temporalio_client::{Client, WorkflowExecutionStatus, WorkflowListOptions};

use crate::history;

/// How far before the newest archived close a pass looks again.
const OVERLAP: Duration = Duration::from_secs(3600);

/// Archives the closed runs of one namespace into one store.
#[derive(Debug)]
pub struct Archiver {
    store: Store,
    client: Client,
    every: Duration,
}

/// How a closed run ended, as the archive spells it.
pub fn status_word(s: WorkflowExecutionStatus) -> &'static str {
    match s {
        WorkflowExecutionStatus::Running => "running",
        WorkflowExecutionStatus::Completed => "completed",
        WorkflowExecutionStatus::Failed => "failed",
        WorkflowExecutionStatus::Canceled => "canceled",
        WorkflowExecutionStatus::Terminated => "terminated",
        WorkflowExecutionStatus::ContinuedAsNew => "continued_as_new",
        WorkflowExecutionStatus::TimedOut => "timed_out",
        _ => "unknown",
    }
}

/// The visibility query for closed steward runs that closed at or after
/// `since` (RFC 3339), or all of them.
pub fn closed_runs_query(since: Option<&str>) -> String {
    let types: Vec<String> = names::WORKFLOW_TYPES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect();
    let mut q = format!(
        "WorkflowType IN ({}) AND ExecutionStatus != 'Running'",
        types.join(", ")
    );
    if let Some(since) = since {
        q.push_str(&format!(" AND CloseTime >= '{since}'"));
    }
    q
}

impl Archiver {
    /// An archiver passing every `every`.
    pub fn new(store: Store, client: Client, every: Duration) -> Self {
        Self {
            store,
            client,
            every,
        }
    }

    /// Passes every `every` until dropped; a failed pass is logged and
    /// tried again next time.
    pub async fn run(self) {
        crate::periodic::periodically(self.every, "archive pass", || async {
            self.pass().await.map(|_| ())
        })
        .await
    }

    /// One pass: archives every closed run not archived yet, oldest close
    /// first; how many it archived.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let since = self
            .store
            .last_archived_close()
            .await?
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| millis_text(ms(SystemTime::from(t) - OVERLAP)));
        let query = closed_runs_query(since.as_deref());
        let mut runs = Vec::new();
        let mut stream = self
            .client
            .list_workflows(query.clone(), WorkflowListOptions::default());
        while let Some(run) = stream.next().await {
            let run = run.with_context(|| format!("listing closed runs matching `{query}`"))?;
            runs.push((
                run.close_time().unwrap_or(SystemTime::UNIX_EPOCH),
                run.id().to_string(),
                run.run_id().to_string(),
                run.workflow_type().to_string(),
                run.status(),
            ));
        }
        runs.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
        let mut archived = 0;
        for (closed, id, run_id, workflow_type, status) in runs {
            if self.store.is_archived(&id, &run_id).await? {
                continue;
            }
            let json = history::history(&self.client, &id, Some(&run_id))
                .to_json()
                .await
                .with_context(|| format!("exporting the history of {id}/{run_id}"))?;
            let json = String::from_utf8(json).context("the exported history is not UTF-8")?;
            let added = self
                .store
                .archive(&NewEntry {
                    workflow_id: &id,
                    run_id: &run_id,
                    workflow_type: &workflow_type,
                    close_time: &millis_text(ms(closed)),
                    status: status_word(status),
                    history_json: &json,
                })
                .await
                .with_context(|| format!("archiving {id}/{run_id}"))?;
            archived += usize::from(added.is_some());
        }
        Ok(archived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_every_workflow_type_and_the_window() {
        let q = closed_runs_query(Some("2026-12-02T10:00:00.000Z"));
        for t in names::WORKFLOW_TYPES {
            assert!(q.contains(&format!("'{t}'")), "{q}");
        }
        assert!(
            q.ends_with("AND CloseTime >= '2026-12-02T10:00:00.000Z'"),
            "{q}"
        );
        assert!(!closed_runs_query(None).contains("CloseTime"));
    }
}
