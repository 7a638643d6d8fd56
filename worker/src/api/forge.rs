//! `POST /v1/forge/webhook`: the forge's webhook (Gitea, Forgejo,
//! GitHub). No operator token: the request is the forge's, proven by the
//! HMAC-SHA256 of its body under the shared secret (`X-Hub-Signature-256:
//! sha256=<hex>`, or `X-Gitea-Signature`/`X-Forgejo-Signature: <hex>`),
//! compared in constant time. A new comment on a pull request that is a
//! configured command starts its run; everything else is acknowledged and
//! ignored, saying why.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::Api;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::ops::forge::{ForgeStarted, PullComment};

/// What the webhook did with an event it did not act on.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Ignored {
    /// Why nothing started.
    pub ignored: String,
}

/// Starts the cold run or trial a pull-request comment asks for.
#[utoipa::path(
    post,
    path = "/v1/forge/webhook",
    request_body(content = String, description = "The forge's event payload (JSON), as it signed it"),
    responses(
        (status = 202, description = "The comment's run started", body = ForgeStarted),
        (status = 200, description = "Not a command on a pull request: nothing started", body = Ignored),
        (status = 400, body = ErrorBody),
        (status = 401, description = "No signature, or one the secret does not make", body = ErrorBody),
        (status = 403, description = "The commenter may not start runs", body = ErrorBody),
        (status = 404, description = "No [forge], or a repository it does not map", body = ErrorBody),
        (status = 409, description = "A run of the app is running", body = ErrorBody),
        (status = 502, description = "The forge, Temporal or the state store failed", body = ErrorBody),
        (status = 503, description = "The webhook secret is not set", body = ErrorBody),
    )
)]
pub async fn webhook(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let ops = api.ops();
    let forge = ops
        .loaded()
        .config
        .forge
        .clone()
        .ok_or_else(|| ApiError::not_found("this steward has no [forge] in its config"))?;
    let secret = forge
        .secret()
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    verify(&headers, &body, secret.as_bytes())?;
    let event = ["x-github-event", "x-gitea-event", "x-forgejo-event"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the payload is not JSON: {e}")))?;
    let comment = match pull_comment(&event, &payload) {
        Ok(c) => c,
        Err(why) => return Ok(ignored(why)),
    };
    match ops.forge_comment(comment).await? {
        Some(started) => Ok((StatusCode::ACCEPTED, Json(started)).into_response()),
        None => Ok(ignored("the comment is not a configured command".into())),
    }
}

fn ignored(why: String) -> Response {
    (StatusCode::OK, Json(Ignored { ignored: why })).into_response()
}

/// Refuses a body whose signature header is missing or not its HMAC.
fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), ApiError> {
    let given = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("sha256=").unwrap_or(v))
        .or_else(|| {
            ["x-gitea-signature", "x-forgejo-signature"]
                .iter()
                .find_map(|h| headers.get(*h)?.to_str().ok())
        })
        .ok_or_else(|| {
            ApiError::unauthorized(
                "no signature: the forge signs its webhook with the shared secret \
                 (X-Hub-Signature-256, X-Gitea-Signature)",
            )
        })?;
    let given = hex::decode(given.trim())
        .map_err(|_| ApiError::unauthorized("the signature is not hex"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unusable webhook secret"))?;
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| {
        ApiError::unauthorized("the signature does not match this body under the webhook secret")
    })
}

/// The new pull-request comment an event is, or why it is none.
fn pull_comment(event: &str, p: &Value) -> Result<PullComment, String> {
    if event != "issue_comment" {
        return Err(format!(
            "`{event}` events start nothing: commands are pull-request comments"
        ));
    }
    if p["action"] != "created" {
        return Err(format!(
            "a comment {}: only new comments are commands",
            p["action"].as_str().unwrap_or("changed")
        ));
    }
    let issue = &p["issue"];
    if issue["pull_request"].is_null() && p["is_pull"] != true {
        return Err("a comment on an issue, not a pull request".into());
    }
    let field = |v: &Value, what: &str| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| format!("the payload has no {what}"))
    };
    Ok(PullComment {
        repo: field(&p["repository"]["full_name"], "repository.full_name")?,
        pull: issue["number"]
            .as_u64()
            .ok_or("the payload has no issue.number")?,
        commenter: field(&p["comment"]["user"]["login"], "comment.user.login")?,
        body: field(&p["comment"]["body"], "comment.body")?,
    })
}
