//! The API's routes: the two the runbooks call (`POST
//! /consistency/sweep/remote-all`, `GET /progress/`) and `/v1/...` for the
//! rest of what the CLI does. Every route takes an operator's token; every
//! operator action is sent as that operator, signed, whatever the body
//! says.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use steward_proto::v1::{
    ApproveReply, ApproveRequest, BackfillInput, BackfillStatus, OperatorReply, OperatorRequest,
    SweepInput, SweepResult, UpgradeStatus,
};
use steward_proto::vocab::OperatorVerb;
use steward_proto::{ids, limits, names, signing};
use steward_workflows::{BackfillRollout, ConsistencySweep, WarmUpgrade};
use temporalio_client::WorkflowGetResultOptions;
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::auth::Operator;
use super::error::{ApiError, ApiResult, Body, ErrorBody, Params, Segments};
use crate::cli::findings::FindingView;
use crate::cli::inbox::Inbox;
use crate::cli::progress::EventView;
use crate::history::Entry;
use crate::ops::sign;
use crate::schedules::ScheduleRow;

/// Body of `POST /consistency/sweep/remote-all`, as the runbook sends it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// Budget in seconds (default `[sweep].max_seconds`).
    #[schema(minimum = 1, maximum = 86400)]
    pub max_seconds: Option<u32>,
    /// Source tag of the progress event (default `api`): 1 to 63
    /// lowercase letters, digits or inner `-`.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub source: Option<String>,
    /// Reassess every repo.
    pub full: Option<bool>,
    /// Wait at most this long for the result (default and ceiling
    /// `[api].sweep_wait_seconds`); past it, 202 with the workflow id.
    pub wait_seconds: Option<u64>,
}

/// A sweep still running when the wait ended.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Accepted {
    /// The sweep's workflow id: `steward history` it, or `GET /v1/history/{id}`.
    pub workflow_id: String,
    /// Its run id.
    pub run_id: String,
}

/// Query of `GET /progress/`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProgressQuery {
    /// Only events of this type, e.g. `consistency_sweep_remote_all`.
    pub event_type: Option<String>,
    /// How many, newest first (1 to 1000, default 10).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Body of an operator action on a backfill.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// Why (recorded in the history and the evidence).
    pub reason: String,
    /// `approve`: the group approved for.
    pub group: Option<String>,
    /// `set`: the new batch size.
    #[schema(minimum = 1)]
    pub batch_size: Option<u32>,
    /// `set`: the new lag limit in seconds.
    pub max_lag_seconds: Option<f64>,
}

/// Body of `POST /v1/backfills/{name}/start`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Why.
    pub reason: String,
    /// Stop after the dry run.
    pub dry_run: Option<bool>,
    /// Batch size for this rollout.
    #[schema(minimum = 1)]
    pub batch_size: Option<u32>,
    /// Freeze at this time (RFC 3339, or `now`); else wait for `freeze`.
    pub freeze_at: Option<String>,
}

/// Body of `POST /v1/upgrades/{app}/approve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The held version, exactly.
    pub version: String,
    /// Why.
    pub reason: String,
}

/// Body of a schedule's pause or resume.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why.
    pub reason: String,
}

/// A started run.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Started {
    /// The workflow id.
    pub workflow_id: String,
    /// The run id.
    pub run_id: String,
}

/// An upgrade's status and the run it was read from.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UpgradeView {
    /// The run read.
    pub workflow_id: String,
    /// Its status.
    pub status: UpgradeStatus,
}

/// A schedule's state after a pause or resume.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ScheduleChanged {
    /// The schedule.
    pub schedule_id: String,
    /// Whether it is paused now.
    pub paused: bool,
}

/// Query of `GET /v1/alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// How many, newest first (1 to 1000, default 20).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Query of `GET /v1/findings`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingsParams {
    /// Only this repo.
    pub repo: Option<String>,
    /// Only this check code, e.g. `C-02`.
    pub check: Option<String>,
    /// Also those resolved at or after this time (RFC 3339).
    pub resolved_since: Option<String>,
}

