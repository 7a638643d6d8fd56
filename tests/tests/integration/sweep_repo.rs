//! The per-repo sweep activity against real git repos (with a bare remote
//! for the pull gate) and both state store backends.

use std::path::Path;

use steward_activities::Store;
use steward_activities::sweep::{SweepSettings, process_repo};
use steward_proto::v1::{RepoSweepOutcome, RepoSweepRequest, RepoTarget};
use steward_tests::{
    BACKENDS, commit_all, commit_count, database, git, make_repo, read, temp_dir, workplan,
    write_files,
};

fn req(name: &str, path: &Path, remote: &str, push: bool, full: bool) -> RepoSweepRequest {
    RepoSweepRequest {
        repo: Some(RepoTarget {
            name: name.into(),
            path: path.display().to_string(),
            remote: remote.into(),
            push,
            url: String::new(),
        }),
        full,
        ..Default::default()
    }
}

async fn sweep(store: &Store, r: &RepoSweepRequest) -> RepoSweepOutcome {
    process_repo(store, &SweepSettings::default(), r, 1)
        .await
        .unwrap()
}

fn checks(o: &RepoSweepOutcome) -> Vec<String> {
    o.findings.iter().map(|f| f.check.clone()).collect()
}

const CRLF_PLAN: &str = "---\r\nid: WP-7\r\ntype: workplan\r\ntitle: 'Crlf plan'   # keep me\r\nstatus: active\r\n---\r\n\r\n## T1 — first\r\n\r\n```task\r\nid: WP-7-T01\r\nstatus: todo   # inline\r\n```\r\n\r\ntrailing text without newline";

#[tokio::test]
async fn assigns_ids_with_a_byte_exact_minimal_diff() {
    let dir = temp_dir();
    for backend in BACKENDS {
        let repo = dir.path().join(format!("repo-{backend:?}"));
        make_repo(
            &repo,
            &[
                ("workplans/WP-7.md", CRLF_PLAN),
                ("workplans/README.md", "index, not a workplan"),
            ],
        );
        let store = Store::connect(&database(backend, dir.path()).await)
            .await
            .unwrap();
        let out = sweep(&store, &req("r", &repo, "", false, false)).await;
        assert_eq!(out.status, "processed");
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(!out.commit.is_empty());
        let ws = store
            .workstream_by_workplan_id("WP-7")
            .await
            .unwrap()
            .unwrap();
        let task = store.task_by_task_id("WP-7-T01").await.unwrap().unwrap();
        let expected = CRLF_PLAN
            .replace(
                "status: active\r\n---",
                &format!(
                    "status: active\r\nstate_hub_workstream_id: \"{}\"\r\n---",
                    ws.id
                ),
            )
            .replace(
                "status: todo   # inline\r\n```",
                &format!(
                    "status: todo   # inline\r\nstate_hub_task_id: \"{}\"\r\n```",
                    task.id
                ),
            );
        assert_eq!(
            read(&repo.join("workplans/WP-7.md")),
            expected,
            "{backend:?}"
        );
        assert_eq!(
            read(&repo.join("workplans/README.md")),
            "index, not a workplan"
        );
        let author = git(&repo, &["log", "-1", "--format=%an <%ae>|%s"]);
        assert_eq!(
            author.trim(),
            "steward <steward@localhost>|steward: write back State Hub ids and status changes"
        );
        assert_eq!(git(&repo, &["status", "--porcelain"]), "");
        assert_eq!(task.title, "T1 — first");
    }
}

