//! `WarmUpgrade` on a real dev server with a real app: a small HTTP service
//! (tests/fixtures/warm_app.py) that keeps data in its data directory,
//! started and stopped by the deploy and undeploy commands; some versions
//! fail health or corrupt their data on start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use steward_activities::upgrade::snapshot;
use steward_proto::v1::{UpgradeResult, UpgradeStatus};
use steward_tests::{
    Backend, Server, Steward, assert_every_run_closed_without_task_failures,
    assert_not_world_writable, database, git, newest_progress, run_steward, task_queue, temp_dir,
    wait_for, workspace,
};
use steward_workflows::WarmUpgrade;
use temporalio_client::{Client, WorkflowGetResultOptions};

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

struct App {
    _dir: tempfile::TempDir,
    home: PathBuf,
    port: u16,
    server: Server,
    client: Client,
    config: PathBuf,
    worker: Steward,
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
        let dir = temp_dir();
        let root = dir.path().to_path_buf();
        let home = root.join("app");
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
        let port = steward_worker::devserver::free_port().unwrap();
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
{no_schedules}
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
        let server = Server::start(&root).await;
        let client = server.client().await;
        let worker = Steward::worker(&config, &server.address);
        let app = App {
            _dir: dir,
            home,
            port,
            server,
            client,
            config,
            worker,
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

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        run_steward(&self.config, &self.server.address, args)
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
        assert!(out.contains("steward-sso-nightly"), "{out}");
        app
    }

    /// Fires `steward-sso-nightly` now.
    async fn fire_schedule(&self) {
        self.client
            .get_schedule_handle("steward-sso-nightly")
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

    fn alerts(&self, kind: &str) -> Vec<serde_json::Value> {
        let (_, out, _) = self.cli(&["alerts", "list", "--limit", "100"]);
        let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
        all.into_iter().filter(|a| a["kind"] == kind).collect()
    }

    async fn status(&self) -> Option<UpgradeStatus> {
        self.client
            .get_workflow_handle::<WarmUpgrade>("warm-upgrade-sso")
            .query(WarmUpgrade::status, (), Default::default())
            .await
            .ok()
    }

    async fn result(&self) -> UpgradeResult {
        let h = self
            .client
            .get_workflow_handle::<WarmUpgrade>("warm-upgrade-sso");
        tokio::time::timeout(
            Duration::from_secs(120),
            h.get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .expect("the upgrade ended in time")
        .unwrap()
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
    let alerts = app.alerts("upgrade.rolled-back");
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
    let alerts = app.alerts("upgrade.rollback-failed");
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
    assert_eq!(app.alerts("upgrade.held-major").len(), 1);
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
    let alerts = app.alerts("upgrade.held-manual-migration");
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
    let (code, _, err) = app.approve("1.5.0+5.0.0", "ok", "ana");
    assert_ne!(code, 0);
    assert!(err.contains("exact version"), "{err}");
    let (code, _, err) = app.approve("1.4.0+5.0.0", "migrated by hand", "ana");
    assert_eq!(code, 0, "{err}");
    let h = app
        .client
        .get_workflow_handle::<WarmUpgrade>("warm-upgrade-sso");
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
        app.worker.kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.worker.restart();
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
        result.workflow_id.starts_with("warm-upgrade-sso-"),
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
    assert!(id.starts_with("warm-upgrade-sso-"), "{status}");
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
    let alerts = app.alerts("upgrade.noop-unhealthy");
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
        self.worker.kill9();
        self.worker = Steward::worker(&self.config, &self.server.address);
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
    assert_eq!(app.alerts("upgrade.rollback-failed").len(), 1);
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
