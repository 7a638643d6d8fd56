//! Temporal Schedules from the config: sync is idempotent, sets Skip and a
//! short catch-up window, deletes what the config dropped, and a schedule
//! really fires the sweep.

use std::time::Duration;

use steward_activities::Store;
use steward_proto::ids;
use steward_tests::{
    Backend, RepoEntry, Server, Steward, database, make_repo, newest_progress, run_steward,
    task_queue, temp_dir, wait_for, workplan, write_config,
};

fn schedule(name: &str, cron: &str) -> String {
    format!("\n[[schedules]]\nname = \"{name}\"\ncron = \"{cron}\"\n")
}

#[tokio::test]
async fn sync_is_idempotent_sets_skip_and_removes_dropped_schedules() {
    let dir = temp_dir();
    let db = database(Backend::Sqlite, dir.path()).await;
    let queue = task_queue("sync");
    let server = Server::start(dir.path()).await;
    let cfg = |extra: &str| {
        let path = write_config(dir.path(), &db, &queue, &[], "");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("schedules = []\n", "")
            + extra;
        std::fs::write(&path, text).unwrap();
        path
    };
    let drill =
        "\n[[schedules]]\nname = \"drill\"\nworkflow = \"restore-drill\"\ncron = \"0 3 * * 0\"\n";
    let path =
        cfg(&(schedule("sweep", "*/15 * * * *") + &schedule("nightly", "30 2 * * *") + drill));
    let (code, out, err) = run_steward(&path, &server.address, &["schedules", "sync"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["created"],
        serde_json::json!(["steward-sweep", "steward-nightly", "steward-drill"])
    );
    let client = server.client().await;
    let weekly = client
        .get_schedule_handle(ids::schedule("drill"))
        .describe(Default::default())
        .await
        .unwrap();
    assert!(weekly.note().unwrap().contains("restore drill"));
    assert!(
        format!("{:?}", weekly.raw().schedule).contains("RestoreDrill"),
        "the weekly schedule starts a RestoreDrill"
    );

    let (code, out, _) = run_steward(&path, &server.address, &["schedules", "sync"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["created"], serde_json::json!([]));
    assert_eq!(
        v["updated"],
        serde_json::json!([]),
        "nothing changed, nothing reported as updated: {v}"
    );
    assert_eq!(v["unchanged"].as_array().unwrap().len(), 3, "{v}");

    let desc = client
        .get_schedule_handle(ids::schedule("sweep"))
        .describe(Default::default())
        .await
        .unwrap();
    let policies = desc
        .raw()
        .schedule
        .as_ref()
        .unwrap()
        .policies
        .as_ref()
        .unwrap();
    assert_eq!(policies.overlap_policy, 1, "overlap policy Skip");
    assert_eq!(policies.catchup_window.as_ref().unwrap().seconds, 60);
    assert!(desc.future_action_times().len() >= 2);

    let (code, out, _) = run_steward(&path, &server.address, &["schedules", "list"]);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sweep = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ids::schedule("sweep").as_str())
        .unwrap();
    assert!(sweep["note"].as_str().unwrap().contains("*/15 * * * *"));
    assert_eq!(sweep["next_runs"].as_array().unwrap().len(), 3);

    let path = cfg(&schedule("sweep", "*/30 * * * *"));
    let (code, out, _) = run_steward(&path, &server.address, &["schedules", "sync"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["deleted"],
        serde_json::json!(["steward-drill", "steward-nightly"])
    );
    assert_eq!(v["updated"], serde_json::json!(["steward-sweep"]));
    assert_eq!(v["unchanged"], serde_json::json!([]));
    let desc = client
        .get_schedule_handle(ids::schedule("sweep"))
        .describe(Default::default())
        .await
        .unwrap();
    assert!(desc.note().unwrap().contains("*/30 * * * *"));
}

#[tokio::test]
async fn a_schedule_fires_the_sweep() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    make_repo(&repo, &[("workplans/a.md", &workplan("SCH-1", 1))]);
    let db = database(Backend::Sqlite, dir.path()).await;
    let queue = task_queue("fires");
    let path = write_config(
        dir.path(),
        &db,
        &queue,
        &[RepoEntry {
            name: "repo",
            path: &repo,
            remote: None,
            push: false,
        }],
        "",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("schedules = []\n", "")
        + &schedule("every-minute", "* * * * *");
    std::fs::write(&path, text).unwrap();
    let server = Server::start(dir.path()).await;
    let _worker = Steward::worker(&path, &server.address);
    let (code, _, err) = run_steward(&path, &server.address, &["schedules", "sync"]);
    assert_eq!(code, 0, "{err}");

    let store = Store::connect(&db).await.unwrap();
    let event = newest_progress(
        &store,
        "consistency_sweep_remote_all",
        Duration::from_secs(100),
    )
    .await;
    assert_eq!(event.source, "schedule");
    let result: steward_proto::v1::SweepResult = serde_json::from_str(&event.detail_json).unwrap();
    assert_eq!(
        result.schedule_id,
        ids::schedule("every-minute"),
        "the sweep knows the schedule that started it"
    );
    assert!(
        event
            .workflow_id
            .starts_with(&ids::scheduled_sweep("every-minute")),
        "{}",
        event.workflow_id
    );
    assert!(
        event
            .detail_json
            .contains("\"repos_processed\":[{\"repo\":\"repo\""),
        "{}",
        event.detail_json
    );
}

#[tokio::test]
async fn ticks_missed_while_the_server_was_killed_fire_at_most_one_catch_up_sweep() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    make_repo(&repo, &[("workplans/a.md", &workplan("MISS-1", 1))]);
    let db = database(Backend::Sqlite, dir.path()).await;
    let path = write_config(
        dir.path(),
        &db,
        &task_queue("missed"),
        &[RepoEntry {
            name: "repo",
            path: &repo,
            remote: None,
            push: false,
        }],
        "",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("schedules = []\n", "")
        + &schedule("every-minute", "* * * * *");
    std::fs::write(&path, text).unwrap();
    let mut server = Server::start(dir.path()).await;
    let _worker = Steward::worker(&path, &server.address);
    let (code, _, err) = run_steward(&path, &server.address, &["schedules", "sync"]);
    assert_eq!(code, 0, "{err}");

    // Down for more than two ticks.
    let killed = std::time::SystemTime::now();
    server.kill9();
    tokio::time::sleep(Duration::from_secs(150)).await;
    server.restart().await;
    let restarted = std::time::SystemTime::now();

    // The schedule lives on: something fires after the restart (the
    // catch-up, or the next tick).
    let client = server.client().await;
    let handle = client.get_schedule_handle(ids::schedule("every-minute"));
    wait_for(
        "a run after the restart",
        Duration::from_secs(90),
        || async {
            let desc = handle.describe(Default::default()).await.ok()?;
            desc.recent_actions()
                .into_iter()
                .any(|a| a.actual_time.is_some_and(|t| t >= restarted))
                .then_some(())
        },
    )
    .await
    .unwrap();
    let desc = handle.describe(Default::default()).await.unwrap();
    let caught_up: Vec<_> = desc
        .recent_actions()
        .into_iter()
        .filter(|a| {
            a.schedule_time.is_some_and(|t| t > killed && t < restarted)
                && a.actual_time.is_some_and(|t| t >= restarted)
        })
        .collect();
    assert!(
        caught_up.len() <= 1,
        "at most one catch-up for the two or more missed ticks: {caught_up:?}"
    );
}
