//! Job-driven backfills: the runbook's own spec (examples/backfill-job)
//! driving its job program against a real SQLite database: freeze by
//! command, the job's dry run, two approving groups, job batches,
//! validations by command and SQL, unfreeze, the replay probe; `kill -9`
//! of the worker and of the job mid-batch with every row applied once; an
//! idempotency violation that stops and runs the rollback script.

use super::*;
use std::path::PathBuf;

const JOB_RECORDS: i64 = 120;

/// The example's spec for backfill `bf` on a fresh database of
/// JOB_RECORDS records under `dir`, in batches of 10, each record taking
/// `row_delay` seconds.
fn job_spec(dir: &Path, row_delay: f64) -> (String, PathBuf) {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let example = checkout.join("examples/backfill-job");
    let db = dir.join("advisories.db");
    fresh_job_db(&db, JOB_RECORDS);
    let spec = read(&example.join("backfill.toml"))
        .replace("name = \"lnm-supersedes\"", "name = \"bf\"")
        .replace(
            "job = { command = [\"python3\"",
            &format!(
                "job = {{ command = [\"env\", \"SUPERSEDES_ROW_DELAY={row_delay}\", \"python3\""
            ),
        )
        .replace("examples/backfill-job/", &format!("{}/", example.display()))
        .replace(
            "data/advisories.snapshot.db",
            &dir.join("snapshot.db").display().to_string(),
        )
        .replace("data/advisories.db", &db.display().to_string())
        .replace("batch_size = 500", "batch_size = 10")
        .replace("expected_count = 7373", "expected_count = 175");
    (spec, db)
}

