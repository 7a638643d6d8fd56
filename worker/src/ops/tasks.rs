//! Workplan tasks: queue a status change that the next sweep writes into
//! the file (C-15 writeback).

use steward_activities::roster::Target;
use steward_activities::workplan::checks::TASK_STATUSES;

use super::{Actor, Error, Ops, Result};

/// A queued status change, as the CLI prints it and the API answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct QueuedChange {
    /// The change's id.
    pub id: String,
    /// The task.
    pub task_id: String,
    /// The status asked for.
    pub status: String,
    /// The task's status when the change was queued.
    pub previous_status: String,
    /// Why.
    pub reason: String,
    /// Who asked.
    pub requested_by: String,
    /// `pending` until a sweep writes it.
    pub state: String,
}

impl Ops {
    /// Queues task `task_id`'s change to `status` as `actor`.
    pub async fn queue_status_change(
        &self,
        actor: &Actor,
        task_id: &str,
        status: &str,
        reason: &str,
    ) -> Result<QueuedChange> {
        if !TASK_STATUSES.contains(&status) {
            return Err(Error::BadRequest(format!(
                "status `{status}` is not one of {}",
                TASK_STATUSES.join(", ")
            )));
        }
        super::operator_text(&actor.name, reason, "reason")?;
        self.permit(actor, Target::Task, "set-status", &[])?;
        let store = self.store().await?;
        let task = store
            .task_by_task_id(task_id)
            .await
            .map_err(Error::store("reading the task"))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "unknown task `{task_id}`: no sweep has recorded it (run `steward sweep run` first)"
                ))
            })?;
        if task.archived {
            return Err(Error::NotFound(format!(
                "task `{task_id}` is archived: its file or block is gone"
            )));
        }
        let change = store
            .queue_status_change(
                task_id,
                status,
                reason,
                &actor.name,
                chrono::Utc::now().timestamp_millis(),
            )
            .await
            .map_err(Error::store("queueing the status change"))?;
        Ok(QueuedChange {
            id: change.id,
            task_id: change.task_id,
            status: change.status,
            previous_status: task.status,
            reason: change.reason,
            requested_by: change.requested_by,
            state: change.state.as_str().into(),
        })
    }
}
