//! Starting a workflow and sending it an update, once for every workflow:
//! a start that explains an id already running, and an update that is
//! sent again when it meets the end of a run.

use std::future::Future;
use std::time::{Duration, Instant};

use temporalio_client::errors::WorkflowUpdateError;
use temporalio_client::{Client, WorkflowHandle};
use temporalio_common::HasWorkflowDefinition;

use super::{Error, Ops, Result};
use crate::summary::Summary;

/// A started run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Started {
    /// The workflow id.
    pub workflow_id: String,
    /// The run id.
    pub run_id: String,
}

impl Ops {
    /// Starts `workflow` with `input` as `id`, showing `shown` in the
    /// Temporal UI; `already` says what to do when a run with that id is
    /// still open.
    pub(crate) async fn start<W>(
        &self,
        workflow: W,
        input: W::Input,
        id: &str,
        shown: Summary,
        already: impl FnOnce() -> String,
    ) -> Result<(Started, WorkflowHandle<Client, W>)>
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        let options = shown.start_options(&self.loaded().config.task_queue, id);
        let handle = self
            .client()
            .await?
            .start_workflow(workflow, input, options)
            .await
            .map_err(|e| Error::start(id, already(), e))?;
        let started = Started {
            workflow_id: id.to_string(),
            run_id: handle.run_id().unwrap_or_default().to_string(),
        };
        Ok((started, handle))
    }
}

/// Sends an update with `send` until it is answered: an update that meets
/// the end of a run (a rollout continues as new every `batches_per_run`
/// batches), or the server's limit of updates in flight, is sent again
/// after a wait (doubling from 100 ms to 2 s, with jitter so that many
/// senders spread out) for up to a minute. Only a run that really ended,
/// or a validator, refuses it; `context` names what was sent.
pub(crate) async fn resend_until_answered<T, F, Fut>(context: &str, mut send: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, WorkflowUpdateError>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(100);
    loop {
        match send().await {
            Err(e) if Instant::now() < deadline && Error::update_worth_resending(&e) => {
                tracing::info!(%context, error = %e, "sending the update again");
                let jitter = uuid::Uuid::new_v4().as_u128() % (wait.as_millis() / 2 + 1);
                tokio::time::sleep(wait + Duration::from_millis(jitter as u64)).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            outcome => return outcome.map_err(|e| Error::update(context, e)),
        }
    }
}
