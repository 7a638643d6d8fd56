//! State store on both backends: migrations, the lease lock, fairness
//! marks, status changes and progress events.

use steward_activities::Store;
use steward_proto::v1::ProgressEvent;
use steward_tests::{BACKENDS, database, temp_dir};

#[tokio::test]
async fn migrations_are_idempotent_on_both_backends() {
    let dir = temp_dir();
    for backend in BACKENDS {
        let url = database(backend, dir.path()).await;
        let first = Store::connect(&url).await.unwrap();
        let again = Store::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM steward_schema")
            .fetch_one(again.pool())
            .await
            .unwrap();
        assert_eq!(
            n,
            steward_activities::store::SCHEMA_VERSION,
            "one row per migration, each applied once: {backend:?}"
        );
        drop(first);
    }
}

#[tokio::test]
async fn workers_starting_at_once_on_a_fresh_database_all_migrate_it() {
    let dir = temp_dir();
    for backend in BACKENDS {
        for _ in 0..3 {
            let url = database(backend, dir.path()).await;
            let starts = (0..6).map(|_| Store::connect(&url));
            for (i, store) in futures::future::join_all(starts)
                .await
                .into_iter()
                .enumerate()
            {
                if let Err(e) = store {
                    panic!("{backend:?}: start {i} failed: {e}");
                }
            }
        }
    }
}

#[tokio::test]
async fn lease_lock_refuses_a_second_live_holder_and_expires() {
    let dir = temp_dir();
    for backend in BACKENDS {
        let store = Store::connect(&database(backend, dir.path()).await)
            .await
            .unwrap();
        let t0 = 1_000_000;
        let a = store.acquire_lock("sweep", "run-a", 60, t0).await.unwrap();
        assert!(a.acquired, "{backend:?}");
        let b = store
            .acquire_lock("sweep", "run-b", 60, t0 + 1000)
            .await
            .unwrap();
        assert!(!b.acquired, "{backend:?}: a live lease is refused");
        assert_eq!(b.holder, "run-a");
        let again = store
            .acquire_lock("sweep", "run-a", 60, t0 + 2000)
            .await
            .unwrap();
        assert!(
            again.acquired && again.expires_at_ms == t0 + 62_000,
            "{backend:?}: same holder renews"
        );
        assert!(
            store
                .renew_lock("sweep", "run-a", 60, t0 + 3000)
                .await
                .unwrap()
        );
        assert!(
            !store
                .renew_lock("sweep", "run-b", 60, t0 + 3000)
                .await
                .unwrap()
        );
        let after_expiry = t0 + 3000 + 61_000;
        let c = store
            .acquire_lock("sweep", "run-c", 60, after_expiry)
            .await
            .unwrap();
        assert!(c.acquired, "{backend:?}: a crashed holder's lease expires");
        store.release_lock("sweep", "run-a").await.unwrap();
        assert_eq!(
            store.lock_holder("sweep").await.unwrap().unwrap().0,
            "run-c",
            "only the holder releases"
        );
        store.release_lock("sweep", "run-c").await.unwrap();
        assert!(store.lock_holder("sweep").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn starved_repos_come_back_oldest_first_and_clear_on_success() {
    let dir = temp_dir();
    for backend in BACKENDS {
        let store = Store::connect(&database(backend, dir.path()).await)
            .await
            .unwrap();
        store.mark_starved("b", 200).await.unwrap();
        store.mark_starved("a", 300).await.unwrap();
        store.mark_starved("b", 400).await.unwrap();
        assert_eq!(
            store.starved_repos().await.unwrap(),
            vec!["b", "a"],
            "{backend:?}"
        );
        store.set_repo_swept("b", "fp", 500).await.unwrap();
        assert_eq!(store.starved_repos().await.unwrap(), vec!["a"]);
        assert_eq!(store.repo_state("b").await.unwrap().fingerprint, "fp");
    }
}

#[tokio::test]
async fn progress_events_are_written_once_and_read_newest_first() {
    let dir = temp_dir();
    for backend in BACKENDS {
        let store = Store::connect(&database(backend, dir.path()).await)
            .await
            .unwrap();
        for (i, source) in ["schedule", "manual", "schedule"].iter().enumerate() {
            let e = ProgressEvent {
                id: format!("wf-{i}:run"),
                event_type: "consistency_sweep_remote_all".into(),
                source: (*source).into(),
                detail_json: format!("{{\"n\":{i}}}"),
                ..Default::default()
            };
            store.insert_progress(&e, 1000 + i as i64).await.unwrap();
            store.insert_progress(&e, 9999).await.unwrap();
        }
        let all = store
            .progress(Some("consistency_sweep_remote_all"), 0, 10)
            .await
            .unwrap();
        assert_eq!(all.len(), 3, "{backend:?}: a retried insert adds nothing");
        assert_eq!(all[0].id, "wf-2:run");
        assert_eq!(store.progress(None, 1001, 10).await.unwrap().len(), 2);
        assert!(
            store
                .progress(Some("other"), 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