/// A worker with the example's backfill `bf` (see [`job_spec`]).
async fn job_env(test: &str, row_delay: f64, extra: &str) -> Env {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let (spec, db) = job_spec(&root, row_delay);
    let spec = spec.replace("batch_size = 10\n", &format!("batch_size = 10\n{extra}\n"));
    let pool = steward_activities::store::connect_any(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let store = database(Backend::Sqlite, &root).await;
    let config = write_config(&root, &store, &task_queue(test), &[], &spec);
    Env {
        h: Harness::with_worker(dir, config).await,
        pool,
    }
}

/// The edges the job must write, each once.
async fn job_oracle(pool: &AnyPool) -> Vec<(i64, i64)> {
    rows(
        pool,
        "SELECT a.id, b.id FROM raw_records a JOIN raw_records b ON b.advisory = a.advisory \
         AND b.version = a.version + 1 ORDER BY 1, 2",
    )
    .await
}

/// Every edge the run wrote, duplicates included.
async fn job_edges(pool: &AnyPool) -> Vec<(i64, i64)> {
    rows(
        pool,
        "SELECT older, newer FROM supersedes WHERE run_tag <> 'earlier-run' ORDER BY 1, 2",
    )
    .await
}

async fn count(pool: &AnyPool, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Batches the job has committed, by its own markers.
async fn job_batches_done(pool: &AnyPool) -> i64 {
    count(pool, "SELECT COUNT(*) FROM job_progress").await
}

/// Waits until the job has committed `n` batches.
async fn wait_job_batches(pool: &AnyPool, n: i64) {
    wait_for(
        &format!("{n} batches"),
        Duration::from_secs(120),
        || async { (job_batches_done(pool).await >= n).then_some(()) },
    )
    .await
    .unwrap();
}

/// Starts `bf` frozen at once and gives both approvals.
async fn start_approved(e: &Env) {
    e.start();
    e.wait_phase("awaiting_approval").await;
    approve_both(e);
}

/// The two approving groups approve, each by its own member.
fn approve_both(e: &Env) {
    for (group, who) in [("storage-guild", "sam"), ("platform-security", "kim")] {
        e.ok(&[
            "backfill", "approve", "bf", "--group", group, "--reason", "ok", "--by", who,
        ]);
    }
}

#[tokio::test]
async fn the_runbooks_job_program_runs_the_backfill_from_freeze_to_replay_with_its_evidence() {
    let e = job_env("job", 0.0, "").await;
    let expected = job_oracle(&e.pool).await;
    e.ok(&[
        "backfill",
        "start",
        "bf",
        "--reason",
        "DEVOPS-AOC-19-101",
        "--by",
        "ops-bot",
    ]);
    e.wait_phase("awaiting_freeze").await;
    e.ok(&[
        "backfill", "freeze", "bf", "--reason", "window", "--by", "ana",
    ]);
    let s = e.wait_phase("awaiting_approval").await;
    assert_eq!(
        flag(&e.pool, "ingest").await,
        0,
        "frozen by the job's command"
    );
    assert_eq!(
        s.expected,
        expected.len() as u64,
        "the job's dry run counted"
    );
    assert_eq!(
        count(&e.pool, "SELECT COUNT(*) FROM supersedes").await,
        0,
        "the dry run writes nothing"
    );
    approve_both(&e);
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert_eq!(job_edges(&e.pool).await, expected, "every edge, once");
    assert_eq!(
        result.rows,
        expected.len() as u64,
        "rows as the job reported them"
    );
    assert_eq!(flag(&e.pool, "ingest").await, 1, "unfrozen by command");
    assert_eq!(count(&e.pool, "SELECT COUNT(*) FROM replay_log").await, 1);
    let ev = verify_evidence(&result);
    let command: Vec<&str> = ev["job_command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        command.contains(&"--batch-size={batch_size}") && command.contains(&"--run-tag={run_tag}"),
        "the evidence holds the job's command and arguments: {command:?}"
    );
    // Zeros are not written in the evidence's JSON: absent means none.
    assert_eq!(ev["idempotency_violations"].as_u64().unwrap_or(0), 0);
    let checks: Vec<(&str, bool)> = ev["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["ok"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        checks,
        vec![("every edge present", true), ("raw records stable", true)],
        "a validation by command and one by SQL"
    );
    let status = e.ok(&["backfill", "status", "bf"]);
    assert_eq!(status["phase"], "done");
}

#[tokio::test]
async fn killing_the_worker_and_the_job_mid_batch_applies_every_row_once() {
    // Batches of half a second: every kill lands inside one.
    let mut e = job_env("job-kill", 0.05, "").await;
    let expected = job_oracle(&e.pool).await;
    start_approved(&e).await;
    let batches_done = || job_batches_done(&e.pool);
    wait_job_batches(&e.pool, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    eprintln!(
        "fault: kill -9 of the worker in batch {}",
        batches_done().await + 1
    );
    e.worker().kill9();
    e.worker().restart();

    // Then the job itself, in the middle of a batch.
    let db = e.root.join("advisories.db").display().to_string();
    let job = wait_for("the job running", Duration::from_secs(120), || async {
        let ps = std::process::Command::new("pgrep")
            .args(["-f", &format!("supersedes_job.py --db {db} --cursor")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    eprintln!("fault: kill -9 of the job (pid {job})");
    // SAFETY: kill(2) on the job program this test's worker started.
    let rc = unsafe { libc::kill(job, libc::SIGKILL) };
    assert_eq!(rc, 0, "the job was still running when killed");

    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert_eq!(
        job_edges(&e.pool).await,
        expected,
        "every edge exactly once"
    );
    assert_eq!(
        result.rows,
        expected.len() as u64,
        "each batch's rows counted once"
    );
    assert_every_run_closed_without_task_failures(&e.client).await;
}

#[tokio::test]
async fn an_idempotency_violation_stops_the_job_and_runs_the_rollback_script() {
    let e = job_env("job-violation", 0.0, "").await;
    // Another run wrote one edge of batch 3 already.
    sqlx::query("INSERT INTO supersedes (older, newer, run_tag) VALUES (25, 29, 'earlier-run')")
        .execute(&e.pool)
        .await
        .unwrap();
    assert!(
        job_oracle(&e.pool).await.contains(&(25, 29)),
        "the planted edge is one the job derives"
    );
    start_approved(&e).await;
    e.wait_phase("rolled_back_frozen").await;
    assert_eq!(
        rows(&e.pool, "SELECT older, newer FROM supersedes ORDER BY 1, 2").await,
        vec![(25, 29)],
        "the rollback script removed the run's edges and kept the other run's"
    );
    assert_eq!(flag(&e.pool, "ingest").await, 0, "ingest stays paused");
    let s = e.status().await;
    assert_eq!(s.idempotency_violations, 1, "{s:?}");
    e.ok(&["backfill", "unfreeze", "bf", "--reason", "looked into it"]);
    let result = e.result().await;
    assert_eq!(result.outcome, "rolled_back");
    let ev = verify_evidence(&result);
    assert_eq!(ev["idempotency_violations"], 1);
    assert_eq!(ev["rollback"]["rolled_back"], true, "{}", ev["rollback"]);
    assert!(
        ev["error"]
            .as_str()
            .unwrap()
            .contains("1 idempotency violations"),
        "{}",
        ev["error"]
    );
    let alert = e
        .alerts()
        .into_iter()
        .find(|a| a["kind"] == "backfill.batch-error")
        .expect("the stop is alerted");
    assert_eq!(alert["severity"], "critical");
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("idempotency violations"),
        "{alert}"
    );
}

#[tokio::test]
async fn a_job_driven_rollout_pauses_resizes_and_continues_as_new_as_a_sql_one_does() {
    // One batch per activity and three per workflow run: a pause answers
    // at once, and the rollout continues as new every three batches.
    let e = job_env(
        "job-ops",
        0.02,
        "batches_per_run = 3\nbatches_per_activity = 1",
    )
    .await;
    let expected = job_oracle(&e.pool).await;
    start_approved(&e).await;
    let batches_done = || job_batches_done(&e.pool);
    wait_job_batches(&e.pool, 2).await;
    e.update(OperatorVerb::Pause, op("checking the primary"))
        .await
        .unwrap();
    // The one batch in flight when the pause came finishes (its job was
    // running); none starts after it.
    let before = batches_done().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let held = batches_done().await;
    assert!(held <= before + 1, "{before} then {held}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(batches_done().await, held, "no job runs while paused");
    e.update(
        OperatorVerb::Set,
        OperatorRequest {
            batch_size: 20,
            ..op("faster")
        },
    )
    .await
    .unwrap();
    e.update(OperatorVerb::Resume, op("fine")).await.unwrap();
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert_eq!(job_edges(&e.pool).await, expected, "every edge, once");
    assert_eq!(result.rows, expected.len() as u64);
    let s = e.status().await;
    assert!(s.runs >= 3, "continued as new: {} runs", s.runs);
    // The job got the new size: its later batches span 20 records.
    let loaded = steward_worker::config::load(&e.config).unwrap();
    let store = steward_activities::store::connect_any(&loaded.database_url())
        .await
        .unwrap();
    let spans = rows(
        &store,
        "SELECT batch_no, CAST(cursor_out AS INTEGER) - CAST(cursor_in AS INTEGER) \
         FROM steward_backfill_job_batches WHERE cursor_in <> '' AND done = 0 ORDER BY batch_no",
    )
    .await;
    assert_eq!(spans.first().map(|s| s.1), Some(10), "{spans:?}");
    assert!(
        spans.iter().any(|s| s.1 == 20),
        "batches after the set are of 20: {spans:?}"
    );
}

#[tokio::test]
async fn a_pause_stops_a_run_of_job_batches_before_its_next_batch() {
    // Batches of about 0.4 s, and runs of batches of up to five seconds:
    // the pause cancels the run in flight, which stops after its batch.
    let e = job_env("job-stop", 0.04, "").await;
    let expected = job_oracle(&e.pool).await;
    start_approved(&e).await;
    wait_job_batches(&e.pool, 2).await;
    let asked = Instant::now();
    e.update(OperatorVerb::Pause, op("checking the primary"))
        .await
        .unwrap();
    let waited = asked.elapsed();
    let at_reply = job_batches_done(&e.pool).await;
    assert!(
        waited < Duration::from_secs(3),
        "the pause replied after {waited:?}: the run did not stop at its next batch"
    );
    assert!(at_reply < 12, "paused before the end: {at_reply} batches");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        job_batches_done(&e.pool).await,
        at_reply,
        "no batch ran after the pause's reply"
    );
    e.update(OperatorVerb::Resume, op("fine")).await.unwrap();
    let result = e.result().await;
    assert_eq!(result.outcome, "done", "{result:?}");
    assert_eq!(job_edges(&e.pool).await, expected, "every edge, once");
    // Runs of several batches, each one round trip through the server.
    let activities = batch_activities(&e.client).await;
    assert!(
        activities * 3 <= result.batches as usize,
        "{activities} batch activities for {} batches",
        result.batches
    );
}

#[tokio::test]
async fn an_abort_mid_job_rolls_back_by_the_rollback_script() {
    let e = job_env("job-abort", 0.02, "batches_per_activity = 1").await;
    start_approved(&e).await;
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
    assert_eq!(
        count(&e.pool, "SELECT COUNT(*) FROM supersedes").await,
        0,
        "the rollback script removed every edge the run wrote"
    );
    assert_eq!(
        count(&e.pool, "SELECT COUNT(*) FROM job_progress").await,
        0,
        "and the job's own markers"
    );
    e.ok(&["backfill", "unfreeze", "bf", "--reason", "done for today"]);
    let result = e.result().await;
    assert_eq!(result.outcome, "rolled_back");
    let ev = verify_evidence(&result);
    assert_eq!(ev["rollback"]["rolled_back"], true, "{}", ev["rollback"]);
    assert!(
        ev["alerts"]
            .as_array()
            .is_none_or(|a| a.iter().all(|a| a["kind"] != "backfill.batch-error")),
        "an abort is no batch error"
    );
}

/// The example's job program.
fn job_program() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/backfill-job/supersedes_job.py")
}

/// Makes the job's database afresh with `records` raw records.
fn fresh_job_db(db: &Path, records: i64) {
    let made = std::process::Command::new("python3")
        .arg(job_program())
        .arg("--db")
        .arg(db)
        .args(["--init", &records.to_string()])
        .status()
        .expect("python3 runs the example's job program");
    assert!(made.success());
}

#[tokio::test]
async fn a_rollout_started_in_the_same_second_as_the_one_before_applies_its_own_batches() {
    // A script (or an operator quick on the keys) starts the real rollout
    // right after one over nothing ended, within the same second. What the
    // first left in the state store is planted here for every second the
    // second rollout may start in (the tag was the name and the second):
    // its batch 1, finished with nothing left after it.
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let db = root.join("advisories.db");
    let spec = format!(
        r#"
[[backfills]]
name = "bf"
job = {{ command = ["python3", "{job}", "--db", "{db}", "--cursor={{cursor}}", "--batch-size={{batch_size}}", "--run-tag={{run_tag}}", "--batch-no={{batch_no}}"] }}
rollback = {{ command = ["python3", "{job}", "--db", "{db}", "--rollback", "{{run_tag}}"] }}
batch_size = 40
"#,
        job = job_program().display(),
        db = db.display()
    );
    fresh_job_db(&db, JOB_RECORDS);
    let store = database(Backend::Sqlite, &root).await;
    let config = write_config(&root, &store, &task_queue("job-same-second"), &[], &spec);
    let h = Harness::with_worker(dir, config).await;
    let state = steward_activities::store::Store::connect(&store)
        .await
        .unwrap();
    let now = std::time::SystemTime::now();
    let mut planted = Vec::new();
    for s in 0..120 {
        let second = steward_workflows::time::rfc3339(now + Duration::from_secs(s));
        let earlier = steward_activities::store::job_batches::JobBatch {
            run_tag: format!("bf-{}", second.replace([':', '-'], "")),
            batch_no: 1,
            backfill: "bf".into(),
            done: true,
            ..Default::default()
        };
        state.record_job_batch(&earlier, 0).await.unwrap();
        planted.push(earlier.run_tag);
    }
    start_bf(&h);
    let result = h
        .result::<BackfillRollout>(&bf(), Duration::from_secs(120))
        .await;
    let pool = steward_activities::store::connect_any(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    assert_eq!(result.outcome, "done", "{result:?}");
    assert_eq!(
        job_edges(&pool).await,
        job_oracle(&pool).await,
        "the rollout applied every edge itself ({} rows by its result)",
        result.rows
    );
    let tag: String = sqlx::query("SELECT DISTINCT run_tag FROM supersedes")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert!(
        tag.starts_with("bf-") && !planted.contains(&tag),
        "its own run tag: {tag}"
    );
}
