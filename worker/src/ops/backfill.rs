//! Backfill rollouts: start one, send it an operator action, read its
//! status.

use futures::StreamExt as _;
use steward_activities::roster::Target;
use steward_activities::time as clock;
use steward_proto::v1::{BackfillInput, BackfillStatus, OperatorReply, OperatorRequest};
use steward_proto::vocab::OperatorVerb;
use steward_proto::{ids, limits, signing};
use steward_workflows::{BackfillRollout, attributes};
use temporalio_client::{WorkflowExecutionStatus, WorkflowListOptions};

use super::{Actor, Error, Ops, Result, Started, sign, time};

/// What a start asks for.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// Stop after the dry run.
    pub dry_run: bool,
    /// The batch size for this rollout (None: the spec's).
    pub batch_size: Option<u32>,
    /// Freeze at this time (RFC 3339, or `now`); None waits for `freeze`.
    pub freeze_at: Option<String>,
    /// Why.
    pub reason: String,
}

/// What an operator action carries.
#[derive(Debug, Clone, Default)]
pub struct Action {
    /// Why.
    pub reason: String,
    /// `approve`: the group approved for.
    pub group: Option<String>,
    /// `set`: the new batch size.
    pub batch_size: Option<u32>,
    /// `set`: the new lag limit in seconds.
    pub max_lag_seconds: Option<f64>,
    /// `set`: new maxima of named throttles, by name.
    pub throttle_max: std::collections::HashMap<String, f64>,
}

impl Ops {
    /// Starts a rollout of backfill `name` as `actor`.
    pub async fn start_backfill(&self, actor: &Actor, name: &str, start: Start) -> Result<Started> {
        let spec = self.backfill_spec(name)?;
        super::operator_text(&actor.name, &start.reason, "reason")?;
        if let Some(size) = start.batch_size
            && !(1..=limits::BATCH_SIZE_MAX).contains(&size)
        {
            return Err(Error::BadRequest(format!(
                "batch_size must be 1 to {}",
                limits::BATCH_SIZE_MAX
            )));
        }
        let freeze_at = start
            .freeze_at
            .as_deref()
            .map(|t| time::normalized(t, "freeze_at"))
            .transpose()?
            .unwrap_or_default();
        self.permit(
            actor,
            Target::Backfill(name),
            OperatorVerb::Start.as_str(),
            &spec.approvals,
        )?;
        let mut input = BackfillInput {
            name: name.to_string(),
            dry_run: start.dry_run,
            batch_size: start.batch_size.unwrap_or(0),
            freeze_at,
            operator: actor.name.clone(),
            reason: start.reason,
            credential_id: actor.credential_id.clone(),
            ..Default::default()
        };
        let id = ids::backfill(name);
        match self.signer_for(actor) {
            Some(signer) => {
                input.signed_at = sign::now();
                input.nonce = sign::nonce().map_err(|e| Error::upstream("signing the start", e))?;
                let detail = signing::backfill_start_detail(&input);
                input.signature = signer.sign(&signing::Action::of(
                    &id,
                    &input.nonce,
                    OperatorVerb::Start.as_str(),
                    &input,
                    &detail,
                ));
            }
            None if spec.require_verified => {
                return Err(Error::Forbidden(format!(
                    "backfill `{name}` takes verified operator actions only (require_verified): \
                     start it through steward's API with your operator token \
                     (POST /v1/backfills/{name}/start)"
                )));
            }
            None => {}
        }
        let shown = crate::summary::backfill(self.loaded(), &input);
        let (started, _) = self
            .start(BackfillRollout::run, input, &id, shown, || {
                format!(
                    "backfill `{name}` is already running as workflow {id}; see `steward backfill status {name}`"
                )
            })
            .await?;
        Ok(started)
    }

