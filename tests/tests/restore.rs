//! The `RestoreDrill` workflow on a real Temporal dev server, against both
//! state store backends: a verified drill, a live store left as it was, and
//! corrupted backups that the drill must catch.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use steward_activities::Store;
use steward_activities::restore::{TABLES, database_name, figures};
use steward_tests::{
    BACKENDS, Backend, RepoEntry, Server, Steward, assert_no_planted_secret, database, make_repo,
    run_steward, task_queue, temp_dir, with_planted_password, workplan, write_config,
};

fn drill(config: &Path, address: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["restore-drill", "run"];
    args.extend_from_slice(extra);
    let (code, out, err) = run_steward(config, address, &args);
    let json = serde_json::from_str(&out).unwrap_or_else(|_| panic!("JSON result: {out} {err}"));
    (code, json, err)
}

/// The PostgreSQL drills of this file run one at a time: each checks that
/// no scratch database is left on the server, which another drill running
/// meanwhile would make untrue.
static ONE_DRILL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn scratch_databases() -> Vec<String> {
    let admin = std::env::var("STEWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = steward_activities::store::connect_any(&admin)
        .await
        .unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'steward_drill_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    names
}

/// Replaces the workplan id in the backup: a backup whose content is not
/// what the store held.
fn tamper(backend: Backend, backup: &Path) {
    match backend {
        Backend::Sqlite => {
            let conn = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE workstreams SET title='tampered'\"); c.commit()",
                ])
                .arg(backup)
                .status()
                .unwrap();
            assert!(conn.success());
        }
        Backend::Postgres => {
            let text = std::fs::read_to_string(backup).unwrap();
            let tampered = text.replace("Plan RD-1", "tampered");
            assert_ne!(text, tampered, "the dump holds the workstream title");
            std::fs::write(backup, tampered).unwrap();
        }
    }
}

#[tokio::test]
async fn drills_verify_backups_and_catch_corrupted_ones_on_both_backends() {
    let _one = ONE_DRILL_AT_A_TIME.lock().await;
    for backend in BACKENDS {
        let dir = temp_dir();
        let root = dir.path();
        let repo = root.join("repo");
        make_repo(
            &repo,
            &[
                ("workplans/RD-1.md", &workplan("RD-1", 2)),
                ("workplans/RD-2.md", &workplan("RD-2", 3)),
            ],
        );
        let db = match backend {
            Backend::Sqlite => database(backend, root).await,
            // pg_dump and psql get the password through PGPASSWORD only.
            Backend::Postgres => with_planted_password(&database(backend, root).await),
        };
        let config = write_config(
            root,
            &db,
            &task_queue("restore"),
            &[RepoEntry {
                name: "repo",
                path: &repo,
                remote: None,
                push: false,
            }],
            "[restore]\nkeep = 2\n",
        );
        let server = Server::start(root).await;
        let worker = Steward::worker(&config, &server.address);
        let (code, _, err) = run_steward(&config, &server.address, &["sweep", "run"]);
        assert_eq!(code, 0, "{backend:?}: {err}");

        let live = Store::connect(&db).await.unwrap();
        let before = figures(live.pool()).await.unwrap();
        let (code, result, err) = drill(&config, &server.address, &[]);
        assert_eq!(code, 0, "{backend:?}: {result} {err}");
        assert_eq!(result["outcome"], "verified", "{result}");
        let backup = &result["backup"];
        let rows = |table: &str| {
            backup["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"] == table)
                .unwrap()["rows"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(rows("workstreams"), 2, "{backend:?}");
        assert_eq!(rows("tasks"), 5, "{backend:?}");
        assert_eq!(backup["tables"].as_array().unwrap().len(), TABLES.len());
        let restore = &result["restore"];
        assert!(
            restore["mismatches"].as_array().unwrap().is_empty(),
            "{restore}"
        );
        assert!(
            restore["health"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["ok"] == true),
            "{restore}"
        );
        assert!(restore["restore_seconds"].as_f64().unwrap() > 0.0);

        // The backup is private; the scratch target is gone.
        let backup_path = PathBuf::from(backup["path"].as_str().unwrap());
        let mode = std::fs::metadata(&backup_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o007, 0, "{backend:?}: backup mode {mode:o}");
        match backend {
            Backend::Sqlite => {
                let target = restore["target"].as_str().unwrap();
                assert!(!Path::new(target).exists(), "scratch file removed");
                assert_ne!(target, db.trim_start_matches("sqlite://"));
            }
            Backend::Postgres => {
                assert!(
                    scratch_databases().await.is_empty(),
                    "scratch database dropped"
                );
                assert!(
                    !restore["target"]
                        .as_str()
                        .unwrap()
                        .contains(&database_name(&db))
                );
            }
        }

        // The live store is as it was, but for the drill's own record.
        let after = figures(live.pool()).await.unwrap();
        for (b, a) in before.iter().zip(&after) {
            if b.table == "progress_events" {
                assert_eq!(a.rows, b.rows + 1, "one drill record");
            } else {
                assert_eq!(a, b, "{backend:?}: the drill changed {}", b.table);
            }
        }
        let (code, out, _) = run_steward(&config, &server.address, &["restore-drill", "last"]);
        assert_eq!(code, 0);
        let last: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            last["last_verified_backup"]["backup"]["path"], backup["path"],
            "{last}"
        );

        // A backup whose content changed: the hash and the figures catch it.
        let copy = backup_path.with_extension("tampered");
        std::fs::copy(&backup_path, &copy).unwrap();
        std::fs::copy(
            format!("{}.manifest.json", backup_path.display()),
            format!("{}.manifest.json", copy.display()),
        )
        .unwrap();
        tamper(backend, &copy);
        let (code, bad, _) = drill(
            &config,
            &server.address,
            &["--backup", copy.to_str().unwrap()],
        );
        assert_eq!(code, 1, "{bad}");
        assert_eq!(bad["outcome"], "mismatch", "{bad}");
        let mismatches = bad["restore"]["mismatches"].to_string();
        assert!(
            mismatches.contains("backup file changed since it was taken"),
            "{mismatches}"
        );
        assert!(
            mismatches.contains("table workstreams: same 2 rows, different content"),
            "{backend:?}: {mismatches}"
        );

        // A backup that is not one at all: the restore fails, loudly.
        std::fs::write(&copy, "this is not a backup\n").unwrap();
        let (code, broken, _) = drill(
            &config,
            &server.address,
            &["--backup", copy.to_str().unwrap()],
        );
        assert_eq!(code, 1, "{broken}");
        assert_eq!(broken["outcome"], "failed", "{broken}");
        assert!(
            broken["restore"]["error"]
                .as_str()
                .unwrap()
                .contains("the backup does not restore"),
            "{broken}"
        );
        if backend == Backend::Postgres {
            assert!(
                scratch_databases().await.is_empty(),
                "dropped after a failed restore too"
            );
        }
        let (_, out, _) = run_steward(&config, &server.address, &["alerts", "list"]);
        let alerts: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(
            alerts
                .iter()
                .filter(|a| a["kind"] == "restore.failed")
                .count(),
            2,
            "{backend:?}: one alert per failed drill"
        );
        let (_, out, _) = run_steward(&config, &server.address, &["restore-drill", "last"]);
        let last: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(last["last_drill"]["outcome"], "failed");
        assert_eq!(
            last["last_verified_backup"]["backup"]["path"],
            backup["path"]
        );

        // The store's password is in the config only.
        for (i, r) in [&result, &bad, &broken].into_iter().enumerate() {
            let export = root.join(format!("drill-{i}.history.json"));
            let (code, _, err) = run_steward(
                &config,
                &server.address,
                &[
                    "history",
                    r["workflow_id"].as_str().unwrap(),
                    "--export",
                    export.to_str().unwrap(),
                ],
            );
            assert_eq!(code, 0, "{err}");
        }
        let events = serde_json::to_string(&live.progress(None, 0, 1000).await.unwrap()).unwrap();
        assert!(events.contains("restore_drill"), "the events are searched");
        assert_no_planted_secret(
            root,
            &config,
            &[
                ("progress events", &events),
                ("worker log", &worker.log()),
                ("drill results", &format!("{result}{bad}{broken}")),
            ],
        );
    }
}

