//! The `RestoreDrill` workflow on a real Temporal dev server, against both
//! state store backends: encrypted backups copied off-node and restored
//! from that copy into an isolated target (a second PostgreSQL cluster the
//! test starts, or a folder of its own for SQLite), a live store left as it
//! was, RTO and RPO against their targets, and every way a restore can
//! fail named, alerted and cleaned up.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use steward_activities::Store;
use steward_activities::dburl::DatabaseUrl;
use steward_activities::restore::crypt;
use steward_activities::restore::{TABLES, figures};
use steward_tests::{
    BACKENDS, Backend, PgCluster, PgRoot, RepoEntry, Server, Steward, assert_no_planted_secret,
    database, make_repo, read, run_steward, task_queue, temp_dir, with_planted_password, workplan,
    write_config,
};

fn drill(config: &Path, address: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["restore-drill", "run"];
    args.extend_from_slice(extra);
    let (code, out, err) = run_steward(config, address, &args);
    let json = serde_json::from_str(&out).unwrap_or_else(|_| panic!("JSON result: {out} {err}"));
    (code, json, err)
}

/// A drill's keys and folders in `root`: the `[restore]` table, and the
/// identity file and off-node folder it names.
struct Keys {
    table: String,
    identity: PathBuf,
    recipient: String,
    offsite: PathBuf,
}

fn keys(root: &Path, target_url: Option<&str>, more: &str) -> Keys {
    let pair = crypt::keygen();
    let identity = root.join("keys/restore.key");
    std::fs::create_dir_all(identity.parent().unwrap()).unwrap();
    std::fs::write(&identity, format!("{}\n", pair.identity)).unwrap();
    let offsite = root.join("offsite");
    let target = target_url
        .map(|u| format!("target_url = \"{u}\"\n"))
        .unwrap_or_default();
    Keys {
        table: format!(
            "[restore]\nrecipient = \"{}\"\nidentity_file = \"{}\"\noffsite_dir = \"{}\"\n{target}{more}",
            pair.recipient,
            identity.display(),
            offsite.display()
        ),
        identity,
        recipient: pair.recipient,
        offsite,
    }
}

