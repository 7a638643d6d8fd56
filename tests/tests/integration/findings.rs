//! The findings ledger through whole sweeps on a real dev server: a small
//! estate with known problems reports the same open findings on every
//! sweep, clean or full, writes nothing after the first, and the CLI shows
//! the ledger, what resolved, and what stays open without being re-read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use steward_activities::Store;
use steward_activities::store::{TaskRow, Workstream};
use steward_proto::v1::{Finding, SweepInput, SweepResult};
use steward_tests::{
    Backend, Harness, RepoEntry, commit_all, commit_count, database, make_repo, read, task_queue,
    temp_dir, workplan, write_config, write_files,
};
use steward_workflows::ConsistencySweep;
use temporalio_client::WorkflowStartOptions;

/// The id of a task record that belongs to a workplan of another repo,
/// and that a block of the broken repo claims as its own (C-12).
const FOREIGN_TASK_UUID: &str = "00000000-0000-4000-8000-00000000f0e1";

/// A repo with the five problems an estate has: a duplicated task id, a
/// foreign task id, a finished workplan with open tasks, an unknown
/// `depends_on`, a half-written file.
fn broken_repo(path: &Path) {
    let duplicated = workplan("WP-A", 2).replace("id: WP-A-T02", "id: WP-A-T01");
    let finished = workplan("WP-B", 1).replace("status: active", "status: finished");
    let depends =
        workplan("WP-C", 1).replace("status: active", "status: active\ndepends_on: NOPE-1");
    let foreign = workplan("WP-E", 1).replace(
        "id: WP-E-T01\n",
        &format!("id: WP-E-T01\nstate_hub_task_id: {FOREIGN_TASK_UUID}\n"),
    );
    make_repo(
        path,
        &[
            ("workplans/WP-A.md", &duplicated),
            ("workplans/WP-B.md", &finished),
            ("workplans/WP-C.md", &depends),
            (
                "workplans/WP-D.md",
                "---\nid: WP-D\ntype: workplan\ntitle: half",
            ),
            ("workplans/WP-E.md", &foreign),
        ],
    );
}

/// The record the foreign id points at: a task of another repo's workplan.
async fn seed_foreign_task(store: &Store) {
    store
        .upsert_workstream(
            &Workstream {
                id: "00000000-0000-4000-8000-00000000f0e0".into(),
                workplan_id: "OTHER-1".into(),
                repo: "elsewhere".into(),
                path: "workplans/OTHER-1.md".into(),
                title: "other".into(),
                status: "active".into(),
                ..Default::default()
            },
            1,
        )
        .await
        .unwrap();
    store
        .upsert_task(
            &TaskRow {
                id: FOREIGN_TASK_UUID.into(),
                task_id: "OTHER-1-T01".into(),
                workstream_id: "00000000-0000-4000-8000-00000000f0e0".into(),
                status: "todo".into(),
                file_status: "todo".into(),
                ..Default::default()
            },
            1,
        )
        .await
        .unwrap();
}

struct Env {
    h: Harness,
    db: String,
    queue: String,
    broken: PathBuf,
    clean: PathBuf,
}

steward_tests::derefs_to_harness!(Env);

async fn env(test: &str) -> Env {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let broken = root.join("broken");
    let clean = root.join("clean");
    broken_repo(&broken);
    make_repo(&clean, &[("workplans/CL-1.md", &workplan("CL-1", 1))]);
    let db = database(Backend::Sqlite, &root).await;
    let queue = task_queue(test);
    let config = write_config(
        &root,
        &db,
        &queue,
        &[
            RepoEntry {
                name: "broken",
                path: &broken,
                remote: None,
                push: false,
            },
            RepoEntry {
                name: "clean",
                path: &clean,
                remote: None,
                push: false,
            },
        ],
        "",
    );
    seed_foreign_task(&Store::connect(&db).await.unwrap()).await;
    Env {
        h: Harness::with_worker(dir, config).await,
        db,
        queue,
        broken,
        clean,
    }
}