#[tokio::test]
async fn a_backup_without_a_manifest_is_refused_with_its_name() {
    let dir = temp_dir();
    let root = dir.path();
    let db = database(Backend::Sqlite, root).await;
    let config = write_config(root, &db, &task_queue("restore-nomanifest"), &[], "");
    let server = Server::start(root).await;
    let _worker = Steward::worker(&config, &server.address);
    let stray = root.join("stray.db");
    std::fs::write(&stray, "x").unwrap();
    let (code, out, err) = run_steward(
        &config,
        &server.address,
        &["restore-drill", "run", "--backup", stray.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("no manifest beside it"), "{err}");
    assert!(err.contains("stray.db"), "{err}");
}

#[tokio::test]
async fn killing_the_worker_at_random_points_of_drills_leaves_nothing_behind() {
    let _one = ONE_DRILL_AT_A_TIME.lock().await;
    use steward_proto::v1::RestoreDrillInput;
    use steward_workflows::RestoreDrill;
    use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

    let dir = temp_dir();
    let root = dir.path();
    let repo = root.join("repo");
    make_repo(&repo, &[("workplans/RK-1.md", &workplan("RK-1", 3))]);
    let db = database(Backend::Postgres, root).await;
    let queue = task_queue("restore-kill");
    let config = write_config(
        root,
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
    let server = Server::start(root).await;
    let client = server.client().await;
    let mut worker = Steward::worker(&config, &server.address);
    let (code, _, err) = run_steward(&config, &server.address, &["sweep", "run"]);
    assert_eq!(code, 0, "{err}");
    let live = Store::connect(&db).await.unwrap();
    let before = figures(live.pool()).await.unwrap();

    for trial in 0..3 {
        let handle = client
            .start_workflow(
                RestoreDrill::run,
                RestoreDrillInput {
                    source: "manual".into(),
                    ..Default::default()
                },
                WorkflowStartOptions::new(queue.clone(), format!("restore-drill-kill-{trial}"))
                    .build(),
            )
            .await
            .unwrap();
        let at = (uuid::Uuid::new_v4().as_u128() % 1500) as u64;
        eprintln!("fault: kill -9 of the worker {at} ms into drill {trial}");
        tokio::time::sleep(std::time::Duration::from_millis(at)).await;
        worker.kill9();
        worker.restart();
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            handle.get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .expect("the drill finished after the restart")
        .unwrap();
        assert_eq!(result.outcome, "verified", "trial {trial}: {result:?}");
    }
    assert!(
        scratch_databases().await.is_empty(),
        "no scratch database left behind by a killed attempt"
    );
    let after = figures(live.pool()).await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        if b.table == "progress_events" {
            assert_eq!(a.rows, b.rows + 3, "one record per drill");
        } else {
            assert_eq!(a, b, "the drills changed {}", b.table);
        }
    }
}
