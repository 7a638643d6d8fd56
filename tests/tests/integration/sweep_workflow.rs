//! The `ConsistencySweep` workflow on a real Temporal dev server, with the
//! real `steward` binary as the worker process.

use std::path::PathBuf;
use std::time::Duration;

use steward_activities::Store;
use steward_proto::ids;
use steward_proto::v1::{SweepInput, SweepResult};
use steward_tests::{
    Backend, Harness, Steward, assert_every_run_closed_without_task_failures, commit_count,
    database, free_port, http_get, local_repos, make_repo, read, run_steward, slow_commits,
    task_queue, temp_dir, wait_for, workplan, write_config,
};
use steward_workflows::ConsistencySweep;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

/// The harness, with the sweep's task queue, state store and repos.
struct Env {
    h: Harness,
    queue: String,
    db: String,
    repos: Vec<PathBuf>,
}

steward_tests::derefs_to_harness!(Env);

/// `n` repos with `plans` workplans each, a config, a server and a client.
async fn env(test: &str, backend: Backend, n: usize, plans: usize, extra: &str) -> Env {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let repos: Vec<PathBuf> = (0..n)
        .map(|i| {
            let path = root.join(format!("repo-{i:02}"));
            let files: Vec<(String, String)> = (0..plans)
                .map(|p| {
                    let id = format!("R{i:02}-WP-{p}");
                    (format!("workplans/{id}.md"), workplan(&id, 2))
                })
                .collect();
            let refs: Vec<(&str, &str)> = files
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            make_repo(&path, &refs);
            path
        })
        .collect();
    let names: Vec<String> = (0..n).map(|i| format!("repo-{i:02}")).collect();
    let entries = local_repos(&names, &repos);
    let db = database(backend, &root).await;
    let queue = task_queue(test);
    let config = write_config(&root, &db, &queue, &entries, extra);
    Env {
        h: Harness::start(dir, config).await,
        queue,
        db,
        repos,
    }
}

impl Env {
    /// Makes each repo's writeback take `seconds` or more, so a sweep is
    /// still running when a test acts on it however fast the machine is.
    fn slow_commits(&self, seconds: f64) {
        for repo in &self.repos {
            slow_commits(repo, seconds);
        }
    }
}

/// Starts a sweep; a macro because the handle's workflow type is private
/// to the SDK's generated code.
macro_rules! start {
    ($e:expr, $id:expr, $input:expr) => {
        $e.client
            .start_workflow(
                ConsistencySweep::run,
                $input,
                WorkflowStartOptions::new($e.queue.clone(), $id.to_owned()).build(),
            )
            .await
            .unwrap()
    };
}

/// Waits until `n` repos of a first sweep have been swept (their state
/// recorded in the store): inside a batch activity, before the workflow
/// hears of them, so a fault can land mid-batch. Returns the store it
/// read, for the test's next look.
async fn wait_swept(e: &Env, n: i64) -> Store {
    let store = Store::connect(&e.db).await.unwrap();
    wait_for("repos to be swept", Duration::from_secs(60), || async {
        (swept(&store).await.ok()? >= n).then_some(())
    })
    .await
    .unwrap();
    store
}

/// How many repos of a first sweep have been swept so far.
async fn swept(store: &Store) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM repo_state")
        .fetch_one(store.pool())
        .await
}

