//! Starting a workflow and sending it an update, once for every workflow:
//! a start that explains an id already running, and an update that is
//! sent again when it meets the end of a run.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

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

/// Updates this process keeps in flight to one workflow at a time, below
/// the server's own limit (`history.maxInFlightUpdates`, 10 by default) so
/// other processes keep room: the rest wait here, first come first
/// served, instead of racing each other into the server's refusals.
const UPDATES_IN_FLIGHT: usize = 8;

/// The queue of updates to `workflow_id` in this process.
fn update_slots(workflow_id: &str) -> Arc<Semaphore> {
    static SLOTS: LazyLock<Mutex<HashMap<String, Weak<Semaphore>>>> =
        LazyLock::new(Default::default);
    let mut slots = SLOTS.lock().expect("update slots");
    slots.retain(|_, s| s.strong_count() > 0);
    if let Some(s) = slots.get(workflow_id).and_then(Weak::upgrade) {
        return s;
    }
    let s = Arc::new(Semaphore::new(UPDATES_IN_FLIGHT));
    slots.insert(workflow_id.to_string(), Arc::downgrade(&s));
    s
}

/// Sends an update to `workflow_id` with `send` until it is answered, in
/// its turn among this process's updates to that workflow: an update that
/// meets the end of a run (a rollout continues as new every
/// `batches_per_run` batches), or the server's limit of updates in flight,
/// is sent again after a wait (doubling from 100 ms to 2 s, with jitter so
/// that many senders spread out) for up to a minute from its turn. Only a
/// run that really ended, or a validator, refuses it; `context` names what
/// was sent.
pub(crate) async fn resend_until_answered<T, F, Fut>(
    workflow_id: &str,
    context: &str,
    mut send: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, WorkflowUpdateError>>,
{
    let slots = update_slots(workflow_id);
    let _turn = slots
        .acquire()
        .await
        .expect("the update queue is never closed");
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn updates_to_one_workflow_wait_their_turn_below_the_servers_limit() {
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let sends = (0..50).map(|i| {
            let (now, most) = (now.clone(), most.clone());
            // Half to one workflow, half to another: each has its own turns.
            let id = if i % 2 == 0 {
                "backfill-a"
            } else {
                "backfill-b"
            };
            async move {
                resend_until_answered(id, "test", || {
                    let (now, most) = (now.clone(), most.clone());
                    async move {
                        let in_flight = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(in_flight, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, WorkflowUpdateError>(i)
                    }
                })
                .await
            }
        });
        let answered: Vec<usize> = futures::future::join_all(sends)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            answered,
            (0..50).collect::<Vec<_>>(),
            "every update answered"
        );
        assert_eq!(
            most.load(Ordering::SeqCst),
            2 * UPDATES_IN_FLIGHT,
            "at most {UPDATES_IN_FLIGHT} in flight to each workflow"
        );
    }
}
