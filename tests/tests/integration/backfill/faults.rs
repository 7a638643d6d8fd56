//! Faults under a running rollout: the worker killed at random batches,
//! the server killed after an acknowledged pause, a storm of duplicated
//! operator updates, SIGTERM during a long activity.

use super::*;

#[tokio::test]
async fn killing_the_worker_during_execution_applies_every_batch_once() {
    killing_the_worker_during_execution(Target::Postgres).await;
}

#[tokio::test]
async fn killing_the_worker_during_execution_on_mariadb_applies_every_batch_once() {
    killing_the_worker_during_execution(Target::Mysql).await;
}

async fn killing_the_worker_during_execution(engine: Target) {
    // 30 batches of a tenth of a second: runs of about ten batches per
    // activity, so every kill lands inside a run.
    let mut e = env(
        "kill",
        engine,
        None,
        &format!("batch_size = 4\n{}", slow_apply(engine, 0.1)),
    )
    .await;
    e.start();
    // Kill points differ from run to run: 3 trials, each after a random
    // further 1 to 7 batches.
    let mut target = 0;
    for trial in 0..3u64 {
        target += 1 + (uuid::Uuid::new_v4().as_u128() % 7) as u64;
        eprintln!("fault: kill -9 of the worker after {target} batches");
        wait_for("more batches", Duration::from_secs(120), || async {
            (recorded_batches(&e.pool).await >= target as i64).then_some(())
        })
        .await
        .unwrap();
        // Let the next batch be in flight, at a different moment each trial.
        tokio::time::sleep(Duration::from_millis(50 * trial)).await;
        e.worker().kill9();
        e.worker().restart();
    }
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    let expected = oracle(&e.pool).await;
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        expected,
        "target equals the oracle"
    );
    let written: i64 = sqlx::query(&format!(
        "SELECT CAST(SUM(rows_written) AS {}) FROM steward_backfill_progress",
        engine.bigint()
    ))
    .fetch_one(&e.pool)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(written as usize, expected.len(), "no batch applied twice");
    assert_eq!(result.rows as usize, expected.len());
    // Runs of batches are the engine's, whatever the database: held here
    // on PostgreSQL. On MariaDB each batch's commit waits for InnoDB's log
    // flush, whose time on a loaded machine decides how many batches fit
    // in a run's second (16 activities for 31 batches in one full suite).
    if engine == Target::Postgres {
        let activities = batch_activities(&e.client).await;
        assert!(
            activities * 2 < result.batches as usize,
            "runs of batches: {activities} activities for {} batches",
            result.batches
        );
    }
    assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn a_storm_of_100_duplicated_out_of_order_operator_updates_leaves_a_consistent_rollout() {
    // Batches of two seconds (the default run ends after the first), so
    // the storm ends long before the rows do, however loaded the machine;
    // once it is checked, larger batches finish the rollout.
    let e = env(
        "storm",
        Backend::Postgres,
        None,
        &format!("batch_size = 1\n{}", slow_apply(Target::Postgres, 2.0)),
    )
    .await;
    e.start();
    e.wait_phase("executing").await;
    let started_actions = e.status().await.operator_actions.len();

    // Pauses, resumes and resizes, each twice, fired at once: the server
    // orders them, the validators refuse what does not fit the state.
    let requests: Vec<(OperatorVerb, OperatorRequest)> = (0..100)
        .map(|i| {
            use OperatorVerb::{Pause, Resume, Set};
            let which = [Pause, Resume, Set, Pause, Resume][i % 5];
            let req = OperatorRequest {
                batch_size: if which == Set { 1 + (i as u32 % 2) } else { 0 },
                ..op(&format!("storm {}", i / 2))
            };
            (which, req)
        })
        .collect();
    let outcomes =
        futures::future::join_all(requests.iter().map(|(w, r)| e.update(*w, r.clone()))).await;
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    for err in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            err.contains("already paused")
                || err.contains("not paused")
                || err.contains("not allowed")
                || err.contains("cannot change"),
            "only validator refusals: {err}"
        );
    }
    assert!(accepted >= 20, "{accepted} of 100 accepted");

    // Whatever the storm left, a pause that is acknowledged stops batches.
    let hold = e.update(OperatorVerb::Pause, op("hold")).await;
    let paused_at = e.status().await;
    assert!(paused_at.paused, "{hold:?} {paused_at:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = e.status().await;
    assert!(
        s.batches <= paused_at.batches + 1,
        "no batch starts after the pause is acknowledged: {} -> {}",
        paused_at.batches,
        s.batches
    );
    e.update(
        OperatorVerb::Set,
        OperatorRequest {
            batch_size: 60,
            ..op("after the storm")
        },
    )
    .await
    .unwrap();
    e.update(OperatorVerb::Resume, op("after the storm"))
        .await
        .unwrap();
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await,
        "every edge exactly once"
    );
    let ev = verify_evidence(&result);
    let recorded = ev["operator_actions"].as_array().unwrap().len();
    assert!(
        recorded > started_actions + accepted,
        "every accepted update is in the audit trail: {recorded} recorded, {accepted} accepted"
    );
    assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn an_acknowledged_pause_survives_a_kill_9_of_the_server() {
    let mut e = env(
        "server-kill",
        Backend::Sqlite,
        None,
        "batch_size = 1\nbatches_per_activity = 1",
    )
    .await;
    e.start();
    e.wait_phase("executing").await;
    e.update(OperatorVerb::Pause, op("before the crash"))
        .await
        .unwrap();
    let before = e.status().await;
    assert!(before.paused);

    e.server.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    e.server.restart().await;

    let after = wait_for(
        "the rollout to answer again",
        Duration::from_secs(90),
        || async {
            e.client
                .get_workflow_handle::<BackfillRollout>(bf())
                .query(BackfillRollout::status, (), Default::default())
                .await
                .ok()
        },
    )
    .await
    .unwrap();
    assert!(after.paused, "the acknowledged pause is still in force");
    assert!(
        after
            .operator_actions
            .iter()
            .any(|a| a.action == "pause" && a.reason == "before the crash" && a.operator == "ana"),
        "who paused and why survived: {:?}",
        after.operator_actions
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        e.status().await.batches <= before.batches + 1,
        "no batch started while paused"
    );
    e.update(OperatorVerb::Resume, op("server is back"))
        .await
        .unwrap();
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await,
        "every edge exactly once"
    );
    assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn sigterm_during_a_long_activity_lets_it_finish_and_leaves_no_task_timeouts() {
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    let mut e = env(
        "sigterm",
        Backend::Sqlite,
        None,
        "batches_per_run = 1000\n\n[worker]\ngraceful_shutdown_seconds = 20",
    )
    .await;
    // A freeze that takes 4 s and counts its completions in a file.
    let marker = e.config.with_file_name("freeze-runs");
    let cfg = read(&e.config).replace(
        "freeze = { sql = \"UPDATE control SET enabled = 0\" }",
        &format!(
            "freeze = {{ command = [\"python3\", \"-c\", \"import sys, time; time.sleep(4); open(sys.argv[1], 'a').write('x')\", \"{}\"] }}",
            marker.display()
        ),
    );
    std::fs::write(&e.config, cfg).unwrap();
    e.worker().kill9();
    e.start_worker();

    e.start();
    // `frozen` is set as the freeze activity is scheduled; it runs 4 s.
    e.wait_phase("frozen").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = std::time::Instant::now();
    let status = e
        .worker()
        .terminate(Duration::from_secs(25))
        .expect("the worker stops within the grace period");
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}: {}", e.worker_log());
    assert!(
        took >= Duration::from_secs(1),
        "it waited for the freeze in flight ({took:?})"
    );
    assert_eq!(
        read(&marker),
        "x",
        "the freeze finished on the stopping worker"
    );

    e.start_worker();
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    assert_eq!(read(&marker), "x", "and was not run again");
    let events = steward_worker::history::fetch_events(&e.client, &bf(), None)
        .await
        .unwrap();
    let bad: Vec<_> = events
        .iter()
        .filter(|ev| {
            matches!(
                ev.attributes,
                Some(Attributes::WorkflowTaskTimedOutEventAttributes(_))
                    | Some(Attributes::WorkflowTaskFailedEventAttributes(_))
            )
        })
        .map(|ev| ev.event_id)
        .collect();
    assert!(
        bad.is_empty(),
        "workflow task timeouts or failures at events {bad:?}"
    );
}
