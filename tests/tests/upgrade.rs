//! `WarmUpgrade` on a real dev server with a real app: a small HTTP service
//! (tests/fixtures/warm_app.py) that keeps data in its data directory,
//! started and stopped by the deploy and undeploy commands; some versions
//! fail health or corrupt their data on start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use steward_activities::upgrade::snapshot;
use steward_proto::ids;
use steward_proto::v1::{UpgradeResult, UpgradeStatus};
use steward_tests::{
    Backend, Harness, assert_every_run_closed_without_task_failures, assert_not_world_writable,
    database, git, newest_progress, task_queue, temp_dir, wait_for, workspace,
};
use steward_workflows::WarmUpgrade;
use temporalio_client::WorkflowGetResultOptions;

const BASE: &str = "1.0.0+5.0.0";

/// The upgrade's phases in the order a run goes through them.
const PHASES: &[&str] = &[
    "inspecting",
    "undeploying",
    "snapshotting",
    "deploying",
    "health_gate",
    "committing",
    "rolling_back",
    "upgraded",
    "rolled-back",
];

/// The harness, with the app's home and port.
struct App {
    h: Harness,
    home: PathBuf,
    port: u16,
}

steward_tests::derefs_to_harness!(App);

/// The workflow id of the app's upgrades started by hand.
fn sso() -> String {
    ids::warm_upgrade("sso")
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.ctl("undeploy", BASE);
    }
}

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/warm_app.py")
}

impl App {
    /// `releases`: (version, behavior, release notes).
    async fn new(test: &str, releases: &[(&str, &str, &str)], extra: &str) -> App {
        Self::with_top(test, releases, extra, "").await
    }

