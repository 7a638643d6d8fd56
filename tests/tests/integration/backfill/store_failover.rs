//! steward's own store and a backfill's target on one PostgreSQL
//! primary/standby pair, both named by every host of the cluster: the
//! primary stopped while a sweep and a backfill run, the standby promoted.
//! Both finish on the new primary, nothing lost, nothing applied twice,
//! and the worker says when and after how long it followed.

use steward_activities::Store;
use steward_proto::v1::SweepInput;
use steward_tests::{
    PgPair, commit_count, free_port, http_get, local_repos, make_repo, slow_commits, workplan,
};
use steward_workflows::ConsistencySweep;

use super::*;

const REPOS: usize = 8;

/// A service URL naming `hosts` in this order, database `db`.
fn cluster(hosts: [&str; 2], db: &str) -> String {
    format!(
        "postgres://postgres@{},{}/{db}?target_session_attrs=read-write",
        hosts[0], hosts[1]
    )
}

#[tokio::test]
async fn the_store_and_a_backfill_follow_their_primary_through_a_failover_mid_sweep_and_mid_backfill()
 {
    let pair = PgPair::start(false).await;
    let (primary, standby) = (pair.primary.host(), pair.standby.host());
    pair.primary.psql("CREATE DATABASE steward");
    pair.primary.psql("CREATE DATABASE target");
    wait_for(
        "the databases on the standby",
        Duration::from_secs(30),
        || async {
            (pair
                .standby
                .psql("SELECT count(*) FROM pg_database WHERE datname IN ('steward', 'target')")
                == "2")
                .then_some(())
        },
    )
    .await
    .unwrap();

    // A standby named alone is refused by name; listed with the primary,
    // in any order, the store finds the primary.
    let refused = Store::connect(&pair.standby.url("steward"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("read-only standby")
            && refused.contains("target_session_attrs=read-write"),
        "{refused}"
    );
    let store_url = cluster([&standby, &primary], "steward");
    let store = Store::connect(&store_url).await.unwrap();
    assert_eq!(store.primary_host().as_deref(), Some(primary.as_str()));

    let target = fixture(&pair.primary.url("target"), Backend::Postgres, None).await;
    let expected = oracle(&target).await;
    target.close().await;

    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let names: Vec<String> = (0..REPOS).map(|i| format!("repo-{i}")).collect();
    let paths: Vec<std::path::PathBuf> = names.iter().map(|n| root.join(n)).collect();
    for (name, path) in names.iter().zip(&paths) {
        make_repo(
            path,
            &[(&format!("workplans/{name}.md"), &workplan(name, 2))],
        );
        // Each repo's writeback takes a second: the sweep is still
        // running when the primary stops.
        slow_commits(path, 1.0);
    }
    let entries = local_repos(&names, &paths);
    let metrics = format!("127.0.0.1:{}", free_port());
    let config = write_config(
        &root,
        &store_url,
        &task_queue("store-failover"),
        &entries,
        &format!(
            r#"
[worker]
metrics_addr = "{metrics}"

[[backfills]]
name = "bf"
database_url = "{target_url}"
count_sql = "SELECT COUNT(*) {EDGES}"
next_range_sql = "SELECT MIN(id), MAX(id) FROM (SELECT id FROM raw_records WHERE id > $1 ORDER BY id LIMIT $2) t"
{apply}rollback_sql = "DELETE FROM supersedes WHERE run_tag = $1"
freeze = {{ sql = "UPDATE control SET enabled = 0" }}
unfreeze = {{ sql = "UPDATE control SET enabled = 1" }}
batch_size = 10
validations = [
  {{ name = "idempotency violations", sql = "SELECT COUNT(*) - (SELECT COUNT(*) FROM (SELECT DISTINCT older, newer FROM supersedes) d) FROM supersedes", expect = "= 0" }},
]
"#,
            target_url = cluster([&primary, &standby], "target"),
            apply = slow_apply(Target::Postgres, 0.5),
        ),
    );
    let e = Harness::with_worker(dir, config).await;

    let sweep = SweepInput {
        source: "manual".into(),
        concurrency: 1,
        ..Default::default()
    };
    e.start_directly(ConsistencySweep::run, sweep, "sweep-failover")
        .await;
    start_bf(&e);

    // Both mid-way: some repos swept, some batches applied, on the primary.
    let on_primary = steward_activities::store::connect_any(&pair.primary.url("target"))
        .await
        .unwrap();
    wait_for(
        "sweep and backfill mid-way",
        Duration::from_secs(120),
        || async {
            let swept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repo_state")
                .fetch_one(store.pool())
                .await
                .ok()?;
            (swept >= 2 && recorded_batches(&on_primary).await >= 2).then_some(())
        },
    )
    .await
    .unwrap();
    on_primary.close().await;
    store.pool().close().await;

    pair.primary.pg_ctl(&["-m", "fast", "-w", "stop"]);
    pair.standby.pg_ctl(&["-w", "promote"]);

    let swept = e
        .result::<ConsistencySweep>("sweep-failover", Duration::from_secs(240))
        .await;
    assert!(!swept.automation_error, "{swept:?}");
    assert_eq!(
        swept.repos_processed.len(),
        REPOS,
        "every repo swept: {swept:?}"
    );
    let done = e
        .result::<BackfillRollout>(&bf(), Duration::from_secs(240))
        .await;
    assert_eq!(done.outcome, "done", "{done:?}");

    // On the new primary: every row once.
    let now = Store::connect(&store_url).await.unwrap();
    assert_eq!(now.primary_host().as_deref(), Some(standby.as_str()));
    let count = |sql: &'static str| {
        let pool = now.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM workstreams").await,
        REPOS as i64
    );
    assert_eq!(count("SELECT COUNT(*) FROM tasks").await, 2 * REPOS as i64);
    assert_eq!(
        count("SELECT COUNT(*) FROM progress_events WHERE workflow_id = 'sweep-failover'").await,
        1,
        "the sweep recorded once"
    );
    let target = steward_activities::store::connect_any(&pair.standby.url("target"))
        .await
        .unwrap();
    assert_eq!(edges(&target, "<> 'earlier-run'").await, expected);
    let batches: (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT batch_no), SUM(CASE WHEN status = 'applied' THEN 0 ELSE 1 END) \
         FROM steward_backfill_progress WHERE lo IS NOT NULL",
    )
    .fetch_one(&target)
    .await
    .unwrap();
    assert_eq!(
        batches.0, batches.1,
        "each batch recorded once: {batches:?}"
    );
    assert_eq!(batches.2, 0, "no batch recorded as failed: {batches:?}");
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM workstreams")
        .fetch_all(now.pool())
        .await
        .unwrap();
    for (name, path) in names.iter().zip(&paths) {
        let text = std::fs::read_to_string(path.join(format!("workplans/{name}.md"))).unwrap();
        assert_eq!(
            text.matches("state_hub_task_id").count(),
            2,
            "{name}: {text}"
        );
        assert_eq!(commit_count(path), 2, "{name}: one writeback commit");
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("state_hub_workstream_id:"))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("{name}: no workstream id: {text}"));
        assert!(
            ids.contains(&id),
            "{name}: the id in the file ({id}) is the store's"
        );
    }

    // What the worker saw, and said.
    let log = e.worker_log();
    let said = log
        .lines()
        .find(|l| l.contains("state store failover: writing to"))
        .unwrap_or_else(|| panic!("no failover line: {log}"));
    assert!(
        said.contains(&format!("writing to {standby} instead of {primary}")),
        "{said}"
    );
    let rto: f64 = said
        .split(" s after ")
        .next()
        .and_then(|head| head.rsplit(", ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no RTO in {said}"));
    assert!(rto > 0.0 && rto < 60.0, "{said}");
    assert!(
        log.contains(&format!(
            "backfill `bf`'s database failover: writing to {standby} instead of {primary}"
        )),
        "{log}"
    );
    let exported = http_get(&metrics, "/metrics").unwrap();
    steward_tests::assert_promtool_accepts(&exported, "the worker's /metrics after a failover");
    // The runbook's "idempotency violations = 0", as the dashboard plots it.
    let sample = |name: &str| {
        exported
            .lines()
            .find(|l| l.starts_with(name) && l.contains("validation=\"idempotency violations\""))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(
        sample("steward_backfill_validation_value{").as_deref(),
        Some("0"),
        "{exported}"
    );
    assert_eq!(
        sample("steward_backfill_validation_ok{").as_deref(),
        Some("1"),
        "{exported}"
    );
    assert!(
        exported
            .lines()
            .any(|l| l.starts_with("steward_store_failovers")
                && l.contains(&format!("host=\"{standby}\""))
                && l.ends_with(" 1")),
        "{exported}"
    );
}