/// The scratch databases a drill left on `server` (an admin URL).
async fn scratch_databases(server: &str) -> Vec<String> {
    let pool = steward_activities::store::connect_any(server)
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

/// Files in `dir` and below, but for the backups, their manifests and the
/// drill's evidence: a decrypted copy left behind would show here.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if !(name.ends_with(".age") || name.ends_with(".manifest.json")) {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

/// Replaces the workplan title in a plaintext backup: a backup whose
/// content is not what the store held.
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
async fn drills_verify_encrypted_offsite_backups_in_an_isolated_target_and_catch_corrupted_ones() {
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
        // A PostgreSQL store restores into a cluster of its own.
        let pg_root = PgRoot::new();
        let target = (backend == Backend::Postgres).then(|| PgCluster::init(&pg_root, "target"));
        let target_url = target.as_ref().map(|t| t.url("postgres"));
        let k = keys(root, target_url.as_deref(), "keep = 2\n");
        let (config, server, worker) = synced(root, &repo, &db, "restore", &k).await;

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

        // Encrypted to the recipient, copied off-node, restored from the copy.
        assert_eq!(backup["encrypted"], true, "{backup}");
        assert_eq!(backup["recipient"], k.recipient.as_str());
        let backup_path = PathBuf::from(backup["path"].as_str().unwrap());
        let offsite = PathBuf::from(backup["offsite_path"].as_str().unwrap());
        assert!(offsite.starts_with(&k.offsite), "{offsite:?}");
        assert_eq!(
            std::fs::read(&offsite).unwrap(),
            std::fs::read(&backup_path).unwrap()
        );
        let sealed = std::fs::read(&backup_path).unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1"), "an age file");
        for plain in [&b"SQLite format 3"[..], b"Plan RD-1", b"CREATE TABLE"] {
            assert!(
                !sealed.windows(plain.len()).any(|w| w == plain),
                "{backend:?}: plaintext in the backup"
            );
        }
        assert!(
            leftovers(backup_path.parent().unwrap()).is_empty(),
            "{backend:?}: no plaintext dump left: {:?}",
            leftovers(backup_path.parent().unwrap())
        );
        let restore = &result["restore"];
        assert_eq!(
            restore["source"],
            offsite.display().to_string(),
            "{restore}"
        );
        assert_eq!(restore["source_kind"], "the off-node copy", "{restore}");
        assert_eq!(restore["decrypted_with"], k.identity.display().to_string());
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
        // steward's own API, started read-only on the restored copy,
        // served the restored figures.
        let served = restore["health"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "served")
            .unwrap_or_else(|| panic!("{backend:?}: no served check: {restore}"));
        let said = served["detail"].as_str().unwrap();
        assert!(
            said.contains("/v1/summary") && said.contains("2 workstreams, 5 tasks"),
            "{backend:?}: {said}"
        );
        let rto = restore["rto_seconds"].as_f64().unwrap();
        let rpo = restore["rpo_seconds"].as_f64().unwrap();
        assert!(rto > 0.0 && rto < 900.0, "{restore}");
        // The restore itself (decrypt and load) is measured, and is part
        // of the RTO, which ends when the health queries pass.
        let restore_seconds = restore["restore_seconds"].as_f64().unwrap_or_default();
        assert!(restore_seconds > 0.0 && restore_seconds <= rto, "{restore}");
        assert!((0.0..120.0).contains(&rpo), "{restore}");
        assert_eq!(restore["rto_target_seconds"], 900.0);

        // The backup is private; the target is isolated and left clean.
        let mode = std::fs::metadata(&backup_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o007, 0, "{backend:?}: backup mode {mode:o}");

        // The documented manual restore's decryption: checked against the
        // manifest, into a new file only its owner reads, never over one.
        let plain = root.join("manual/state.restored");
        let decrypt = |out: &Path| {
            run_steward(
                &config,
                &server.address,
                &[
                    "restore-drill",
                    "decrypt",
                    "--backup",
                    offsite.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ],
            )
        };
        let (code, out, err) = decrypt(&plain);
        assert_eq!(code, 0, "{backend:?}: {out} {err}");
        let said: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(said["backend"], backup["backend"], "{said}");
        let mode = std::fs::metadata(&plain).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{backend:?}: decrypted mode {mode:o}");
        let folder = std::fs::metadata(plain.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            folder & 0o077,
            0,
            "{backend:?}: its folder's mode {folder:o}"
        );
        let text = std::fs::read(&plain).unwrap();
        let looks = match backend {
            Backend::Sqlite => &b"SQLite format 3"[..],
            Backend::Postgres => b"CREATE TABLE",
        };
        assert!(
            text.windows(looks.len()).any(|w| w == looks),
            "{backend:?}: a plain store"
        );
        let (code, _, err) = decrypt(&plain);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("exists"), "{err}");
        match backend {
            Backend::Sqlite => {
                let restored = restore["target"].as_str().unwrap();
                assert!(!Path::new(restored).exists(), "scratch file removed");
                assert!(
                    restored.starts_with(&root.join("data/restore-target").display().to_string())
                );
            }
            Backend::Postgres => {
                let target_url = target_url.as_deref().unwrap();
                assert!(
                    scratch_databases(target_url).await.is_empty(),
                    "scratch database dropped"
                );
                assert!(
                    restore["target"]
                        .as_str()
                        .unwrap()
                        .contains(&target.as_ref().unwrap().host()),
                    "restored on the isolated cluster: {restore}"
                );
                let live_admin = std::env::var("STEWARD_TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                assert!(
                    scratch_databases(&live_admin).await.is_empty(),
                    "never on the live server"
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

        // The evidence names RTO and RPO, with the report's hash.
        let evidence = root.join("data/artifacts/restore").join(format!(
            "{}-{}",
            result["started_at"].as_str().unwrap().replace(':', "-"),
            result["run_id"].as_str().unwrap()
        ));
        let md = std::fs::read_to_string(evidence.join("report.md")).unwrap();
        assert!(
            md.contains("| RTO (restore start → health queries pass)"),
            "{md}"
        );
        assert!(md.contains("| RPO (the backup's age)"), "{md}");
        assert!(
            std::fs::read_to_string(evidence.join("report.json.sha256"))
                .unwrap()
                .len()
                > 64
        );

        // Someone with the public key re-seals a changed dump: the hash and
        // the figures catch it.
        let plain = root.join("tampered.plain");
        crypt::decrypt_file(&offsite, &plain, &k.identity).unwrap();
        tamper(backend, &plain);
        let copy = offsite.with_file_name("tampered.age");
        crypt::encrypt_file(&plain, &copy, &k.recipient).unwrap();
        std::fs::remove_file(&plain).unwrap();
        copy_manifest(&offsite, &copy);
        let (code, bad, _) = drill(
            &config,
            &server.address,
            &["--backup", copy.to_str().unwrap()],
        );
        assert_eq!(code, 1, "{bad}");
        assert_eq!(bad["outcome"], "mismatch", "{bad}");
        assert_eq!(
            bad["restore"]["source_kind"], "the backup named, off-node",
            "{bad}"
        );
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
                .contains("is not an age-encrypted backup"),
            "{broken}"
        );
        if let Some(t) = &target_url {
            assert!(
                scratch_databases(t).await.is_empty(),
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
        // A backup named with --backup from a local folder verifies, and is
        // said to be a local file: never called the off-node copy, here or
        // in `last`.
        let local = root.join("local-copy.age");
        std::fs::copy(&offsite, &local).unwrap();
        copy_manifest(&offsite, &local);
        let (code, named, err) = drill(
            &config,
            &server.address,
            &["--backup", local.to_str().unwrap()],
        );
        assert_eq!(
            (code, named["outcome"].as_str()),
            (0, Some("verified")),
            "{named} {err}"
        );
        assert_eq!(
            (
                named["restore"]["source"].as_str(),
                named["restore"]["source_kind"].as_str(),
                named["backup"]["named"].as_bool(),
                named["backup"]["offsite_path"].as_str().unwrap_or_default(),
            ),
            (
                local.to_str(),
                Some("the backup named, a local file"),
                Some(true),
                ""
            ),
            "{named}"
        );
        let (_, out, _) = run_steward(&config, &server.address, &["restore-drill", "last"]);
        assert!(
            !out.contains(&format!("\"offsite_path\": \"{}\"", local.display())),
            "{out}"
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
        drop(target);
    }
}

/// Gives `copy` the manifest of `backup`, so a drill reads it as that
/// backup (`--backup <copy>`).
fn copy_manifest(backup: &Path, copy: &Path) {
    std::fs::copy(
        format!("{}.manifest.json", backup.display()),
        format!("{}.manifest.json", copy.display()),
    )
    .unwrap();
}

/// A SQLite store with a drill set up as `more` adds to `[restore]`, a
/// synced repo, a dev server and a worker.
async fn sqlite_env(
    test: &str,
    root: &Path,
    more: &str,
) -> (PathBuf, Keys, Server, Steward, String) {
    let repo = root.join("repo");
    make_repo(&repo, &[("workplans/RF-1.md", &workplan("RF-1", 2))]);
    let db = database(Backend::Sqlite, root).await;
    let k = keys(root, None, more);
    let (config, server, worker) = synced(root, &repo, &db, test, &k).await;
    (config, k, server, worker, db)
}

/// The config of `repo` on store `db` with the drill's keys `k`, a dev
/// server and a worker on a queue named after `test`, the repo synced by
/// one sweep.
async fn synced(
    root: &Path,
    repo: &Path,
    db: &str,
    test: &str,
    k: &Keys,
) -> (PathBuf, Server, Steward) {
    let config = write_config(
        root,
        db,
        &task_queue(test),
        &[RepoEntry {
            name: "repo",
            path: repo,
            remote: None,
            push: false,
        }],
        &k.table,
    );
    let server = Server::start(root).await;
    let worker = Steward::worker(&config, &server.address);
    let (code, _, err) = run_steward(&config, &server.address, &["sweep", "run"]);
    assert_eq!(code, 0, "the sweep that syncs {}: {err}", root.display());
    (config, server, worker)
}

#[tokio::test]
async fn a_wrong_key_or_a_tampered_backup_fails_named_alerted_and_clean() {
    let dir = temp_dir();
    let root = dir.path();
    let (config, k, server, _worker, db) = sqlite_env("restore-failures", root, "").await;
    let live = Store::connect(&db).await.unwrap();
    let (code, good, err) = drill(&config, &server.address, &[]);
    assert_eq!(
        (code, good["outcome"].as_str()),
        (0, Some("verified")),
        "{good} {err}"
    );
    let offsite = PathBuf::from(good["backup"]["offsite_path"].as_str().unwrap());
    let before = figures(live.pool()).await.unwrap();

    let copy_of = |name: &str| {
        let copy = offsite.with_file_name(name);
        std::fs::copy(&offsite, &copy).unwrap();
        copy_manifest(&offsite, &copy);
        copy
    };
    let mut cases: Vec<(&str, PathBuf, &str)> = Vec::new();
    // Bytes changed inside the ciphertext.
    let tampered = copy_of("tampered.db.age");
    let mut bytes = std::fs::read(&tampered).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0x01;
    std::fs::write(&tampered, bytes).unwrap();
    cases.push(("tampered", tampered, "the ciphertext was changed"));
    for (what, backup, says) in &cases {
        let (code, r, _) = drill(
            &config,
            &server.address,
            &["--backup", backup.to_str().unwrap()],
        );
        assert_eq!(
            (code, r["outcome"].as_str()),
            (1, Some("failed")),
            "{what}: {r}"
        );
        let error = r["restore"]["error"].as_str().unwrap();
        assert!(error.contains(says), "{what}: {error}");
    }

    // A wrong key: the config's identity file holds another key now.
    std::fs::write(&k.identity, format!("{}\n", crypt::keygen().identity)).unwrap();
    let (code, r, _) = drill(
        &config,
        &server.address,
        &["--backup", offsite.to_str().unwrap()],
    );
    assert_eq!((code, r["outcome"].as_str()), (1, Some("failed")), "{r}");
    let error = r["restore"]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "does not decrypt with the identity in {}",
            k.identity.display()
        )),
        "{error}"
    );

    let (_, out, _) = run_steward(&config, &server.address, &["alerts", "list"]);
    let alerts: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let failed: Vec<_> = alerts
        .iter()
        .filter(|a| a["kind"] == "restore.failed")
        .collect();
    assert_eq!(failed.len(), 2, "{alerts:?}");
    assert!(failed.iter().all(|a| a["severity"] == "critical"));
    assert!(
        leftovers(&root.join("data/restore-target")).is_empty(),
        "no decrypted copy left: {:?}",
        leftovers(&root.join("data/restore-target"))
    );
    assert!(
        leftovers(&k.offsite).is_empty(),
        "{:?}",
        leftovers(&k.offsite)
    );
    let after = figures(live.pool()).await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        if b.table != "progress_events" {
            assert_eq!(a, b, "the drills changed {}", b.table);
        }
    }
}