    /// Sends operator action `verb` to backfill `name`'s rollout as
    /// `actor`, signed when the API verified them.
    pub async fn act_on_backfill(
        &self,
        actor: &Actor,
        name: &str,
        verb: OperatorVerb,
        action: Action,
    ) -> Result<OperatorReply> {
        if !verb.is_update() {
            return Err(Error::BadRequest(format!(
                "`{verb}` is not an operator action on a running rollout: start one with \
                 `steward backfill start {name}`"
            )));
        }
        let spec = self.backfill_spec(name)?;
        super::operator_text(&actor.name, &action.reason, "reason")?;
        let group = action.group.unwrap_or_default();
        if verb == OperatorVerb::Approve && group.trim().is_empty() {
            return Err(Error::BadRequest(
                "approve needs the group approved for".into(),
            ));
        }
        let batch_size = action.batch_size.unwrap_or(0);
        let max_lag_seconds = action.max_lag_seconds.unwrap_or(0.0);
        if verb == OperatorVerb::Set
            && let Some(refusal) =
                limits::live_settings(batch_size, max_lag_seconds, &action.throttle_max)
        {
            return Err(Error::BadRequest(refusal));
        }
        if verb != OperatorVerb::Approve {
            self.permit(
                actor,
                Target::Backfill(name),
                verb.as_str(),
                &spec.approvals,
            )?;
        }
        let id = ids::backfill(name);
        let mut req = OperatorRequest {
            operator: actor.name.clone(),
            reason: action.reason,
            group,
            batch_size,
            max_lag_seconds,
            throttle_max: action.throttle_max,
            credential_id: actor.credential_id.clone(),
            ..Default::default()
        };
        match self.signer_for(actor) {
            Some(signer) => {
                let chain = self.chain::<BackfillRollout>(&id, name).await?;
                req.signed_at = sign::now();
                let detail = signing::request_detail(verb.as_str(), &req);
                req.signature = signer.sign(&signing::Action::of(
                    &id,
                    &chain,
                    verb.as_str(),
                    &req,
                    &detail,
                ));
            }
            None if spec.require_verified => {
                return Err(Error::Forbidden(format!(
                    "backfill `{name}` takes verified operator actions only (require_verified): \
                     send `{verb}` through steward's API with your operator token"
                )));
            }
            None => {}
        }
        let handle = self
            .client()
            .await?
            .get_workflow_handle::<BackfillRollout>(id.clone());
        let context = format!("{verb} refused for backfill `{name}`");
        let answered = super::workflow::resend_until_answered(&id, &context, || {
            let (handle, req) = (&handle, req.clone());
            async move {
                let opts = Default::default();
                match verb {
                    OperatorVerb::Freeze => {
                        handle
                            .execute_update(BackfillRollout::freeze, req, opts)
                            .await
                    }
                    OperatorVerb::Unfreeze => {
                        handle
                            .execute_update(BackfillRollout::unfreeze, req, opts)
                            .await
                    }
                    OperatorVerb::Approve => {
                        handle
                            .execute_update(BackfillRollout::approve, req, opts)
                            .await
                    }
                    OperatorVerb::Pause => {
                        handle
                            .execute_update(BackfillRollout::pause, req, opts)
                            .await
                    }
                    OperatorVerb::Resume => {
                        handle
                            .execute_update(BackfillRollout::resume, req, opts)
                            .await
                    }
                    OperatorVerb::Abort => {
                        handle
                            .execute_update(BackfillRollout::abort, req, opts)
                            .await
                    }
                    OperatorVerb::Set => {
                        handle.execute_update(BackfillRollout::set, req, opts).await
                    }
                    OperatorVerb::Start => unreachable!("refused above: not an update"),
                }
            }
        })
        .await;
        // A refused approval is told to those waiting on it.
        if verb == OperatorVerb::Approve
            && let Err(Error::Refused(why)) = &answered
        {
            self.notice(
                "backfill.approval-refused",
                name,
                format!(
                    "backfill `{name}`: the approval by {} was refused: {why}",
                    actor.name
                ),
            )
            .await;
        }
        answered
    }

    /// Backfill `name`'s rollout: phase, batches, rows, rate, ETA, actions.
    pub async fn backfill_status(&self, name: &str) -> Result<BackfillStatus> {
        self.backfill_spec(name)?;
        let id = ids::backfill(name);
        self.client()
            .await?
            .get_workflow_handle::<BackfillRollout>(id.clone())
            .query(BackfillRollout::status, (), Default::default())
            .await
            .map_err(|e| match Error::query(format!("querying {id}"), e) {
                Error::NotFound(_) => Error::NotFound(format!(
                    "no rollout of backfill `{name}` found (start it with `steward backfill start {name}`)"
                )),
                other => other,
            })
    }

    /// The first run id of the chain `id` runs now, for a signature.
    pub(crate) async fn chain<W: temporalio_common::HasWorkflowDefinition>(
        &self,
        id: &str,
        what: &str,
    ) -> Result<String> {
        sign::chain::<W>(self.client().await?, id)
            .await
            .map_err(|e| match Error::interaction(format!("reading {id}"), e) {
                Error::NotFound(_) => Error::NotFound(format!("no run of `{what}` found ({id})")),
                other => other,
            })
    }
}

/// A backfill's newest rollout as visibility shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Rollout {
    /// The `[[backfills]]` name.
    pub name: String,
    /// The rollout's workflow id.
    pub workflow_id: String,
    /// Whether it is still running.
    pub running: bool,
    /// Its phase (or, closed, its outcome) as it last said; empty when it
    /// has not said yet.
    pub phase: String,
    /// Whether it waits for an operator.
    pub waiting: bool,
    /// When it closed (RFC 3339), when it has.
    pub closed: Option<String>,
}

impl Ops {
    /// The newest rollout of every configured backfill that has one, from
    /// one visibility query (the runs it continued as are left out).
    pub async fn rollouts(&self) -> Result<Vec<Rollout>> {
        let names: Vec<&str> = self
            .loaded
            .config
            .backfills
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // Names are [a-z0-9-] (config validation), so they need no quoting.
        let query = format!(
            "WorkflowId IN ({}) AND ExecutionStatus != 'ContinuedAsNew'",
            names
                .iter()
                .map(|n| format!("'{}'", ids::backfill(n)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let client = self.client().await?;
        let mut newest: Vec<(Rollout, i64)> = Vec::new();
        let mut stream = client.list_workflows(
            query.clone(),
            WorkflowListOptions::builder().limit(1000).build(),
        );
        while let Some(run) = stream.next().await {
            let run = run.map_err(|e| Error::upstream(format!("listing `{query}`"), e))?;
            let Some(name) = names.iter().find(|n| ids::backfill(n) == run.id()) else {
                continue;
            };
            let running = run.status() == WorkflowExecutionStatus::Running;
            let closed_ms = run.close_time().map(clock::ms);
            // A running rollout first, else the one closed last.
            let rank = if running {
                i64::MAX
            } else {
                closed_ms.unwrap_or(0)
            };
            let attrs = run.search_attributes();
            let rollout = Rollout {
                name: name.to_string(),
                workflow_id: run.id().into(),
                running,
                phase: attrs.get(&attributes::PHASE).unwrap_or_default(),
                waiting: running && attrs.get(&attributes::WAITING).unwrap_or(false),
                closed: closed_ms.map(clock::secs_text),
            };
            match newest.iter_mut().find(|(r, _)| r.name == rollout.name) {
                Some(kept) if kept.1 >= rank => {}
                Some(kept) => *kept = (rollout, rank),
                None => newest.push((rollout, rank)),
            }
        }
        Ok(newest.into_iter().map(|(r, _)| r).collect())
    }
}