/// Query of `GET /v1/history/{workflow_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// A specific run (default: the latest).
    pub run_id: Option<String>,
}

fn reason(text: &str) -> ApiResult<()> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("a reason is required"));
    }
    if let Some(refusal) = limits::operator_text("reason", text) {
        return Err(ApiError::bad_request(refusal));
    }
    Ok(())
}

/// A workflow's refusal or absence as the API answers it.
fn refused(e: anyhow::Error) -> ApiError {
    let text = format!("{e:#}");
    let lower = text.to_lowercase();
    if lower.contains("not found") {
        ApiError::not_found(text)
    } else if lower.contains("invalid argument") {
        ApiError::bad_request(text)
    } else if lower.contains("refused") || lower.contains("already") {
        ApiError::conflict(text)
    } else {
        ApiError::upstream(text)
    }
}

/// Runs a consistency sweep and waits for its result (the runbook's call).
#[utoipa::path(
    post,
    path = "/consistency/sweep/remote-all",
    request_body = SweepRequest,
    responses(
        (status = 200, description = "The sweep's result, as `steward sweep run` prints it", body = SweepResult),
        (status = 202, description = "Still running after the API's wait", body = Accepted),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn sweep(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Body(body): Body<SweepRequest>,
) -> ApiResult<Response> {
    if body.max_seconds == Some(0) || body.max_seconds.is_some_and(|s| s > 86_400) {
        return Err(ApiError::bad_request("max_seconds must be 1 to 86400"));
    }
    let source = body.source.unwrap_or_else(|| "api".into());
    if !crate::config::valid_name(&source) {
        return Err(ApiError::bad_request(
            "source must be 1 to 63 lowercase letters, digits or inner `-` (it names the sweep's workflow id)",
        ));
    }
    let loaded = &api.loaded;
    let input = SweepInput {
        source,
        max_seconds: body.max_seconds.unwrap_or(0),
        full: body.full.unwrap_or(false),
        ..Default::default()
    };
    let (id, run_id) = crate::cli::sweep::start(&api.client, loaded, input)
        .await
        .map_err(ApiError::upstream)?;
    let handle = api
        .client
        .get_workflow_handle::<ConsistencySweep>(id.clone());
    let ceiling = loaded.config.api.sweep_wait_seconds;
    let wait = Duration::from_secs(body.wait_seconds.map_or(ceiling, |w| w.min(ceiling)));
    match tokio::time::timeout(wait, handle.get_result(WorkflowGetResultOptions::default())).await {
        Ok(Ok(result)) => Ok(Json(result).into_response()),
        Ok(Err(e)) => Err(ApiError::upstream(e)),
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            Json(Accepted {
                workflow_id: id,
                run_id,
            }),
        )
            .into_response()),
    }
}

/// The latest progress events, newest first (the runbook's call).
#[utoipa::path(
    get,
    path = "/progress/",
    params(ProgressQuery),
    responses(
        (status = 200, description = "Progress events, newest first", body = [EventView]),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn progress(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Params(q): Params<ProgressQuery>,
) -> ApiResult<Json<Vec<EventView>>> {
    let limit = q.limit.unwrap_or(10);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let events = api
        .store
        .progress(q.event_type.as_deref().filter(|t| !t.is_empty()), 0, limit)
        .await
        .map_err(ApiError::upstream)?;
    Ok(Json(crate::cli::progress::events_json(&events)))
}

/// The operator the token belongs to.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    responses((status = 200, description = "The operator the token belongs to", body = Operator), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("token" = []))
)]
pub async fn whoami(op: Operator) -> Json<Operator> {
    Json(op)
}

fn known_backfill(api: &Api, name: &str) -> ApiResult<()> {
    let loaded = &api.loaded;
    if loaded.config.backfills.iter().any(|b| b.name == name) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no backfill named `{name}` in the config"
        )))
    }
}

