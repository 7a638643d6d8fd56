//! Faults mid-upgrade: the worker killed at each step, the server killed
//! in a random step.

use super::*;

#[tokio::test]
async fn killing_the_worker_at_each_step_ends_upgraded_or_rolled_back() {
    for (phase, behavior, expected) in [
        ("undeploying", "ok", "upgraded"),
        ("snapshotting", "ok", "upgraded"),
        ("deploying", "ok", "upgraded"),
        ("health_gate", "ok", "upgraded"),
        ("health_gate", "corrupt", "rolled-back"),
        ("rolling_back", "corrupt", "rolled-back"),
    ] {
        let mut app = App::new(
            "kill",
            &[(BASE, "ok", ""), ("1.1.0+5.1.0", behavior, "")],
            "",
        )
        .await;
        app.start_and_reach(phase).await;
        app.worker().kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.worker().restart();
        app.assert_lost_nothing(&format!("worker killed in {phase}"), expected)
            .await;
    }
}

#[tokio::test]
async fn killing_the_server_mid_upgrade_ends_upgraded_with_one_snapshot() {
    let mut app = App::new(
        "server-kill",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        "",
    )
    .await;
    let phases = ["snapshotting", "deploying", "health_gate"];
    let phase = phases[(uuid::Uuid::new_v4().as_u128() % 3) as usize];
    eprintln!("fault: kill -9 of the server in {phase}");
    app.start_and_reach(phase).await;
    app.server.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.server.restart().await;
    app.client = app.server.client().await;
    app.assert_lost_nothing(&format!("server killed in {phase}"), "upgraded")
        .await;
}