#[tokio::test]
async fn unchanged_repo_is_skipped_clean_unless_full() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    make_repo(&repo, &[("workplans/a.md", &workplan("WP-1", 2))]);
    let store = Store::connect(&database(BACKENDS[0], dir.path()).await)
        .await
        .unwrap();
    assert_eq!(
        sweep(&store, &req("r", &repo, "", false, false))
            .await
            .status,
        "processed"
    );
    assert_eq!(
        sweep(&store, &req("r", &repo, "", false, false))
            .await
            .status,
        "skipped_clean"
    );
    let full = sweep(&store, &req("r", &repo, "", false, true)).await;
    assert_eq!(full.status, "processed");
    assert!(
        full.actions.is_empty() && full.commit.is_empty(),
        "nothing left to do: {:?}",
        full.actions
    );
    write_files(
        &repo,
        &[(
            "workplans/a.md",
            &read(&repo.join("workplans/a.md")).replace("status: active", "status: blocked"),
        )],
    );
    commit_all(&repo, "block it");
    let changed = sweep(&store, &req("r", &repo, "", false, false)).await;
    assert_eq!(changed.status, "processed");
    assert_eq!(changed.actions, vec!["workstreams updated: 1"]);
    assert_eq!(
        store
            .workstream_by_workplan_id("WP-1")
            .await
            .unwrap()
            .unwrap()
            .status,
        "blocked"
    );
}

#[tokio::test]
async fn missing_path_and_plain_folder_are_skipped_missing() {
    let dir = temp_dir();
    let store = Store::connect(&database(BACKENDS[0], dir.path()).await)
        .await
        .unwrap();
    let gone = sweep(
        &store,
        &req("gone", &dir.path().join("nope"), "", false, false),
    )
    .await;
    assert_eq!(gone.status, "skipped_missing");
    std::fs::create_dir_all(dir.path().join("plain/workplans")).unwrap();
    let plain = sweep(
        &store,
        &req("plain", &dir.path().join("plain"), "", false, false),
    )
    .await;
    assert_eq!(plain.status, "skipped_missing");
}