/// A backfill rollout's status: phase, batches, rows, rate, ETA, actions.
#[utoipa::path(
    get,
    path = "/v1/backfills/{name}",
    params(("name" = String, Path, description = "The `[[backfills]]` name")),
    responses(
        (status = 200, description = "Phase, batches, rows, rate, ETA", body = BackfillStatus),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn backfill_status(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Segments(name): Segments<String>,
) -> ApiResult<Json<BackfillStatus>> {
    known_backfill(&api, &name)?;
    api.client
        .get_workflow_handle::<BackfillRollout>(ids::backfill(&name))
        .query(BackfillRollout::status, (), Default::default())
        .await
        .map(Json)
        .map_err(|e| ApiError::not_found(format!("no rollout of backfill `{name}` found: {e}")))
}

/// Starts a backfill rollout as the token's operator.
#[utoipa::path(
    post,
    path = "/v1/backfills/{name}/start",
    params(("name" = String, Path, description = "The `[[backfills]]` name")),
    request_body = StartRequest,
    responses(
        (status = 200, description = "The rollout started, as the token's operator", body = Started),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn backfill_start(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments(name): Segments<String>,
    Body(body): Body<StartRequest>,
) -> ApiResult<Json<Started>> {
    api.start_backfill(&op, &name, body).await.map(Json)
}

/// An operator action on a running backfill rollout.
#[utoipa::path(
    post,
    path = "/v1/backfills/{name}/{action}",
    params(
        ("name" = String, Path, description = "The `[[backfills]]` name"),
        ("action" = String, Path, description = "freeze, unfreeze, approve, pause, resume, abort or set"),
    ),
    request_body = ActionRequest,
    responses(
        (status = 200, description = "Accepted by the rollout, recorded as the token's operator", body = OperatorReply),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Refused by the rollout's validator", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn backfill_action(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments((name, action)): Segments<(String, String)>,
    Body(body): Body<ActionRequest>,
) -> ApiResult<Json<OperatorReply>> {
    api.act_on_backfill(&op, &name, &action, body)
        .await
        .map(Json)
}

/// An app's running (else newest) warm upgrade.
#[utoipa::path(
    get,
    path = "/v1/upgrades/{app}",
    params(("app" = String, Path, description = "The `[[apps]]` name")),
    responses(
        (status = 200, description = "The app's running, else newest, upgrade", body = UpgradeView),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn upgrade_status(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Segments(app): Segments<String>,
) -> ApiResult<Json<UpgradeView>> {
    api.known_app(&app)?;
    let id = crate::cli::upgrade::current_upgrade(&api.client, &app)
        .await
        .map_err(ApiError::upstream)?;
    let status = api
        .client
        .get_workflow_handle::<WarmUpgrade>(id.clone())
        .query(WarmUpgrade::status, (), Default::default())
        .await
        .map_err(|e| ApiError::not_found(format!("no upgrade of `{app}` found ({id}): {e}")))?;
    Ok(Json(UpgradeView {
        workflow_id: id,
        status,
    }))
}

/// Approves an app's held upgrade, for the held version only.
#[utoipa::path(
    post,
    path = "/v1/upgrades/{app}/approve",
    params(("app" = String, Path, description = "The `[[apps]]` name")),
    request_body = ApproveBody,
    responses(
        (status = 200, description = "The held upgrade released, for that version", body = ApproveReply),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Refused by the upgrade's validator", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn upgrade_approve(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments(app): Segments<String>,
    Body(body): Body<ApproveBody>,
) -> ApiResult<Json<ApproveReply>> {
    api.approve_upgrade(&op, &app, body).await.map(Json)
}

/// steward's Temporal Schedules.
#[utoipa::path(
    get,
    path = "/v1/schedules",
    responses((status = 200, description = "steward's schedules", body = [ScheduleRow]), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("token" = []))
)]
pub async fn schedules(
    State(api): State<Arc<Api>>,
    _op: Operator,
) -> ApiResult<Json<Vec<ScheduleRow>>> {
    crate::schedules::list(&api.client)
        .await
        .map(Json)
        .map_err(ApiError::upstream)
}

/// Pauses or resumes a schedule, recording who and why.
#[utoipa::path(
    post,
    path = "/v1/schedules/{name}/{change}",
    params(
        ("name" = String, Path, description = "The schedule's name in the config"),
        ("change" = String, Path, description = "pause or resume"),
    ),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "The schedule paused or resumed", body = ScheduleChanged),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn schedule_change(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments((name, change)): Segments<(String, String)>,
    Body(body): Body<ReasonBody>,
) -> ApiResult<Json<ScheduleChanged>> {
    api.change_schedule(&op, &name, &change, body)
        .await
        .map(Json)
}