#[tokio::test]
async fn an_offsite_copy_that_was_not_made_fails_the_drill_and_the_local_file_is_never_restored() {
    let dir = temp_dir();
    let root = dir.path();
    // A copy command that exits 0 and copies nothing.
    let (config, k, server, _worker, _db) = sqlite_env(
        "restore-no-offsite",
        root,
        "offsite_copy = [\"true\", \"{file}\", \"{dir}\"]\n",
    )
    .await;
    let (code, r, _) = drill(&config, &server.address, &[]);
    assert_eq!((code, r["outcome"].as_str()), (1, Some("failed")), "{r}");
    let error = r["restore"]["error"].as_str().unwrap();
    assert!(
        error.contains("no off-node copy to restore from (the local file is never used)"),
        "{error}"
    );
    assert!(
        error.contains("ran, but") && error.contains("is not there"),
        "{error}"
    );
    assert!(
        r["restore"]["tables"].as_array().unwrap().is_empty(),
        "nothing was restored: {r}"
    );
    let local = PathBuf::from(r["backup"]["path"].as_str().unwrap());
    assert!(local.exists(), "the local backup exists, and was not used");
    assert!(leftovers(&k.offsite).is_empty());
    let (_, out, _) = run_steward(&config, &server.address, &["alerts", "list"]);
    assert!(out.contains("restore.failed"), "{out}");
}

