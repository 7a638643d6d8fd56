//! The API's routes: the two the runbooks call (`POST
//! /consistency/sweep/remote-all`, `GET /progress/`) and `/v1/...` for
//! everything else an operator does. Each handler parses its input, calls
//! the operations layer as the token's operator, and answers; who acts
//! comes only from the token, never from the body.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use steward_activities::store::archive::Entry as ArchiveEntry;
use steward_proto::names;
use steward_proto::v1::{
    ApproveReply, BackfillStatus, ColdSweepResult, FailoverDrillResult, OperatorReply,
    RestoreDrillResult, SweepResult, UpgradeResult,
};
use steward_proto::vocab::{OperatorVerb, UpgradeMode};
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::auth::Operator;
use super::error::{ApiError, ApiResult, Body, ErrorBody, Params, Segments, whole};
use crate::history::Entry;
use crate::ops::audit::Verdict;
use crate::ops::drills::{LastFailover, LastRestore};
use crate::ops::findings::{Filter, FindingView};
use crate::ops::health::{Check, Readiness};
use crate::ops::inbox::Inbox;
use crate::ops::overview::Overview;
use crate::ops::progress::EventView;
use crate::ops::schedules::ScheduleChanged;
use crate::ops::tasks::QueuedChange;
use crate::ops::upgrade::{ColdSweepStart, UpgradeView};
use crate::ops::workers::Workers;
use crate::ops::{Started, backfill, sweep, upgrade};
use crate::schedules::ScheduleRow;

/// The longest a route waits for a run's result before it answers 202.
pub const MAX_WAIT_SECONDS: u64 = 3600;

/// The longest name, filter or tag a query or body may carry.
pub const MAX_NAME: usize = 200;

/// A string schema with exactly these values.
fn one_of(words: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(words.iter().copied()))
        .build()
}

/// The check codes, as the ledger names them.
fn check_codes() -> utoipa::openapi::Object {
    one_of(steward_proto::vocab::CheckCode::WORDS)
}

/// A workplan task's statuses.
fn task_statuses() -> utoipa::openapi::Object {
    one_of(steward_activities::workplan::checks::TASK_STATUSES)
}

/// Refuses `text` when it is longer than `max` characters; `what` names it.
fn at_most(text: Option<&str>, max: usize, what: &str) -> ApiResult<()> {
    match text {
        Some(t) if t.chars().count() > max => Err(ApiError::bad_request(format!(
            "{what} is longer than {max} characters"
        ))),
        _ => Ok(()),
    }
}

/// Refuses 0 for a number whose schema starts at 1.
fn positive(n: Option<u32>, max: u32, what: &str) -> ApiResult<u32> {
    match n {
        None => Ok(0),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(_) => Err(ApiError::bad_request(format!("{what} must be 1 to {max}"))),
    }
}

/// Body of `POST /consistency/sweep/remote-all`, as the runbook sends it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// Budget in seconds (default `[sweep].max_seconds`).
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "whole::option")]
    pub max_seconds: Option<u32>,
    /// Source tag of the progress event (default `api`): 1 to 63
    /// lowercase letters, digits or inner `-`.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub source: Option<String>,
    /// Reassess every repo.
    pub full: Option<bool>,
    /// Wait at most this long for the result (default
    /// `[api].sweep_wait_seconds`, which is also its ceiling); past it, 202
    /// with the workflow id.
    #[schema(minimum = 0, maximum = 3600)]
    #[serde(default, deserialize_with = "whole::option")]
    pub wait_seconds: Option<u64>,
}

/// A run still running when the wait ended.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Accepted {
    /// The run's workflow id: `steward history` it, or `GET /v1/history/{id}`.
    pub workflow_id: String,
    /// Its run id.
    pub run_id: String,
}

impl From<Started> for Accepted {
    fn from(s: Started) -> Self {
        Self {
            workflow_id: s.workflow_id,
            run_id: s.run_id,
        }
    }
}

/// Query of `GET /progress/`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProgressQuery {
    /// Only events of this type, e.g. `consistency_sweep_remote_all`.
    #[param(max_length = 200)]
    pub event_type: Option<String>,
    /// How many, newest first (1 to 1000, default 10).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole::option")]
    pub limit: Option<i64>,
}

