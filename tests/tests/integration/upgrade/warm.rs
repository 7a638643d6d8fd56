//! Warm upgrades of the canonical deployment: healthy, broken, a rollback
//! that fails too, trials, the schedule and the per-app lock, an app
//! already on the latest version, bad programs and health URLs, a long
//! snapshot.

use super::*;

#[tokio::test]
async fn a_healthy_upgrade_keeps_the_data_and_advances_last_good() {
    let app = App::new(
        "healthy",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        "",
    )
    .await;
    let marker = app.marker();
    // A data file others may write: its snapshot must not be.
    let loose = app.home.join("data/db/rows.bin");
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(
        (r.outcome.as_str(), r.attempted.as_str(), r.recovered),
        ("upgraded", "1.1.0+5.1.0", true),
        "{r:?}"
    );
    // The result carries its mode, the exact commit tried and what it was
    // compared with.
    assert_eq!(
        (r.mode.as_str(), r.compared_with.as_str()),
        ("warm", BASE),
        "{r:?}"
    );
    assert!(
        r.revision.len() == 40 && r.revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{r:?}"
    );
    assert_not_world_writable(&app.home.join("snapshots"));
    assert_eq!(app.last_good(), "1.1.0+5.1.0");
    assert_eq!(app.serving(), "1.1.0+5.1.0");
    assert_eq!(app.marker(), marker, "data kept");
    assert_eq!(
        app.snapshots(),
        vec!["last-known-good", "last_good"],
        "exactly one snapshot"
    );
    let again = app.run(&["--reason", "nightly"]);
    assert_eq!(again.outcome, "noop-healthy");
}

#[tokio::test]
async fn a_broken_latest_is_rolled_back_with_the_data_intact() {
    let app = App::new(
        "broken",
        &[(BASE, "ok", ""), ("1.2.0+5.0.0", "corrupt", "")],
        "",
    )
    .await;
    let before = app.data_digest();
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(
        (r.outcome.as_str(), r.recovered),
        ("rolled-back", true),
        "{r:?}"
    );
    assert_eq!(
        data_of(&app.home),
        before,
        "the snapshot's exact bytes are back"
    );
    assert_eq!(
        app.marker(),
        "marker written before the upgrade\n",
        "marker data intact"
    );
    assert_eq!(
        std::fs::read(app.home.join("data/db/rows.bin")).unwrap(),
        vec![7u8, 0, 255, 1]
    );
    assert_eq!(app.last_good(), BASE, "last good unchanged");
    assert_eq!(app.serving(), BASE);
    let alerts = app.alerts_of("upgrade.rolled-back");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["detail"]["recovered"], true);
    assert_eq!(alerts[0]["detail"]["attempted"], "1.2.0+5.0.0");
    assert_eq!(alerts[0]["detail"]["last_good"], BASE);
}

#[tokio::test]
async fn a_rollback_that_fails_too_is_rollback_failed_with_a_critical_alert() {
    let app = App::new(
        "rbfail",
        &[(BASE, "ok", ""), ("1.3.0+5.0.0", "unhealthy", "")],
        "",
    )
    .await;
    // The last good version can no longer be deployed.
    std::fs::write(
        app.home.join("behaviors.json"),
        format!("{{\"{BASE}\": \"fail-deploy\", \"1.3.0+5.0.0\": \"unhealthy\"}}"),
    )
    .unwrap();
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(
        (r.outcome.as_str(), r.recovered),
        ("rollback-failed", false),
        "{r:?}"
    );
    let alerts = app.alerts_of("upgrade.rollback-failed");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["detail"]["recovered"], false);
    assert_eq!(app.last_good(), BASE);
}