#[tokio::test]
async fn a_drill_that_restores_slower_or_older_than_its_targets_is_target_missed() {
    let dir = temp_dir();
    let root = dir.path();
    let (config, _k, server, _worker, _db) = sqlite_env(
        "restore-targets",
        root,
        "rto_seconds = 0.000001\nrpo_seconds = 0.000001\n",
    )
    .await;
    let (code, r, _) = drill(&config, &server.address, &[]);
    assert_eq!(
        (code, r["outcome"].as_str()),
        (1, Some("target-missed")),
        "{r}"
    );
    assert!(
        r["restore"]["mismatches"].as_array().unwrap().is_empty(),
        "{r}"
    );
    let (_, out, _) = run_steward(&config, &server.address, &["alerts", "list"]);
    let alerts: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let alert = alerts
        .iter()
        .find(|a| a["kind"] == "restore.failed")
        .expect("an alert");
    let message = alert["message"].as_str().unwrap();
    assert!(message.contains("restored as taken, but RTO"), "{message}");
    assert!(message.contains("RPO"), "{message}");
}

#[tokio::test]
async fn a_postgres_drill_refuses_the_live_server_and_names_an_isolated_target_that_is_down() {
    let dir = temp_dir();
    let root = dir.path();
    let db = database(Backend::Postgres, root).await;
    let pg_root = PgRoot::new();
    let target = PgCluster::init(&pg_root, "target");
    let target_url = target.url("postgres");
    let queue = task_queue("restore-target-down");
    let k = keys(root, Some(&target_url), "");
    let config = write_config(root, &db, &queue, &[], &k.table);
    let server = Server::start(root).await;
    let mut worker = Steward::worker(&config, &server.address);
    let live = Store::connect(&db).await.unwrap();
    let before = figures(live.pool()).await.unwrap();
    target.crash();
    let (code, r, _) = drill(&config, &server.address, &[]);
    assert_eq!((code, r["outcome"].as_str()), (1, Some("failed")), "{r}");
    let error = r["restore"]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "the isolated target postgres://postgres@{}/postgres is not reachable",
            target.host()
        )),
        "{error}"
    );
    let (_, out, _) = run_steward(&config, &server.address, &["alerts", "list"]);
    assert!(out.contains("restore.failed"), "{out}");
    assert!(leftovers(&root.join("data/backups")).is_empty());
    let after = figures(live.pool()).await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        if b.table != "progress_events" {
            assert_eq!(a, b, "the drill changed {}", b.table);
        }
    }

    // The live server as the "isolated" target is refused outright.
    worker.kill9();
    let live_server = DatabaseUrl::parse(&db).unwrap().with_database("postgres");
    let same = write_config(
        root,
        &db,
        &queue,
        &[],
        &keys(root, Some(live_server.as_str()), "").table,
    );
    let mut worker = Steward::worker(&same, &server.address);
    let (code, r, _) = drill(&same, &server.address, &[]);
    assert_eq!((code, r["outcome"].as_str()), (1, Some("failed")), "{r}");
    assert!(
        r["restore"]["error"]
            .as_str()
            .unwrap()
            .contains("is the live server"),
        "{r}"
    );
    worker.kill9();
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
    use steward_proto::v1::RestoreDrillInput;
    use steward_workflows::RestoreDrill;
    use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

    let dir = temp_dir();
    let root = dir.path();
    let repo = root.join("repo");
    make_repo(&repo, &[("workplans/RK-1.md", &workplan("RK-1", 3))]);
    let db = database(Backend::Postgres, root).await;
    let queue = task_queue("restore-kill");
    let pg_root = PgRoot::new();
    let target = PgCluster::init(&pg_root, "target");
    let target_url = target.url("postgres");
    let k = keys(root, Some(&target_url), "");
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
        &k.table,
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
        scratch_databases(&target_url).await.is_empty(),
        "no scratch database left behind by a killed attempt"
    );
    assert!(
        leftovers(&root.join("data/backups")).is_empty(),
        "no plaintext dump left behind by a killed attempt: {:?}",
        leftovers(&root.join("data/backups"))
    );
    let after = figures(live.pool()).await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        if b.table == "progress_events" {
            assert_eq!(a.rows, b.rows + 3, "one record per drill");
        } else if b.table == "audit_archive" {
            // The archiver beside the worker archives the closed drills.
            assert!(a.rows >= b.rows && a.rows <= b.rows + 3, "{a:?}");
        } else {
            assert_eq!(a, b, "the drills changed {}", b.table);
        }
    }
}

