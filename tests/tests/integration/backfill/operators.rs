//! Operators drive a running rollout: pause, resume, live settings,
//! abort, invalid requests, pauses that race runs of batches and
//! continue-as-new.

use super::*;

#[tokio::test]
async fn operators_pause_resume_resize_and_invalid_requests_are_rejected() {
    let e = env(
        "signals",
        Backend::Sqlite,
        None,
        "batch_size = 1\nbatches_per_activity = 1",
    )
    .await;
    e.start();
    e.wait_phase("executing").await;
    let err = e
        .update(
            OperatorVerb::Approve,
            OperatorRequest {
                group: "x".into(),
                ..op("late")
            },
        )
        .await
        .unwrap_err();
    assert!(err.contains("not allowed in phase `executing`"), "{err}");
    let err = e
        .update(OperatorVerb::Unfreeze, op("now please"))
        .await
        .unwrap_err();
    assert!(
        err.contains("`unfreeze` is not allowed in phase `executing`"),
        "{err}"
    );
    let err = e
        .update(
            OperatorVerb::Set,
            OperatorRequest {
                batch_size: 0,
                ..op("zero")
            },
        )
        .await
        .unwrap_err();
    assert!(err.contains("nothing to set"), "{err}");
    let (code, _, err) = e.cli(&["backfill", "set", "bf", "batch_size=0", "--reason", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("nothing to set"), "{err}");
    // A reason of a megabyte: the CLI refuses it before sending, and the
    // workflow's validator refuses it from any other client, so the
    // rollout's state and history stay far below the server's limit.
    let long = "x".repeat(100_000);
    let (code, _, err) = e.cli(&["backfill", "pause", "bf", "--reason", &long]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the reason is 100000 characters long; at most 2000 are accepted"),
        "{err}"
    );
    let huge = "x".repeat(1 << 20);
    let err = e
        .client
        .get_workflow_handle::<BackfillRollout>(bf())
        .execute_update(BackfillRollout::pause, op(&huge), Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the reason is 1048576 characters long; at most 2000 are accepted"),
        "{err}"
    );
    assert!(!e.status().await.paused, "a refused pause changes nothing");

    e.update(OperatorVerb::Pause, op("lag on replica"))
        .await
        .unwrap();
    let paused_at = e.status().await.batches;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = e.status().await;
    assert!(s.paused);
    assert!(
        s.batches <= paused_at + 1,
        "no batch starts after the pause is acknowledged: {paused_at} -> {}",
        s.batches
    );

    let reply = e.ok(&[
        "backfill",
        "set",
        "bf",
        "batch_size=40",
        "--reason",
        "replica caught up",
    ]);
    assert_eq!(
        reply["message"], "set accepted: batch_size 1 → 40",
        "the reply says what the setting was"
    );
    e.ok(&["backfill", "resume", "bf", "--reason", "go on"]);
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    // The audit timeline shows who, why and the value before the change.
    let (code, timeline, err) = e.cli(&["history", &bf()]);
    assert_eq!(code, 0, "{err}");
    let set = timeline
        .lines()
        .find(|l| l.contains(" update ") && l.contains(" set ") && l.contains(" completed "))
        .unwrap_or_else(|| panic!("no set update in the timeline:\n{timeline}"));
    assert!(
        set.contains(" completed — ")
            && set.contains("(replica caught up): set accepted: batch_size 1 → 40"),
        "{set}"
    );
    let pause = timeline
        .lines()
        .find(|l| l.contains(" update ") && l.contains(" pause ") && l.contains(" completed "))
        .unwrap_or_else(|| panic!("no completed pause in the timeline:\n{timeline}"));
    assert!(
        pause.contains("ana (lag on replica): pause accepted"),
        "{pause}"
    );
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await
    );
    let widths = rows(&e.pool, "SELECT batch_no, hi - lo FROM steward_backfill_progress WHERE lo IS NOT NULL ORDER BY batch_no").await;
    assert_eq!(
        widths.first().map(|w| w.1),
        Some(0),
        "batch size 1 at first"
    );
    assert!(
        widths.iter().any(|w| w.1 >= 39),
        "batch size 40 after `set`: {widths:?}"
    );
    let ev = verify_evidence(&result);
    let names: Vec<&str> = ev["operator_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["start", "pause", "set", "resume"],
        "rejected requests are not recorded as actions"
    );
}

#[tokio::test]
async fn abort_during_execution_rolls_back() {
    let e = env(
        "abort",
        Backend::Sqlite,
        None,
        "batch_size = 1\nbatches_per_activity = 1",
    )
    .await;
    let before = checksum(&e.pool).await;
    e.start();
    wait_for("a few batches", Duration::from_secs(60), || async {
        (e.status().await.batches >= 3).then_some(())
    })
    .await
    .unwrap();
    e.ok(&[
        "backfill",
        "abort",
        "bf",
        "--reason",
        "wrong bundle",
        "--by",
        "lee",
    ]);
    e.wait_phase("rolled_back_frozen").await;
    assert_eq!(checksum(&e.pool).await, before);
    e.ok(&["backfill", "unfreeze", "bf", "--reason", "done for today"]);
    assert_eq!(e.result().await.outcome, "rolled_back");
}