#[tokio::test]
async fn trials_never_move_last_good_or_the_data() {
    let mut app = App::new(
        "trial",
        &[
            (BASE, "ok", ""),
            ("1.1.0+5.1.0", "ok", ""),
            ("1.2.0+5.0.0", "corrupt", ""),
            ("2.0.0+5.0.0", "ok", ""),
        ],
        "",
    )
    .await;
    let before = (
        app.marker(),
        std::fs::read(app.home.join("data/db/rows.bin")).unwrap(),
    );
    let pass = app.run(&["--trial", "1.1.0+5.1.0", "--reason", "try"]);
    assert_eq!(
        (pass.outcome.as_str(), pass.recovered),
        ("trial-passed", true),
        "{pass:?}"
    );
    assert_eq!(
        (pass.mode.as_str(), pass.compared_with.as_str()),
        ("trial", BASE),
        "{pass:?}"
    );
    assert_eq!(app.last_good(), BASE);
    assert_eq!(app.serving(), BASE);
    assert_eq!(
        (
            app.marker(),
            std::fs::read(app.home.join("data/db/rows.bin")).unwrap()
        ),
        before
    );
    let fail = app.run(&["--trial", "1.2.0+5.0.0", "--reason", "try"]);
    assert_eq!(
        (fail.outcome.as_str(), fail.recovered),
        ("trial-failed", true),
        "{fail:?}"
    );
    assert_eq!(app.last_good(), BASE);
    assert_eq!(app.serving(), BASE);
    assert_eq!(
        (
            app.marker(),
            std::fs::read(app.home.join("data/db/rows.bin")).unwrap()
        ),
        before,
        "the corrupted data was restored"
    );
    // A trial of a major release runs (trials never hold) and its status
    // shows no hold.
    let major = app.run(&["--trial", "2.0.0+5.0.0", "--reason", "try"]);
    assert_eq!(major.outcome, "trial-passed", "{major:?}");
    let status = app.status().await.unwrap();
    assert_eq!(
        (status.trial, status.hold.as_str()),
        (true, ""),
        "{status:?}"
    );
    assert_eq!(app.last_good(), BASE);

    // A failed assertion is the failed check, with what it answered.
    let missing = app.home.join("data/no-such-file");
    app.reconfigure(
        "asserts",
        &format!("[[\"test\", \"-f\", \"{}\"]]", missing.display()),
    );
    let asserted = app.run(&["--trial", "1.1.0+5.1.0", "--reason", "try"]);
    assert_eq!(asserted.outcome, "trial-failed", "{asserted:?}");
    assert_eq!(
        asserted.failed_check,
        format!("test -f {}", missing.display()),
        "{asserted:?}"
    );
    assert!(asserted.failed_answer.contains("exit"), "{asserted:?}");

    // `{revision}` is the exact commit of the release tried.
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(app.root.join("recipe"))
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap().trim().to_string();
    app.reconfigure(
        "asserts",
        &format!("[[\"test\", \"{{revision}}\", \"=\", \"{head}\"]]"),
    );
    let exact = app.run(&["--trial", "1.1.0+5.1.0", "--reason", "try"]);
    assert_eq!(exact.outcome, "trial-passed", "{exact:?}");
}

#[tokio::test]
async fn a_schedule_starts_the_upgrade_and_the_app_lock_keeps_runs_apart() {
    let app = App::scheduled_with_held_release("sched").await;
    // A manual upgrade is held, waiting for an approval, and holds the app.
    let (code, _, err) = app.cli(&["upgrade", "run", "sso", "--no-wait", "--reason", "by hand"]);
    assert_eq!(code, 0, "{err}");
    wait_for("held", Duration::from_secs(60), || async {
        app.status().await.filter(|s| s.phase == "held")
    })
    .await
    .unwrap();
    // The schedule fires now: its run must not touch the app.
    app.fire_schedule().await;
    let result = app.newest_recorded_result(Duration::from_secs(60)).await;
    assert!(
        result.workflow_id.starts_with(&format!("{}-", sso())),
        "started by the schedule: {}",
        result.workflow_id
    );
    assert_eq!(result.outcome, "skipped-busy", "{result:?}");
    assert!(
        result.message.contains("another upgrade of sso is running"),
        "{}",
        result.message
    );
    assert_eq!(app.serving(), BASE);
    assert_eq!(
        app.status().await.unwrap().phase,
        "held",
        "the held run is untouched"
    );
    // Once the held run ends, after the skipped one (which started
    // later), status shows the run that ended last.
    let (code, _, err) = app.approve("1.4.0+5.0.0", "migration done", "ana");
    assert_eq!(code, 0, "{err}");
    assert_eq!(app.result().await.outcome, "upgraded");
    let shown = app.ok(&["upgrade", "status", "sso"]);
    assert_eq!(shown["workflow_id"], sso(), "{shown}");
    assert_eq!(shown["outcome"], "upgraded", "{shown}");
}

#[tokio::test]
async fn an_app_on_the_latest_version_is_only_health_checked() {
    let app = App::new("noop", &[(BASE, "ok", "")], "").await;
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(
        (r.outcome.as_str(), r.recovered),
        ("noop-healthy", true),
        "{r:?}"
    );
    std::fs::write(
        app.home.join("behaviors.json"),
        format!("{{\"{BASE}\": \"unhealthy\"}}"),
    )
    .unwrap();
    assert!(app.ctl("undeploy", BASE).success() && app.ctl("deploy", BASE).success());
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(
        (r.outcome.as_str(), r.recovered),
        ("noop-unhealthy", false),
        "{r:?}"
    );
    let alerts = app.alerts_of("upgrade.noop-unhealthy");
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        app.snapshots(),
        vec!["last_good"],
        "nothing was undeployed or snapshotted"
    );
}