#[test]
fn keygen_needs_no_config_writes_a_private_identity_and_never_overwrites_it() {
    let dir = temp_dir();
    let root = dir.path();
    let identity = root.join("restore.key");
    let no_config = root.join("absent.toml");
    let out_arg = identity.to_str().unwrap();
    let keygen = || {
        run_steward(
            &no_config,
            "127.0.0.1:1",
            &["restore-drill", "keygen", "--out", out_arg],
        )
    };
    let (code, out, err) = keygen();
    assert_eq!(code, 0, "keygen without a config file: {out} {err}");
    let mode = std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the identity is readable by its owner only");
    assert!(
        out.starts_with("[restore]\n"),
        "the `[restore]` lines: {out}"
    );
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("`{key}` in {out}"))
            .to_string()
    };
    let recipient = value("recipient");
    crypt::check_recipient(&recipient).unwrap();
    assert_eq!(
        PathBuf::from(value("identity_file")),
        std::fs::canonicalize(&identity).unwrap()
    );
    // The printed pair works: what is sealed to the recipient opens with the file.
    let plain = root.join("plain");
    std::fs::write(&plain, b"state store backup").unwrap();
    crypt::encrypt_file(&plain, &root.join("sealed"), &recipient).unwrap();
    crypt::decrypt_file(&root.join("sealed"), &root.join("opened"), &identity).unwrap();
    assert_eq!(
        std::fs::read(root.join("opened")).unwrap(),
        b"state store backup"
    );

    let before = std::fs::read(&identity).unwrap();
    let (code, _, err) = keygen();
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "names why: {err}");
    assert_eq!(
        std::fs::read(&identity).unwrap(),
        before,
        "never overwritten"
    );
}

