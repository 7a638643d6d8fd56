//! `steward api`: the HTTP API on the worker's config. JSON in and out,
//! every route behind an operator's token (`auth`), every operator action
//! sent as that operator through the operations layer (`crate::ops`),
//! which signs it so the workflow can tell it from a typed name; the
//! operator page (`page`) on the same operations; the OpenAPI document
//! generated from the handlers. The config is watched (`config::watch`):
//! a change is in force on the next request, a broken file never reaches
//! a client.

pub mod auth;
pub mod error;
mod forge;
mod guard;
pub mod oidc;
mod page;
pub mod read_only;
pub mod routes;
mod shared;

use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use steward_activities::Store;
use temporalio_client::Client;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::config::watch::Watched;
use crate::ops::backfill::Rollout;
use crate::ops::inbox::Inbox;
use crate::ops::sign::Signer;
use crate::ops::{self, Ops};
use crate::schedules::ScheduleRow;
use auth::Failures;
use error::ApiError;
use shared::Shared;
use steward_proto::v1::{BackfillStatus, UpgradeStatus};

/// The families the API's `/metrics` exports, as Prometheus shows them:
/// what the rules under `deploy/` may query of it.
pub const EXPORTED: &[&str] = &[
    "steward_api_auth_failures_total",
    "steward_config_reloads_total",
    "steward_config_reload_failures_total",
    "steward_config_stale",
];

/// What every request works with.
#[derive(Debug)]
pub struct Api {
    /// The config, read again when its file changes.
    pub config: Watched,
    /// The Temporal client.
    pub client: Client,
    /// The state store.
    pub store: Store,
    /// The key operator actions are signed with; None sends them unsigned.
    pub signer: Option<Signer>,
    /// Refused credentials, for `/metrics`.
    pub failures: Failures,
    /// `steward dev`'s local operator, when the config declares none.
    pub local: Option<auth::LocalOperator>,
    /// The identity provider's token verifier (`[api.oidc]`).
    pub oidc: Option<oidc::Verifier>,
    /// The page's sessions of the identity provider's users: who, until
    /// when (the ID token's expiry), by the session's token.
    sessions: std::sync::Mutex<std::collections::HashMap<String, Session>>,
    /// Reads shared between requests.
    reads: Reads,
}

/// The reads concurrent requests share (`shared`): each one a query to a
/// run or a visibility call.
#[derive(Debug, Default)]
struct Reads {
    backfill: Shared<BackfillStatus>,
    upgrade: Shared<UpgradeStatus>,
    inbox: Shared<Inbox>,
    schedules: Shared<Vec<ScheduleRow>>,
    rollouts: Shared<Vec<Rollout>>,
}

impl Reads {
    fn forget(&self) {
        self.backfill.forget();
        self.upgrade.forget();
        self.inbox.forget();
        self.schedules.forget();
        self.rollouts.forget();
    }
}

impl Api {
    /// The API for the config `config` watches, with its signing key when
    /// one is configured.
    pub fn new(config: Watched, client: Client, store: Store) -> anyhow::Result<Self> {
        let loaded = config.current();
        let signer = Signer::load(loaded.config.api.signing_key_file.as_deref())?;
        if let (Some(signer), Some(key)) = (&signer, &loaded.config.api.verify_key) {
            anyhow::ensure!(
                signer.verify_key().eq_ignore_ascii_case(key.trim()),
                "the API's signing key does not match `[api] verify_key` in {}: the runs would \
                 count every action as unverified (its public half is {})",
                loaded.path.display(),
                signer.verify_key()
            );
        }
        Ok(Self {
            config,
            client,
            store,
            signer,
            failures: Failures::default(),
            local: None,
            oidc: loaded.config.api.oidc.clone().map(oidc::Verifier::new),
            sessions: Default::default(),
            reads: Reads::default(),
        })
    }

