//! Upgrade modes: cold runs and cold-only advancement, first runs,
//! stateless apps, trials of git revisions, disk safety, pruning,
//! `on_unhealthy`, the health gate's grace and restart loops, the nightly
//! cold sweep.

use super::*;

#[tokio::test]
async fn in_cold_mode_only_a_green_cold_run_moves_last_good_and_the_first_one_seeds_it() {
    let app = App::new(
        "cold-mode",
        &[
            (BASE, "ok", ""),
            ("1.1.0+5.1.0", "ok", ""),
            ("1.2.0+5.0.0", "unhealthy", ""),
        ],
        &format!("advance = \"cold\"\n{}", App::cold_table("{home}")),
    )
    .await;
    // An app steward never recorded anything for.
    std::fs::remove_file(app.home.join("snapshots/last_good")).unwrap();
    let before = app.data_digest();

    let held = app.run(&["--reason", "nightly"]);
    assert_eq!(held.outcome, "held-cold", "{held:?}");
    assert!(
        held.message.contains("no cold run passed 1.2.0+5.0.0"),
        "{}",
        held.message
    );
    assert_eq!(app.alerts_once("upgrade.held-cold").await.len(), 1);
    assert_eq!(app.serving(), BASE, "untouched");

    let seeded = app.run(&[
        "--cold",
        "--version",
        "1.1.0+5.1.0",
        "--reason",
        "cold test",
    ]);
    assert_eq!(
        (
            seeded.outcome.as_str(),
            seeded.cold,
            seeded.last_good.as_str()
        ),
        ("cold-passed", true, "1.1.0+5.1.0"),
        "{seeded:?}"
    );
    assert_eq!(seeded.mode, "cold", "{seeded:?}");
    assert!(
        seeded.message.contains("last_good seeded with 1.1.0+5.1.0"),
        "says what it did: {}",
        seeded.message
    );
    assert_eq!(app.last_good(), "1.1.0+5.1.0");
    assert_eq!(app.serving(), BASE, "the canonical deployment never moved");
    assert_eq!(app.data_digest(), before, "nor its data");
    assert!(app.scratch_left().is_empty(), "{:?}", app.scratch_left());

    let failed = app.run(&["--cold", "--reason", "cold test"]);
    assert_eq!(failed.outcome, "cold-failed", "{failed:?}");
    assert!(failed.failed_check.contains("/health"), "{failed:?}");
    assert!(failed.failed_answer.contains("500"), "{failed:?}");
    assert_eq!(
        app.last_good(),
        "1.1.0+5.1.0",
        "a red cold run moves nothing"
    );
    assert_eq!(app.alerts_of("upgrade.cold-failed").len(), 1);
    assert!(app.scratch_left().is_empty(), "{:?}", app.scratch_left());
    assert_eq!(app.data_digest(), before);

    let warm = app.run(&["--version", "1.1.0+5.1.0", "--reason", "proven cold"]);
    assert_eq!(warm.outcome, "upgraded", "{warm:?}");
    assert_eq!(app.serving(), "1.1.0+5.1.0");
    assert_eq!(app.deployed_record(), "1.1.0+5.1.0");
    assert_eq!(app.last_good(), "1.1.0+5.1.0");
    assert_eq!(app.marker(), "marker written before the upgrade\n");
}