#[tokio::test]
async fn a_restore_drill_pinned_to_its_host_backs_up_and_copies_off_node_there_only() {
    let dir = temp_dir();
    let root = dir.path();
    let (config, _k, server, _worker, _db) =
        sqlite_env("restore-host", root, "runs_on = \"vault\"\n").await;
    let text = read(&config);
    let data = format!("data_dir = \"{}\"", root.join("data").display());
    assert!(text.contains(&data));
    let vault = root.join("vault.toml");
    std::fs::write(
        &vault,
        text.replace(
            &data,
            &format!("data_dir = \"{}\"", root.join("data-vault").display()),
        ),
    )
    .unwrap();
    let _vault = Steward::worker_with(&vault, &server.address, &["--host", "vault"]);

    let (code, result, err) = drill(&config, &server.address, &[]);
    assert_eq!(
        (code, result["outcome"].as_str()),
        (0, Some("verified")),
        "{result} {err}"
    );
    let id = result["workflow_id"].as_str().unwrap();
    let (code, out, err) = run_steward(&config, &server.address, &["history", id, "--json"]);
    assert_eq!(code, 0, "{err}");
    let timeline: serde_json::Value = serde_json::from_str(&out).unwrap();
    steward_tests::assert_ran_only_on(&timeline, steward_proto::names::RESTORE_BACKUP, "vault");
}

