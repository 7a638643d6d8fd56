//! The worker's probes on `[worker] health_addr` (`--health-addr`):
//! `/healthz` answers while the process runs; `/readyz` answers 200 when
//! the state store and Temporal answer and the server saw this worker poll
//! lately, else 503, each check named with what it found.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::ops::Ops;
use crate::ops::health::Readiness;

struct Probe {
    ops: Ops,
    identity: String,
}

/// Serves the probes on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, ops: Ops, identity: String) {
    let app = Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .with_state(Arc::new(Probe { ops, identity }));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("the worker's probes stopped: {e}");
    }
}

async fn alive() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn ready(State(p): State<Arc<Probe>>) -> (StatusCode, Json<Readiness>) {
    let (store, temporal, polling) = tokio::join!(
        p.ops.store_check(),
        p.ops.temporal_check(),
        p.ops.polling_check(&p.identity)
    );
    crate::api::routes::readiness(Readiness::of(vec![store, temporal, polling]))
}