async fn run_sweep(e: &Env, id: &str, input: SweepInput) -> SweepResult {
    let handle = start!(e, id, input);
    tokio::time::timeout(
        Duration::from_secs(120),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("sweep finished in time")
    .unwrap()
}

fn manual() -> SweepInput {
    SweepInput {
        source: "manual".into(),
        ..Default::default()
    }
}

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

async fn sweep_over_several_repos(backend: Backend) {
    let e = env("several", backend, 3, 2, "").await;
    std::fs::create_dir_all(e.root.join("not-a-repo")).unwrap();
    let mut cfg = read(&e.config);
    cfg.push_str(&format!(
        "\n[[repos]]\nname = \"ghost\"\npath = \"{}\"\n",
        e.root.join("not-a-repo").display()
    ));
    std::fs::write(&e.config, cfg).unwrap();
    let _worker = Steward::worker(&e.config, &e.server.address);

    let first = run_sweep(&e, "sweep-several-1", manual()).await;
    assert!(!first.lock_skipped);
    assert_eq!(first.exit_code, 0, "{first:?}");
    assert_eq!(first.repos_processed.len(), 3);
    assert_eq!(names(&first.skipped_missing), vec!["ghost"]);
    for (i, repo) in e.repos.iter().enumerate() {
        let text = read(&repo.join(format!("workplans/R{i:02}-WP-0.md")));
        assert_eq!(text.matches("state_hub_workstream_id").count(), 1);
        assert_eq!(text.matches("state_hub_task_id").count(), 2);
        assert_eq!(commit_count(repo), 2, "one writeback commit");
    }

    let second = run_sweep(
        &e,
        "sweep-several-2",
        SweepInput {
            source: "schedule".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        names(&second.skipped_clean),
        vec!["repo-00", "repo-01", "repo-02"]
    );
    assert!(second.repos_processed.is_empty());

    let store = Store::connect(&e.db).await.unwrap();
    let events = store
        .progress(Some("consistency_sweep_remote_all"), 0, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].workflow_id, "sweep-several-2");
    assert_eq!(events[0].source, "schedule");
    let detail: serde_json::Value = serde_json::from_str(&events[0].detail_json).unwrap();
    for key in [
        "source",
        "lock_skipped",
        "repos_processed",
        "skipped_clean",
        "skipped_missing",
        "skipped_budget",
        "exit_code",
        "automation_error",
        "assessment_failures",
        "duration_seconds",
        "workflow_id",
        "run_id",
    ] {
        assert!(
            detail.get(key).is_some(),
            "progress event lacks {key}: {detail}"
        );
    }

    // The operator view of the same data.
    let (code, out, err) = e.cli(&["progress", "--limit", "1"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["detail"]["skipped_clean"].as_array().unwrap().len(), 3);
    let (code, out, err) = e.cli(&["sweep", "compare", "--since-hours", "1"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["by_source"]["manual"]["completed"], 1);
    assert_eq!(v["by_source"]["schedule"]["sweeps"], 1);
}

#[tokio::test]
async fn sweep_over_several_repos_on_sqlite() {
    sweep_over_several_repos(Backend::Sqlite).await;
}

#[tokio::test]
async fn sweep_over_several_repos_on_postgres() {
    sweep_over_several_repos(Backend::Postgres).await;
}

#[tokio::test]
async fn sweep_skips_when_lock_is_held_and_runs_once_the_lease_expired() {
    let e = env("lock", Backend::Sqlite, 1, 1, "").await;
    let _worker = Steward::worker(&e.config, &e.server.address);
    let store = Store::connect(&e.db).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        store
            .acquire_lock("consistency-sweep", "local-timer-run", 600, now)
            .await
            .unwrap()
            .acquired
    );

    let skipped = run_sweep(&e, "sweep-lock-1", manual()).await;
    assert!(skipped.lock_skipped);
    assert_eq!(skipped.lock_holder, "local-timer-run");
    assert!(skipped.repos_processed.is_empty() && skipped.skipped_clean.is_empty());
    assert_eq!(skipped.exit_code, 0);
    let events = store.progress(None, 0, 10).await.unwrap();
    assert_eq!(
        events.len(),
        1,
        "a lock skip still records a progress event"
    );
    assert!(events[0].detail_json.contains("\"lock_skipped\":true"));
    assert_eq!(
        commit_count(&e.repos[0]),
        1,
        "nothing written while another holder has the lock"
    );

    // The other holder crashed: its lease runs out.
    store
        .acquire_lock("consistency-sweep", "local-timer-run", 0, now - 60_000)
        .await
        .unwrap();
    let ran = run_sweep(&e, "sweep-lock-2", manual()).await;
    assert!(!ran.lock_skipped);
    assert_eq!(ran.repos_processed.len(), 1);
    assert!(
        store
            .lock_holder("consistency-sweep")
            .await
            .unwrap()
            .is_none(),
        "released at the end"
    );
}

#[tokio::test]
async fn a_lease_whose_run_has_closed_is_taken_over_and_an_operator_releases_one_on_record() {
    let e = env("takeover", Backend::Sqlite, 1, 1, "").await;
    let _worker = Steward::worker(&e.config, &e.server.address);
    let first = run_sweep(&e, "sweep-takeover-1", manual()).await;
    assert!(!first.lock_skipped);

    // The first run ended without letting go (as a run terminated or
    // killed mid-way leaves it): its lease still has an hour to run.
    let store = Store::connect(&e.db).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    store
        .acquire_lock(ids::SWEEP_LOCK, &first.run_id, 3600, now)
        .await
        .unwrap();
    let listed = e.ok(&["locks", "list"]);
    let lock = &listed["locks"][0];
    assert_eq!(lock["name"], ids::SWEEP_LOCK, "{listed}");
    assert_eq!(lock["holder"], first.run_id.as_str(), "{listed}");
    assert_eq!(lock["workflow_id"], "sweep-takeover-1", "{listed}");
    assert_eq!(lock["run_status"], "completed", "{listed}");

    let second = run_sweep(&e, "sweep-takeover-2", manual()).await;
    assert!(
        !second.lock_skipped,
        "a lease whose run has closed is taken over, not waited out"
    );
    assert_eq!(
        second.repos_processed.len() + second.skipped_clean.len(),
        1,
        "{second:?}"
    );
    let listed = e.ok(&["locks", "list"]);
    assert_eq!(
        listed["locks"],
        serde_json::json!([]),
        "released at the end"
    );
    let event = &listed["events"][0];
    assert_eq!(event["action"], "taken-over", "{listed}");
    assert_eq!(event["holder"], first.run_id.as_str(), "{listed}");
    assert_eq!(event["by"], second.run_id.as_str(), "{listed}");
    assert!(
        event["reason"].as_str().unwrap().contains("has closed"),
        "{listed}"
    );

    // A holder that is no run Temporal knows is never taken over: the
    // sweep skips, and an operator releases it, on record.
    store
        .acquire_lock(ids::SWEEP_LOCK, "old-timer-host", 3600, now)
        .await
        .unwrap();
    let third = run_sweep(&e, "sweep-takeover-3", manual()).await;
    assert!(third.lock_skipped);
    assert_eq!(third.lock_holder, "old-timer-host");
    let (code, _, err) = e.cli(&["locks", "release", ids::SWEEP_LOCK, "--by", "alice"]);
    assert_eq!(code, 2, "a release needs a reason: {err}");
    assert!(err.contains("--reason"), "{err}");
    let released = e.ok(&[
        "locks",
        "release",
        ids::SWEEP_LOCK,
        "--reason",
        "the old timer host was retired",
        "--by",
        "alice",
    ]);
    assert_eq!(released["holder"], "old-timer-host", "{released}");
    let listed = e.ok(&["locks", "list"]);
    let event = &listed["events"][0];
    assert_eq!(event["action"], "released", "{listed}");
    assert_eq!(event["by"], "alice", "{listed}");
    assert_eq!(
        event["reason"], "the old timer host was retired",
        "{listed}"
    );
    assert_eq!(event["holder"], "old-timer-host", "{listed}");
    let (code, _, err) = e.cli(&[
        "locks",
        "release",
        ids::SWEEP_LOCK,
        "--reason",
        "again",
        "--by",
        "alice",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no lease named `consistency-sweep`"), "{err}");
    let fourth = run_sweep(&e, "sweep-takeover-4", manual()).await;
    assert!(!fourth.lock_skipped);
}

#[tokio::test]
async fn overlapping_sweeps_one_runs_one_is_lock_skipped() {
    let e = env("overlap", Backend::Sqlite, 12, 2, "").await;
    // 12 repos one at a time, 0.5 s each: the first sweep holds the lock
    // for 6 s or more, long past the second one's try.
    e.slow_commits(0.5);
    let _worker = Steward::worker(&e.config, &e.server.address);
    let input = SweepInput {
        source: "manual".into(),
        concurrency: 1,
        ..Default::default()
    };
    let a = start!(e, "sweep-overlap-a", input.clone());
    wait_for(
        "the first sweep to hold the lock",
        Duration::from_secs(60),
        || async {
            let store = Store::connect(&e.db).await.ok()?;
            store.lock_holder("consistency-sweep").await.ok().flatten()
        },
    )
    .await
    .unwrap();
    let b = run_sweep(
        &e,
        "sweep-overlap-b",
        SweepInput {
            source: "local-timer".into(),
            ..input
        },
    )
    .await;
    let a = a
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
    assert!(!a.lock_skipped);
    assert_eq!(a.repos_processed.len(), 12);
    assert!(b.lock_skipped, "{b:?}");
}

#[tokio::test]
async fn budget_skips_repos_and_they_go_first_next_time() {
    let e = env("budget", Backend::Sqlite, 30, 1, "").await;
    // Each repo's writeback takes 0.2 s or more, so a 1 s budget ends
    // after at most 5 of the 30 however fast the machine is.
    e.slow_commits(0.2);
    let _worker = Steward::worker(&e.config, &e.server.address);
    let tight = SweepInput {
        source: "manual".into(),
        max_seconds: 1,
        concurrency: 1,
        ..Default::default()
    };
    let first = run_sweep(&e, "sweep-budget-1", tight.clone()).await;
    assert!(
        !first.skipped_budget.is_empty(),
        "30 repos one at a time take 6 s or more: {first:?}"
    );
    assert!(!first.repos_processed.is_empty());
    let starved = first.skipped_budget.clone();

    let second = run_sweep(&e, "sweep-budget-2", tight).await;
    let done_second: Vec<&str> = second
        .repos_processed
        .iter()
        .map(|r| r.repo.as_str())
        .collect();
    assert_eq!(
        done_second.first().copied(),
        Some(starved[0].as_str()),
        "starved repos start first"
    );
    assert!(!second.skipped_budget.contains(&starved[0]));

    let all = run_sweep(&e, "sweep-budget-3", manual()).await;
    assert!(all.skipped_budget.is_empty());
    for repo in &e.repos {
        assert_eq!(
            commit_count(repo),
            2,
            "every repo written back exactly once"
        );
    }
}

#[tokio::test]
async fn killing_the_worker_mid_sweep_resumes_without_redoing_repos() {
    let e = env("kill", Backend::Sqlite, 16, 2, "").await;
    // 0.25 s a repo on each of 2 lanes: 4 or more repos (0.5 s) are left
    // when the kill comes, so it lands mid-sweep.
    e.slow_commits(0.25);
    let mut worker = Steward::worker(&e.config, &e.server.address);
    let handle = start!(
        e,
        "sweep-kill",
        SweepInput {
            source: "manual".into(),
            concurrency: 2,
            ..Default::default()
        }
    );
    // A different kill point each run: after 1 to 12 of the 16 repos.
    let kill_after = 1 + (uuid::Uuid::new_v4().as_u128() % 12) as u32;
    eprintln!("fault: kill -9 of the worker after {kill_after} repos");
    let store = wait_swept(&e, kill_after.into()).await;
    worker.kill9();
    let at_kill = swept(&store).await.unwrap();
    assert!(
        at_kill < 16,
        "the kill landed mid-sweep ({at_kill} of 16 swept)"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.restart();
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("sweep finished after the restart")
    .unwrap();
    assert_sweep_lost_nothing(&e, &result, 2).await;
}

#[tokio::test]
async fn killing_the_server_mid_sweep_resumes_without_redoing_repos() {
    let mut e = env("server-kill", Backend::Sqlite, 16, 2, "").await;
    e.slow_commits(0.25);
    let _worker = Steward::worker(&e.config, &e.server.address);
    let _started = start!(
        e,
        "sweep-server-kill",
        SweepInput {
            source: "manual".into(),
            concurrency: 2,
            ..Default::default()
        }
    );
    let kill_after = 1 + (uuid::Uuid::new_v4().as_u128() % 12) as u32;
    eprintln!("fault: kill -9 of the server after {kill_after} repos");
    let store = wait_swept(&e, kill_after.into()).await;
    e.server.kill9();
    let at_kill = swept(&store).await.unwrap();
    assert!(
        at_kill < 16,
        "the kill landed mid-sweep ({at_kill} of 16 swept)"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    e.server.restart().await;
    let client = e.server.client().await;
    let result = tokio::time::timeout(
        Duration::from_secs(180),
        client
            .get_workflow_handle::<ConsistencySweep>("sweep-server-kill")
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("sweep finished after the server came back")
    .unwrap();
    assert_sweep_lost_nothing(&e, &result, 2).await;
}

/// "Nothing lost" after a fault during a sweep over `e.repos` with `plans`
/// workplans each: every repo processed and listed once, no finding,
/// exactly one writeback commit per repo and each id written once, one
/// store record per workplan, no leaked lock, every run closed and no
/// failed workflow task.
async fn assert_sweep_lost_nothing(e: &Env, result: &SweepResult, plans: usize) {
    assert_eq!(result.exit_code, 0, "{result:?}");
    assert_eq!(result.repos_processed.len(), e.repos.len(), "{result:?}");
    assert!(
        result.assessment_failures.is_empty(),
        "a writeback cut off mid-way leaves no dirty repo: {result:?}"
    );
    for (i, repo) in e.repos.iter().enumerate() {
        assert_eq!(
            commit_count(repo),
            2,
            "repo {i}: exactly one writeback commit"
        );
        for p in 0..plans {
            let text = read(&repo.join(format!("workplans/R{i:02}-WP-{p}.md")));
            assert_eq!(
                text.matches("state_hub_workstream_id").count(),
                1,
                "repo {i}"
            );
        }
    }
    let store = Store::connect(&e.db).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workstreams")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n as usize, e.repos.len() * plans);
    assert!(
        store
            .lock_holder("consistency-sweep")
            .await
            .unwrap()
            .is_none(),
        "no leaked lock"
    );
    assert_every_run_closed_without_task_failures(&e.server.client().await).await;
}

#[tokio::test]
async fn task_set_status_is_written_back_by_the_next_sweep_with_a_byte_exact_diff() {
    let e = env("setstatus", Backend::Postgres, 1, 1, "").await;
    let _worker = Steward::worker(&e.config, &e.server.address);
    run_sweep(&e, "sweep-status-1", manual()).await;
    let path = e.repos[0].join("workplans/R00-WP-0.md");
    let before = read(&path);
    let (code, out, err) = e.cli(&[
        "task",
        "set-status",
        "R00-WP-0-T02",
        "blocked",
        "--reason",
        "waiting on vendor",
        "--by",
        "ana",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"state\": \"pending\""), "{out}");
    let (code, _, err) = e.cli(&[
        "task",
        "set-status",
        "R00-WP-0-T02",
        "sideways",
        "--reason",
        "x",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("status `sideways` is not one of"), "{err}");
    let (code, _, err) = e.cli(&["task", "set-status", "NOPE-T1", "done", "--reason", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown task `NOPE-T1`"), "{err}");

    let (code, out, err) = e.cli(&["sweep", "run"]);
    assert_eq!(code, 0, "{err}");
    let result: SweepResult = serde_json::from_str(&out).unwrap();
    assert_eq!(
        result.repos_processed[0].actions,
        vec![
            "status changes written: 1",
            "tasks updated: 1",
            "writeback commits: 1"
        ]
    );
    let mut expected = before.clone();
    let t2 = expected.find("id: R00-WP-0-T02\nstatus: todo").unwrap();
    expected.replace_range(
        t2..t2 + "id: R00-WP-0-T02\nstatus: todo".len(),
        "id: R00-WP-0-T02\nstatus: blocked",
    );
    assert_eq!(read(&path), expected);
}

#[tokio::test]
async fn config_errors_stop_before_anything_runs() {
    let dir = temp_dir();
    let cfg = dir.path().join("steward.toml");
    std::fs::write(&cfg, "[sweep]\nmax_secondz = 3\n").unwrap();
    let (code, out, err) = run_steward(&cfg, "127.0.0.1:1", &["sweep", "run"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("unknown field `max_secondz`") && err.contains(&cfg.display().to_string()),
        "{err}"
    );
    let (code, _, err) = run_steward(&dir.path().join("missing.toml"), "127.0.0.1:1", &["worker"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml: cannot read"), "{err}");
}

#[tokio::test]
async fn a_sweep_over_12000_repos_keeps_its_history_under_4096_events() {
    // One activity per repo would pass Temporal's hard limit near 12,000
    // repos. Repos whose path is absent cost a batch what real ones do in
    // history events, so they measure the history as well.
    let e = env("twelve-thousand", Backend::Sqlite, 0, 0, "").await;
    let mut cfg = read(&e.config);
    for i in 0..12_000 {
        cfg.push_str(&format!(
            "\n[[repos]]\nname = \"absent-{i:05}\"\npath = \"{}\"\n",
            e.root.join(format!("absent-{i:05}")).display()
        ));
    }
    std::fs::write(&e.config, cfg).unwrap();
    let _worker = Steward::worker(&e.config, &e.server.address);
    let result = tokio::time::timeout(
        Duration::from_secs(600),
        start!(e, "sweep-12000", manual()).get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the sweep finished")
    .unwrap();
    let counts = result.repo_counts.expect("every repo counted");
    assert_eq!(
        counts.skipped_missing, 12_000,
        "budget-skipped: {}",
        counts.skipped_budget
    );
    assert_eq!(
        result.skipped_missing.len(),
        steward_proto::limits::SWEEP_REPOS_LISTED,
        "the list stops at the limit"
    );
    assert_eq!(
        result.repos_omitted as usize,
        12_000 - steward_proto::limits::SWEEP_REPOS_LISTED
    );
    let events = steward_worker::history::fetch_events(&e.client, "sweep-12000", None)
        .await
        .unwrap();
    let batches = events
        .iter()
        .filter(|ev| {
            format!("{ev:?}").contains("steward.sweep.batch")
                && format!("{ev:?}").contains("ActivityTaskScheduled")
        })
        .count();
    eprintln!(
        "12,000 repos: {} history events, {batches} batches",
        events.len()
    );
    assert!(events.len() < 4096, "history has {} events", events.len());
    assert!(
        batches <= steward_proto::limits::MAX_SWEEP_BATCHES,
        "{batches} batches"
    );
}

/// Events of sweep `id`'s history about batch activities.
async fn batch_events(e: &Env, id: &str) -> usize {
    steward_worker::history::fetch_events(&e.client, id, None)
        .await
        .unwrap()
        .iter()
        .filter(|ev| format!("{ev:?}").contains("steward.sweep.batch"))
        .count()
}

#[tokio::test]
async fn an_unchanged_estate_is_swept_by_the_plan_alone() {
    let e = env("plan-clean", Backend::Sqlite, 6, 1, "").await;
    let _worker = Steward::worker(&e.config, &e.server.address);
    let first = run_sweep(&e, "sweep-plan-clean-1", manual()).await;
    assert_eq!(first.repos_processed.len(), 6, "{first:?}");
    let second = run_sweep(&e, "sweep-plan-clean-2", manual()).await;
    assert_eq!(second.skipped_clean.len(), 6, "{second:?}");
    assert_eq!(
        batch_events(&e, "sweep-plan-clean-2").await,
        0,
        "no repo activity at all"
    );
    // One repo changes: one batch with that repo, the rest clean.
    let plan = e.repos[3].join("workplans/R03-WP-0.md");
    let text = read(&plan).replacen("status: todo", "status: done", 1);
    std::fs::write(&plan, text).unwrap();
    steward_tests::commit_all(&e.repos[3], "a task is done");
    let third = run_sweep(&e, "sweep-plan-clean-3", manual()).await;
    assert_eq!(third.skipped_clean.len(), 5, "{third:?}");
    assert!(batch_events(&e, "sweep-plan-clean-3").await > 0);
    let full = run_sweep(
        &e,
        "sweep-plan-clean-4",
        SweepInput {
            full: true,
            ..manual()
        },
    )
    .await;
    assert!(
        full.skipped_clean.is_empty(),
        "--full reads every repo: {full:?}"
    );
}

#[tokio::test]
async fn a_repo_that_fails_is_an_automation_error_and_the_sweep_goes_on() {
    let e = env("automation", Backend::Sqlite, 2, 1, "").await;
    // repo-01's workplans folder is a file: its activity fails every attempt.
    std::fs::remove_dir_all(e.repos[1].join("workplans")).unwrap();
    std::fs::write(e.repos[1].join("workplans"), "not a folder").unwrap();
    steward_tests::commit_all(&e.repos[1], "break it");
    let _worker = Steward::worker(&e.config, &e.server.address);
    let (code, out, err) = e.cli(&["sweep", "run"]);
    assert_eq!(code, 1, "automation errors make the exit code 1: {err}");
    let result: SweepResult = serde_json::from_str(&out).unwrap();
    assert!(result.automation_error);
    assert_eq!(result.automation_errors.len(), 1);
    assert_eq!(result.automation_errors[0].repo, "repo-01");
    assert!(
        result.automation_errors[0]
            .message
            .contains("Not a directory"),
        "{:?}",
        result.automation_errors
    );
    assert_eq!(
        result.repos_processed.len(),
        1,
        "the other repo was still processed"
    );
    assert_eq!(result.repos_processed[0].repo, "repo-00");
}

/// Waits until the sweep behind `$handle` has finished `$n` repos.
#[tokio::test]
async fn a_second_worker_on_the_queue_finishes_the_sweep_a_killed_worker_started() {
    let e = env("two-workers", Backend::Sqlite, 16, 2, "").await;
    let mut a = Steward::worker_with(&e.config, &e.server.address, &["--build-id", "steward-a"]);
    let handle = start!(
        e,
        "sweep-two-workers",
        SweepInput {
            source: "manual".into(),
            concurrency: 2,
            ..Default::default()
        }
    );
    wait_swept(&e, 3).await;
    let b = Steward::worker_with(&e.config, &e.server.address, &["--build-id", "steward-b"]);
    wait_for("worker b to poll", Duration::from_secs(30), || async {
        b.log()
            .contains("worker build id `steward-b`")
            .then_some(())
    })
    .await
    .unwrap();
    a.kill9();
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("worker b finished the sweep")
    .unwrap();
    assert_sweep_lost_nothing(&e, &result, 2).await;

    // Each worker's build id is on the workflow tasks it completed.
    let export = e.root.join("two-workers.json");
    let (code, _, err) = e.cli(&[
        "history",
        "sweep-two-workers",
        "--export",
        export.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let history = read(&export);
    assert!(history.contains("steward-a"), "worker a's build id");
    assert!(history.contains("steward-b"), "worker b's build id");
}

#[tokio::test]
async fn the_metrics_endpoint_serves_sdk_and_sweep_metrics() {
    let e = env("metrics", Backend::Sqlite, 3, 1, "").await;
    let addr = format!("127.0.0.1:{}", free_port());
    let _worker = Steward::worker_with(&e.config, &e.server.address, &["--metrics-addr", &addr]);
    let first = run_sweep(&e, "sweep-metrics-1", manual()).await;
    assert_eq!(first.repos_processed.len(), 3);
    let second = run_sweep(&e, "sweep-metrics-2", manual()).await;
    assert_eq!(second.skipped_clean.len(), 3);

    let body = http_get(&addr, "/metrics").expect("the endpoint answers");
    // Prometheus' own checker finds nothing to fix, and every family of
    // steward's is one the rules and the dashboard know of.
    steward_tests::assert_promtool_accepts(&body, "the worker's /metrics");
    for family in body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("steward_"))
    {
        assert!(
            steward_activities::metrics::EXPORTED.contains(&family),
            "{family} is not in metrics::EXPORTED"
        );
    }
    let line = |name: &str, labels: &[&str]| {
        body.lines()
            .find(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
    };
    assert_eq!(
        line(
            "steward_sweeps_total{",
            &["outcome=\"ok\"", "source=\"manual\""]
        )
        .as_deref(),
        Some("2"),
        "{body}"
    );
    assert_eq!(
        line("steward_sweep_repos_total{", &["status=\"processed\""]).as_deref(),
        Some("3"),
        "{body}"
    );
    assert_eq!(
        line("steward_sweep_repos_total{", &["status=\"skipped_clean\""]).as_deref(),
        Some("3"),
        "{body}"
    );
    assert!(
        body.contains("steward_sweep_duration_seconds_bucket"),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("temporal_workflow_completed") && !l.ends_with(" 0")),
        "the SDK's own metrics are on the same endpoint: {body}"
    );
}

#[tokio::test]
async fn replay_check_replays_the_last_closed_runs_fetched_from_the_server() {
    let e = env("replay-server", Backend::Sqlite, 2, 1, "").await;
    let _worker = Steward::worker(&e.config, &e.server.address);
    run_sweep(&e, "sweep-replay-1", manual()).await;
    run_sweep(&e, "sweep-replay-2", manual()).await;

    let check = |args: &[&str]| {
        let (code, out, err) = e.cli(args);
        let json: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|_| panic!("JSON on stdout: {out} {err}"));
        (code, json)
    };
    // Visibility catches up with closed runs asynchronously.
    let all = wait_for(
        "both closed sweeps listed",
        Duration::from_secs(30),
        || async {
            let (code, all) = check(&["replay-check"]);
            assert_eq!(code, 0, "{all}");
            (all["replayed"] == 2).then_some(all)
        },
    )
    .await
    .unwrap();
    assert_eq!(all["failed"], 0, "{all}");

    let (code, one) = check(&["replay-check", "WorkflowId = 'sweep-replay-1'"]);
    assert_eq!(code, 0, "{one}");
    assert_eq!(one["replayed"], 1);
    assert!(
        one["histories"][0]["source"]
            .as_str()
            .unwrap()
            .starts_with("sweep-replay-1/")
    );

    let (code, _, err) = e.cli(&["replay-check", "WorkflowId = 'unclosed"]);
    assert_eq!(code, 2, "a malformed query is an error: {err}");
    assert!(err.contains("listing workflows matching"), "{err}");
}

fn alerts_of_kind(e: &Env, kind: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = e.cli(&["alerts", "list"]);
    assert_eq!(code, 0, "{err}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    all.into_iter().filter(|a| a["kind"] == kind).collect()
}

#[tokio::test]
async fn the_dead_mans_switch_alerts_once_per_stale_episode() {
    let e = env(
        "deadman",
        Backend::Sqlite,
        1,
        1,
        "[guard]\ncheck_seconds = 1\nmax_sweep_age_seconds = 3\npause_after_errors = 0\n",
    )
    .await;
    let _worker = Steward::worker(&e.config, &e.server.address);
    let first = wait_for("a dead-man alert", Duration::from_secs(30), || async {
        let alerts = alerts_of_kind(&e, "sweep.deadman");
        (!alerts.is_empty()).then_some(alerts)
    })
    .await
    .unwrap();
    assert_eq!(first[0]["severity"], "critical");
    assert!(
        first[0]["message"]
            .as_str()
            .unwrap()
            .contains("no successful consistency sweep recorded"),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        alerts_of_kind(&e, "sweep.deadman").len(),
        1,
        "still stale: no second alert for the same episode"
    );

    // A successful sweep ends the episode; when it goes stale again, a new
    // alert names it.
    let done = run_sweep(&e, "sweep-deadman-1", manual()).await;
    assert_eq!(done.exit_code, 0);
    // The sweep completed: the first episode's alert is over.
    wait_for(
        "the first alert resolved",
        Duration::from_secs(30),
        || async {
            alerts_of_kind(&e, "sweep.deadman")
                .iter()
                .any(|a| a["resolved_at"].is_string())
                .then_some(())
        },
    )
    .await
    .unwrap();
    let second = wait_for(
        "a second dead-man alert",
        Duration::from_secs(30),
        || async {
            let alerts = alerts_of_kind(&e, "sweep.deadman");
            (alerts.len() == 2).then_some(alerts)
        },
    )
    .await
    .unwrap();
    assert!(
        second
            .iter()
            .any(|a| a["message"].as_str().unwrap().contains("sweep-deadman-1")),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_schedule_is_paused_after_consecutive_automation_errors_and_stays_paused_until_resumed() {
    let e = env(
        "autopause",
        Backend::Sqlite,
        2,
        1,
        "[guard]\ncheck_seconds = 1\nmax_sweep_age_seconds = 0\npause_after_errors = 2\n\n\
         [[schedules]]\nname = \"sweep\"\ncron = \"0 0 1 1 *\"\n",
    )
    .await;
    let text = read(&e.config).replace("schedules = []\n", "");
    std::fs::write(&e.config, text).unwrap();
    // repo-01's workplans folder is a file: its activity fails every attempt.
    std::fs::remove_dir_all(e.repos[1].join("workplans")).unwrap();
    std::fs::write(e.repos[1].join("workplans"), "not a folder").unwrap();
    steward_tests::commit_all(&e.repos[1], "break it");
    let (code, _, err) = e.cli(&["schedules", "sync"]);
    assert_eq!(code, 0, "{err}");
    let _worker = Steward::worker(&e.config, &e.server.address);

    let store = Store::connect(&e.db).await.unwrap();
    let schedule = e.client.get_schedule_handle(ids::schedule("sweep"));
    let list = || {
        let (code, out, err) = e.cli(&["schedules", "list"]);
        assert_eq!(code, 0, "{err}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        rows.into_iter()
            .find(|r| r["id"] == ids::schedule("sweep").as_str())
            .unwrap()
    };
    for n in 1..=2 {
        assert_eq!(list()["paused"], false, "not paused before sweep {n}");
        schedule
            .trigger(
                temporalio_client::schedules::ScheduleOverlapPolicy::AllowAll,
                Default::default(),
            )
            .await
            .unwrap();
        wait_for(
            "the scheduled sweep to be recorded",
            Duration::from_secs(60),
            || async {
                let events = store
                    .progress(Some(steward_proto::names::SWEEP_EVENT_TYPE), 0, 10)
                    .await
                    .unwrap();
                (events.len() == n).then_some(())
            },
        )
        .await
        .unwrap();
    }
    let paused = wait_for(
        "the guard to pause the schedule",
        Duration::from_secs(30),
        || async {
            let row = list();
            (row["paused"] == true).then_some(row)
        },
    )
    .await
    .unwrap();
    let reason = paused["paused_reason"].as_str().unwrap();
    assert!(
        reason.contains("2 consecutive sweeps with automation errors")
            && reason.contains("repo-01"),
        "{paused}"
    );
    assert_eq!(alerts_of_kind(&e, "schedule.paused").len(), 1);

    // A sync (a restart of `steward dev`, a deploy) keeps it paused.
    let (code, _, err) = e.cli(&["schedules", "sync"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(list()["paused"], true, "sync does not undo the pause");

    let (code, out, err) = e.cli(&["schedules", "resume", "sweep"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&ids::schedule("sweep")));
    let row = list();
    assert_eq!(row["paused"], false);
    assert!(row["paused_reason"].is_null());
    // The errors that caused the pause do not pause it again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        list()["paused"],
        false,
        "a resumed schedule needs fresh errors"
    );
    assert_eq!(alerts_of_kind(&e, "schedule.paused").len(), 1);

    // An operator's pause is told too, with who, why and what resumes it.
    let (code, _, err) = e.cli(&[
        "schedules",
        "pause",
        "sweep",
        "--reason",
        "database maintenance",
        "--by",
        "ana",
    ]);
    assert_eq!(code, 0, "{err}");
    let paused = alerts_of_kind(&e, "schedule.paused");
    assert_eq!(paused.len(), 2);
    let told = paused
        .iter()
        .map(|a| a["message"].as_str().unwrap_or_default())
        .find(|m| m.contains("paused by ana"))
        .unwrap_or_else(|| panic!("{paused:?}"));
    assert!(
        told.contains("database maintenance") && told.contains("steward schedules resume sweep"),
        "{told}"
    );

    let (code, _, err) = e.cli(&["schedules", "resume", "nightly"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no schedule named `nightly` in the config (configured: sweep)"),
        "{err}"
    );
}

#[tokio::test]
async fn fifty_concurrent_sweeps_on_a_one_workflow_cache_all_finish_without_task_failures() {
    let e = env(
        "cache-one",
        Backend::Sqlite,
        2,
        1,
        "[worker]\nmax_cached_workflows = 1\n",
    )
    .await;
    let _worker = Steward::worker(&e.config, &e.server.address);
    let mut handles = Vec::new();
    for i in 0..50 {
        handles.push(start!(e, &format!("sweep-cache-{i:02}"), manual()));
    }
    let results = futures::future::join_all(
        handles
            .iter()
            .map(|h| h.get_result(WorkflowGetResultOptions::default())),
    );
    let results = tokio::time::timeout(Duration::from_secs(300), results)
        .await
        .expect("every sweep finished");
    let mut ran = 0;
    for (i, r) in results.into_iter().enumerate() {
        let r = r.unwrap_or_else(|err| panic!("sweep {i}: {err}"));
        assert_eq!(r.exit_code, 0, "sweep {i}: {r:?}");
        if !r.lock_skipped {
            ran += 1;
        }
    }
    assert!(ran >= 1, "at least one sweep held the lock");
    for repo in &e.repos {
        assert_eq!(commit_count(repo), 2, "one writeback, whatever ran");
    }
    // Every task of every workflow replayed (the cache holds one), and none
    // failed.
    assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn a_worker_cut_off_from_the_server_for_30_s_loses_nothing() {
    let e = env("cut-off", Backend::Sqlite, 40, 2, "").await;
    e.slow_commits(0.1);
    let worker = Steward::worker(&e.config, &e.server.address);
    let handle = start!(
        e,
        "sweep-cut-off",
        SweepInput {
            source: "manual".into(),
            concurrency: 2,
            ..Default::default()
        }
    );
    wait_swept(&e, 3).await;
    let before = handle
        .query(ConsistencySweep::progress, (), Default::default())
        .await
        .unwrap();
    e.server.signal(libc::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(30)).await;
    e.server.signal(libc::SIGCONT);
    assert!(
        before.repos_done < 40,
        "work was left when the server stopped: {before:?}"
    );
    let result = tokio::time::timeout(
        Duration::from_secs(180),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the sweep finished after the server came back")
    .unwrap();
    assert_sweep_lost_nothing(&e, &result, 2).await;
    assert!(
        !worker.log().contains("panicked"),
        "the worker rode it out: {}",
        worker.log()
    );
}

/// Whether `flock -n PATH true` gets the lock, as a legacy cron job would.
fn flock_free(path: &std::path::Path) -> bool {
    std::process::Command::new("flock")
        .arg("-n")
        .arg(path)
        .arg("true")
        .status()
        .expect("running flock (util-linux)")
        .success()
}

const EXTERNAL_LOCK: &str = "[sweep]\nexternal_lock = \"legacy-sweep.lock\"\nconcurrency = 1\n";

#[tokio::test]
async fn the_external_lock_of_the_legacy_runner_is_honoured_both_ways() {
    let e = env("external-lock", Backend::Sqlite, 20, 2, EXTERNAL_LOCK).await;
    e.slow_commits(0.2);
    let lock = e.root.join("legacy-sweep.lock");
    // The legacy job holds it: steward's sweep is skipped, naming it.
    // `-o`: the lock stays with flock itself, not with its `sleep`, so
    // killing flock is the legacy job ending.
    let mut legacy = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "120"])
        .spawn()
        .unwrap();
    wait_for("the legacy job's lock", Duration::from_secs(10), || async {
        (!flock_free(&lock)).then_some(())
    })
    .await
    .unwrap();
    let _worker = Steward::worker(&e.config, &e.server.address);
    let skipped = run_sweep(&e, "sweep-external-1", manual()).await;
    assert!(skipped.lock_skipped, "{skipped:?}");
    assert_eq!(skipped.lock_holder, format!("external:{}", lock.display()));
    assert!(skipped.repos_processed.is_empty());
    legacy.kill().unwrap();
    legacy.wait().unwrap();

    // Steward holds it for the whole sweep: a legacy job started meanwhile
    // finds it taken; it is free again once the sweep ends.
    let handle = start!(e, "sweep-external-2", manual());
    wait_swept(&e, 1).await;
    assert!(
        !flock_free(&lock),
        "a legacy job sees the lock taken mid-sweep"
    );
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
    assert!(
        !result.lock_skipped && !result.automation_error,
        "{result:?}"
    );
    assert_eq!(result.repos_processed.len(), 20);
    wait_for(
        "the lock free after the sweep",
        Duration::from_secs(10),
        || async { flock_free(&lock).then_some(()) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_worker_killed_holding_the_external_lock_releases_it_and_the_next_sweep_takes_it() {
    let e = env("external-kill", Backend::Sqlite, 20, 2, EXTERNAL_LOCK).await;
    e.slow_commits(0.2);
    let lock = e.root.join("legacy-sweep.lock");
    let mut worker = Steward::worker(&e.config, &e.server.address);
    let handle = start!(e, "sweep-external-kill", manual());
    wait_swept(&e, 2).await;
    assert!(!flock_free(&lock), "steward holds it mid-sweep");
    worker.kill9();
    wait_for(
        "the lock released with the process",
        Duration::from_secs(10),
        || async { flock_free(&lock).then_some(()) },
    )
    .await
    .unwrap();
    worker.restart();
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the sweep finished after the restart")
    .unwrap();
    assert!(
        !result.lock_skipped && !result.automation_error,
        "{result:?}"
    );
    let next = run_sweep(&e, "sweep-external-next", manual()).await;
    assert!(!next.lock_skipped, "the next sweep takes it: {next:?}");
    assert!(flock_free(&lock), "and gives it back");
    assert_every_run_closed_without_task_failures(&e.client).await;
}

/// The worker's `steward_retries` samples, from its metrics endpoint:
/// every pass or attempt done again, by step and reason.
fn retries(metrics_addr: &str) -> Vec<String> {
    let text = http_get(metrics_addr, "/metrics").expect("the worker serves /metrics");
    assert!(text.contains("steward_sweep"), "steward's metrics: {text}");
    text.lines()
        .filter(|l| l.starts_with("steward_retries"))
        .filter(|l| !l.trim_end().ends_with(" 0"))
        .map(str::to_string)
        .collect()
}

/// A first sweep of 60 repos, each with ids to assign and a finding to
/// open, in 16 lanes on the SQLite default, while the archiver, the guard
/// and a backfill on the same SQLite file write too: every repo done in
/// one pass, nothing retried, and each repo's record says what was done.
#[tokio::test]
async fn sixty_repos_in_sixteen_lanes_on_sqlite_need_no_second_pass_beside_other_writers() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let dir_db = temp_dir();
    let store_file = dir_db.path().join("state.db");
    let store_url = format!("sqlite://{}", store_file.display());
    // The backfill's rows live in the store's own file: its batches and the
    // sweep's lanes take the same write lock.
    {
        let store = Store::connect(&store_url).await.unwrap();
        sqlx::query("CREATE TABLE bf_rows (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) \
             INSERT INTO bf_rows SELECT i, 0 FROM n",
        )
        .execute(store.pool())
        .await
        .unwrap();
    }
    let extra = format!(
        r#"database_url = "{store_url}"
[sweep]
concurrency = 16
batch_size = 1
[worker]
metrics_addr = "{metrics}"
[audit]
archive_seconds = 1
[guard]
check_seconds = 1

[[backfills]]
name = "beside"
database_url = "{store_url}"
count_sql = "SELECT COUNT(*) FROM bf_rows"
next_range_sql = "SELECT MIN(id), MAX(id) FROM (SELECT id FROM bf_rows WHERE id > $1 ORDER BY id LIMIT $2) x"
apply_sql = "UPDATE bf_rows SET v = v + 1 WHERE id BETWEEN $1 AND $2 AND $3 <> ''"
rollback_sql = "UPDATE bf_rows SET v = 0 WHERE $1 <> ''"
batch_size = 2
"#
    );
    let mut e = env("contention", Backend::Sqlite, 60, 2, "").await;
    // The config env() wrote, with this test's store and settings.
    let text = read(&e.config);
    let text = text
        .lines()
        .filter(|l| !l.starts_with("database_url"))
        .collect::<Vec<_>>()
        .join("\n")
        .replacen("schedules = []\n", &format!("schedules = []\n{extra}\n"), 1);
    std::fs::write(&e.config, text).unwrap();
    for (i, repo) in e.repos.iter().enumerate() {
        std::fs::write(
            repo.join("workplans/odd.md"),
            workplan(&format!("ODD-{i:02}"), 1).replace("status: todo", "status: someday"),
        )
        .unwrap();
        steward_tests::git(repo, &["add", "-A"]);
        steward_tests::git(repo, &["commit", "-qm", "a task with an odd status"]);
    }
    e.start_worker();
    let (code, _, err) = e.cli(&[
        "backfill",
        "start",
        "beside",
        "--freeze-at",
        "now",
        "--reason",
        "beside the sweep",
    ]);
    assert_eq!(code, 0, "{err}");
    let result = run_sweep(
        &e,
        "sweep-contention",
        SweepInput {
            source: "manual".into(),
            concurrency: 16,
            ..Default::default()
        },
    )
    .await;
    assert!(
        result.automation_errors.is_empty(),
        "{:?}",
        result.automation_errors
    );
    assert_eq!(result.counts().processed, 60, "{result:?}");
    for repo in &result.repos_processed {
        let actions = repo.actions.join(", ");
        assert!(
            actions.contains("task ids assigned") && actions.contains("writeback commits"),
            "{}: what was done is on the record: {actions}",
            repo.repo
        );
        assert!(
            !actions.contains("earlier attempt"),
            "{}: done in one pass: {actions}",
            repo.repo
        );
    }
    assert!(result.open_findings >= 60, "{result:?}");
    let backfill =
        e.h.result::<steward_workflows::BackfillRollout>(
            &ids::backfill("beside"),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(backfill.outcome, "done", "{backfill:?}");
    assert_eq!(backfill.rows, 400);
    let retried = retries(&metrics);
    assert!(retried.is_empty(), "nothing was done twice: {retried:?}");
    assert!(
        !e.worker_log().contains("trying it again"),
        "{}",
        e.worker_log()
    );
}

#[tokio::test]
async fn a_pass_done_again_is_logged_and_counted() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut e = env(
        "retried",
        Backend::Sqlite,
        2,
        1,
        &format!("[worker]\nmetrics_addr = \"{metrics}\"\n"),
    )
    .await;
    // repo-01's workplans folder is a file: each of its passes fails.
    std::fs::remove_dir_all(e.repos[1].join("workplans")).unwrap();
    std::fs::write(e.repos[1].join("workplans"), "not a folder").unwrap();
    steward_tests::commit_all(&e.repos[1], "break it");
    e.start_worker();
    let result = run_sweep(&e, "sweep-retried", manual()).await;
    assert_eq!(result.automation_errors.len(), 1, "{result:?}");
    let log = e.worker_log();
    assert_eq!(
        log.matches("the repo's pass failed; trying it again")
            .count(),
        2,
        "two passes done again, each logged: {log}"
    );
    assert!(log.contains("repo-01"), "{log}");
    let retried = retries(&metrics);
    assert!(
        retried.iter().any(|l| l.contains("step=\"sweep.repo\"")
            && l.contains("reason=\"io\"")
            && l.ends_with(" 2")),
        "{retried:?}"
    );
}

#[tokio::test]
async fn path_repos_pinned_to_two_hosts_are_each_swept_by_a_worker_of_their_host() {
    let mut e = env(
        "hosts-sweep",
        Backend::Postgres,
        5,
        1,
        "[worker]\nhost = \"h1\"\n",
    )
    .await;
    // repo-00..01 live on h1, repo-02..03 on h2, repo-04 anywhere.
    let pins = ["h1", "h1", "h2", "h2", ""];
    let mut text = read(&e.config);
    for (i, host) in pins.iter().enumerate().filter(|(_, h)| !h.is_empty()) {
        let name = format!("name = \"repo-{i:02}\"\n");
        assert!(text.contains(&name));
        text = text.replace(&name, &format!("{name}runs_on = \"{host}\"\n"));
    }
    std::fs::write(&e.config, &text).unwrap();
    let h2 = e.root.join("h2.toml");
    let data = format!("data_dir = \"{}\"", e.root.join("data").display());
    assert!(text.contains(&data));
    std::fs::write(
        &h2,
        text.replace(
            &data,
            &format!("data_dir = \"{}\"", e.root.join("data-h2").display()),
        )
        .replace("host = \"h1\"", "host = \"h2\""),
    )
    .unwrap();
    let (code, out, err) = e.cli(&["check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("h1") && out.contains("h2"),
        "the hosts named: {out}"
    );
    e.start_worker();
    let _h2 = Steward::worker(&h2, &e.server.address);

    let swept = e.ok(&["sweep", "run"]);
    assert!(
        swept["skipped_missing"]
            .as_array()
            .is_none_or(|missing| missing.is_empty()),
        "{swept}"
    );
    let processed: Vec<&str> = swept["repos_processed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["repo"].as_str())
        .collect();
    assert_eq!(processed.len(), 5, "every repo had ids to assign: {swept}");
    let id = swept["workflow_id"].as_str().unwrap();
    let timeline = e.ok(&["history", id, "--json"]);
    let mut seen = Vec::new();
    for entry in timeline.as_array().unwrap() {
        if entry["name"] != steward_proto::names::SWEEP_BATCH {
            continue;
        }
        let worker = entry["detail"]["worker"].as_str().unwrap_or_default();
        for repo in entry["detail"]["input"]["repos"].as_array().unwrap() {
            let i: usize = repo.as_str().unwrap()["repo-".len()..].parse().unwrap();
            if !pins[i].is_empty() {
                assert!(
                    worker.ends_with(&format!("host {}", pins[i])),
                    "{repo} is on {} and was swept by `{worker}`",
                    pins[i]
                );
            }
            seen.push(i);
        }
    }
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3, 4], "{timeline}");
    assert_every_run_closed_without_task_failures(&e.client).await;
}