/// A clone with `origin` pointing at a bare repo seeded from `files`.
fn repo_with_remote(
    dir: &Path,
    name: &str,
    files: &[(&str, &str)],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let seed = dir.join(format!("{name}-seed"));
    make_repo(&seed, files);
    let bare = dir.join(format!("{name}.git"));
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let work = dir.join(name);
    git(
        dir,
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    (work, seed)
}

#[tokio::test]
async fn pull_gate_fast_forwards_when_behind_and_blocks_when_diverged_or_dirty() {
    let dir = temp_dir();
    let store = Store::connect(&database(BACKENDS[1], dir.path()).await)
        .await
        .unwrap();
    let (work, _) = repo_with_remote(
        dir.path(),
        "gate",
        &[("workplans/a.md", &workplan("GATE-1", 1))],
    );
    let bare = dir.path().join("gate.git");

    // Another clone pushes a new workplan: ours is behind and clean.
    let other = dir.path().join("other");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    write_files(&other, &[("workplans/b.md", &workplan("GATE-2", 1))]);
    commit_all(&other, "add b");
    git(&other, &["push", "-q", "origin", "main"]);

    let out = sweep(&store, &req("gate", &work, "origin", true, false)).await;
    assert!(
        out.actions.iter().any(|a| a.starts_with("fast-forwarded")),
        "{:?}",
        out.actions
    );
    assert!(out.pushed, "the writeback commit is pushed");
    assert!(
        store
            .workstream_by_workplan_id("GATE-2")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        git(&work, &["rev-parse", "HEAD"])
    );

    // Diverged: both sides commit.
    git(&other, &["pull", "-q", "--ff-only"]);
    write_files(&other, &[("workplans/c.md", &workplan("GATE-3", 1))]);
    commit_all(&other, "add c");
    git(&other, &["push", "-q", "origin", "main"]);
    write_files(&work, &[("workplans/d.md", &workplan("GATE-4", 1))]);
    commit_all(&work, "add d locally");
    let head = git(&work, &["rev-parse", "HEAD"]);
    let out = sweep(&store, &req("gate", &work, "origin", true, false)).await;
    assert_eq!(checks(&out), vec!["C-16"], "{:?}", out.findings);
    assert!(out.commit.is_empty() && !out.pushed);
    assert_eq!(
        git(&work, &["rev-parse", "HEAD"]),
        head,
        "no writeback when diverged"
    );
    assert!(
        store
            .workstream_by_workplan_id("GATE-4")
            .await
            .unwrap()
            .is_some(),
        "read-only assessment and reconciliation still happen"
    );
    assert!(!read(&work.join("workplans/d.md")).contains("state_hub_workstream_id"));

    // Dirty: a tracked file has uncommitted edits.
    git(&work, &["reset", "-q", "--hard", "origin/main"]);
    write_files(
        &work,
        &[(
            "workplans/a.md",
            &(read(&work.join("workplans/a.md")) + "\nedit in progress\n"),
        )],
    );
    let out = sweep(&store, &req("gate", &work, "origin", true, false)).await;
    // The reset also dropped d.md, whose record is archived (C-11).
    assert_eq!(checks(&out), vec!["C-16", "C-11"], "{:?}", out.findings);
    assert!(out.findings[0].message.contains("uncommitted"));
    assert!(out.commit.is_empty());
}

#[tokio::test]
async fn queued_status_change_is_written_back_and_a_file_edit_makes_it_a_conflict() {
    let dir = temp_dir();
    for backend in BACKENDS {
        let repo = dir.path().join(format!("repo-{backend:?}"));
        make_repo(&repo, &[("workplans/a.md", &workplan("ST-1", 2))]);
        let store = Store::connect(&database(backend, dir.path()).await)
            .await
            .unwrap();
        sweep(&store, &req("r", &repo, "", false, false)).await;

        let change = store
            .queue_status_change("ST-1-T01", "done", "shipped", "ana", 1)
            .await
            .unwrap();
        let before = read(&repo.join("workplans/a.md"));
        let out = sweep(&store, &req("r", &repo, "", false, false)).await;
        assert!(
            out.actions
                .contains(&"status changes written: 1".to_string()),
            "{:?}",
            out.actions
        );
        let after = read(&repo.join("workplans/a.md"));
        let expected = before.replacen(
            "id: ST-1-T01\nstatus: todo",
            "id: ST-1-T01\nstatus: done",
            1,
        );
        assert_eq!(
            after, expected,
            "{backend:?}: only the status value changed"
        );
        let (c, note) = store.status_change(&change.id).await.unwrap().unwrap();
        assert_eq!((c.state.as_str(), note), ("applied", out.commit.clone()));
        assert_eq!(
            store
                .task_by_task_id("ST-1-T01")
                .await
                .unwrap()
                .unwrap()
                .status,
            "done"
        );

        // Someone edits T02 in the file after the last sweep; a queued change now conflicts.
        let conflict = store
            .queue_status_change("ST-1-T02", "done", "closing", "ana", 2)
            .await
            .unwrap();
        write_files(
            &repo,
            &[(
                "workplans/a.md",
                &after.replacen("status: todo", "status: blocked", 1),
            )],
        );
        commit_all(&repo, "block T02 by hand");
        let commits = commit_count(&repo);
        let out = sweep(&store, &req("r", &repo, "", false, false)).await;
        assert_eq!(
            checks(&out),
            vec!["C-15"],
            "{backend:?}: {:?}",
            out.findings
        );
        assert_eq!(commit_count(&repo), commits, "no write on conflict");
        assert!(read(&repo.join("workplans/a.md")).contains("status: blocked"));
        assert_eq!(
            store
                .status_change(&conflict.id)
                .await
                .unwrap()
                .unwrap()
                .0
                .state,
            "conflict"
        );
    }
}

#[tokio::test]
async fn deleted_file_is_archived_and_foreign_ids_are_reported() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    make_repo(
        &repo,
        &[
            ("workplans/a.md", &workplan("DEL-1", 1)),
            ("workplans/b.md", &workplan("DEL-2", 1)),
        ],
    );
    let store = Store::connect(&database(BACKENDS[0], dir.path()).await)
        .await
        .unwrap();
    sweep(&store, &req("r", &repo, "", false, false)).await;
    let a_id = store
        .workstream_by_workplan_id("DEL-1")
        .await
        .unwrap()
        .unwrap()
        .id;

    std::fs::remove_file(repo.join("workplans/a.md")).unwrap();
    // b now claims a's store id: C-12.
    let b = read(&repo.join("workplans/b.md"));
    let b_id = store
        .workstream_by_workplan_id("DEL-2")
        .await
        .unwrap()
        .unwrap()
        .id;
    write_files(&repo, &[("workplans/b.md", &b.replace(&b_id, &a_id))]);
    commit_all(&repo, "delete a, break b");
    let out = sweep(&store, &req("r", &repo, "", false, false)).await;
    let mut c = checks(&out);
    c.sort();
    assert_eq!(c, vec!["C-11", "C-12"], "{:?}", out.findings);
    let a = store
        .workstream_by_workplan_id("DEL-1")
        .await
        .unwrap()
        .unwrap();
    assert!(a.archived, "archived, not deleted");
    assert!(
        store
            .task_by_task_id("DEL-1-T01")
            .await
            .unwrap()
            .unwrap()
            .archived
    );
}