/// `steward api read-only`: no Temporal, no config; `/healthz` for anyone,
/// the rest for the one token it was given; the store is opened so that
/// nothing can write to it. A program that is not steward's API fails the
/// drill's served check, named.
#[tokio::test]
async fn the_read_only_api_serves_a_copy_with_its_token_only_and_cannot_write() {
    use steward_activities::restore::served;
    use steward_activities::store::Workstream;
    let dir = temp_dir();
    let url = format!("sqlite://{}", dir.path().join("copy.db").display());
    let store = Store::connect(&url).await.unwrap();
    let ws = Workstream {
        id: "ws-1".into(),
        workplan_id: "RO-1".into(),
        repo: "repo".into(),
        path: "workplans/RO-1.md".into(),
        title: "Read only".into(),
        status: "active".into(),
        ..Default::default()
    };
    store.upsert_workstream(&ws, 1).await.unwrap();
    store.pool().close().await;

    let refused = std::process::Command::new(steward_tests::steward_bin())
        .args(["api", "read-only"])
        .env(served::DATABASE_URL_ENV, &url)
        .env_remove(served::TOKEN_ENV)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains(served::TOKEN_ENV), "{said}");

    let mut api = tokio::process::Command::new(steward_tests::steward_bin())
        .args(["api", "read-only"])
        .env(served::DATABASE_URL_ENV, &url)
        .env(served::TOKEN_ENV, "the-token")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(api.stderr.take().unwrap()));
    let base = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the API says where it listens");
        if let Some(base) = line.strip_prefix(served::LISTENING) {
            break base.trim().to_string();
        }
    };
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut req = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(get("healthz", None).await.unwrap().status(), 200);
    for token in [None, Some("another-token")] {
        let answer = get("v1/summary", token).await.unwrap();
        assert_eq!(answer.status(), 401, "{token:?}");
        assert!(answer.text().await.unwrap().contains(served::TOKEN_ENV));
    }
    let ready = get("readyz", Some("the-token")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().contains("read-only"));
    let summary: serde_json::Value = get("v1/summary", Some("the-token"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["workstreams"], 1, "{summary}");
    assert_eq!(summary["open_findings"], 0, "{summary}");
    api.kill().await.unwrap();

    // What the API opens refuses every write.
    let copy = Store::open_read_only(&url).await.unwrap();
    let wrote = copy.upsert_workstream(&ws, 2).await;
    assert!(wrote.is_err(), "a read-only store wrote");

    let not_steward = served::check(Path::new("/bin/true"), &url).await;
    assert!(!not_steward.ok);
    assert!(
        not_steward.detail.contains("did not start"),
        "{}",
        not_steward.detail
    );
    let served = served::check(&steward_tests::steward_bin(), &url).await;
    assert!(served.ok, "{}", served.detail);
    assert!(served.detail.contains("1 workstreams"), "{}", served.detail);
}
