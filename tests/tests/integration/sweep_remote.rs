//! Repos reached by URL only: a real git server on loopback (`git daemon`)
//! serves bare repos, three `steward worker` processes with separate data
//! dirs (no shared disk; the state store on PostgreSQL) share one task
//! queue, each with its own clones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use steward_activities::Store;
use steward_proto::v1::{SweepInput, SweepResult};
use steward_tests::{
    Backend, GitDaemon, Harness, Steward, bare_copy, commit_count, database, git, make_repo,
    task_queue, temp_dir, wait_for, workplan,
};
use steward_workflows::ConsistencySweep;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

const REPOS: usize = 24;

/// A worker's config: its own data dir, the shared store and queue, the
/// repos by URL.
fn worker_config(root: &Path, who: &str, db: &str, queue: &str, daemon: &GitDaemon) -> PathBuf {
    let dir = root.join(format!("worker-{who}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = format!(
        "data_dir = \"{}\"\ndatabase_url = \"{db}\"\ntask_queue = \"{queue}\"\nschedules = []\n",
        dir.join("data").display()
    );
    for i in 0..REPOS {
        text.push_str(&format!(
            "\n[[repos]]\nname = \"repo-{i:02}\"\nurl = \"{}\"\n",
            daemon.url(&format!("repo-{i:02}.git"))
        ));
    }
    let config = dir.join("steward.toml");
    std::fs::write(&config, text).unwrap();
    config
}

fn clones(config: &Path) -> Vec<PathBuf> {
    let dir = config.parent().unwrap().join("data/clones");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.sort();
    found
}

async fn swept(db: &str) -> i64 {
    let store = Store::connect(db).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM repo_state")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn workers_without_a_shared_disk_sweep_url_repos_and_write_each_once_in_the_remote() {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let served = root.join("served");
    for i in 0..REPOS {
        let src = root.join(format!("src/repo-{i:02}"));
        let id = format!("U{i:02}");
        make_repo(&src, &[(&format!("workplans/{id}.md"), &workplan(&id, 2))]);
        bare_copy(&src, &served.join(format!("repo-{i:02}.git")));
    }
    std::fs::remove_dir_all(root.join("src")).unwrap();
    let daemon = GitDaemon::serve(&served);
    let db = database(Backend::Postgres, &root).await;
    let queue = task_queue("url-repos");
    let configs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|w| worker_config(&root, w, &db, &queue, &daemon))
        .collect();
    let h = Harness::start(dir, configs[0].clone()).await;
    let mut workers: Vec<Steward> = configs
        .iter()
        .zip(["a", "b", "c"])
        .map(|(c, w)| {
            Steward::worker_with(
                c,
                &h.server.address,
                &["--build-id", &format!("steward-{w}")],
            )
        })
        .collect();

    let id = "sweep-url-repos";
    let handle = h
        .client
        .start_workflow(
            ConsistencySweep::run,
            SweepInput {
                source: "manual".into(),
                concurrency: 3,
                ..Default::default()
            },
            WorkflowStartOptions::new(queue.clone(), id.to_owned()).build(),
        )
        .await
        .unwrap();
    // Kill, mid-sweep, a worker that is sweeping: one that has cloned.
    wait_for("repos to be swept", Duration::from_secs(120), || async {
        (swept(&db).await >= 4).then_some(())
    })
    .await
    .unwrap();
    let busy = (0..3)
        .find(|i| !clones(&configs[*i]).is_empty())
        .expect("a worker cloned");
    eprintln!("fault: kill -9 of worker {busy} mid-sweep");
    workers[busy].kill9();
    let result: SweepResult = tokio::time::timeout(
        Duration::from_secs(240),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the other workers finished the sweep")
    .unwrap();
    assert_eq!(result.exit_code, 0, "{result:?}");
    assert_eq!(result.repos_processed.len(), REPOS, "{result:?}");
    for i in 0..REPOS {
        let bare = served.join(format!("repo-{i:02}.git"));
        assert_eq!(
            commit_count(&bare),
            2,
            "repo-{i:02}: exactly one writeback commit, in the remote"
        );
        let message = git(&bare, &["log", "-1", "--format=%B"]);
        assert!(
            message.contains(&format!("Steward-Sweep: {}", result.run_id)),
            "{message}"
        );
    }
    // More than one worker ran the batches, each in its own clones.
    let events = steward_worker::history::fetch_events(&h.client, id, None)
        .await
        .unwrap();
    let identities: std::collections::BTreeSet<String> = events
        .iter()
        .map(|ev| format!("{ev:?}"))
        .filter(|text| text.contains("ActivityTaskStartedEventAttributes"))
        .filter_map(|text| {
            let from = text.find("identity: \"")? + "identity: \"".len();
            Some(text[from..].split('"').next()?.to_string())
        })
        .collect();
    assert!(identities.len() >= 2, "one worker only: {identities:?}");
    let with_clones = configs.iter().filter(|c| !clones(c).is_empty()).count();
    assert!(with_clones >= 2, "each worker keeps its own clones");

    // A survivor's cache, damaged as a kill -9 can leave it: a clone git
    // cannot read, a half clone, a clone's temporary folder. Meanwhile a
    // person changes a task in the remote.
    for w in &mut workers {
        w.kill9();
    }
    let survivor = (0..3).find(|i| *i != busy).unwrap();
    let cache = configs[survivor].parent().unwrap().join("data/clones");
    let (broken, half) = (cache.join("repo-01"), cache.join("repo-02"));
    if broken.exists() {
        std::fs::write(broken.join(".git/HEAD"), "garbage\n").unwrap();
    }
    let _ = std::fs::remove_dir_all(&half);
    std::fs::create_dir_all(half.join(".git/objects")).unwrap();
    std::fs::create_dir_all(cache.join("repo-02.cloning-999999/.git")).unwrap();
    let person = root.join("person");
    git(
        &root,
        &[
            "clone",
            "-q",
            &daemon.url("repo-05.git"),
            person.to_str().unwrap(),
        ],
    );
    let plan = person.join("workplans/U05.md");
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replacen("status: todo", "status: done", 1);
    std::fs::write(&plan, text).unwrap();
    steward_tests::commit_all(&person, "U05-T01 is done");
    git(&person, &["push", "-q", "origin", "HEAD:main"]);

    let _alone = Steward::worker(&configs[survivor], &h.server.address);
    let again: SweepResult = tokio::time::timeout(
        Duration::from_secs(240),
        h.client
            .start_workflow(
                ConsistencySweep::run,
                SweepInput {
                    source: "manual".into(),
                    full: true,
                    ..Default::default()
                },
                WorkflowStartOptions::new(queue.clone(), "sweep-url-repos-again".to_owned())
                    .build(),
            )
            .await
            .unwrap()
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the repaired caches swept")
    .unwrap();
    assert_eq!(again.exit_code, 0, "{again:?}");
    assert!(again.automation_errors.is_empty(), "{again:?}");
    assert!(
        again.assessment_failures.is_empty(),
        "a cache is put in line, never reported dirty: {again:?}"
    );
    for i in 0..REPOS {
        let bare = served.join(format!("repo-{i:02}.git"));
        let expected = if i == 5 { 3 } else { 2 };
        assert_eq!(
            commit_count(&bare),
            expected,
            "repo-{i:02}: nothing written twice"
        );
    }
    assert_eq!(
        git(&broken, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "main"
    );
    assert_eq!(
        git(&half, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "main"
    );
    assert!(
        !cache.join("repo-02.cloning-999999").exists(),
        "leftovers removed"
    );
    let store = Store::connect(&db).await.unwrap();
    let task = store.task_by_task_id("U05-T01").await.unwrap().unwrap();
    assert_eq!(
        task.file_status, "done",
        "the pull gate fetched the person's change"
    );
}