#[tokio::test]
async fn a_retry_after_a_crash_between_store_and_file_reuses_the_assigned_ids() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    make_repo(&repo, &[("workplans/a.md", &workplan("RT-1", 2))]);
    let store = Store::connect(&database(BACKENDS[1], dir.path()).await)
        .await
        .unwrap();
    sweep(&store, &req("r", &repo, "", false, false)).await;
    let written = read(&repo.join("workplans/a.md"));
    // As if the attempt died after the store assigned ids but before the
    // file was committed: undo the writeback commit.
    git(&repo, &["reset", "-q", "--hard", "HEAD~1"]);
    let retry = sweep(&store, &req("r", &repo, "", false, true)).await;
    assert!(!retry.commit.is_empty());
    assert_eq!(
        read(&repo.join("workplans/a.md")),
        written,
        "same ids, same bytes"
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 2, "no duplicate records");
}

#[tokio::test]
async fn a_retry_after_the_commit_reports_the_earlier_attempts_commit() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    make_repo(&repo, &[("workplans/a.md", &workplan("RC-1", 2))]);
    let store = Store::connect(&database(BACKENDS[0], dir.path()).await)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        store
            .acquire_lock("sweep", "run-1", 60, now)
            .await
            .unwrap()
            .acquired
    );
    let held = |r: RepoSweepRequest| RepoSweepRequest {
        lock_name: "sweep".into(),
        lock_holder: "run-1".into(),
        lock_ttl_seconds: 60,
        ..r
    };
    let first = sweep(&store, &held(req("r", &repo, "", false, false))).await;
    assert!(!first.commit.is_empty());
    assert!(
        git(&repo, &["log", "-1", "--format=%B"]).contains("Steward-Sweep: run-1"),
        "the writeback commit names its sweep run"
    );
    // As if the attempt died after committing but before reporting: the
    // retry of the same run finds nothing to write and reports that commit.
    let retry = process_repo(
        &store,
        &SweepSettings::default(),
        &held(req("r", &repo, "", false, false)),
        2,
    )
    .await
    .unwrap();
    assert_eq!(retry.status, "processed");
    assert_eq!(retry.commit, first.commit);
    assert!(
        retry
            .actions
            .iter()
            .any(|a| a.starts_with("writeback committed by an earlier attempt")),
        "{:?}",
        retry.actions
    );
    assert_eq!(commit_count(&repo), 2, "no second commit");

    // A later sweep run is not an earlier attempt: it skips the clean repo.
    store.release_lock("sweep", "run-1").await.unwrap();
    assert!(
        store
            .acquire_lock("sweep", "run-2", 60, now)
            .await
            .unwrap()
            .acquired
    );
    let later = RepoSweepRequest {
        lock_holder: "run-2".into(),
        ..held(req("r", &repo, "", false, false))
    };
    let next = sweep(&store, &later).await;
    assert_eq!(next.status, "skipped_clean");
    assert!(next.commit.is_empty());
}