/// Alerts of every workflow, newest first.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    params(AlertsQuery),
    responses((status = 200, description = "Alerts of every workflow, newest first", body = [Object]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("token" = []))
)]
pub async fn alerts(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Params(q): Params<AlertsQuery>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let loaded = &api.loaded;
    Ok(Json(
        crate::serve::alert_sink(loaded)
            .list()
            .into_iter()
            .take(limit)
            .collect(),
    ))
}

/// The findings ledger: open findings, and resolved ones on request.
#[utoipa::path(
    get,
    path = "/v1/findings",
    params(FindingsParams),
    responses((status = 200, description = "The findings ledger, newest first", body = [FindingView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("token" = []))
)]
pub async fn findings(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Params(q): Params<FindingsParams>,
) -> ApiResult<Json<Vec<FindingView>>> {
    if let Some(check) = q.check.as_deref().filter(|c| !c.is_empty()) {
        check
            .parse::<steward_proto::vocab::CheckCode>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let since = q
        .resolved_since
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "resolved_since `{t}` is not an RFC 3339 time like 2026-12-01T00:00:00Z"
                    ))
                })
        })
        .transpose()?;
    crate::cli::findings::read(
        &api.store,
        q.repo.as_deref().unwrap_or(""),
        q.check.as_deref().unwrap_or(""),
        since,
        limits::FINDINGS_PER_SWEEP,
    )
    .await
    .map(Json)
    .map_err(ApiError::upstream)
}

/// A run's audit timeline.
#[utoipa::path(
    get,
    path = "/v1/history/{workflow_id}",
    params(("workflow_id" = String, Path, description = "The workflow id"), HistoryQuery),
    responses(
        (status = 200, description = "The run's audit timeline (from the archive once the server let it go)", body = [Entry]),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn history(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Segments(workflow_id): Segments<String>,
    Params(q): Params<HistoryQuery>,
) -> ApiResult<Json<Vec<Entry>>> {
    let run = q.run_id.as_deref().filter(|r| !r.is_empty());
    if let Some(r) = run
        && uuid::Uuid::parse_str(r).is_err()
    {
        return Err(ApiError::bad_request(format!(
            "run_id `{r}` is not a run id (a UUID, as `steward history` and the progress events show)"
        )));
    }
    let events = match crate::history::fetch_events(&api.client, &workflow_id, run).await {
        Ok(events) => events,
        Err(e) if crate::history::is_not_found(&e) => {
            let archived = api
                .store
                .archived_run(&workflow_id, run)
                .await
                .map_err(ApiError::upstream)?
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no run of `{workflow_id}` on the server or in the audit archive"
                    ))
                })?;
            crate::history::events_of(archived.history_json.as_bytes())
                .map_err(ApiError::upstream)?
        }
        Err(e) => return Err(refused(e)),
    };
    Ok(Json(crate::history::timeline(&events)))
}