#[tokio::test]
async fn in_cold_mode_a_major_release_moves_last_good_only_once_approved() {
    let app = App::new(
        "cold-major",
        &[(BASE, "ok", ""), ("2.0.0+5.0.0", "ok", "")],
        &format!(
            "advance = \"cold\"\napproval_wait = \"10m\"\n{}",
            App::cold_table("{home}")
        ),
    )
    .await;
    let (code, _, err) = app.cli(&[
        "upgrade",
        "run",
        "sso",
        "--cold",
        "--no-wait",
        "--reason",
        "cold test",
    ]);
    assert_eq!(code, 0, "{err}");
    // It passed on fresh data, and waits: passing is not an approval.
    wait_for("held", Duration::from_secs(90), || async {
        app.status().await.filter(|s| s.phase == "held")
    })
    .await
    .unwrap();
    assert_eq!(app.last_good(), BASE, "nothing moved unasked");
    let alert = &app.alerts_once("upgrade.held-major").await[0];
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("last_good moves to it only with an approval"),
        "{alert}"
    );
    let (code, _, err) = app.approve("2.0.0+5.0.0", "read the migration notes", "ana");
    assert_eq!(code, 0, "{err}");
    let r = app.result().await;
    assert_eq!(
        (r.outcome.as_str(), r.last_good.as_str()),
        ("cold-passed", "2.0.0+5.0.0"),
        "{r:?}"
    );
    assert_eq!(app.last_good(), "2.0.0+5.0.0");
    assert_eq!(app.serving(), BASE, "the canonical deployment never moved");
}

#[tokio::test]
async fn in_cold_mode_warm_runs_and_trials_never_move_last_good() {
    let app = App::new(
        "cold-warm",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        &format!("advance = \"cold\"\n{}", App::cold_table("{home}")),
    )
    .await;
    // 1.1.0 passed a cold run while the app still advanced warm.
    snapshot::record_cold_pass(&app.home.join("snapshots"), "1.1.0+5.1.0", false).unwrap();
    let trial = app.run(&["--trial", "1.1.0+5.1.0", "--reason", "try"]);
    assert_eq!(trial.outcome, "trial-passed", "{trial:?}");
    assert_eq!(app.last_good(), BASE);
    let warm = app.run(&["--reason", "nightly"]);
    assert_eq!(warm.outcome, "upgraded", "{warm:?}");
    assert_eq!(app.serving(), "1.1.0+5.1.0");
    assert_eq!(app.deployed_record(), "1.1.0+5.1.0");
    assert_eq!(
        (app.last_good(), warm.last_good.clone()),
        (BASE.to_string(), BASE.to_string()),
        "only cold runs move last good"
    );
    let status = app.status().await.unwrap();
    assert_eq!(
        (status.deployed.as_str(), status.last_good.as_str()),
        ("1.1.0+5.1.0", BASE)
    );
}

#[tokio::test]
async fn a_first_run_of_a_stateless_app_deploys_seeds_last_good_and_says_so() {
    let mut app = App::new(
        "first-run",
        &[
            (BASE, "ok", ""),
            ("1.1.0+5.1.0", "ok", ""),
            ("1.2.0+5.0.0", "unhealthy", ""),
        ],
        "",
    )
    .await;
    app.reconfigure("volumes", "[]");
    app.forget_everything();
    let first = app.run(&["--version", "1.1.0+5.1.0", "--reason", "first deploy"]);
    assert_eq!(
        (first.outcome.as_str(), first.last_good.as_str()),
        ("upgraded", "1.1.0+5.1.0"),
        "{first:?}"
    );
    assert!(
        first.message.contains("first deploy")
            && first.message.contains("last_good seeded with 1.1.0+5.1.0"),
        "{}",
        first.message
    );
    assert_eq!(app.serving(), "1.1.0+5.1.0");
    assert_eq!(app.last_good(), "1.1.0+5.1.0");
    // A stateless app rolls back by version alone.
    let broken = app.run(&["--reason", "nightly"]);
    assert_eq!(
        (broken.outcome.as_str(), broken.recovered),
        ("rolled-back", true),
        "{broken:?}"
    );
    assert_eq!(app.serving(), "1.1.0+5.1.0");
    assert_eq!(app.last_good(), "1.1.0+5.1.0");
}