#[tokio::test]
async fn a_writeback_cut_off_before_its_commit_is_finished_by_the_retry() {
    let dir = temp_dir();
    let store = Store::connect(&database(BACKENDS[0], dir.path()).await)
        .await
        .unwrap();
    for (case, edited_meanwhile) in [("untouched", false), ("edited", true)] {
        let repo = dir.path().join(case);
        make_repo(
            &repo,
            &[("workplans/a.md", &workplan(&format!("CW-{case}"), 2))],
        );
        // Another git process holds the index: the files are written, the
        // commit fails, the attempt ends with an error.
        let lock = repo.join(".git/index.lock");
        std::fs::write(&lock, "").unwrap();
        let r = req(case, &repo, "", false, false);
        let failed = process_repo(&store, &SweepSettings::default(), &r, 1).await;
        assert!(failed.is_err(), "{failed:?}");
        assert!(
            read(&repo.join("workplans/a.md")).contains("state_hub_workstream_id"),
            "the files were written before the commit failed"
        );
        std::fs::remove_file(&lock).unwrap();
        if edited_meanwhile {
            let path = repo.join("workplans/a.md");
            let text = read(&path) + "\nA person's note.\n";
            std::fs::write(&path, text).unwrap();
        }

        let retry = sweep(&store, &r).await;
        if edited_meanwhile {
            assert!(checks(&retry).contains(&"C-16".to_string()), "{retry:?}");
            assert!(retry.commit.is_empty());
            assert_eq!(commit_count(&repo), 1, "a person's edit is never committed");
        } else {
            assert_eq!(retry.status, "processed");
            assert!(!retry.commit.is_empty(), "{retry:?}");
            assert!(
                retry
                    .actions
                    .iter()
                    .any(|a| a.starts_with("interrupted writeback committed")),
                "{:?}",
                retry.actions
            );
            assert_eq!(commit_count(&repo), 2);
            assert_eq!(git(&repo, &["status", "--porcelain"]).trim(), "");
            assert!(!repo.join(".git/steward-writeback.json").exists());
        }
    }
}

#[tokio::test]
async fn malformed_files_are_findings_and_the_rest_of_the_repo_is_reconciled() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    make_repo(
        &repo,
        &[
            ("workplans/good.md", &workplan("OK-1", 1)),
            ("workplans/broken.md", "---\nid: BROKEN\nid: AGAIN\n---\n"),
            (
                "workplans/fence.md",
                "---\nid: F-1\ntype: workplan\ntitle: t\nstatus: active\n---\n```task\nid: F-1-T01\n",
            ),
        ],
    );
    std::fs::write(repo.join("workplans/latin1.md"), b"---\nid: L\xe9\n---\n").unwrap();
    commit_all(&repo, "bad files");
    let store = Store::connect(&database(BACKENDS[0], dir.path()).await)
        .await
        .unwrap();
    let out = sweep(&store, &req("r", &repo, "", false, false)).await;
    assert_eq!(
        checks(&out),
        vec!["C-13", "C-13", "C-13"],
        "{:?}",
        out.findings
    );
    assert!(
        store
            .workstream_by_workplan_id("OK-1")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        read(&repo.join("workplans/broken.md")),
        "---\nid: BROKEN\nid: AGAIN\n---\n",
        "untouched"
    );
}