/// Everything waiting for an operator.
#[utoipa::path(
    get,
    path = "/v1/inbox",
    responses((status = 200, description = "Everything waiting for an operator", body = Inbox), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("token" = []))
)]
pub async fn inbox(State(api): State<Arc<Api>>, _op: Operator) -> ApiResult<Json<Inbox>> {
    crate::cli::inbox::inbox(&api.client)
        .await
        .map(Json)
        .map_err(ApiError::upstream)
}

impl Api {
    /// Starts a rollout of backfill `name` as `op`.
    pub async fn start_backfill(
        &self,
        op: &Operator,
        name: &str,
        body: StartRequest,
    ) -> ApiResult<Started> {
        known_backfill(self, name)?;
        reason(&body.reason)?;
        if body.batch_size == Some(0) {
            return Err(ApiError::bad_request("batch_size must be at least 1"));
        }
        let freeze_at = match body.freeze_at.as_deref() {
            Some(t) => crate::cli::backfill::freeze_at(t)
                .map_err(|e| ApiError::bad_request(format!("{e:#}")))?,
            None => String::new(),
        };
        let mut input = BackfillInput {
            name: name.to_string(),
            dry_run: body.dry_run.unwrap_or(false),
            batch_size: body.batch_size.unwrap_or(0),
            freeze_at,
            operator: op.name.clone(),
            reason: body.reason,
            credential_id: op.credential_id.clone(),
            ..Default::default()
        };
        if let Some(signer) = &self.signer {
            input.signed_at = sign::now();
            input.nonce = sign::nonce().map_err(ApiError::upstream)?;
            let detail = signing::backfill_start_detail(&input);
            input.signature = signer.sign(&signing::Action::of(
                &ids::backfill(name),
                &input.nonce,
                OperatorVerb::Start.as_str(),
                &input,
                &detail,
            ));
        }
        let loaded = &self.loaded;
        let (workflow_id, run_id) = crate::cli::backfill::start(&self.client, loaded, input)
            .await
            .map_err(refused)?;
        Ok(Started {
            workflow_id,
            run_id,
        })
    }

