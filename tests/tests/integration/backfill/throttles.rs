//! Named throttles: a query on another database, a command and an HTTP
//! call each hold the batches while over their maximum, one alert per
//! episode, live-settable; on MariaDB, a real replica's
//! `Seconds_Behind_Master` read from `SHOW REPLICA STATUS`.

use super::*;
use steward_tests::MariaDbPair;

/// An HTTP server answering every request with `{"load": {"cpu": X}}`,
/// X as set in the returned cell.
async fn cpu_gauge() -> (u16, std::sync::Arc<std::sync::Mutex<f64>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cpu = std::sync::Arc::new(std::sync::Mutex::new(0.0));
    let value = cpu.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let value = value.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!("{{\"load\": {{\"cpu\": {}}}}}", *value.lock().unwrap());
                let _ = sock
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (port, cpu)
}

/// The throttle alerts raised so far.
fn throttle_alerts(e: &Env) -> Vec<serde_json::Value> {
    e.alerts()
        .into_iter()
        .filter(|a| a["kind"] == "backfill.throttle")
        .collect()
}

/// Waits until the rollout says `name` holds its batches.
async fn held_by(e: &Env, name: &str) -> BackfillStatus {
    wait_for(
        &format!("held by {name}"),
        Duration::from_secs(60),
        || async {
            let s = e.status().await;
            (s.throttled && s.throttles.iter().any(|r| r.name == name && r.over)).then_some(s)
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_query_a_command_and_an_http_call_each_hold_the_batches_while_over_their_maximum() {
    let side = temp_dir();
    // The query's database is not the backfill's: a replica's, say.
    let gauge_url = format!(
        "sqlite://{}?mode=rwc",
        side.path().join("gauge.db").display()
    );
    let gauge = steward_activities::store::connect_any(&gauge_url)
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE gauge (value REAL NOT NULL)",
        "INSERT INTO gauge (value) VALUES (1)",
    ] {
        sqlx::query(sql).execute(&gauge).await.unwrap();
    }
    let queue = side.path().join("queue");
    std::fs::write(&queue, "3\n").unwrap();
    let (port, cpu) = cpu_gauge().await;
    *cpu.lock().unwrap() = 90.0;
    let e = env(
        "throttles",
        Backend::Sqlite,
        None,
        &format!(
            r#"batch_size = 2
batches_per_activity = 2
throttles = [
  {{ name = "replica-load", sql = "SELECT value FROM gauge", database_url = "{gauge_url}", max = 5 }},
  {{ name = "cpu", http = {{ url = "http://127.0.0.1:{port}/load", pointer = "/load/cpu" }}, max = 50, wait_seconds = 1 }},
  {{ name = "queue", command = ["cat", "{}"], max = 10, wait_seconds = 1 }},
]"#,
            queue.display()
        ),
    )
    .await;
    e.start();

    // The HTTP throttle is over from the start: nothing runs.
    let s = held_by(&e, "cpu").await;
    assert_eq!(s.batches, 0, "no batch while a throttle is over");
    let load = s
        .throttles
        .iter()
        .find(|r| r.name == "replica-load")
        .unwrap();
    assert_eq!(
        (load.value, load.over),
        (1.0, false),
        "read on its own database"
    );
    let said = e.ok(&["backfill", "status", "bf"]);
    assert_eq!(said["throttled"], true, "{said}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(e.status().await.batches, 0);
    let alerts = throttle_alerts(&e);
    assert_eq!(alerts.len(), 1, "one alert per episode: {alerts:?}");
    assert!(
        alerts[0]["message"]
            .as_str()
            .unwrap()
            .contains("cpu 90 is over 50"),
        "{}",
        alerts[0]
    );
    assert!(alerts[0]["resolved_at"].is_null(), "open while over");

    // A throttle the backfill does not have is refused, naming those it has.
    let (code, _, err) = e.cli(&["backfill", "set", "bf", "throttle.disk=3", "--reason", "x"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no throttle named `disk` (this backfill has replica-load, cpu, queue)"),
        "{err}"
    );
    // An operator raises the maximum, live: the batches go.
    e.ok(&[
        "backfill",
        "set",
        "bf",
        "throttle.cpu=95",
        "--reason",
        "the primary has headroom tonight",
        "--by",
        "ana",
    ]);
    wait_for("batches again", Duration::from_secs(60), || async {
        (e.status().await.batches > 0).then_some(())
    })
    .await
    .unwrap();
    let alerts = throttle_alerts(&e);
    assert!(
        alerts[0]["resolved_at"].is_string(),
        "the episode ended: {alerts:?}"
    );

    // The command's number goes over: a second episode, a second alert.
    std::fs::write(&queue, "20\n").unwrap();
    let s = held_by(&e, "queue").await;
    let held_at = s.batches;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(e.status().await.batches, held_at, "held by the command");
    let alerts = throttle_alerts(&e);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(
        alerts.iter().any(|a| a["message"]
            .as_str()
            .unwrap()
            .contains("queue 20 is over 10")),
        "{alerts:?}"
    );
    // A command that says nothing a number can be read from holds too.
    std::fs::write(&queue, "busy\n").unwrap();
    let s = wait_for("unreadable", Duration::from_secs(30), || async {
        let s = e.status().await;
        s.throttles
            .iter()
            .any(|r| r.name == "queue" && !r.error.is_empty())
            .then_some(s)
    })
    .await
    .unwrap();
    assert!(s.throttled);
    std::fs::write(&queue, "3\n").unwrap();

    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await
    );
    let alerts = throttle_alerts(&e);
    assert_eq!(alerts.len(), 2, "the unreadable queue was the same episode");
    assert!(
        alerts.iter().all(|a| a["resolved_at"].is_string()),
        "{alerts:?}"
    );
    let ev = verify_evidence(&result);
    let set = ev["operator_actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "set")
        .unwrap()
        .clone();
    assert_eq!(set["operator"], "ana");
    assert_eq!(set["detail"], "throttle.cpu 50 → 95", "{set}");
}

#[tokio::test]
async fn on_mariadb_a_replica_that_stopped_applying_holds_the_batches_by_show_replica_status() {
    let dir = temp_dir();
    let pair = MariaDbPair::start(dir.path());
    pair.primary_sql("CREATE DATABASE app");
    let target = format!("{}/app", pair.primary);
    // The replica stops applying: `Seconds_Behind_Master` is NULL, an
    // unknown lag, which holds.
    pair.replica_sql("STOP SLAVE SQL_THREAD");
    let e = env_on(
        "replica",
        dir,
        Target::Mysql,
        &target,
        None,
        &format!(
            r#"throttles = [
  {{ name = "replica-lag", sql = "SHOW REPLICA STATUS", column = "Seconds_Behind_Master", database_url = "{}/", max = 5, wait_seconds = 1 }},
]"#,
            pair.replica
        ),
    )
    .await;
    e.start();
    let s = held_by(&e, "replica-lag").await;
    assert_eq!(s.batches, 0);
    let reading = &s.throttles[0];
    assert!(
        reading.error.contains("returned null"),
        "a stopped replica's lag is unknown: {reading:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(e.status().await.batches, 0, "held while it stays stopped");

    pair.replica_sql("START SLAVE SQL_THREAD");
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    let expected = oracle(&e.pool).await;
    assert_eq!(edges(&e.pool, "<> 'earlier-run'").await, expected);
    // The replica caught up with every edge the batches wrote.
    let on_replica = wait_for(
        "the replica to catch up",
        Duration::from_secs(30),
        || async {
            let n: usize = pair
                .replica_sql("SELECT COUNT(*) FROM app.supersedes WHERE run_tag <> 'earlier-run'")
                .parse()
                .unwrap();
            (n == expected.len()).then_some(n)
        },
    )
    .await
    .unwrap();
    assert_eq!(on_replica, expected.len());
    let done = e.status().await;
    let last = done
        .throttles
        .iter()
        .find(|r| r.name == "replica-lag")
        .unwrap();
    assert!(
        last.error.is_empty() && !last.over,
        "read as a number once applying again: {last:?}"
    );
}