/// Body of an operator action on a backfill.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// Why (recorded in the history and the evidence).
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub reason: String,
    /// `approve`: the group approved for.
    #[schema(max_length = 200)]
    pub group: Option<String>,
    /// `set`: the new batch size.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default, deserialize_with = "whole::option")]
    pub batch_size: Option<u32>,
    /// `set`: the new lag limit in seconds.
    #[schema(exclusive_minimum = 0, maximum = 86400)]
    pub max_lag_seconds: Option<f64>,
    /// `set`: new maxima of named throttles, by name (0 or more).
    #[serde(default)]
    pub throttles: std::collections::HashMap<String, f64>,
}

/// Body of `POST /v1/backfills/{name}/start`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub reason: String,
    /// Stop after the dry run.
    pub dry_run: Option<bool>,
    /// Batch size for this rollout.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(default, deserialize_with = "whole::option")]
    pub batch_size: Option<u32>,
    /// Freeze at this time (RFC 3339, or `now`); else wait for `freeze`.
    pub freeze_at: Option<String>,
}

/// Which run of an app.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Upgrade the canonical deployment.
    #[default]
    Warm,
    /// Try a release or git revision on the canonical data; always restore.
    Trial,
    /// On fresh data in a scratch folder.
    Cold,
}

/// Body of `POST /v1/upgrades/{app}/start`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeStartRequest {
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub reason: String,
    /// `warm` (default), `trial` or `cold`.
    pub mode: Option<RunMode>,
    /// The version, release tag or (trial) git revision; default the
    /// latest release. A trial needs it.
    #[schema(max_length = 255)]
    pub version: Option<String>,
    /// Wait at most this long for the outcome (default 0: answer at once
    /// with 202).
    #[schema(minimum = 0, maximum = 3600)]
    #[serde(default, deserialize_with = "whole::option")]
    pub wait_seconds: Option<u64>,
}

/// Body of `POST /v1/upgrades/{app}/approve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The held version, exactly.
    #[schema(min_length = 1, max_length = 255)]
    pub version: String,
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub reason: String,
}

/// Body of `POST /v1/cold-sweeps`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColdSweepRequest {
    /// Only apps whose name contains this.
    #[schema(max_length = 255)]
    pub filter: Option<String>,
    /// At most this many at a time (default `[cold_sweep] max_parallel`).
    #[schema(minimum = 1, maximum = 64)]
    #[serde(default, deserialize_with = "whole::option")]
    pub max_parallel: Option<u32>,
    /// At most this many in all (default `[cold_sweep] max_total`).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "whole::option")]
    pub max_total: Option<u32>,
    /// Wait at most this long for the summary (default 0: 202 at once).
    #[schema(minimum = 0, maximum = 3600)]
    #[serde(default, deserialize_with = "whole::option")]
    pub wait_seconds: Option<u64>,
}

/// Body of a drill's start.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub reason: Option<String>,
    /// Wait at most this long for the outcome (default 0: 202 at once).
    #[schema(minimum = 0, maximum = 3600)]
    #[serde(default, deserialize_with = "whole::option")]
    pub wait_seconds: Option<u64>,
}

/// Body of `POST /v1/alerts/{id}/ack`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Why the alert needs nothing more (recorded with it).
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub reason: String,
}

/// Body of `POST /v1/tasks/{task_id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStatusRequest {
    /// The new status.
    #[schema(schema_with = task_statuses)]
    pub status: String,
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub reason: String,
}

/// Body of a schedule's pause or resume.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub reason: String,
}

/// Query of `GET /v1/alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// How many, newest first (1 to 1000, default 20).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole::option")]
    pub limit: Option<usize>,
}

/// Query of `GET /v1/findings`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingsParams {
    /// Only this repo.
    #[param(max_length = 200)]
    pub repo: Option<String>,
    /// Only this check code, e.g. `C-02`.
    #[param(schema_with = check_codes)]
    pub check: Option<String>,
    /// Also those resolved at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub resolved_since: Option<String>,
}

/// Query of `GET /v1/history/{workflow_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// A specific run (default: the latest), as a hyphenated UUID.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub run_id: Option<String>,
}

