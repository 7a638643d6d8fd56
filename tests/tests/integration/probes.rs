//! The probes of the worker (`--health-addr`) and the API: `/healthz`
//! answers while the process runs; `/readyz` names each check (the config,
//! the state store, Temporal, and for a worker its polls) and answers 503
//! while one fails, here with the store's own PostgreSQL cluster stopped
//! and then the Temporal server killed, and 200 again once they are back.

use std::time::Duration;

use serde_json::Value;
use steward_tests::{
    ApiServer, Harness, PgCluster, PgRoot, Steward, free_port, task_queue, temp_dir, wait_for,
    write_config,
};

/// `GET http://<addr><path>`: (status, JSON body).
async fn get(addr: &str, path: &str) -> Option<(u16, Value)> {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?;
    let code = resp.status().as_u16();
    Some((code, resp.json().await.unwrap_or(Value::Null)))
}

/// The check `name` of a readiness answer.
fn check<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("check {name} in {answer}"))
}

/// Waits until `/readyz` at `addr` answers `code`; the answer.
async fn readiness(addr: &str, code: u16, what: &str) -> Value {
    wait_for(what, Duration::from_secs(90), || async {
        let (status, body) = get(addr, "/readyz").await?;
        (status == code).then_some(body)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn readiness_names_a_stopped_store_and_a_dead_server_and_recovers() {
    let pg = PgRoot::new();
    let cluster = PgCluster::init(&pg, "store");
    let dir = temp_dir();
    let config = write_config(
        dir.path(),
        &cluster.url("postgres"),
        &task_queue("probes"),
        &[],
        "",
    );
    let mut h = Harness::start(dir, config).await;
    let worker = format!("127.0.0.1:{}", free_port());
    h.worker = Some(Steward::worker_with(
        &h.config,
        &h.server.address,
        &["--health-addr", &worker],
    ));
    let api = ApiServer::start(&h.config, &h.server.address).await;
    let api_addr = api.base.trim_start_matches("http://").to_string();

    let w = readiness(&worker, 200, "the worker ready").await;
    assert_eq!(w["ready"], true, "{w}");
    for name in ["store", "temporal", "polling"] {
        assert_eq!(check(&w, name)["ok"], true, "{w}");
    }
    assert!(
        check(&w, "store")["detail"]
            .as_str()
            .unwrap()
            .contains(&cluster.port.to_string()),
        "names the store it reached: {w}"
    );
    let a = readiness(&api_addr, 200, "the API ready").await;
    for name in ["config", "store", "temporal"] {
        assert_eq!(check(&a, name)["ok"], true, "{a}");
    }
    for addr in [&worker, &api_addr] {
        assert_eq!(get(addr, "/healthz").await.unwrap().0, 200);
    }

    // The store's cluster stops: not ready, and the store is named.
    cluster.crash();
    for addr in [&worker, &api_addr] {
        let answer = readiness(addr, 503, "not ready without the store").await;
        assert_eq!(answer["ready"], false, "{answer}");
        assert_eq!(check(&answer, "store")["ok"], false, "{answer}");
        assert!(
            !check(&answer, "store")["detail"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        assert_eq!(check(&answer, "temporal")["ok"], true, "{answer}");
        assert_eq!(get(addr, "/healthz").await.unwrap().0, 200, "alive");
    }
    cluster.start();
    readiness(&worker, 200, "the worker ready again").await;
    readiness(&api_addr, 200, "the API ready again").await;

    // The Temporal server dies: not ready, and Temporal is named.
    h.server.kill9();
    for addr in [&worker, &api_addr] {
        let answer = readiness(addr, 503, "not ready without Temporal").await;
        assert_eq!(check(&answer, "temporal")["ok"], false, "{answer}");
        assert_eq!(check(&answer, "store")["ok"], true, "{answer}");
        assert_eq!(get(addr, "/healthz").await.unwrap().0, 200, "alive");
    }
}