#[tokio::test]
async fn a_first_run_that_fails_leaves_nothing_deployed_and_says_so() {
    let app = App::new(
        "first-fail",
        &[(BASE, "ok", ""), ("1.2.0+5.0.0", "unhealthy", "")],
        "",
    )
    .await;
    app.forget_everything();
    let r = app.run(&["--reason", "first deploy"]);
    assert_eq!(
        (r.outcome.as_str(), r.recovered, r.last_good.as_str()),
        ("rolled-back", true, ""),
        "{r:?}"
    );
    assert!(
        r.message.contains("nothing ran before: left undeployed"),
        "{}",
        r.message
    );
    assert!(
        !app.home.join("app.pid").exists(),
        "the candidate was undeployed"
    );
    assert_eq!(app.marker(), "marker written before the upgrade\n");
}

#[tokio::test]
async fn a_trial_of_a_git_revision_deploys_it_and_never_promotes() {
    let app = App::new(
        "trial-rev",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        "",
    )
    .await;
    let head = app.pull_request("pr-42");
    let before = app.data_digest();
    for revision in ["pr-42", head.as_str()] {
        let r = app.run(&["--trial", revision, "--reason", "pull request 42"]);
        assert_eq!(
            (r.outcome.as_str(), r.attempted.as_str(), r.recovered),
            ("trial-passed", revision, true),
            "{r:?}"
        );
        assert_eq!(app.last_good(), BASE, "a trial never promotes");
        assert_eq!(app.serving(), BASE);
        assert_eq!(app.data_digest(), before);
    }
    let (code, _, err) = app.cli(&["upgrade", "run", "sso", "--trial", "no-such-branch"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("`no-such-branch` is neither a release tag nor a revision"),
        "{err}"
    );
}

#[tokio::test]
async fn a_snapshot_or_cold_run_that_does_not_fit_is_held_disk_with_the_figures() {
    let app = App::new(
        "disk",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        &format!("disk_margin = \"1000TiB\"\n{}", App::cold_table("{home}")),
    )
    .await;
    let before = app.data_digest();
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(r.outcome, "held-disk", "{r:?}");
    assert!(
        r.message.contains("does not fit")
            && r.message.contains("margin of 1000.0 TiB")
            && r.message.contains("free"),
        "{}",
        r.message
    );
    assert_eq!(app.serving(), BASE, "the app untouched");
    assert_eq!(app.data_digest(), before);
    assert_eq!(app.snapshots(), vec!["last_good"], "no snapshot started");
    let alerts = app.alerts_once("upgrade.held-disk").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["severity"], "critical");
    assert!(
        alerts[0]["detail"]["figures"]
            .as_str()
            .unwrap()
            .contains("free"),
        "{}",
        alerts[0]
    );
    let cold = app.run(&["--cold", "--reason", "nightly"]);
    assert_eq!(cold.outcome, "held-disk", "{cold:?}");
    assert!(
        cold.message.contains("the cold run's data"),
        "{}",
        cold.message
    );
    assert!(app.scratch_left().is_empty());
}