#[tokio::test]
async fn a_deploy_program_that_does_not_exist_is_named_before_anything_is_touched() {
    let mut app = App::new(
        "no-deploy",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        "",
    )
    .await;
    app.reconfigure("deploy", r#"["steward-no-such-deploy", "{version}"]"#);
    let before = app.data_digest();
    let (code, _, err) = app.cli(&["upgrade", "run", "sso", "--reason", "typo in the config"]);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "app `sso`: the deploy program `steward-no-such-deploy` is not an executable file or on PATH on this worker; nothing was touched"
        ),
        "{err}"
    );
    assert_eq!(app.serving(), BASE, "the app was never undeployed");
    assert_eq!(app.data_digest(), before);
    assert_eq!(app.snapshots(), vec!["last_good"], "no snapshot taken");
    assert_eq!(app.last_good(), BASE);
}

#[tokio::test]
async fn a_health_url_that_never_answers_times_out_and_the_data_is_restored() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", silent.local_addr().unwrap());
    let mut app = App::new("hang", &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")], "").await;
    app.reconfigure(
        "health",
        &format!(r#"{{ url = "{url}", interval_seconds = 1, timeout_seconds = 3 }}"#),
    );
    let before = app.data_digest();
    let started = std::time::Instant::now();
    let r = app.run(&["--reason", "nightly"]);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "nothing hangs: {:?}",
        started.elapsed()
    );
    assert_eq!(r.outcome, "rollback-failed", "{r:?}");
    assert!(
        r.message
            .contains(&format!("GET {url}: no answer within 2s")),
        "the message names the URL and the timeout: {}",
        r.message
    );
    assert_eq!(
        app.serving(),
        BASE,
        "the last good version is deployed again"
    );
    assert_eq!(app.data_digest(), before, "the snapshot's bytes are back");
    assert_eq!(app.last_good(), BASE);
    assert_eq!(app.alerts_of("upgrade.rollback-failed").len(), 1);
    drop(silent);
}

/// A snapshot of a big volume runs off the runtime's threads, so the step
/// activity keeps heartbeating while it copies: on a single-threaded
/// runtime a ticker (standing in for the heartbeat) keeps ticking through
/// the whole step.
#[tokio::test(flavor = "current_thread")]
async fn a_long_snapshot_leaves_the_runtime_free_to_heartbeat() {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let dir = temp_dir();
    let root = dir.path();
    let volume = root.join("data");
    std::fs::create_dir_all(&volume).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut big = std::fs::File::create(volume.join("big.bin")).unwrap();
    for _ in 0..64 {
        big.write_all(&chunk).unwrap();
    }
    drop(big);
    let config = root.join("steward.toml");
    let loaded = steward_worker::config::parse(
        &format!(
            r#"[[apps]]
name = "big"
recipe_repo = "{root}/recipe"
deploy = ["true"]
undeploy = ["true"]
health = {{ url = "http://127.0.0.1:9/health" }}
volumes = ["{volume}"]
snapshot_dir = "{root}/snapshots"
"#,
            root = root.display(),
            volume = volume.display(),
        ),
        &config,
    )
    .unwrap();
    let store = steward_activities::Store::connect(&database(Backend::Sqlite, root).await)
        .await
        .unwrap();
    let activities =
        steward_activities::upgrade::UpgradeActivities::new(loaded.config.apps.clone(), store);

    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let started = std::time::Instant::now();
    let step = steward_proto::v1::AppStep {
        app: "big".into(),
        step: "snapshot".into(),
        version: "1.0.0".into(),
        tag: "long-snapshot".into(),
        ..Default::default()
    };
    let result = activities.step(&step).await.unwrap();
    let elapsed = started.elapsed();
    ticker.abort();
    assert!(result.ok, "{result:?}");
    assert!(
        elapsed >= Duration::from_millis(200),
        "the snapshot took long enough to tell ({elapsed:?})"
    );
    let ticks = ticks.load(Ordering::Relaxed);
    assert!(
        u128::from(ticks) >= elapsed.as_millis() / 5 / 4,
        "the runtime ticked {ticks} times in {elapsed:?} of snapshot"
    );
}
