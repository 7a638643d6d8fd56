//! `RestoreDrill`: back up the state store (encrypted, copied off-node),
//! restore the off-node copy into an isolated target, compare every
//! table's row count and ordered checksum with the figures taken at backup
//! time, run the store's health queries on the copy, measure RTO and RPO
//! against their targets, record the outcome as the last verified backup,
//! and alert on any difference or missed target. The live store is only
//! ever read.

use serde_json::Map;
use steward_proto::activities::{RestoreBackup, RestoreRecord, RestoreVerify};
use steward_proto::names;
use steward_proto::v1::{RestoreDrillInput, RestoreDrillResult};
use steward_proto::vocab::{DrillOutcome, DrillPhase, PlacementKind, Severity};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult};

use crate::alert::NewAlert;
use crate::failure::failure_message;
use crate::hosts;
use crate::options::summarized;
use crate::time::rfc3339;

/// The restore drill workflow.
#[workflow]
#[derive(Default)]
pub struct RestoreDrill {
    input: RestoreDrillInput,
    phase: DrillPhase,
}

#[workflow_methods]
impl RestoreDrill {
    /// Takes the input.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: RestoreDrillInput) -> Self {
        Self {
            input,
            phase: DrillPhase::BackingUp,
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
        let what = if input.backup.is_empty() {
            "back up the state store".to_string()
        } else {
            format!("read the manifest of {}", input.backup)
        };
        let pins = hosts::place(ctx, "restore", PlacementKind::Restore, "").await?;
        let backup = pins
            .run(
                ctx,
                "state store",
                RestoreBackup,
                input.clone(),
                summarized(long(), what),
            )
            .await?;
        ctx.state_mut(|s| s.phase = DrillPhase::Restoring);
        let restore = match ctx
            .execute_activity(
                RestoreVerify,
                backup.clone(),
                summarized(
                    long(),
                    format!("restore {} into a scratch target and compare", backup.path),
                ),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => steward_proto::v1::RestoreVerified {
                error: failure_message(&e),
                ..Default::default()
            },
        };
        let missed = missed_targets(&restore);
        let outcome = if !restore.error.is_empty() {
            DrillOutcome::Failed
        } else if !restore.mismatches.is_empty() || restore.health.iter().any(|h| !h.ok) {
            DrillOutcome::Mismatch
        } else if !missed.is_empty() {
            DrillOutcome::TargetMissed
        } else {
            DrillOutcome::Verified
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
        ctx.state_mut(|s| s.phase = DrillPhase::Recording);
        ctx.execute_activity(
            RestoreRecord,
            result.clone(),
            summarized(short(), format!("record the {outcome} drill")),
        )
        .await?;
        if outcome != DrillOutcome::Verified {
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
            problems.extend(missed);
            NewAlert {
                id: format!("{}-restore-drill", ctx.run_id()),
                severity: Severity::Critical,
                kind: "restore.failed".into(),
                subject: backup.path.clone(),
                message: if outcome == DrillOutcome::TargetMissed {
                    format!(
                        "restore drill {outcome}: the backup {} restored as taken, but {}",
                        backup.path,
                        problems.join("; ")
                    )
                } else {
                    format!(
                        "restore drill {outcome}: the backup {} did not restore as taken: {}",
                        backup.path,
                        problems.join("; ")
                    )
                },
                at: ctx.workflow_time().unwrap_or(started),
                detail: Map::new(),
            }
            .raise(ctx)
            .await?;
        }
        ctx.state_mut(|s| s.phase = DrillPhase::Done);
        Ok(result)
    }

    /// The drill's phase.
    #[query(name = names::RESTORE_STATUS_QUERY)]
    pub fn status(&self, _ctx: &WorkflowContextView) -> String {
        self.phase.as_str().into()
    }
}

/// The RTO and RPO targets the restore missed, one line each. A restore
/// recorded before there were targets (0) misses none.
fn missed_targets(r: &steward_proto::v1::RestoreVerified) -> Vec<String> {
    let mut missed = Vec::new();
    if r.rto_target_seconds > 0.0 && r.rto_seconds > r.rto_target_seconds {
        missed.push(format!(
            "RTO {:.1}s over the target {:.1}s",
            r.rto_seconds, r.rto_target_seconds
        ));
    }
    if r.rpo_target_seconds > 0.0 && r.rpo_seconds > r.rpo_target_seconds {
        missed.push(format!(
            "RPO {:.1}s (the backup's age) over the target {:.1}s",
            r.rpo_seconds, r.rpo_target_seconds
        ));
    }
    missed
}

fn short() -> ActivityOptions {
    crate::options::quick(60, 5)
}

/// Backups and restores heartbeat; a large store may take a while.
fn long() -> ActivityOptions {
    crate::options::heartbeating(3600, 3)
}