#[tokio::test]
async fn a_run_prunes_what_dead_runs_left_with_a_report_and_keeps_the_last_known_good() {
    let app = App::new("prune", &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")], "").await;
    let snaps = app.home.join("snapshots");
    let dead = "0195f3a2-0000-7000-8000-00000000dead";
    // A killed run's cold scratch, which steward recorded making; and a
    // folder an operator made by hand with a name like a run id.
    steward_activities::upgrade::prune::make_scratch(&snaps.join("cold"), dead).unwrap();
    let by_hand = snaps.join("cold/0195f3a2-0000-7000-8000-0000000000aa");
    std::fs::create_dir_all(&by_hand).unwrap();
    std::fs::write(by_hand.join("notes.txt"), b"mine").unwrap();
    for leftover in [
        snaps.join("incoming.tmp/volume-0"),
        snaps.join("cold").join(dead).join("data"),
        app.home.join("data.restore.tmp"),
    ] {
        std::fs::create_dir_all(&leftover).unwrap();
        std::fs::write(leftover.join("f"), b"left by a killed run").unwrap();
    }
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(r.outcome, "upgraded", "{r:?}");
    assert_eq!(r.pruned.len(), 3, "{:?}", r.pruned);
    for name in ["incoming.tmp", dead, "data.restore.tmp"] {
        assert!(r.pruned.iter().any(|p| p.contains(name)), "{:?}", r.pruned);
    }
    assert!(!snaps.join("incoming.tmp").exists());
    assert!(!snaps.join("cold").join(dead).exists());
    assert!(
        by_hand.join("notes.txt").exists(),
        "a folder steward did not make stays, whatever its name"
    );
    assert!(!app.home.join("data.restore.tmp").exists());
    assert_eq!(
        app.snapshots(),
        vec!["cold", "last-known-good", "last_good"]
    );
    let again = app.run(&["--reason", "nightly"]);
    assert!(again.pruned.is_empty(), "{:?}", again.pruned);
    assert!(
        snaps.join("last-known-good").exists(),
        "never the last-known-good"
    );
}

#[tokio::test]
async fn notify_keeps_an_unhealthy_candidate_running_with_a_critical_alert() {
    let app = App::new(
        "notify",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "unhealthy", "")],
        "on_unhealthy = \"notify\"",
    )
    .await;
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(
        (r.outcome.as_str(), r.recovered, r.last_good.as_str()),
        ("unhealthy-kept", false, BASE),
        "{r:?}"
    );
    assert_eq!(app.serving(), "1.1.0+5.1.0", "kept running");
    assert_eq!(app.deployed_record(), "1.1.0+5.1.0");
    assert_eq!(app.last_good(), BASE, "never recorded as good");
    let alerts = app.alerts_of("upgrade.unhealthy-kept");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["severity"], "critical");
    assert!(
        alerts[0]["detail"]["failed_answer"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{}",
        alerts[0]
    );
}