impl Env {
    async fn sweep(&self, id: &str, source: &str, full: bool) -> SweepResult {
        self.client
            .start_workflow(
                ConsistencySweep::run,
                SweepInput {
                    source: source.into(),
                    full,
                    ..Default::default()
                },
                WorkflowStartOptions::new(self.queue.clone(), id.to_owned()).build(),
            )
            .await
            .unwrap();
        self.result::<ConsistencySweep>(id, Duration::from_secs(120))
            .await
    }

    /// Every workstream and task row, `updated_at_ms` included: equal
    /// snapshots mean nothing was written.
    async fn records(&self) -> Vec<String> {
        let pool = steward_activities::store::connect_any(&self.db)
            .await
            .unwrap();
        let mut rows = Vec::new();
        for sql in [
            "SELECT id || '|' || workplan_id || '|' || status || '|' || archived || '|' || updated_at_ms FROM workstreams ORDER BY id",
            "SELECT id || '|' || task_id || '|' || workstream_id || '|' || status || '|' || archived || '|' || updated_at_ms FROM tasks ORDER BY id",
        ] {
            rows.extend(
                sqlx::query_scalar::<_, String>(sql)
                    .fetch_all(&pool)
                    .await
                    .unwrap(),
            );
        }
        rows
    }
}

/// What makes findings the same findings: check, repo, file, subject,
/// message, and when they were first seen.
fn keys(findings: &[Finding]) -> Vec<String> {
    let mut v: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {} [{}] {} since {}",
                f.check, f.repo, f.file, f.subject, f.message, f.first_seen
            )
        })
        .collect();
    v.sort();
    v
}

