//! The audit trail on a real dev server: every closed run archived into
//! the state store in a hash chain that verifies (and names what was
//! tampered with), `steward history` from the archive once the server no
//! longer has a run, an archive that a `kill -9` cannot break, retention
//! warnings, and a Temporal UI that reads like a runbook (summaries,
//! details, search attributes, `steward inbox`).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use steward_activities::Store;
use steward_proto::v1::SweepInput;
use steward_proto::{ids, names};
use steward_tests::{
    Backend, Harness, RepoEntry, database, make_repo, read, task_queue, temp_dir, temporal_bin,
    three_row_target, wait_for, workplan, write_config,
};
use steward_workflows::{BackfillRollout, ConsistencySweep};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

struct Env {
    h: Harness,
    db: String,
    queue: String,
}

steward_tests::derefs_to_harness!(Env);

/// One repo, a tiny backfill (`tiny`) on its own SQLite file, the archiver
/// passing every `archive_seconds`.
async fn env(test: &str, archive_seconds: u64, extra: &str) -> Env {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let repo = root.join("repo");
    make_repo(&repo, &[("workplans/A-1.md", &workplan("A-1", 1))]);
    let target = three_row_target(&root.join("target.db")).await;
    let db = database(Backend::Sqlite, &root).await;
    let queue = task_queue(test);
    let keys = steward_activities::restore::crypt::keygen();
    let identity = root.join("restore.key");
    std::fs::write(&identity, &keys.identity).unwrap();
    let config = write_config(
        &root,
        &db,
        &queue,
        &[RepoEntry {
            name: "r",
            path: &repo,
            remote: None,
            push: false,
        }],
        &format!(
            r#"[audit]
archive_seconds = {archive_seconds}

[restore]
recipient = "{recipient}"
identity_file = "{identity}"
offsite_dir = "{offsite}"

[[backfills]]
name = "tiny"
database_url = "{target}"
count_sql = "SELECT COUNT(*) FROM t"
next_range_sql = "SELECT MIN(id), MAX(id) FROM (SELECT id FROM t WHERE id > $1 ORDER BY id LIMIT $2) x"
apply_sql = "UPDATE t SET id = id WHERE id BETWEEN $1 AND $2 AND $3 <> ''"
rollback_sql = "DELETE FROM t WHERE 0 = 1 AND $1 <> ''"
{extra}
"#,
            recipient = keys.recipient,
            identity = identity.display(),
            offsite = root.join("offsite").display(),
        ),
    );
    if extra.contains("[[schedules]]") {
        let text = read(&config).replace("schedules = []\n", "");
        std::fs::write(&config, text).unwrap();
    }
    Env {
        h: Harness::with_worker(dir, config).await,
        db,
        queue,
    }
}

impl Env {
    async fn store(&self) -> Store {
        Store::connect(&self.db).await.unwrap()
    }

    /// Waits until the archive holds `n` runs.
    async fn archived(&self, n: usize) -> Vec<steward_activities::store::archive::Entry> {
        let store = self.store().await;
        wait_for(
            &format!("{n} archived runs"),
            Duration::from_secs(90),
            || async {
                let entries = store.archive_entries(None).await.ok()?;
                (entries.len() >= n).then_some(entries)
            },
        )
        .await
        .unwrap()
    }