#[tokio::test]
async fn the_health_gate_waits_out_a_grace_period_and_calls_a_restart_loop_unhealthy_with_why() {
    let mut app = App::new(
        "grace",
        &[
            (BASE, "ok", ""),
            ("1.1.0+5.1.0", "slow-start", ""),
            ("1.2.0+5.0.0", "flap", ""),
        ],
        "",
    )
    .await;
    let health = |grace: u64, timeout: u64| {
        format!(
            r#"{{ url = "http://127.0.0.1:{}/health", body_contains = "ok", interval_seconds = 1, timeout_seconds = {timeout}, successes = 2, grace_seconds = {grace} }}"#,
            app.port
        )
    };
    let (no_grace, grace, patient_no_grace) = (health(0, 2), health(6, 2), health(0, 20));
    app.reconfigure("health", &no_grace);
    let early = app.run(&["--version", "1.1.0+5.1.0", "--reason", "nightly"]);
    assert_eq!(
        early.outcome, "rolled-back",
        "judged while starting: {early:?}"
    );
    assert!(early.failed_answer.contains("503"), "{early:?}");
    let alert = &app.alerts_of("upgrade.rolled-back")[0];
    assert_eq!(alert["detail"]["failed_check"], early.failed_check.as_str());
    assert!(!early.failed_at.is_empty(), "says when: {early:?}");

    app.reconfigure("health", &grace);
    let patient = app.run(&["--version", "1.1.0+5.1.0", "--reason", "nightly"]);
    assert_eq!(patient.outcome, "upgraded", "{patient:?}");
    assert_eq!(app.serving(), "1.1.0+5.1.0");

    // Long enough for the loop to show, without a grace that hides it.
    app.reconfigure("health", &patient_no_grace);
    let looping = app.run(&["--version", "1.2.0+5.0.0", "--reason", "nightly"]);
    assert_eq!(looping.outcome, "rolled-back", "{looping:?}");
    assert!(
        looping.message.contains("restart loop")
            && looping.message.contains("passed and then failed"),
        "{}",
        looping.message
    );
    assert!(
        looping.failed_check.starts_with("GET http://127.0.0.1:"),
        "{looping:?}"
    );
    assert!(looping.failed_answer.contains("500"), "{looping:?}");
    assert_eq!(app.serving(), "1.1.0+5.1.0", "back on what ran before");
    let alerts = app.alerts_of("upgrade.rolled-back");
    assert_eq!(alerts.len(), 2);
    assert!(
        alerts.iter().any(|a| a["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("restart loop")),
        "{alerts:?}"
    );
}

/// An `[[apps]]` entry named `name` living in `{root}/<name>`, on the test's
/// recipe repo, with a cold setup when `cold`.
fn other_app(name: &str, cold: bool) -> String {
    let port = steward_tests::free_port();
    let home = format!("{{root}}/{name}");
    let ctl = |cmd: &str| {
        format!(
            r#"["python3", "{}", "{cmd}", "{{version}}", "{home}", "{port}"]"#,
            fixture().display()
        )
    };
    format!(
        r#"
[[apps]]
name = "{name}"
recipe_repo = "{{root}}/recipe"
deploy = {deploy}
undeploy = {undeploy}
health = {{ url = "http://127.0.0.1:{port}/health", interval_seconds = 1, timeout_seconds = 3 }}
snapshot_dir = "{home}/snapshots"
{cold}"#,
        deploy = ctl("deploy"),
        undeploy = ctl("undeploy"),
        cold = if cold {
            App::cold_table(&home)
        } else {
            String::new()
        },
    )
}

#[tokio::test]
async fn the_cold_sweep_tests_every_cold_app_within_its_limits_and_reports_why_not() {
    let notes = "Needs a manual migration first.";
    let extra = format!(
        "approval_wait = \"10m\"\n{sso_cold}{kc}{web}{db}\n[[schedules]]\nname = \"cold-nightly\"\nworkflow = \"cold-sweep\"\ncron = \"0 4 * * *\"\n",
        sso_cold = App::cold_table("{home}"),
        kc = other_app("kc", true),
        web = other_app("web", false),
        db = other_app("db", true),
    );
    let metrics = format!("127.0.0.1:{}", steward_tests::free_port());
    let app = App::with_top(
        "cold-sweep",
        &[
            (BASE, "ok", ""),
            ("1.1.0+5.1.0", "ok", ""),
            ("1.4.0+5.0.0", "ok", notes),
        ],
        &extra,
        &format!("[cold_sweep]\nmax_parallel = 2\nmax_total = 2\n\n[worker]\nmetrics_addr = \"{metrics}\"\n"),
    )
    .await;
    std::fs::create_dir_all(app.root.join("kc")).unwrap();
    std::fs::write(
        app.root.join("kc/behaviors.json"),
        r#"{"1.4.0+5.0.0": "unhealthy"}"#,
    )
    .unwrap();
    let before = app.data_digest();
    // A held upgrade of sso holds its lock: its cold run must wait.
    let (code, _, err) = app.cli(&["upgrade", "run", "sso", "--no-wait", "--reason", "by hand"]);
    assert_eq!(code, 0, "{err}");
    wait_for("held", Duration::from_secs(60), || async {
        app.status().await.filter(|s| s.phase == "held")
    })
    .await
    .unwrap();

    let (code, out, err) = app.cli(&["upgrade", "cold-sweep", "--max-total", "3"]);
    assert_eq!(code, 1, "a failed cold run fails the command: {out}{err}");
    let first: steward_proto::v1::ColdSweepResult = serde_json::from_str(&out).unwrap();
    let names = |v: &[steward_proto::v1::ColdSkip]| -> Vec<String> {
        v.iter().map(|e| e.app.clone()).collect()
    };
    assert_eq!(names(&first.passed), ["db"], "{first:?}");
    assert_eq!(names(&first.failed), ["kc"], "{first:?}");
    assert!(first.failed[0].why.contains("500"), "{first:?}");
    let why = |r: &steward_proto::v1::ColdSweepResult, app: &str| {
        r.skipped
            .iter()
            .find(|s| s.app == app)
            .map(|s| s.why.clone())
            .unwrap_or_else(|| panic!("{app} not skipped: {r:?}"))
    };
    assert_eq!(why(&first, "web"), "no [apps.cold] setup");
    assert!(
        why(&first, "sso").contains("skipped-busy")
            && why(&first, "sso").contains("another upgrade of sso is running"),
        "{first:?}"
    );
    assert_eq!(
        first.runs.len(),
        2,
        "one cold run per app tested, none for the busy one: {first:?}"
    );
    let alert = app.alerts_of("upgrade.cold-sweep");
    assert_eq!(alert.len(), 1);
    assert_eq!(alert[0]["severity"], "warning");
    assert!(
        alert[0]["message"]
            .as_str()
            .unwrap()
            .contains("1 passed, 1 failed, 2 skipped"),
        "{}",
        alert[0]
    );
    let recorded = {
        let (code, out, _) = app.cli(&["progress", "--event-type", "cold_sweep"]);
        assert_eq!(code, 0);
        out
    };
    assert!(recorded.contains(&first.workflow_id), "{recorded}");

    // The schedule's run: at most two, the apps no sweep tested first.
    let (code, _, err) = app.cli(&["schedules", "sync"]);
    assert_eq!(code, 0, "{err}");
    app.client
        .get_schedule_handle(ids::schedule("cold-nightly"))
        .trigger(
            temporalio_client::schedules::ScheduleOverlapPolicy::Unspecified,
            Default::default(),
        )
        .await
        .unwrap();
    let second = wait_for(
        "the scheduled cold sweep",
        Duration::from_secs(120),
        || async {
            let (_, out, _) = app.cli(&["progress", "--event-type", "cold_sweep", "--limit", "1"]);
            let events: serde_json::Value = serde_json::from_str(&out).ok()?;
            let detail = events.as_array()?.first()?["detail"].clone();
            let r: steward_proto::v1::ColdSweepResult = serde_json::from_value(detail).ok()?;
            (r.workflow_id != first.workflow_id).then_some(r)
        },
    )
    .await
    .unwrap();
    assert!(
        second.workflow_id.starts_with("cold-sweep-cold-nightly-"),
        "{second:?}"
    );
    assert_eq!(second.max_total, 2);
    // sso, still busy, is first in line but takes no place: both places go
    // to the apps after it.
    assert!(
        why(&second, "sso").contains("skipped-busy")
            && why(&second, "sso").contains("not counted against max_total"),
        "{second:?}"
    );
    assert_eq!(names(&second.passed), ["db"], "{second:?}");
    assert_eq!(names(&second.failed), ["kc"], "{second:?}");

    assert_eq!(
        app.serving(),
        BASE,
        "cold runs never touch the canonical app"
    );
    assert_eq!(app.data_digest(), before);
    for home in [app.home.clone(), app.root.join("kc"), app.root.join("db")] {
        let scratch = home.join("snapshots/cold");
        let left: Vec<_> = std::fs::read_dir(&scratch)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }

    // The disk-free gauge covers every folder the apps write to.
    let body = steward_tests::http_get(&metrics, "/metrics").expect("the metrics endpoint");
    let snaps = app.home.join("snapshots");
    let line = body
        .lines()
        .find(|l| {
            l.starts_with("steward_disk_free_bytes")
                && l.contains(&format!("path=\"{}\"", snaps.display()))
        })
        .unwrap_or_else(|| panic!("no gauge for {}: {body}", snaps.display()));
    assert!(line.contains("use=\"snapshots sso\""), "{line}");
    let shown: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let free = steward_activities::upgrade::disk::free_bytes(&snaps).unwrap() as f64;
    assert!(
        (shown - free).abs() < 4.0 * f64::from(1u32 << 30),
        "{shown} against {free} free"
    );
    for what in ["cold scratch kc", "snapshots db", "data", "backups"] {
        assert!(body.contains(&format!("use=\"{what}\"")), "{what}: {body}");
    }
}