fn checks(findings: &[Finding]) -> Vec<&str> {
    let mut v: Vec<&str> = findings.iter().map(|f| f.check.as_str()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_broken_estate_reports_the_same_findings_on_every_sweep_and_writes_nothing_more() {
    let e = env("same-findings").await;
    let first = e.sweep("sweep-same-1", "manual", false).await;
    assert_eq!(
        checks(&first.assessment_failures),
        vec!["C-02", "C-08", "C-09", "C-12", "C-13"],
        "{first:#?}"
    );
    assert_eq!(first.open_findings, 5);
    assert_eq!(first.opened_count, 5);
    assert_eq!(first.resolved_count, 0);
    let records = e.records().await;
    let commits = commit_count(&e.broken);
    let text = read(&e.broken.join("workplans/WP-A.md"));
    assert!(
        !text.contains("state_hub_task_id"),
        "the duplicated id got no store id in either block: {text}"
    );

    for (n, full) in [(2, false), (3, true), (4, false), (5, true)] {
        let again = e.sweep(&format!("sweep-same-{n}"), "manual", full).await;
        assert_eq!(
            keys(&again.assessment_failures),
            keys(&first.assessment_failures),
            "sweep {n} (full: {full})"
        );
        assert_eq!(again.open_findings, 5, "sweep {n}");
        assert_eq!(
            (again.opened_count, again.resolved_count),
            (0, 0),
            "sweep {n}"
        );
        if full {
            assert!(
                again.repos_processed.is_empty(),
                "a full sweep of unchanged repos has nothing to do: {:?}",
                again.repos_processed
            );
        } else {
            assert_eq!(again.skipped_clean, vec!["broken", "clean"], "sweep {n}");
        }
        assert_eq!(e.records().await, records, "no store writes in sweep {n}");
        assert_eq!(commit_count(&e.broken), commits, "no commit in sweep {n}");
    }

    // The progress event says the same as the result.
    let store = Store::connect(&e.db).await.unwrap();
    let event = store
        .progress(Some("consistency_sweep_remote_all"), 0, 1)
        .await
        .unwrap()
        .remove(0);
    let recorded: SweepResult = serde_json::from_str(&event.detail_json).unwrap();
    assert_eq!(event.workflow_id, "sweep-same-5");
    assert_eq!(
        keys(&recorded.assessment_failures),
        keys(&first.assessment_failures)
    );
    assert_eq!(recorded.open_findings, 5);
}

#[tokio::test]
async fn the_cli_shows_the_ledger_what_resolved_and_what_stays_open_unread() {
    let mut e = env("findings-cli").await;
    e.sweep("sweep-cli-1", "schedule", false).await;
    let before_fix = chrono::Utc::now();

    // Filters: one repo, one check.
    let all = e.ok(&["findings"]);
    assert_eq!(all.as_array().unwrap().len(), 5, "{all}");
    assert!(all.as_array().unwrap().iter().all(|f| f["state"] == "open"));
    let dup = e.ok(&["findings", "--check", "C-02"]);
    assert_eq!(dup.as_array().unwrap().len(), 1);
    assert_eq!(dup[0]["subject"], "WP-A-T01");
    assert_eq!(dup[0]["first_run"].as_str().unwrap().len(), 36, "{dup}");
    assert_eq!(
        e.ok(&["findings", "--repo", "clean"]),
        serde_json::json!([])
    );
    let (code, _, err) = e.cli(&["findings", "--check", "C-99"]);
    assert_eq!(code, 2);
    assert!(err.contains("`C-99` is not a check code"), "{err}");

    // Fixing one problem resolves it in the sweep that re-reads the file.
    let fixed = workplan("WP-C", 1);
    write_files(&e.broken, &[("workplans/WP-C.md", &fixed)]);
    commit_all(&e.broken, "WP-C depends on nothing unknown");
    let second = e.sweep("sweep-cli-2", "legacy", false).await;
    assert_eq!(second.open_findings, 4);
    assert_eq!(checks(&second.findings_resolved), vec!["C-09"]);
    assert_eq!(second.resolved_count, 1);
    let since = before_fix.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let with_resolved = e.ok(&["findings", "--resolved-since", &since]);
    let rows = with_resolved.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[0]["state"], "resolved",
        "newest first: {with_resolved}"
    );
    assert_eq!(rows[0]["check"], "C-09");

    // Two sources, one ledger: compare counts like with like.
    let compare = e.ok(&["sweep", "compare", "--since-hours", "1"]);
    assert_eq!(
        compare["by_source"]["legacy"]["open_findings"], 4,
        "{compare}"
    );
    assert_eq!(compare["by_source"]["schedule"]["open_findings"], 5);

    // A repo whose path went missing keeps its findings, with that reason.
    let moved = e.broken.with_file_name("broken-moved");
    std::fs::rename(&e.broken, &moved).unwrap();
    let missing = e.sweep("sweep-cli-3", "manual", false).await;
    assert_eq!(missing.skipped_missing, vec!["broken"]);
    assert_eq!(missing.open_findings, 4);
    assert!(
        missing
            .assessment_failures
            .iter()
            .all(|f| f.reason.starts_with("skipped_missing")),
        "{:#?}",
        missing.assessment_failures
    );

    // A repo that left the config keeps them too, with that reason.
    let config = read(&e.config);
    let without = config.replace(
        &format!(
            "\n[[repos]]\nname = \"broken\"\npath = \"{}\"\n",
            e.broken.display()
        ),
        "\n",
    );
    assert_ne!(config, without);
    std::fs::write(&e.config, without).unwrap();
    e.worker().kill9();
    e.start_worker();
    let removed = e.sweep("sweep-cli-4", "manual", false).await;
    assert_eq!(removed.open_findings, 4);
    assert!(
        removed
            .assessment_failures
            .iter()
            .all(|f| f.reason == "the repo is no longer in the config"),
        "{:#?}",
        removed.assessment_failures
    );
    let shown = e.ok(&["findings", "--repo", "broken"]);
    assert_eq!(shown[0]["reason"], "the repo is no longer in the config");
    assert!(e.clean.is_dir());
}