#[tokio::test]
async fn a_long_run_continues_as_new_and_keeps_its_state() {
    let e = env(
        "can",
        Backend::Sqlite,
        None,
        "batches_per_run = 3\napprovals = [\"storage\"]",
    )
    .await;
    e.start();
    e.wait_phase("awaiting_approval").await;
    e.ok(&[
        "backfill", "approve", "bf", "--group", "storage", "--reason", "ok",
    ]);
    // Operator updates racing the continue-as-new boundaries: every accepted
    // one must survive into the final run's record.
    let mut accepted = 0;
    for _ in 0..6 {
        if e.update(OperatorVerb::Pause, op("peek")).await.is_ok() {
            accepted += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let h = e.client.get_workflow_handle::<BackfillRollout>(bf());
            h.execute_update(BackfillRollout::resume, op("go on"), Default::default())
                .await
                .unwrap();
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(accepted > 0, "some updates landed during execution");
    let result = e.result().await;
    assert_eq!(result.outcome, "done");
    let s = e.status().await;
    assert!(
        s.runs >= 3,
        "continued as new at least twice: {} runs",
        s.runs
    );
    assert_eq!(
        s.approvals,
        vec!["storage"],
        "approvals carried across runs"
    );
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await
    );
    let ev = verify_evidence(&result);
    assert_eq!(
        ev["operator_actions"].as_array().unwrap().len(),
        2 + accepted,
        "operator actions carried across runs"
    );
}

#[tokio::test]
async fn a_pause_during_a_run_of_batches_replies_once_the_run_has_stopped() {
    // 120 batches of 50 ms: runs of about twenty batches per activity.
    let e = env(
        "pause-run",
        Backend::Postgres,
        None,
        &format!("batch_size = 1\n{}", slow_apply(Target::Postgres, 0.05)),
    )
    .await;
    e.start();
    wait_for("a run under way", Duration::from_secs(60), || async {
        (recorded_batches(&e.pool).await >= 3).then_some(())
    })
    .await
    .unwrap();
    e.update(OperatorVerb::Pause, op("replica lag"))
        .await
        .unwrap();
    let at_reply = recorded_batches(&e.pool).await;
    assert!(at_reply < 120, "paused before the end: {at_reply}");
    assert_eq!(
        e.status().await.batches,
        at_reply as u64,
        "the rollout knows every batch applied before the reply"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        recorded_batches(&e.pool).await,
        at_reply,
        "no batch ran after the pause's reply"
    );
    e.ok(&["backfill", "resume", "bf", "--reason", "caught up"]);
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert_eq!(
        edges(&e.pool, "<> 'earlier-run'").await,
        oracle(&e.pool).await
    );
    let activities = batch_activities(&e.client).await;
    assert!(
        activities * 4 < result.batches as usize,
        "runs of batches: {activities} activities for {} batches",
        result.batches
    );
}

/// Four times: a pause while a run of batches (0.4 s each) is in flight,
/// and a resume as soon as the pause is accepted, while it may still wait
/// for that run. Each pause must reply
/// within a few seconds, whatever the run that follows does.
async fn pause_and_resume_during_runs(test: &str, extra: &str) -> Env {
    let e = env(
        test,
        Backend::Postgres,
        None,
        &format!(
            "batch_size = 1\n{extra}\n{}",
            slow_apply(Target::Postgres, 0.4)
        ),
    )
    .await;
    e.start();
    e.wait_phase("executing").await;
    let mut waited_on_a_run = 0;
    for i in 0..4 {
        let pause = async {
            let reply = tokio::time::timeout(
                Duration::from_secs(20),
                e.update(OperatorVerb::Pause, op(&format!("peek {i}"))),
            )
            .await;
            (reply, Instant::now())
        };
        let resume = async {
            // As soon as the pause is accepted, while it may still wait.
            wait_for("the pause accepted", Duration::from_secs(20), || async {
                e.status().await.paused.then_some(())
            })
            .await
            .unwrap();
            let reply = e
                .update(OperatorVerb::Resume, op(&format!("go on {i}")))
                .await;
            (reply, Instant::now())
        };
        let ((paused, paused_at), (resumed, resumed_at)) = tokio::join!(pause, resume);
        paused
            .unwrap_or_else(|_| panic!("pause {i} got no reply in 20 s"))
            .unwrap_or_else(|err| panic!("pause {i} failed: {err}"));
        resumed.unwrap_or_else(|err| panic!("resume {i} failed: {err}"));
        if resumed_at < paused_at {
            waited_on_a_run += 1;
        }
    }
    assert!(
        waited_on_a_run > 0,
        "no pause waited on a run in flight: the race was not exercised"
    );
    let s = e.status().await;
    let pauses = s
        .operator_actions
        .iter()
        .filter(|a| a.action == "pause")
        .count();
    assert_eq!(pauses, 4, "every pause is recorded once: {s:?}");
    e
}

#[tokio::test]
async fn a_pause_overtaken_by_a_resume_replies_when_its_run_ends() {
    // The next run starts in the step where the awaited one ends.
    pause_and_resume_during_runs("pause-resume", "").await;
}

#[tokio::test]
async fn a_pause_waiting_on_the_last_run_before_continue_as_new_still_gets_its_reply() {
    // A new run after every two batches: the run that ends is the last
    // before continue-as-new, and the pause must still get its reply, not
    // "the workflow completed before the update".
    let e = pause_and_resume_during_runs("pause-can", "batches_per_run = 2").await;
    let s = e.status().await;
    assert!(s.runs >= 3, "continued as new between the pauses: {s:?}");
}
