//! A run's history: from the server while it has the run, from the audit
//! archive after (retention, deletion).

use temporalio_client::WorkflowHistoryError;

use super::{Error, Ops, Result};
use crate::history::{self, Entry};

/// A run's exported history and where it came from.
#[derive(Debug)]
pub struct Exported {
    /// The history as the replayer's JSON.
    pub json: Vec<u8>,
    /// The archive entry it came from, when the server no longer had it.
    pub archived: Option<i64>,
}

impl Ops {
    /// The history of `run_id` of `workflow_id` (default its latest run).
    pub async fn exported_history(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<Exported> {
        if let Some(r) = run_id
            && (r.len() != 36 || uuid::Uuid::parse_str(r).is_err())
        {
            return Err(Error::BadRequest(format!(
                "run_id `{r}` is not a run id (a UUID, as `steward history` and the progress events show)"
            )));
        }
        if workflow_id.is_empty() || workflow_id.len() > 1000 {
            return Err(Error::BadRequest(
                "a workflow id is 1 to 1000 characters".into(),
            ));
        }
        let client = self.client().await?;
        let gone = match history::history(client, workflow_id, run_id)
            .to_json()
            .await
        {
            Ok(json) => {
                return Ok(Exported {
                    json,
                    archived: None,
                });
            }
            Err(WorkflowHistoryError::Fetch(e)) => {
                match Error::interaction(format!("the history of {workflow_id}"), e) {
                    Error::NotFound(why) => why,
                    other => return Err(other),
                }
            }
            Err(e) => return Err(Error::upstream(format!("the history of {workflow_id}"), e)),
        };
        match self
            .store()
            .await?
            .archived_run(workflow_id, run_id)
            .await
            .map_err(Error::store("reading the audit archive"))?
        {
            Some(entry) => Ok(Exported {
                json: entry.history_json.into_bytes(),
                archived: Some(entry.seq),
            }),
            None => Err(Error::NotFound(format!(
                "no run of `{workflow_id}` on the server ({gone}), and the audit archive does not have it either"
            ))),
        }
    }

    /// The audit timeline of `run_id` of `workflow_id`.
    pub async fn timeline(&self, workflow_id: &str, run_id: Option<&str>) -> Result<Vec<Entry>> {
        let exported = self.exported_history(workflow_id, run_id).await?;
        let events = history::events_of(&exported.json)
            .map_err(|e| Error::upstream("reading the exported history", e))?;
        Ok(history::timeline(&events))
    }
}