    /// The IdP's user of the page session `token`; with `changes`, their
    /// groups as the IdP says now.
    async fn session(&self, token: &str, changes: bool) -> Result<auth::Operator, ApiError> {
        let found = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        let Some(session) = found else {
            return Err(ApiError::unauthorized(
                "this session ended (signed out, or steward restarted): sign in again",
            ));
        };
        if session.until <= std::time::SystemTime::now() {
            self.end_session(token);
            return Err(ApiError::unauthorized(
                "your sign-in ended with the identity provider's ID token: sign in again",
            ));
        }
        let (Some(idp), Some(refresh), true) = (&self.oidc, &session.refresh, changes) else {
            return Ok(session.actor);
        };
        match idp.refresh(&session.subject, refresh).await {
            Ok((who, next)) => {
                let actor = idp_actor(who);
                if let Some(s) = self
                    .sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(token)
                {
                    s.actor = actor.clone();
                    s.refresh = next.or(s.refresh.take());
                }
                Ok(actor)
            }
            Err(why) => {
                self.end_session(token);
                Err(ApiError::unauthorized(format!(
                    "the identity provider no longer vouches for this session ({why}): sign in again"
                )))
            }
        }
    }

    /// A session of the user `signed_in`: its token, which the page's
    /// cookie carries.
    pub fn begin_session(&self, signed_in: oidc::SignedIn) -> String {
        let token = format!(
            "{SESSION_PREFIX}{}",
            ops::sign::nonce().unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string())
        );
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::SystemTime::now();
        sessions.retain(|_, s| s.until > now);
        sessions.insert(
            token.clone(),
            Session {
                subject: signed_in.who.subject.clone(),
                actor: idp_actor(signed_in.who),
                until: signed_in.until,
                refresh: signed_in.refresh,
            },
        );
        token
    }

    /// Ends the session `token`, if it is one.
    pub fn end_session(&self, token: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    /// The same API with `steward dev`'s local operator.
    pub fn with_local(mut self, local: auth::LocalOperator) -> Self {
        self.local = Some(local);
        self
    }

    /// The operator a request's credential names, or the 401 saying why:
    /// an identity provider's access token (a JWT, with `[api.oidc]`), or
    /// a token of `[[operators]]`.
    /// A request that `changes` something through a page session asks the
    /// identity provider for the user's groups first (the session's
    /// refresh token), so a group removed at the IdP counts at once.
    pub async fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
        changes: bool,
    ) -> Result<auth::Operator, ApiError> {
        if let Some(token) = auth::token_of(headers).filter(|t| t.starts_with(SESSION_PREFIX)) {
            return self.session(&token, changes).await;
        }
        if let (Some(idp), Some(token)) = (&self.oidc, auth::token_of(headers))
            && oidc::looks_like_jwt(&token)
        {
            return match idp.verify(&token).await {
                Ok(who) => Ok(idp_actor(who)),
                Err(why) => {
                    self.failures
                        .idp
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Err(ApiError::unauthorized(why))
                }
            };
        }
        auth::authenticate(
            &self.config.current(),
            self.local.as_ref(),
            headers,
            &self.failures,
        )
    }

    /// Backfill `name`'s status (shared).
    pub async fn backfill_status(&self, name: &str) -> Result<BackfillStatus, ops::Error> {
        self.reads
            .backfill
            .get(name, || async { self.ops().backfill_status(name).await })
            .await
    }

    /// The status of `app`'s upgrade run `id` (shared).
    pub async fn upgrade_run_status(
        &self,
        app: &str,
        id: &str,
    ) -> Result<UpgradeStatus, ops::Error> {
        self.reads
            .upgrade
            .get(id, || async {
                self.ops().upgrade_run_status(app, id).await
            })
            .await
    }

    /// Everything waiting for an operator (shared).
    pub async fn inbox(&self) -> Result<Inbox, ops::Error> {
        self.reads
            .inbox
            .get("", || async { self.ops().inbox().await })
            .await
    }

    /// The schedules steward manages (shared).
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, ops::Error> {
        self.reads
            .schedules
            .get("", || async { self.ops().schedules().await })
            .await
    }

    /// The newest rollout of every backfill (shared).
    pub async fn rollouts(&self) -> Result<Vec<Rollout>, ops::Error> {
        self.reads
            .rollouts
            .get("", || async { self.ops().rollouts().await })
            .await
    }

    /// The operations over the config as it is now.
    pub fn ops(&self) -> Ops {
        Ops::new(self.config.current())
            .with_client(self.client.clone())
            .with_store(self.store.clone())
            .with_signer(self.signer.clone())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "steward",
        description = "The operator API of steward: sweeps, backfills, upgrades, schedules, \
                       findings, alerts and audit timelines. Every route takes an operator's \
                       bearer token and acts as that operator."
    ),
    paths(
        routes::sweep,
        routes::progress,
        routes::whoami,
        routes::backfill_status,
        routes::backfill_start,
        routes::backfill_action,
        routes::upgrade_status,
        routes::upgrade_start,
        routes::upgrade_approve,
        routes::cold_sweep_start,
        forge::webhook,
        routes::failover_drill_start,
        routes::failover_drill_last,
        routes::restore_drill_start,
        routes::restore_drill_last,
        routes::task_status,
        routes::schedules,
        routes::schedule_change,
        routes::alerts,
        routes::alert_ack,
        routes::findings,
        routes::history,
        routes::inbox,
        routes::workers,
        routes::summary,
        routes::audit_verify,
        routes::audit_export,
        routes::healthz,
        routes::readyz,
    ),
    modifiers(&BearerToken)
)]
struct Document;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "token",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Document::openapi()
}