/// Query of `GET /v1/audit/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only the runs that closed at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
}

/// Waits up to `wait` for `result`: its value (200), else 202 with the run.
async fn within<T: serde::Serialize, F>(
    wait: Duration,
    started: Started,
    result: F,
) -> ApiResult<Response>
where
    F: std::future::Future<Output = crate::ops::Result<T>>,
{
    if wait.is_zero() {
        return Ok((StatusCode::ACCEPTED, Json(Accepted::from(started))).into_response());
    }
    match tokio::time::timeout(wait, result).await {
        Ok(Ok(value)) => Ok(Json(value).into_response()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Ok((StatusCode::ACCEPTED, Json(Accepted::from(started))).into_response()),
    }
}

/// A wait as asked, within [`MAX_WAIT_SECONDS`].
fn wait_of(asked: Option<u64>, default: u64) -> ApiResult<Duration> {
    match asked {
        Some(w) if w > MAX_WAIT_SECONDS => Err(ApiError::bad_request(format!(
            "wait_seconds must be 0 to {MAX_WAIT_SECONDS}"
        ))),
        Some(w) => Ok(Duration::from_secs(w)),
        None => Ok(Duration::from_secs(default)),
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
        (status = 403, body = ErrorBody),
        (status = 409, description = "The run ended without a result (it failed, was cancelled, terminated or timed out)", body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn sweep(
    State(api): State<Arc<Api>>,
    op: Operator,
    Body(body): Body<SweepRequest>,
) -> ApiResult<Response> {
    let ops = api.ops();
    let ceiling = ops.loaded().config.api.sweep_wait_seconds;
    let wait = wait_of(body.wait_seconds, ceiling)?.min(Duration::from_secs(ceiling));
    let started = ops
        .start_sweep(
            &op,
            sweep::Start {
                source: body.source.unwrap_or_else(|| "api".into()),
                max_seconds: body.max_seconds,
                full: body.full.unwrap_or(false),
                concurrency: None,
            },
        )
        .await?;
    let result = ops.sweep_result(&started);
    within(wait.max(Duration::from_millis(1)), started.clone(), result).await
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
    at_most(q.event_type.as_deref(), MAX_NAME, "event_type")?;
    Ok(Json(
        api.ops()
            .progress(q.event_type.as_deref(), q.limit.unwrap_or(10))
            .await?,
    ))
}

/// The operator the token belongs to.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    responses((status = 200, description = "The operator the token belongs to", body = Operator), (status = 401, body = ErrorBody)),
    security(("token" = []))
)]
pub async fn whoami(op: Operator) -> Json<Operator> {
    Json(op)
}

/// A backfill rollout's status: phase, batches, rows, rate, ETA, actions.
#[utoipa::path(
    get,
    path = "/v1/backfills/{name}",
    params(("name" = String, Path, description = "The `[[backfills]]` name")),
    responses(
        (status = 200, description = "Phase, batches, rows, rate, ETA", body = BackfillStatus),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn backfill_status(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Segments(name): Segments<String>,
) -> ApiResult<Json<BackfillStatus>> {
    Ok(Json(api.backfill_status(&name).await?))
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
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn backfill_start(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments(name): Segments<String>,
    Body(body): Body<StartRequest>,
) -> ApiResult<Json<Started>> {
    let start = backfill::Start {
        dry_run: body.dry_run.unwrap_or(false),
        batch_size: body.batch_size,
        freeze_at: body.freeze_at,
        reason: body.reason,
    };
    Ok(Json(api.ops().start_backfill(&op, &name, start).await?))
}

/// The operator action `action` as a backfill verb.
pub fn backfill_verb(action: &str) -> ApiResult<OperatorVerb> {
    action
        .parse()
        .ok()
        .filter(|v: &OperatorVerb| v.is_update())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "`{action}` is not a backfill action (freeze, unfreeze, approve, pause, resume, abort, set)"
            ))
        })
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
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Refused by the rollout's validator", body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn backfill_action(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments((name, action)): Segments<(String, String)>,
    Body(body): Body<ActionRequest>,
) -> ApiResult<Json<OperatorReply>> {
    let verb = backfill_verb(&action)?;
    let action = backfill::Action {
        reason: body.reason,
        group: body.group,
        batch_size: body.batch_size,
        max_lag_seconds: body.max_lag_seconds,
        throttle_max: body.throttles,
    };
    Ok(Json(
        api.ops().act_on_backfill(&op, &name, verb, action).await?,
    ))
}