    /// `temporal <args>` against the test's server.
    fn temporal(&self, args: &[&str]) -> String {
        let out = Command::new(temporal_bin())
            .args(args)
            .args(["--address", &self.server.address, "--namespace", "default"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "temporal {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn verify(&self) -> (i32, serde_json::Value, String) {
        let (code, out, err) = self.cli(&["audit", "verify"]);
        (code, serde_json::from_str(&out).unwrap(), err)
    }
}

#[tokio::test]
async fn every_closed_run_is_archived_in_a_chain_that_verifies_and_outlives_the_server() {
    let e = env("archive", 1, "").await;
    let first = e.ok(&["sweep", "run"]);
    let second = e.ok(&["sweep", "run", "--full"]);
    let drill = e.ok(&["restore-drill", "run"]);
    e.ok(&[
        "backfill",
        "start",
        "tiny",
        "--dry-run",
        "--freeze-at",
        "now",
        "--reason",
        "audit rehearsal",
    ]);
    let backfill = e
        .result::<BackfillRollout>(&ids::backfill("tiny"), Duration::from_secs(60))
        .await;
    assert_eq!(backfill.outcome, "dry_run");
    let entries = e.archived(4).await;
    let types: BTreeSet<&str> = entries.iter().map(|x| x.workflow_type.as_str()).collect();
    assert_eq!(
        types,
        BTreeSet::from([
            names::BACKFILL_ROLLOUT,
            names::CONSISTENCY_SWEEP,
            names::RESTORE_DRILL
        ])
    );
    assert!(
        entries.iter().all(|x| x.status == "completed"),
        "{entries:?}"
    );
    let drill_id = drill["workflow_id"].as_str().unwrap();
    assert!(entries.iter().any(|x| x.workflow_id == drill_id));
    let (code, verified, err) = e.verify();
    assert_eq!(code, 0, "{err}");
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["entries"], 4);

    // Gone from the server, the same timeline from the archive.
    let id = first["workflow_id"].as_str().unwrap();
    let (code, text_before, err) = e.cli(&["history", id]);
    assert_eq!(code, 0, "{err}");
    let (_, json_before, _) = e.cli(&["history", id, "--json"]);
    assert!(text_before.contains("steward.sweep.batch"), "{text_before}");
    e.temporal(&["workflow", "delete", "--workflow-id", id, "--yes"]);
    // The dev server deletes in the background, about half a minute later.
    wait_for(
        "the run deleted on the server",
        Duration::from_secs(120),
        || async {
            steward_worker::history::fetch_events(&e.client, id, None)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await
    .unwrap();
    let (code, text_after, err) = e.cli(&["history", id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text_after, text_before, "byte for byte the same timeline");
    assert!(err.contains("from the audit archive"), "{err}");
    let (_, json_after, _) = e.cli(&["history", id, "--json"]);
    assert_eq!(json_after, json_before);
    let (code, _, err) = e.cli(&["history", "sweep-that-never-ran"]);
    assert_eq!(code, 2);
    assert!(err.contains("audit archive does not have it"), "{err}");

    // The export for an auditor, from a time on.
    let (code, all, _) = e.cli(&["audit", "export"]);
    assert_eq!(code, 0);
    assert_eq!(all.lines().count(), 4);
    let since = &entries[2].close_time;
    let (_, later, _) = e.cli(&["audit", "export", "--since", since]);
    let expected = entries.iter().filter(|x| &x.close_time >= since).count();
    assert_eq!(later.lines().count(), expected);
    let line: serde_json::Value = serde_json::from_str(later.lines().next().unwrap()).unwrap();
    assert!(
        line["history_sha256"].as_str().unwrap().len() == 64,
        "{line}"
    );
    assert!(second["workflow_id"].is_string());

    // Tampering is named: a changed history, then a removed entry.
    let pool = steward_activities::store::connect_any(&e.db).await.unwrap();
    let original: String =
        sqlx::query_scalar("SELECT history_json FROM audit_archive WHERE seq = 2")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE audit_archive SET history_json = REPLACE(history_json, 'completed', 'Completed') WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let (code, report, err) = e.verify();
    assert_eq!(code, 1);
    assert_eq!(report["first_broken"]["seq"], 2, "{report}");
    assert!(
        err.contains("entry 2") && err.contains("history was changed"),
        "{err}"
    );
    sqlx::query("UPDATE audit_archive SET history_json = $1 WHERE seq = 2")
        .bind(&original)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(e.verify().0, 0, "restored, it verifies again");
    sqlx::query("DELETE FROM audit_archive WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let (code, report, err) = e.verify();
    assert_eq!(code, 1);
    assert_eq!(report["first_broken"]["seq"], 3, "{report}");
    assert!(err.contains("entry 3 is missing"), "{err}");
}

#[tokio::test]
async fn a_worker_killed_mid_archive_leaves_no_gap_and_no_duplicate() {
    let mut e = env("archive-kill", 3600, "").await;
    // Many closed runs while the archiver of this worker waits an hour.
    let handles: Vec<_> = futures::future::join_all((0..25).map(|i| {
        e.client.start_workflow(
            ConsistencySweep::run,
            SweepInput {
                source: "burst".into(),
                ..Default::default()
            },
            WorkflowStartOptions::new(e.queue.clone(), format!("sweep-burst-{i:02}")).build(),
        )
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    for h in &handles {
        h.get_result(WorkflowGetResultOptions::default())
            .await
            .unwrap();
    }
    e.worker().kill9();
    let config = read(&e.config).replace("archive_seconds = 3600", "archive_seconds = 1");
    std::fs::write(&e.config, config).unwrap();

    // A worker that archives, killed once it has begun.
    e.start_worker();
    let store = e.store().await;
    let at_kill = wait_for("the archive under way", Duration::from_secs(60), || async {
        let n = store.archive_entries(None).await.ok()?.len();
        (n >= 2).then_some(())
    })
    .await;
    at_kill.unwrap();
    e.worker().kill9();
    let partial = store.archive_entries(None).await.unwrap();
    eprintln!(
        "fault: kill -9 of the archiving worker after {} of 25 runs",
        partial.len()
    );
    assert!(steward_activities::store::archive::verify(&partial).is_ok());

    e.worker().restart();
    let entries = e.archived(25).await;
    assert_eq!(entries.len(), 25, "each run once");
    let runs: BTreeSet<(&str, &str)> = entries
        .iter()
        .map(|x| (x.workflow_id.as_str(), x.run_id.as_str()))
        .collect();
    assert_eq!(runs.len(), 25, "no duplicate");
    let seqs: Vec<i64> = entries.iter().map(|x| x.seq).collect();
    assert_eq!(seqs, (1..=25).collect::<Vec<i64>>(), "no gap");
    assert_eq!(e.verify().0, 0);
}

#[tokio::test]
async fn a_worker_warns_when_the_namespace_keeps_runs_shorter_than_the_config() {
    let e = env("retention-warning", 60, "[temporal]\nretention_days = 90\n").await;
    let shown = e.ok(&["check-config"]);
    assert_eq!(shown["temporal"]["retention_days"], 90);
    // The test server keeps the dev server's default retention (a day).
    let warned = wait_for("the retention warning", Duration::from_secs(30), || async {
        let log = e.worker_log();
        log.contains("shorter than [temporal] retention_days = 90")
            .then_some(log)
    })
    .await
    .unwrap();
    assert!(
        warned.contains("keeps closed workflow runs for 1d"),
        "{warned}"
    );
}

/// The summary of an event's user metadata, decoded.
fn summary_of(ev: &temporalio_common::protos::temporal::api::history::v1::HistoryEvent) -> String {
    ev.user_metadata
        .as_ref()
        .and_then(|m| m.summary.as_ref())
        .and_then(|p| serde_json::from_slice::<String>(&p.data).ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_temporal_ui_reads_like_a_runbook() {
    let e = env(
        "runbook-ui",
        60,
        "[[schedules]]\nname = \"nightly\"\ncron = \"30 2 * * *\"\n",
    )
    .await;
    // Schedules: the config's, synced, with a summary for the runs they start.
    e.ok(&["schedules", "sync"]);

    // A sweep by hand: static summary and details, summaries per activity.
    let swept = e.ok(&["sweep", "run"]);
    let id = swept["workflow_id"].as_str().unwrap();
    let described = e
        .client
        .get_workflow_handle::<ConsistencySweep>(id)
        .describe(Default::default())
        .await
        .unwrap();
    assert_eq!(described.static_summary(), Some("sweep of 1 repo (manual)"));
    assert!(
        described
            .static_details()
            .unwrap_or_default()
            .contains("repos: r"),
        "{:?}",
        described.static_details()
    );
    let events = steward_worker::history::fetch_events(&e.client, id, None)
        .await
        .unwrap();
    let activities: Vec<String> = events
        .iter()
        .filter(|ev| {
            matches!(
                ev.attributes,
                Some(Attributes::ActivityTaskScheduledEventAttributes(_))
            )
        })
        .map(summary_of)
        .collect();
    for wanted in [
        "plan the sweep",
        "take the sweep lock",
        "repo r",
        "record the sweep",
    ] {
        assert!(
            activities.iter().any(|s| s == wanted),
            "{wanted}: {activities:?}"
        );
    }

    // A scheduled run carries its schedule's summary.
    e.client
        .get_schedule_handle(ids::schedule("nightly"))
        .trigger(
            temporalio_client::schedules::ScheduleOverlapPolicy::Unspecified,
            Default::default(),
        )
        .await
        .unwrap();
    let scheduled = wait_for("the scheduled run", Duration::from_secs(30), || async {
        use futures::StreamExt as _;
        let query = format!(
            "WorkflowId STARTS_WITH '{}'",
            ids::scheduled_sweep("nightly")
        );
        let mut runs = e.client.list_workflows(query, Default::default());
        let run = runs.next().await?.ok()?;
        Some(run.id().to_string())
    })
    .await
    .unwrap();
    let described = e
        .client
        .get_workflow_handle::<ConsistencySweep>(scheduled.as_str())
        .describe(Default::default())
        .await
        .unwrap();
    assert_eq!(
        described.static_summary(),
        Some("sweep of 1 repo (schedule nightly)")
    );

    // A backfill waiting for its freeze window: phase, subject and
    // waiting as search attributes, a timer summary, current details, and
    // the inbox.
    let at = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    e.ok(&[
        "backfill",
        "start",
        "tiny",
        "--freeze-at",
        &at,
        "--reason",
        "next night",
    ]);
    let bf = ids::backfill("tiny");
    let described = e
        .client
        .get_workflow_handle::<BackfillRollout>(bf.as_str())
        .describe(Default::default())
        .await
        .unwrap();
    assert_eq!(
        described.static_summary(),
        Some("backfill tiny: batch 500, groups none")
    );
    let inbox = wait_for(
        "the backfill in the inbox",
        Duration::from_secs(30),
        || async {
            let inbox = e.ok(&["inbox"]);
            inbox["runs"]
                .as_array()?
                .iter()
                .any(|r| r["workflow_id"] == bf.as_str())
                .then_some(inbox)
        },
    )
    .await
    .unwrap();
    let run = inbox["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workflow_id"] == bf.as_str())
        .unwrap();
    assert_eq!(run["phase"], "awaiting_freeze", "{inbox}");
    assert_eq!(run["subject"], "tiny");
    let listed = e.temporal(&[
        "workflow",
        "list",
        "--query",
        "StewardWaiting = true AND StewardSubject = 'tiny'",
        "--output",
        "json",
    ]);
    assert!(
        listed.contains(&bf),
        "temporal workflow list -q finds it: {listed}"
    );
    let events = steward_worker::history::fetch_events(&e.client, &bf, None)
        .await
        .unwrap();
    let timers: Vec<String> = events
        .iter()
        .filter(|ev| {
            matches!(
                ev.attributes,
                Some(Attributes::TimerStartedEventAttributes(_))
            )
        })
        .map(summary_of)
        .collect();
    assert_eq!(timers, vec![format!("wait for freeze until {at}")]);
    let metadata = e.temporal(&[
        "workflow",
        "metadata",
        "--workflow-id",
        &bf,
        "--output",
        "json",
    ]);
    assert!(
        metadata.contains("waiting for the freeze window") && metadata.contains(&at),
        "current details say what it waits for: {metadata}"
    );

    // A paused schedule is in the inbox too.
    e.client
        .get_schedule_handle(ids::schedule("nightly"))
        .pause(Some("maintenance"), Default::default())
        .await
        .unwrap();
    let inbox = e.ok(&["inbox"]);
    assert_eq!(
        inbox["paused_schedules"][0]["schedule_id"],
        ids::schedule("nightly"),
        "{inbox}"
    );
    e.ok(&["backfill", "abort", "tiny", "--reason", "test over"]);
}