async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        format!("{}{}", api.failures.prometheus(), api.config.prometheus()),
    )
        .into_response()
}

async fn no_route() -> ApiError {
    ApiError::not_found("no such route: see /openapi.json")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method: see /openapi.json",
    )
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("an API handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "steward's API failed on this request; the server keeps running",
    )
    .into_response()
}

/// A page session of the identity provider's user.
#[derive(Debug, Clone)]
struct Session {
    /// Who acts, with the groups the IdP gave them last.
    actor: ops::Actor,
    /// Their stable subject.
    subject: String,
    /// When the ID token, and the session, end.
    until: std::time::SystemTime,
    /// What reads their groups again.
    refresh: Option<String>,
}

/// What a page session's token starts with.
const SESSION_PREFIX: &str = "sess_";

/// The identity provider's user `who` as the one who acts: the credential
/// names their subject and the groups the IdP gave them, and the API signs
/// it with every action.
fn idp_actor(who: oidc::Identity) -> ops::Actor {
    ops::Actor {
        credential_id: steward_proto::signing::idp_credential(&who.subject, &who.groups),
        name: who.name,
        groups: who.groups,
        process: false,
    }
}

/// Every route.
pub fn router(api: Arc<Api>) -> Router {
    guarded(
        Router::new()
            .route("/", get(page::page))
            .route("/ui/page.js", get(page::script))
            .route("/ui/page.css", get(page::style))
            .route("/ui/signin", post(page::sign_in))
            .route("/ui/signin/local", get(page::sign_in_local))
            .route("/ui/oidc/signin", get(page::oidc_sign_in))
            .route("/ui/oidc/callback", get(page::oidc_callback))
            .route("/ui/signout", post(page::sign_out))
            .route("/ui/backfills/{name}/{action}", post(page::backfill_action))
            .route("/ui/upgrades/{app}/approve", post(page::upgrade_approve))
            .route("/ui/schedules/{name}/{change}", post(page::schedule_change))
            .route("/consistency/sweep/remote-all", post(routes::sweep))
            .route("/progress/", get(routes::progress))
            .route("/progress", get(routes::progress))
            .route("/v1/whoami", get(routes::whoami))
            .route("/v1/backfills/{name}", get(routes::backfill_status))
            .route("/v1/backfills/{name}/start", post(routes::backfill_start))
            .route(
                "/v1/backfills/{name}/{action}",
                post(routes::backfill_action),
            )
            .route("/v1/upgrades/{app}", get(routes::upgrade_status))
            .route("/v1/upgrades/{app}/start", post(routes::upgrade_start))
            .route("/v1/upgrades/{app}/approve", post(routes::upgrade_approve))
            .route("/v1/cold-sweeps", post(routes::cold_sweep_start))
            .route("/v1/forge/webhook", post(forge::webhook))
            .route("/v1/drills/{drill}/run", post(routes::failover_drill_start))
            .route("/v1/drills/{drill}/last", get(routes::failover_drill_last))
            .route("/v1/restore-drill/run", post(routes::restore_drill_start))
            .route("/v1/restore-drill/last", get(routes::restore_drill_last))
            .route("/v1/tasks/{task_id}/status", post(routes::task_status))
            .route("/v1/schedules", get(routes::schedules))
            .route(
                "/v1/schedules/{name}/{change}",
                post(routes::schedule_change),
            )
            .route("/v1/alerts", get(routes::alerts))
            .route("/v1/alerts/{id}/ack", post(routes::alert_ack))
            .route("/ui/alerts/{id}/ack", post(page::alert_ack))
            .route("/v1/findings", get(routes::findings))
            .route("/v1/history/{workflow_id}", get(routes::history))
            .route("/v1/inbox", get(routes::inbox))
            .route("/v1/workers", get(routes::workers))
            .route("/v1/summary", get(routes::summary))
            .route("/v1/audit/verify", get(routes::audit_verify))
            .route("/v1/audit/export", get(routes::audit_export))
            .route("/healthz", get(routes::healthz))
            .route("/readyz", get(routes::readyz))
            .route("/openapi.json", get(document))
            .route("/metrics", get(metrics))
            .layer(axum::middleware::from_fn_with_state(
                api.clone(),
                forget_on_change,
            )),
    )
    .with_state(api)
}

