//! `steward api read-only`: the store-backed routes over a store opened
//! read-only, with no Temporal and no config: `/healthz`, `/readyz` (the
//! store answers) and `/v1/summary`. A restore drill starts it against
//! the copy it restored and asks it for the figures it restored; an
//! operator can start it against any copy to look at it. Every route but
//! `/healthz` needs the one token the starter gave in
//! `STEWARD_READ_ONLY_TOKEN`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use steward_activities::Store;
use steward_activities::store::summary::StoreSummary;

use crate::ops::health::{Check, Readiness};
use crate::ops::sign::token_hash;

pub use steward_activities::restore::served::{LISTENING, TOKEN_ENV};

struct ReadOnly {
    store: Store,
    shown: String,
    token_sha256: String,
}

/// Serves the read-only routes over `store` (shown as `shown`, its URL
/// with the password redacted) on `listener` until `stop` resolves.
pub async fn serve(
    store: Store,
    shown: String,
    token: &str,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(super::routes::healthz))
        .route("/readyz", get(ready))
        .route("/v1/summary", get(summary))
        .with_state(Arc::new(ReadOnly {
            store,
            shown,
            token_sha256: token_hash(token),
        }));
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| anyhow::anyhow!("the read-only API stopped: {e}"))
}

fn permitted(
    r: &ReadOnly,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, Json<serde_json::Value>)> {
    match super::auth::token_of(headers) {
        Some(t) if token_hash(&t) == r.token_sha256 => Ok(()),
        _ => Err((
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({
                "error": format!("send `Authorization: Bearer <the token given in {TOKEN_ENV}>`")
            })),
        )),
    }
}

async fn ready(
    State(r): State<Arc<ReadOnly>>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Readiness>), (StatusCode, Json<serde_json::Value>)> {
    permitted(&r, &headers)?;
    let store = match r.store.ping().await {
        Ok(()) => Check::passed("store", format!("{} (read-only)", r.shown)),
        Err(e) => Check::failed("store", e.to_string()),
    };
    Ok(super::routes::readiness(Readiness::of(vec![store])))
}

async fn summary(
    State(r): State<Arc<ReadOnly>>,
    headers: HeaderMap,
) -> Result<Json<StoreSummary>, (StatusCode, Json<serde_json::Value>)> {
    permitted(&r, &headers)?;
    r.store.summary().await.map(Json).map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
    })
}