#[tokio::test]
async fn a_repo_with_thousands_of_findings_returns_a_bounded_result_and_counts_the_rest() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    let long_id = "X".repeat(5000);
    let broken: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("workplans/broken-{i:03}.md"),
                format!("---\nid: {long_id}\nid: AGAIN\n---\n"),
            )
        })
        .collect();
    let mut files: Vec<(&str, &str)> = broken
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let good = workplan("OK-1", 1);
    files.push(("workplans/good.md", &good));
    make_repo(&repo, &files);
    let store = Store::connect(&database(BACKENDS[0], dir.path()).await)
        .await
        .unwrap();
    let out = sweep(&store, &req("r", &repo, "", false, false)).await;
    assert_eq!(out.findings.len(), steward_proto::limits::FINDINGS_PER_REPO);
    assert_eq!(
        out.findings.len() + out.findings_omitted as usize,
        300,
        "every finding listed or counted"
    );
    assert!(
        out.findings
            .iter()
            .all(|f| f.message.chars().count() <= steward_proto::limits::FINDING_MESSAGE_CHARS + 1)
    );
    let size = serde_json::to_vec(&out).unwrap().len();
    assert!(size < 128 * 1024, "the activity's result is {size} bytes");
    assert!(
        store
            .workstream_by_workplan_id("OK-1")
            .await
            .unwrap()
            .is_some(),
        "the rest of the repo is reconciled"
    );
}

/// Sweeps `r` as sweep run `run-<n>`, holding the sweep's lease as a
/// sweep does (the ledger records which run saw what).
async fn as_run(store: &Store, n: u32, r: RepoSweepRequest) -> RepoSweepOutcome {
    let holder = format!("run-{n}");
    let now = chrono::Utc::now().timestamp_millis();
    store
        .release_lock("test-sweep", &format!("run-{}", n - 1))
        .await
        .unwrap();
    assert!(
        store
            .acquire_lock("test-sweep", &holder, 60, now)
            .await
            .unwrap()
            .acquired
    );
    let r = RepoSweepRequest {
        lock_name: "test-sweep".into(),
        lock_holder: holder,
        lock_ttl_seconds: 60,
        ..r
    };
    sweep(store, &r).await
}

