//! `RestoreDrill`: back up the state store, restore the backup into a
//! scratch target, compare every table's row count and ordered checksum
//! with the figures taken at backup time, run the store's health queries on
//! the copy, record the outcome as the last verified backup, and alert on
//! any difference. The live store is only ever read.

use steward_proto::activities::{RaiseAlert, RestoreBackup, RestoreRecord, RestoreVerify};
use steward_proto::names;
use steward_proto::v1::{Alert, RestoreDrillInput, RestoreDrillResult};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult};

use crate::sweep::{failure_message, rfc3339};

/// The restore drill workflow.
#[workflow]
#[derive(Default)]
pub struct RestoreDrill {
    input: RestoreDrillInput,
    phase: String,
}

#[workflow_methods]
impl RestoreDrill {
    /// Takes the input.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: RestoreDrillInput) -> Self {
        Self {
            input,
            phase: "backing_up".into(),
        }
    }

    /// Runs the drill. A backup that cannot be taken fails the workflow
    /// (after retries); a backup that does not restore, or restores
    /// different, is the drill's finding: outcome `failed` or `mismatch`,
    /// with a critical alert.
    #[run(name = names::RESTORE_DRILL)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<RestoreDrillResult> {
        let input = ctx.state(|s| s.input.clone());
        let started = ctx.workflow_time().unwrap_or(std::time::UNIX_EPOCH);
        let backup = ctx
            .execute_activity(RestoreBackup, input.clone(), long())
            .await?;
        ctx.state_mut(|s| s.phase = "restoring".into());
        let restore = match ctx
            .execute_activity(RestoreVerify, backup.clone(), long())
            .await
        {
            Ok(r) => r,
            Err(e) => steward_proto::v1::RestoreVerified {
                error: failure_message(&e),
                ..Default::default()
            },
        };
        let outcome = if !restore.error.is_empty() {
            "failed"
        } else if !restore.mismatches.is_empty() || restore.health.iter().any(|h| !h.ok) {
            "mismatch"
        } else {
            "verified"
        };
        let result = RestoreDrillResult {
            outcome: outcome.into(),
            backup: Some(backup.clone()),
            restore: Some(restore.clone()),
            workflow_id: ctx.workflow_id().to_string(),
            run_id: ctx.run_id().to_string(),
            started_at: rfc3339(started),
            source: input.source.clone(),
            operator: input.operator.clone(),
        };
        ctx.state_mut(|s| s.phase = "recording".into());
        ctx.execute_activity(RestoreRecord, result.clone(), short())
            .await?;
        if outcome != "verified" {
            let mut problems: Vec<String> = restore.mismatches.clone();
            problems.extend(
                restore
                    .health
                    .iter()
                    .filter(|h| !h.ok)
                    .map(|h| format!("health {}: {}", h.name, h.detail)),
            );
            if !restore.error.is_empty() {
                problems.push(restore.error.clone());
            }
            let alert = Alert {
                id: format!("{}-restore-drill", ctx.run_id()),
                severity: "critical".into(),
                kind: "restore.failed".into(),
                subject: backup.path.clone(),
                message: format!(
                    "restore drill {outcome}: the backup {} did not restore as taken: {}",
                    backup.path,
                    problems.join("; ")
                ),
                at: rfc3339(ctx.workflow_time().unwrap_or(started)),
                detail_json: String::new(),
            };
            ctx.execute_activity(RaiseAlert, alert, short()).await?;
        }
        ctx.state_mut(|s| s.phase = "done".into());
        Ok(result)
    }

    /// The drill's phase.
    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> String {
        self.phase.clone()
    }
}

fn short() -> ActivityOptions {
    crate::options::quick(60, 5)
}

/// Backups and restores heartbeat; a large store may take a while.
fn long() -> ActivityOptions {
    crate::options::heartbeating(3600, 3)
}