    /// The same, with `top` in the config before `[[apps]]` (`[api]`,
    /// `[[operators]]`). In `extra` and `top`, `{home}` is the app's home
    /// and `{root}` the test's folder.
    async fn with_top(test: &str, releases: &[(&str, &str, &str)], extra: &str, top: &str) -> App {
        let dir = temp_dir();
        let root = dir.path().to_path_buf();
        let home = root.join("app");
        let placed = |text: &str| {
            text.replace("{home}", &home.display().to_string())
                .replace("{root}", &root.display().to_string())
        };
        let (extra, top) = (placed(extra), placed(top));
        std::fs::create_dir_all(home.join("data/db")).unwrap();
        std::fs::write(
            home.join("data/marker.txt"),
            "marker written before the upgrade\n",
        )
        .unwrap();
        std::fs::write(home.join("data/db/rows.bin"), [7u8, 0, 255, 1]).unwrap();
        let behaviors: serde_json::Map<String, serde_json::Value> = releases
            .iter()
            .map(|(v, b, _)| (v.to_string(), serde_json::Value::from(*b)))
            .collect();
        std::fs::write(
            home.join("behaviors.json"),
            serde_json::to_string(&behaviors).unwrap(),
        )
        .unwrap();
        let recipe = root.join("recipe");
        steward_tests::make_repo(&recipe, &[("README.md", "recipe\n")]);
        for (v, _, notes) in releases {
            let msg = if notes.is_empty() {
                format!("release {v}")
            } else {
                notes.to_string()
            };
            git(
                &recipe,
                &[
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "tag",
                    "-a",
                    v,
                    "-m",
                    &msg,
                ],
            );
        }
        let port = steward_tests::free_port();
        let ctl = |cmd: &str| {
            format!(
                "[\"python3\", \"{}\", \"{cmd}\", \"{{version}}\", \"{}\", \"{port}\"]",
                fixture().display(),
                home.display()
            )
        };
        let store = database(Backend::Sqlite, &root).await;
        let config = root.join("steward.toml");
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "{data}"
database_url = "{store}"
task_queue = "{queue}"
{no_schedules}{top}
[[apps]]
name = "sso"
recipe_repo = "{recipe}"
deploy = {deploy}
undeploy = {undeploy}
command_timeout_seconds = 30
health = {{ url = "http://127.0.0.1:{port}/health", body_contains = "ok", interval_seconds = 1, timeout_seconds = 3, successes = 2 }}
volumes = ["{data_dir}"]
snapshot_dir = "{snaps}"
asserts = [["test", "-f", "{marker}"]]
{extra}
"#,
                data = root.join("steward-data").display(),
                no_schedules = if extra.contains("[[schedules]]") { "" } else { "schedules = []\n" },
                queue = task_queue(test),
                recipe = recipe.display(),
                deploy = ctl("deploy"),
                undeploy = ctl("undeploy"),
                data_dir = home.join("data").display(),
                snaps = home.join("snapshots").display(),
                marker = home.join("data/marker.txt").display(),
            ),
        )
        .unwrap();
        let app = App {
            h: Harness::with_worker(dir, config).await,
            home,
            port,
        };
        assert!(
            app.ctl("deploy", BASE).success(),
            "the base version deploys"
        );
        snapshot::set_last_good(&app.home.join("snapshots"), BASE).unwrap();
        app
    }

    fn ctl(&self, cmd: &str, version: &str) -> std::process::ExitStatus {
        Command::new("python3")
            .arg(fixture())
            .args([
                cmd,
                version,
                self.home.to_str().unwrap(),
                &self.port.to_string(),
            ])
            .status()
            .unwrap()
    }

    /// An app whose newest release (1.4.0+5.0.0) is held for a manual
    /// migration, with the synced schedule `steward-sso-nightly`.
    async fn scheduled_with_held_release(test: &str) -> App {
        let notes = "Needs a manual migration first.";
        let app = App::new(
            test,
            &[(BASE, "ok", ""), ("1.4.0+5.0.0", "ok", notes)],
            "approval_wait = \"10m\"\n\n[[schedules]]\nname = \"sso-nightly\"\nworkflow = \"upgrade\"\napp = \"sso\"\ncron = \"0 3 * * *\"\n",
        )
        .await;
        let (code, out, err) = app.cli(&["schedules", "sync"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&ids::schedule("sso-nightly")), "{out}");
        app
    }

    /// Fires `steward-sso-nightly` now.
    async fn fire_schedule(&self) {
        self.client
            .get_schedule_handle(ids::schedule("sso-nightly"))
            .trigger(
                temporalio_client::schedules::ScheduleOverlapPolicy::Unspecified,
                Default::default(),
            )
            .await
            .unwrap();
    }

    /// `steward upgrade approve sso` for `version`.
    fn approve(&self, version: &str, reason: &str, by: &str) -> (i32, String, String) {
        self.cli(&[
            "upgrade",
            "approve",
            "sso",
            "--version",
            version,
            "--reason",
            reason,
            "--by",
            by,
        ])
    }

    fn run(&self, args: &[&str]) -> UpgradeResult {
        let mut all = vec!["upgrade", "run", "sso"];
        all.extend_from_slice(args);
        let (code, out, err) = self.cli(&all);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }

    fn data_digest(&self) -> (u64, String) {
        snapshot::digest(&self.home.join("data")).unwrap()
    }

    /// The result the newest upgrade run recorded in the state store,
    /// waiting up to `within` for the first one.
    async fn newest_recorded_result(&self, within: Duration) -> UpgradeResult {
        let config = std::fs::read_to_string(&self.config).unwrap();
        let url = config
            .lines()
            .find_map(|l| l.strip_prefix("database_url = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        let store = steward_activities::Store::connect(&url).await.unwrap();
        let event = newest_progress(&store, "warm_upgrade", within).await;
        serde_json::from_str(&event.detail_json).unwrap()
    }

    fn serving(&self) -> String {
        std::fs::read_to_string(self.home.join("data/version.txt"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn last_good(&self) -> String {
        snapshot::last_good(&self.home.join("snapshots"))
            .unwrap()
            .unwrap_or_default()
    }

    fn marker(&self) -> String {
        std::fs::read_to_string(self.home.join("data/marker.txt")).unwrap()
    }

    fn snapshots(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.home.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn alerts_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["kind"] == kind)
            .collect()
    }

    async fn status(&self) -> Option<UpgradeStatus> {
        self.query::<WarmUpgrade, _>(&sso(), WarmUpgrade::status)
            .await
            .ok()
    }

    async fn result(&self) -> UpgradeResult {
        self.h
            .result::<WarmUpgrade>(&sso(), Duration::from_secs(120))
            .await
    }
}

impl App {
    /// Starts an upgrade without waiting and returns once it is in
    /// `phase`. Steps can be quicker than one poll, so it may be in the
    /// step right after it by then.
    async fn start_and_reach(&self, phase: &str) {
        let (code, _, err) =
            self.cli(&["upgrade", "run", "sso", "--no-wait", "--reason", "nightly"]);
        assert_eq!(code, 0, "{err}");
        let at = PHASES.iter().position(|p| *p == phase).unwrap();
        wait_for(phase, Duration::from_secs(60), || async {
            let now = self.status().await?.phase;
            PHASES
                .iter()
                .position(|p| *p == now)
                .filter(|i| *i >= at)
                .map(|_| ())
        })
        .await
        .unwrap();
    }

    /// "Nothing lost" after a fault: the run ended `expected` ("upgraded"
    /// or "rolled-back"), never in between; the data written before it is
    /// intact; exactly one snapshot; serving and last_good agree; every
    /// run closed without a failed workflow task.
    async fn assert_lost_nothing(&self, fault: &str, expected: &str) {
        let r = self.result().await;
        assert_eq!(r.outcome, expected, "{fault}: {r:?}");
        assert_eq!(
            self.marker(),
            "marker written before the upgrade\n",
            "{fault}"
        );
        assert_eq!(
            self.snapshots(),
            vec!["last-known-good", "last_good"],
            "{fault}: exactly one snapshot"
        );
        let serving = if expected == "upgraded" {
            "1.1.0+5.1.0"
        } else {
            BASE
        };
        assert_eq!(self.serving(), serving, "{fault}");
        assert_eq!(self.last_good(), serving, "{fault}");
        assert_every_run_closed_without_task_failures(&self.client).await;
    }
}

fn data_of(home: &Path) -> (u64, String) {
    snapshot::digest(&home.join("data")).unwrap()
}

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
async fn a_major_bump_is_held_and_expires_as_held() {
    let app = App::new(
        "major",
        &[(BASE, "ok", ""), ("2.0.0+5.0.0", "ok", "")],
        "approval_wait = \"2s\"",
    )
    .await;
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(r.outcome, "held-major", "{r:?}");
    assert_eq!(app.serving(), BASE, "nothing upgraded silently");
    assert_eq!(app.last_good(), BASE);
    assert_eq!(app.alerts_of("upgrade.held-major").len(), 1);
}

#[tokio::test]
async fn manual_migration_notes_hold_with_the_notes_and_an_approval_releases_that_version_only() {
    let notes = "Fixes SSO logout.\nRequires a manual migration of the realm table before start.";
    let app = App::new(
        "manual",
        &[(BASE, "ok", ""), ("1.4.0+5.0.0", "ok", notes)],
        "approval_wait = \"10m\"",
    )
    .await;
    let (code, _, err) = app.cli(&["upgrade", "run", "sso", "--no-wait", "--reason", "nightly"]);
    assert_eq!(code, 0, "{err}");
    wait_for("held", Duration::from_secs(60), || async {
        app.status().await.filter(|s| s.phase == "held")
    })
    .await
    .unwrap();
    let alerts = app.alerts_of("upgrade.held-manual-migration");
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0]["detail"]["matching_notes"],
        serde_json::json!(["Requires a manual migration of the realm table before start."])
    );
    let (code, _, err) = app.cli(&["upgrade", "run", "sso", "--reason", "again"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("already running as workflow warm-upgrade-sso"),
        "{err}"
    );
    // The held upgrade waits for an operator: the inbox lists it, and its
    // start says what it is.
    let inbox = wait_for(
        "the held upgrade in the inbox",
        Duration::from_secs(30),
        || async {
            let (_, out, _) = app.cli(&["inbox"]);
            let inbox: serde_json::Value = serde_json::from_str(&out).ok()?;
            inbox["runs"]
                .as_array()?
                .iter()
                .find(|r| r["workflow_id"] == sso().as_str())
                .cloned()
        },
    )
    .await
    .unwrap();
    assert_eq!(inbox["phase"], "held");
    assert_eq!(inbox["subject"], "sso");
    let described = app
        .client
        .get_workflow_handle::<WarmUpgrade>(&sso())
        .describe(Default::default())
        .await
        .unwrap();
    assert_eq!(
        described.static_summary(),
        Some("warm upgrade sso 1.0.0+5.0.0 → 1.4.0+5.0.0")
    );
    let (code, _, err) = app.approve("1.5.0+5.0.0", "ok", "ana");
    assert_ne!(code, 0);
    assert!(err.contains("exact version"), "{err}");
    let (code, _, err) = app.approve("1.4.0+5.0.0", "migrated by hand", "ana");
    assert_eq!(code, 0, "{err}");
    let h = app.client.get_workflow_handle::<WarmUpgrade>(&sso());
    let r = h
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, "upgraded", "{r:?}");
    assert_eq!(r.operator_actions[0].operator, "ana");
    assert_eq!(app.last_good(), "1.4.0+5.0.0");
}

#[tokio::test]
async fn trials_never_move_last_good_or_the_data() {
    let app = App::new(
        "trial",
        &[
            (BASE, "ok", ""),
            ("1.1.0+5.1.0", "ok", ""),
            ("1.2.0+5.0.0", "corrupt", ""),
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
}

#[tokio::test]
async fn killing_the_worker_at_each_step_ends_upgraded_or_rolled_back() {
    for (phase, behavior, expected) in [
        ("undeploying", "ok", "upgraded"),
        ("snapshotting", "ok", "upgraded"),
        ("deploying", "ok", "upgraded"),
        ("health_gate", "ok", "upgraded"),
        ("health_gate", "corrupt", "rolled-back"),
        ("rolling_back", "corrupt", "rolled-back"),
    ] {
        let mut app = App::new(
            "kill",
            &[(BASE, "ok", ""), ("1.1.0+5.1.0", behavior, "")],
            "",
        )
        .await;
        app.start_and_reach(phase).await;
        app.worker().kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.worker().restart();
        app.assert_lost_nothing(&format!("worker killed in {phase}"), expected)
            .await;
    }
}

#[tokio::test]
async fn killing_the_server_mid_upgrade_ends_upgraded_with_one_snapshot() {
    let mut app = App::new(
        "server-kill",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        "",
    )
    .await;
    let phases = ["snapshotting", "deploying", "health_gate"];
    let phase = phases[(uuid::Uuid::new_v4().as_u128() % 3) as usize];
    eprintln!("fault: kill -9 of the server in {phase}");
    app.start_and_reach(phase).await;
    app.server.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.server.restart().await;
    app.client = app.server.client().await;
    app.assert_lost_nothing(&format!("server killed in {phase}"), "upgraded")
        .await;
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
}

#[tokio::test]
async fn status_and_approve_find_an_upgrade_a_schedule_started() {
    let app = App::scheduled_with_held_release("sched-approve").await;
    app.fire_schedule().await;
    // The scheduled run's id carries the schedule's time; the operator
    // names the app.
    let status = wait_for(
        "the scheduled run held",
        Duration::from_secs(60),
        || async {
            let (code, out, _) = app.cli(&["upgrade", "status", "sso"]);
            let status: serde_json::Value = serde_json::from_str(&out).ok()?;
            (code == 0 && status["phase"] == "held").then_some(status)
        },
    )
    .await
    .unwrap();
    let id = status["workflow_id"].as_str().unwrap().to_string();
    assert!(id.starts_with(&format!("{}-", sso())), "{status}");
    assert_eq!(status["target"], "1.4.0+5.0.0", "{status}");
    let (code, _, err) = app.approve("1.4.0+5.0.0", "migrated by hand", "ana");
    assert_eq!(code, 0, "{err}");
    let result = app.newest_recorded_result(Duration::from_secs(120)).await;
    assert_eq!(result.workflow_id, id);
    assert_eq!(result.outcome, "upgraded", "{result:?}");
    assert_eq!(result.operator_actions[0].operator, "ana");
    assert_eq!(app.serving(), "1.4.0+5.0.0");
    // Once it has ended, status shows that run, not "no upgrade found".
    let (code, out, err) = app.cli(&["upgrade", "status", "sso"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["workflow_id"], id.as_str(), "{status}");
    assert_eq!(status["last_good"], "1.4.0+5.0.0", "{status}");
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

impl App {
    /// Rewrites one line of the config (`key = ...`) and restarts the
    /// worker on it.
    fn reconfigure(&mut self, key: &str, value: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let prefix = format!("{key} = ");
        assert!(
            text.lines().any(|l| l.starts_with(&prefix)),
            "{key} in the config"
        );
        let text: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(&prefix) {
                    format!("{prefix}{value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&self.config, text.join("\n") + "\n").unwrap();
        self.worker().kill9();
        self.start_worker();
    }
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

/// The operator page in a real headless chromium: an operator signs in
/// with their token, approves the held upgrade with a reason, watches it
/// proceed, and `steward history` names them. The workflow refuses the
/// starter, an operator outside the approving group and a typed name.
#[tokio::test]
async fn an_operator_signs_in_to_the_page_in_a_real_browser_and_approves_a_held_upgrade() {
    let keys = temp_dir();
    let ana = steward_tests::token("ana", &["release"], &[]);
    let bob = steward_tests::token("bob", &["release"], &[]);
    let dan = steward_tests::token("dan", &["storage"], &[]);
    let top = format!(
        "{}{}{}{}",
        steward_tests::signing_key(keys.path()),
        ana.entry,
        bob.entry,
        dan.entry
    );
    let notes = "Needs a manual migration first.";
    let app = App::with_top(
        "browser",
        &[(BASE, "ok", ""), ("1.4.0+5.0.0", "ok", notes)],
        "approval_wait = \"10m\"\napproval_group = \"release\"\nrequire_verified = true",
        &top,
    )
    .await;
    let api = steward_tests::ApiServer::start(&app.config, &app.server.address).await;
    let (code, started) = api
        .post(
            "/v1/upgrades/sso/start",
            &ana.token,
            serde_json::json!({ "reason": "nightly" }),
        )
        .await;
    assert_eq!(code, 202, "{started}");
    wait_for("held", Duration::from_secs(60), || async {
        app.status().await.filter(|s| s.phase == "held")
    })
    .await
    .unwrap();
    let approve = serde_json::json!({ "version": "1.4.0+5.0.0", "reason": "mine" });
    for (who, says) in [
        (&ana, "started this upgrade"),
        (&dan, "not in group `release`"),
    ] {
        let (code, answer) = api
            .post("/v1/upgrades/sso/approve", &who.token, approve.clone())
            .await;
        assert_eq!(code, 409, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let (code, _, err) = app.approve("1.4.0+5.0.0", "typed", "bob");
    assert_ne!(code, 0);
    assert!(err.contains("require_verified"), "{err}");
    assert_eq!(
        r_start_of(&app).await,
        ("ana".to_string(), true),
        "the start is ana's, verified"
    );

    let browser = steward_tests::Browser::start(&keys.path().join("chromium")).await;
    browser.open(&format!("{}/", api.base)).await;
    browser.type_into("#token", "stw_not-a-token").await;
    browser.click("#signin").await;
    assert!(
        browser.text("#problem").await.contains("not an operator's"),
        "a wrong token is refused on the page"
    );
    browser.type_into("#token", &bob.token).await;
    browser.click("#signin").await;
    assert_eq!(browser.text("#operator").await, "bob");
    let held = browser.source().await;
    assert!(
        held.contains("held (") && held.contains("1.4.0+5.0.0"),
        "{held}"
    );
    browser
        .type_into(
            "form[action=\"/ui/upgrades/sso/approve\"] input[name=reason]",
            "realm table migrated",
        )
        .await;
    browser.click("#approve-sso").await;
    let notice = browser.text("#notice").await;
    assert!(notice.contains("approved"), "{notice}");
    let r = app.result().await;
    assert_eq!(r.outcome, "upgraded", "{r:?}");
    assert_eq!(app.last_good(), "1.4.0+5.0.0");
    wait_for(
        "the page to show nothing waiting",
        Duration::from_secs(30),
        || async {
            browser.open(&format!("{}/", api.base)).await;
            browser.find("#nothing-waiting").await
        },
    )
    .await
    .unwrap();
    let approval = r
        .operator_actions
        .iter()
        .find(|a| a.action == "approve")
        .expect("the approval is recorded");
    assert_eq!(
        (
            approval.operator.as_str(),
            approval.reason.as_str(),
            approval.credential_id.as_str(),
            approval.verified
        ),
        ("bob", "realm table migrated", bob.id.as_str(), true)
    );
    let (code, out, err) = app.cli(&["history", &sso()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("bob (realm table migrated)"),
        "the history names the signed-in operator: {out}"
    );
}

/// Who started the current upgrade of `sso`, and whether the API signed it,
/// as its history shows.
async fn r_start_of(app: &App) -> (String, bool) {
    let timeline = app.ok(&["history", &sso(), "--json"]);
    let started = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "workflow_started")
        .cloned()
        .unwrap();
    let input = &started["detail"]["input"];
    (
        input["operator"].as_str().unwrap_or_default().to_string(),
        !input["signature"].as_str().unwrap_or_default().is_empty(),
    )
}

#[tokio::test]
async fn a_verified_approval_of_an_upgrade_a_typed_name_started_is_refused() {
    // bob types `--by ana` on the command line, then approves through the
    // API as himself: separation of duties cannot see who started it.
    let keys = temp_dir();
    let ana = steward_tests::token("ana", &["release"], &[]);
    let bob = steward_tests::token("bob", &["release"], &[]);
    let top = format!(
        "{}{}{}",
        steward_tests::signing_key(keys.path()),
        ana.entry,
        bob.entry
    );
    let app = App::with_top(
        "typed-start",
        &[(BASE, "ok", ""), ("2.0.0+5.0.0", "ok", "")],
        "approval_wait = \"10m\"\napproval_group = \"release\"",
        &top,
    )
    .await;
    let api = steward_tests::ApiServer::start(&app.config, &app.server.address).await;
    let (code, _, err) = app.cli(&[
        "upgrade",
        "run",
        "sso",
        "--no-wait",
        "--reason",
        "major",
        "--by",
        "ana",
    ]);
    assert_eq!(code, 0, "{err}");
    wait_for("held", Duration::from_secs(60), || async {
        app.status().await.filter(|s| s.phase == "held")
    })
    .await
    .unwrap();
    let approve = serde_json::json!({ "version": "2.0.0+5.0.0", "reason": "looks fine" });
    let (code, answer) = api
        .post("/v1/upgrades/sso/approve", &bob.token, approve)
        .await;
    assert_eq!(code, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("typed name (`ana`)"),
        "{answer}"
    );
    assert_eq!(app.status().await.unwrap().phase, "held", "nothing applied");
    // The typed path compares typed names, as it always did: bob is not ana.
    let (code, _, err) = app.approve("2.0.0+5.0.0", "typed, on my word", "bob");
    assert_eq!(code, 0, "{err}");
    let r = app.result().await;
    assert_eq!(r.outcome, "upgraded", "{r:?}");
    let approval = r
        .operator_actions
        .iter()
        .find(|a| a.action == "approve")
        .unwrap();
    assert!(!approval.verified, "recorded as a typed name: {approval:?}");
}

// Upgrade modes: cold runs and cold-only advancement, first runs,
// stateless apps, trials of git revisions, disk safety, pruning,
// `on_unhealthy`, the health gate's grace and restart loops, the nightly
// cold sweep.

impl App {
    /// The `[apps.cold]` table of an app living in `home` (a path, or
    /// `{home}`): the fixture on fresh data in `{scratch}`, on its own
    /// port, with the versions' behaviours of `home`.
    fn cold_table(home: &str) -> String {
        let port = steward_tests::free_port();
        format!(
            r#"[apps.cold]
deploy = ["python3", "{fixture}", "deploy", "{{version}}", "{{scratch}}", "{port}", "{home}/behaviors.json"]
undeploy = ["python3", "{fixture}", "undeploy", "{{version}}", "{{scratch}}", "{port}"]
health = {{ url = "http://127.0.0.1:{port}/health", body_contains = "ok", interval_seconds = 1, timeout_seconds = 3 }}
asserts = [["test", "-f", "{{scratch}}/data/version.txt"]]
"#,
            fixture = fixture().display(),
        )
    }

    /// Forgets last good and stops the app: an app steward never ran.
    fn forget_everything(&self) {
        assert!(self.ctl("undeploy", BASE).success());
        let _ = std::fs::remove_file(self.home.join("snapshots/last_good"));
        let _ = std::fs::remove_file(self.home.join("data/version.txt"));
    }

    /// Folders left in the cold runs' scratch folder.
    fn scratch_left(&self) -> Vec<String> {
        std::fs::read_dir(self.home.join("snapshots/cold"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn deployed_record(&self) -> String {
        snapshot::deployed(&self.home.join("snapshots"))
            .unwrap()
            .unwrap_or_default()
    }
}

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
    assert_eq!(app.alerts_of("upgrade.held-cold").len(), 1);
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
    let recipe = app.root.join("recipe");
    git(&recipe, &["checkout", "-q", "-b", "pr-42"]);
    std::fs::write(recipe.join("fix.txt"), "the pull request's change\n").unwrap();
    git(&recipe, &["add", "fix.txt"]);
    git(
        &recipe,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "fix",
        ],
    );
    let head = git(&recipe, &["rev-parse", "HEAD"]).trim().to_string();
    git(&recipe, &["checkout", "-q", "main"]);
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
    let alerts = app.alerts_of("upgrade.held-disk");
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
        3,
        "one cold run per app tested: {first:?}"
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
    assert!(
        why(&second, "kc").contains("over the limit of 2"),
        "tested last night, so last in line: {second:?}"
    );
    assert!(why(&second, "sso").contains("skipped-busy"), "{second:?}");
    assert_eq!(names(&second.passed), ["db"], "{second:?}");

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