    /// Sends operator update `action` to backfill `name`'s rollout as `op`.
    pub async fn act_on_backfill(
        &self,
        op: &Operator,
        name: &str,
        action: &str,
        body: ActionRequest,
    ) -> ApiResult<OperatorReply> {
        let verb: OperatorVerb = action
            .parse()
            .ok()
            .filter(|v: &OperatorVerb| v.is_update())
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "`{action}` is not a backfill action (freeze, unfreeze, approve, pause, resume, abort, set)"
                ))
            })?;
        known_backfill(self, name)?;
        reason(&body.reason)?;
        let req = self
            .signed_request::<BackfillRollout>(op, &ids::backfill(name), verb, body)
            .await?;
        crate::cli::backfill::update(&self.client, name, verb, req)
            .await
            .map_err(refused)
    }

    /// Approves the held upgrade of `app` as `op`.
    pub async fn approve_upgrade(
        &self,
        op: &Operator,
        app: &str,
        body: ApproveBody,
    ) -> ApiResult<ApproveReply> {
        self.known_app(app)?;
        reason(&body.reason)?;
        let id = crate::cli::upgrade::current_upgrade(&self.client, app)
            .await
            .map_err(ApiError::upstream)?;
        let req = self.signed_approval(op, &id, body).await?;
        self.client
            .get_workflow_handle::<WarmUpgrade>(id)
            .execute_update(WarmUpgrade::approve, req, Default::default())
            .await
            .map_err(|e| {
                ApiError::conflict(format!(
                    "approve refused for `{app}`: {}",
                    crate::cli::rejection(&e)
                ))
            })
    }

    /// Pauses (`change` = `pause`) or resumes schedule `name` as `op`.
    pub async fn change_schedule(
        &self,
        op: &Operator,
        name: &str,
        change: &str,
        body: ReasonBody,
    ) -> ApiResult<ScheduleChanged> {
        let pause = match change {
            "pause" => true,
            "resume" => false,
            other => {
                return Err(ApiError::not_found(format!(
                    "`{other}` is not a schedule change (pause, resume)"
                )));
            }
        };
        reason(&body.reason)?;
        let loaded = &self.loaded;
        let wanted = loaded.schedules();
        let s = wanted
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ApiError::not_found(format!("no schedule `{name}` in the config")))?;
        if pause {
            crate::schedules::pause(&self.client, s, &op.name, &body.reason).await
        } else {
            crate::schedules::resume(&self.client, s, &format!("{}: {}", op.name, body.reason))
                .await
        }
        .map_err(refused)?;
        Ok(ScheduleChanged {
            schedule_id: crate::schedules::schedule_id(s),
            paused: pause,
        })
    }

    fn known_app(&self, app: &str) -> ApiResult<()> {
        if self.loaded.config.apps.iter().any(|a| a.name == app) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "no app named `{app}` in the config"
            )))
        }
    }

    /// The operator update `verb` from `body`, as `op`, signed for run
    /// `workflow_id` when the API has its key.
    async fn signed_request<W: temporalio_common::HasWorkflowDefinition>(
        &self,
        op: &Operator,
        workflow_id: &str,
        verb: OperatorVerb,
        body: ActionRequest,
    ) -> ApiResult<OperatorRequest> {
        if verb == OperatorVerb::Approve && body.group.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "approve needs the group approved for",
            ));
        }
        if verb == OperatorVerb::Set {
            let max_lag = body.max_lag_seconds.unwrap_or(0.0);
            if body.batch_size.unwrap_or(0) == 0 && max_lag <= 0.0 {
                return Err(ApiError::bad_request(
                    "set needs batch_size (at least 1) or max_lag_seconds (positive)",
                ));
            }
            if !max_lag.is_finite() || max_lag < 0.0 {
                return Err(ApiError::bad_request(
                    "max_lag_seconds must be a positive number",
                ));
            }
        }
        let mut req = OperatorRequest {
            operator: op.name.clone(),
            reason: body.reason,
            group: body.group.unwrap_or_default(),
            batch_size: body.batch_size.unwrap_or(0),
            max_lag_seconds: body.max_lag_seconds.unwrap_or(0.0),
            credential_id: op.credential_id.clone(),
            ..Default::default()
        };
        if let Some(signer) = &self.signer {
            let chain = sign::chain::<W>(&self.client, workflow_id)
                .await
                .map_err(|e| ApiError::not_found(format!("no run of {workflow_id}: {e}")))?;
            req.signed_at = sign::now();
            let detail = signing::request_detail(verb.as_str(), &req);
            req.signature = signer.sign(&signing::Action::of(
                workflow_id,
                &chain,
                verb.as_str(),
                &req,
                &detail,
            ));
        }
        Ok(req)
    }

    /// An upgrade's approval from `body`, as `op`, signed for `workflow_id`.
    async fn signed_approval(
        &self,
        op: &Operator,
        workflow_id: &str,
        body: ApproveBody,
    ) -> ApiResult<ApproveRequest> {
        let mut req = ApproveRequest {
            version: body.version,
            operator: op.name.clone(),
            reason: body.reason,
            credential_id: op.credential_id.clone(),
            ..Default::default()
        };
        if let Some(signer) = &self.signer {
            let chain = sign::chain::<WarmUpgrade>(&self.client, workflow_id)
                .await
                .map_err(|e| ApiError::not_found(format!("no run of {workflow_id}: {e}")))?;
            req.signed_at = sign::now();
            let detail = signing::approve_detail(&req);
            req.signature = signer.sign(&signing::Action::of(
                workflow_id,
                &chain,
                OperatorVerb::Approve.as_str(),
                &req,
                &detail,
            ));
        }
        Ok(req)
    }
}

/// The event type the runbook's progress calls ask for.
pub const SWEEP_EVENT_TYPE: &str = names::SWEEP_EVENT_TYPE;