/// An app's running (else newest) warm upgrade.
#[utoipa::path(
    get,
    path = "/v1/upgrades/{app}",
    params(("app" = String, Path, description = "The `[[apps]]` name")),
    responses(
        (status = 200, description = "The app's running, else newest, upgrade", body = UpgradeView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn upgrade_status(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Segments(app): Segments<String>,
) -> ApiResult<Json<UpgradeView>> {
    Ok(Json(api.ops().upgrade_status(&app).await?))
}

/// Starts an upgrade, a trial or a cold run of an app as the token's
/// operator.
#[utoipa::path(
    post,
    path = "/v1/upgrades/{app}/start",
    params(("app" = String, Path, description = "The `[[apps]]` name")),
    request_body = UpgradeStartRequest,
    responses(
        (status = 200, description = "The run's outcome, within the wait", body = UpgradeResult),
        (status = 202, description = "Started; still running after the wait", body = Accepted),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "An upgrade of the app is running", body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn upgrade_start(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments(app): Segments<String>,
    Body(body): Body<UpgradeStartRequest>,
) -> ApiResult<Response> {
    let wait = wait_of(body.wait_seconds, 0)?;
    let mode = match body.mode.unwrap_or_default() {
        RunMode::Warm => UpgradeMode::Warm,
        RunMode::Trial => UpgradeMode::Trial,
        RunMode::Cold => UpgradeMode::Cold,
    };
    let ops = api.ops();
    let started = ops
        .start_upgrade(
            &op,
            &app,
            upgrade::Start {
                mode,
                version: body.version.unwrap_or_default(),
                reason: body.reason,
                forge: None,
            },
        )
        .await?;
    let result = ops.upgrade_result(&started);
    within(wait, started.clone(), result).await
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
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Refused by the upgrade's validator", body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn upgrade_approve(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments(app): Segments<String>,
    Body(body): Body<ApproveBody>,
) -> ApiResult<Json<ApproveReply>> {
    Ok(Json(
        api.ops()
            .approve_upgrade(&op, &app, &body.version, &body.reason)
            .await?,
    ))
}

/// Starts the cold run of every app with a cold setup, a few at a time.
#[utoipa::path(
    post,
    path = "/v1/cold-sweeps",
    request_body = ColdSweepRequest,
    responses(
        (status = 200, description = "The cold sweep's summary, within the wait", body = ColdSweepResult),
        (status = 202, description = "Started; still running after the wait", body = Accepted),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The run ended without a result (it failed, was cancelled, terminated or timed out)", body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn cold_sweep_start(
    State(api): State<Arc<Api>>,
    op: Operator,
    Body(body): Body<ColdSweepRequest>,
) -> ApiResult<Response> {
    let wait = wait_of(body.wait_seconds, 0)?;
    let max_parallel = positive(body.max_parallel, 64, "max_parallel")?;
    let max_total = positive(body.max_total, 10_000, "max_total")?;
    let ops = api.ops();
    let started = ops
        .start_cold_sweep(
            &op,
            ColdSweepStart {
                filter: body.filter.unwrap_or_default(),
                max_parallel,
                max_total,
                source: "api".into(),
            },
        )
        .await?;
    let result = ops.cold_sweep_result(&started);
    within(wait, started.clone(), result).await
}

/// Starts a failover drill of a `[[drills]]` service.
#[utoipa::path(
    post,
    path = "/v1/drills/{drill}/run",
    params(("drill" = String, Path, description = "The `[[drills]]` name")),
    request_body = DrillRequest,
    responses(
        (status = 200, description = "The drill's outcome, within the wait", body = FailoverDrillResult),
        (status = 202, description = "Started; still running after the wait", body = Accepted),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The run ended without a result (it failed, was cancelled, terminated or timed out)", body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn failover_drill_start(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments(drill): Segments<String>,
    Body(body): Body<DrillRequest>,
) -> ApiResult<Response> {
    let wait = wait_of(body.wait_seconds, 0)?;
    let ops = api.ops();
    let reason = body.reason.unwrap_or_else(|| "failover drill".into());
    let started = ops
        .start_failover_drill(&op, &drill, &reason, "api")
        .await?;
    let result = ops.failover_result(&started);
    within(wait, started.clone(), result).await
}

/// A service's last failover drill and its last that passed.
#[utoipa::path(
    get,
    path = "/v1/drills/{drill}/last",
    params(("drill" = String, Path, description = "The `[[drills]]` name")),
    responses(
        (status = 200, description = "The last drill and the last that passed", body = LastFailover),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn failover_drill_last(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Segments(drill): Segments<String>,
) -> ApiResult<Json<LastFailover>> {
    Ok(Json(api.ops().last_failover(&drill).await?))
}

/// Starts a restore drill of the state store's backups.
#[utoipa::path(
    post,
    path = "/v1/restore-drill/run",
    request_body = DrillRequest,
    responses(
        (status = 200, description = "The drill's outcome, within the wait", body = RestoreDrillResult),
        (status = 202, description = "Started; still running after the wait", body = Accepted),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No restore drill is configured", body = ErrorBody),
        (status = 409, description = "The run ended without a result (it failed, was cancelled, terminated or timed out)", body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn restore_drill_start(
    State(api): State<Arc<Api>>,
    op: Operator,
    Body(body): Body<DrillRequest>,
) -> ApiResult<Response> {
    let wait = wait_of(body.wait_seconds, 0)?;
    let ops = api.ops();
    let started = ops.start_restore_drill(&op, None, "api").await?;
    let result = ops.restore_result(&started);
    within(wait, started.clone(), result).await
}

/// The last verified backup and the last restore drill.
#[utoipa::path(
    get,
    path = "/v1/restore-drill/last",
    responses(
        (status = 200, description = "The last verified backup and the last drill", body = LastRestore),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn restore_drill_last(
    State(api): State<Arc<Api>>,
    _op: Operator,
) -> ApiResult<Json<LastRestore>> {
    Ok(Json(api.ops().last_restore().await?))
}

/// Queues a task's status change; the next sweep writes it into the file.
#[utoipa::path(
    post,
    path = "/v1/tasks/{task_id}/status",
    params(("task_id" = String, Path, description = "The task id, e.g. STATE-WP-0064-T03")),
    request_body = TaskStatusRequest,
    responses(
        (status = 200, description = "The change, queued", body = QueuedChange),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn task_status(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments(task_id): Segments<String>,
    Body(body): Body<TaskStatusRequest>,
) -> ApiResult<Json<QueuedChange>> {
    Ok(Json(
        api.ops()
            .queue_status_change(&op, &task_id, &body.status, &body.reason)
            .await?,
    ))
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
    Ok(Json(api.schedules().await?))
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
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn schedule_change(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments((name, change)): Segments<(String, String)>,
    Body(body): Body<ReasonBody>,
) -> ApiResult<Json<ScheduleChanged>> {
    let pause = schedule_change_of(&change)?;
    Ok(Json(
        api.ops()
            .change_schedule(&op, &name, pause, &body.reason)
            .await?,
    ))
}

/// `pause` or `resume`: whether to pause.
pub fn schedule_change_of(change: &str) -> ApiResult<bool> {
    match change {
        "pause" => Ok(true),
        "resume" => Ok(false),
        other => Err(ApiError::not_found(format!(
            "`{other}` is not a schedule change (pause, resume)"
        ))),
    }
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
    Ok(Json(api.ops().alerts(q.limit.unwrap_or(20))?))
}

/// Acknowledges an alert: who, when and why are kept with it.
#[utoipa::path(
    post,
    path = "/v1/alerts/{id}/ack",
    params(("id" = String, Path, description = "The alert's id, as `/v1/alerts` lists it")),
    request_body = AckRequest,
    responses(
        (status = 200, description = "The acknowledgement (the first, when it had one)", body = Object),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "The alert could not be written", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn alert_ack(
    State(api): State<Arc<Api>>,
    op: Operator,
    Segments(id): Segments<String>,
    Body(body): Body<AckRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(api.ops().acknowledge_alert(&op, &id, &body.reason)?))
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
    at_most(q.repo.as_deref(), MAX_NAME, "repo")?;
    let filter = Filter {
        repo: q.repo,
        check: q.check,
        resolved_since: q.resolved_since,
        limit: None,
    };
    Ok(Json(api.ops().findings(filter).await?))
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
        (status = 404, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
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
    Ok(Json(api.ops().timeline(&workflow_id, run).await?))
}

/// Everything waiting for an operator.
#[utoipa::path(
    get,
    path = "/v1/inbox",
    responses((status = 200, description = "Everything waiting for an operator", body = Inbox), (status = 401, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("token" = []))
)]
pub async fn inbox(State(api): State<Arc<Api>>, _op: Operator) -> ApiResult<Json<Inbox>> {
    Ok(Json(api.inbox().await?))
}

/// The workers polling the shared task queue and each host's.
#[utoipa::path(
    get,
    path = "/v1/workers",
    responses(
        (status = 200, description = "The workers of the shared queue and of each host's", body = Workers),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn workers(State(api): State<Arc<Api>>, _op: Operator) -> ApiResult<Json<Workers>> {
    Ok(Json(api.ops().workers().await?))
}

/// The store at a glance and how many runs wait for an operator.
#[utoipa::path(
    get,
    path = "/v1/summary",
    responses(
        (status = 200, description = "Repos, workstreams, tasks, open findings, pending changes, the last sweep of each source, runs waiting", body = Overview),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn summary(State(api): State<Arc<Api>>, _op: Operator) -> ApiResult<Json<Overview>> {
    Ok(Json(api.ops().overview().await?))
}

/// The answer of `/healthz`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Alive {
    /// Always `ok`: the process answers.
    pub status: String,
}

/// Whether the process runs (a liveness probe): no credential, no check
/// of what it depends on.
#[utoipa::path(
    get,
    path = "/healthz",
    responses((status = 200, description = "The process answers", body = Alive))
)]
pub async fn healthz() -> Json<Alive> {
    Json(Alive {
        status: "ok".into(),
    })
}

/// Whether the API can serve (a readiness probe): the config is loaded,
/// the state store and Temporal answer. No credential.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "Every check passed", body = Readiness),
        (status = 503, description = "A check failed; each is named with what it found", body = Readiness),
    )
)]
pub async fn readyz(State(api): State<Arc<Api>>) -> (StatusCode, Json<Readiness>) {
    let ops = api.ops();
    let config = match api.config.fault_now() {
        None => Check::passed("config", api.config.path().display().to_string()),
        // The last good config serves: the file's fault is for its
        // editor, not a reason to take the API out of service.
        Some(why) => Check::passed("config", format!("{why}; the last good config serves")),
    };
    let (store, temporal) = tokio::join!(ops.store_check(), ops.temporal_check());
    readiness(Readiness::of(vec![config, store, temporal]))
}

/// A probe's answer as HTTP: 200 when ready, else 503, the checks in the
/// body.
pub fn readiness(answer: Readiness) -> (StatusCode, Json<Readiness>) {
    let code = if answer.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(answer))
}

/// Recomputes the audit archive's hash chain.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    responses(
        (status = 200, description = "Whether every archived run is as it was appended, and the first that is not", body = Verdict),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn audit_verify(State(api): State<Arc<Api>>, _op: Operator) -> ApiResult<Json<Verdict>> {
    Ok(Json(api.ops().verify_audit().await?))
}

/// The archived runs, in chain order, for an auditor.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    params(ExportQuery),
    responses(
        (status = 200, description = "The archived runs, in chain order", body = [Object]),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "Temporal or the state store failed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn audit_export(
    State(api): State<Arc<Api>>,
    _op: Operator,
    Params(q): Params<ExportQuery>,
) -> ApiResult<Json<Vec<ArchiveEntry>>> {
    Ok(Json(api.ops().export_audit(q.since.as_deref()).await?))
}

/// The event type the runbook's progress calls ask for.
pub const SWEEP_EVENT_TYPE: &str = names::SWEEP_EVENT_TYPE;