/// Forgets the shared reads once a request that may change something is
/// answered, so its operator reads the change at once.
async fn forget_on_change(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let answer = next.run(req).await;
    if changes {
        api.reads.forget();
    }
    answer
}

/// `routes` with JSON answers for an unknown route or method, a panic in a
/// handler answered as a JSON 500 while the server keeps serving, and the
/// browser guards (`guard`) on every request.
fn guarded<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn(guard::browser))
        .layer(CatchPanicLayer::custom(panicked))
}

/// Serves `api` on `listener` until `stop` resolves.
pub async fn serve(
    api: Api,
    listener: tokio::net::TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(Arc::new(api)))
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| anyhow::anyhow!("the API stopped: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn answer(app: Router, method: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn boom() -> &'static str {
        panic!("a handler bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_json_500_and_the_server_keeps_serving() {
        let app = guarded(Router::new().route("/boom", get(boom)).route(
            "/ok",
            get(|| async { Json(serde_json::json!({ "ok": true })) }),
        ));
        let (status, body) = answer(app.clone(), "GET", "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body["error"].as_str().unwrap().contains("keeps running"),
            "{body}"
        );
        assert_eq!(answer(app.clone(), "GET", "/ok").await.0, StatusCode::OK);
        let (status, body) = answer(app.clone(), "GET", "/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].as_str().unwrap().contains("no such route"));
        let (status, body) = answer(app, "DELETE", "/ok").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body["error"].as_str().unwrap().contains("method"));
    }

    #[test]
    fn the_document_covers_every_json_route_with_the_bearer_scheme() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 29, "{:?}", paths.keys());
        // The probes answer anyone: a kubelet or a load balancer holds no
        // token; the forge's webhook proves itself by its signature.
        let probes = ["/healthz", "/readyz"];
        let webhook = &paths["/v1/forge/webhook"]["post"];
        assert!(webhook["security"].is_null(), "the forge holds no token");
        assert!(
            webhook["responses"]["401"].is_object(),
            "a bad signature is 401"
        );
        for probe in probes {
            let op = &paths[probe]["get"];
            assert!(op["security"].is_null(), "{probe} takes no token");
            assert!(op["responses"]["200"].is_object(), "{probe}");
        }
        let tokenless = |p: &str| probes.contains(&p) || p == "/v1/forge/webhook";
        for (path, ops) in paths.iter().filter(|(p, _)| !tokenless(p)) {
            for (method, op) in ops.as_object().unwrap() {
                assert_eq!(
                    op["security"][0]["token"],
                    serde_json::json!([]),
                    "{method} {path} takes the token"
                );
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} documents 401"
                );
            }
        }
    }
}