/// The open findings of `repo` in the ledger, as (check, file, subject).
async fn open_findings(store: &Store, repo: &str) -> Vec<(String, String, String)> {
    use steward_activities::store::findings::{FindingsQuery, Wanted};
    let (rows, total) = store
        .findings(&FindingsQuery {
            repo,
            ..FindingsQuery::new(Wanted::Open, 1000)
        })
        .await
        .unwrap();
    assert_eq!(rows.len() as u64, total);
    let mut out: Vec<_> = rows
        .into_iter()
        .map(|r| (r.finding.check, r.finding.file, r.finding.subject))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn findings_open_in_the_ledger_stay_open_while_skipped_and_resolve_when_fixed() {
    use steward_activities::store::findings::{FindingsQuery, Wanted};
    for backend in BACKENDS {
        let dir = temp_dir();
        let repo = dir.path().join("repo");
        let broken = workplan("WP-1", 1).replace("status: todo", "status: whenever");
        make_repo(
            &repo,
            &[
                ("workplans/a.md", &broken),
                ("workplans/b.md", "---\nid: WP-2\n"),
            ],
        );
        let store = Store::connect(&database(backend, dir.path()).await)
            .await
            .unwrap();
        let run = |n: u32, full: bool| as_run(&store, n, req("r", &repo, "", false, full));
        let first = run(1, false).await;
        assert_eq!(checks(&first), vec!["C-07", "C-13"], "{backend:?}");
        let opened = open_findings(&store, "r").await;
        assert_eq!(
            opened,
            vec![
                ("C-07".into(), "workplans/a.md".into(), "WP-1-T01".into()),
                ("C-13".into(), "workplans/b.md".into(), String::new()),
            ],
            "{backend:?}"
        );

        // A clean skip reads nothing and leaves the ledger as it was.
        let skipped = run(2, false).await;
        assert_eq!(skipped.status, "skipped_clean");
        assert_eq!(open_findings(&store, "r").await, opened, "{backend:?}");
        // A full sweep re-reads and finds the same: same rows, first seen kept.
        let (before, _) = store
            .findings(&FindingsQuery::new(Wanted::Open, 10))
            .await
            .unwrap();
        run(3, true).await;
        let (after, _) = store
            .findings(&FindingsQuery::new(Wanted::Open, 10))
            .await
            .unwrap();
        assert_eq!(
            before
                .iter()
                .map(|r| (r.first_seen_ms, &r.first_run))
                .collect::<Vec<_>>(),
            after
                .iter()
                .map(|r| (r.first_seen_ms, &r.first_run))
                .collect::<Vec<_>>(),
            "{backend:?}"
        );
        assert!(after.iter().all(|r| r.last_run == "run-3"), "{after:?}");

        // Fixing the status resolves C-07 in the run that re-read it.
        write_files(&repo, &[("workplans/a.md", &workplan("WP-1", 1))]);
        commit_all(&repo, "fix the status");
        run(4, false).await;
        assert_eq!(
            open_findings(&store, "r").await,
            vec![("C-13".into(), "workplans/b.md".into(), String::new())],
            "{backend:?}"
        );
        let (resolved, n) = store
            .findings(&FindingsQuery::new(Wanted::ResolvedBy("run-4"), 10))
            .await
            .unwrap();
        assert_eq!(n, 1, "{backend:?}");
        assert_eq!(resolved[0].finding.check, "C-07");
        assert!(resolved[0].resolved_ms.is_some());

        // A missing path keeps the findings open, with the reason.
        std::fs::rename(&repo, dir.path().join("moved")).unwrap();
        assert_eq!(run(5, false).await.status, "skipped_missing");
        let (held, _) = store
            .findings(&FindingsQuery::new(Wanted::Open, 10))
            .await
            .unwrap();
        assert_eq!(held.len(), 1);
        assert!(
            held[0].finding.reason.starts_with("skipped_missing"),
            "{held:?}"
        );
        // It comes back: re-read, the reason goes, and a reopened C-07
        // counts from the run that saw it again.
        std::fs::rename(dir.path().join("moved"), &repo).unwrap();
        write_files(&repo, &[("workplans/a.md", &broken)]);
        commit_all(&repo, "break it again");
        run(6, false).await;
        let (open, _) = store
            .findings(&FindingsQuery::new(Wanted::Open, 10))
            .await
            .unwrap();
        assert!(open.iter().all(|r| r.finding.reason.is_empty()), "{open:?}");
        let reopened = open.iter().find(|r| r.finding.check == "C-07").unwrap();
        assert_eq!(reopened.first_run, "run-6");
    }
}

#[tokio::test]
async fn a_duplicated_task_id_is_c02_and_nothing_else_on_every_sweep() {
    let dir = temp_dir();
    let repo = dir.path().join("repo");
    let plan = workplan("WP-1", 2).replace("id: WP-1-T02", "id: WP-1-T01");
    make_repo(&repo, &[("workplans/a.md", &plan)]);
    let store = Store::connect(&database(BACKENDS[0], dir.path()).await)
        .await
        .unwrap();
    let first = sweep(&store, &req("r", &repo, "", false, false)).await;
    assert_eq!(checks(&first), vec!["C-02"]);
    assert!(
        store.task_by_task_id("WP-1-T01").await.unwrap().is_none(),
        "neither block made a record"
    );
    let text = read(&repo.join("workplans/a.md"));
    assert!(
        !text.contains("state_hub_task_id"),
        "no id was written into either block: {text}"
    );
    for _ in 0..3 {
        let again = sweep(&store, &req("r", &repo, "", false, true)).await;
        assert_eq!(checks(&again), vec!["C-02"]);
        assert!(
            again.actions.is_empty() && again.commit.is_empty(),
            "a full sweep of the unchanged repo is clean: {:?}",
            again.actions
        );
    }
}
