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
        Self::on(Backend::Sqlite, test, releases, extra, top).await
    }

    /// The same, with the state store on `backend`.
    async fn on(
        backend: Backend,
        test: &str,
        releases: &[(&str, &str, &str)],
        extra: &str,
        top: &str,
    ) -> App {
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
        let store = database(backend, &root).await;
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
        self.fire("sso-nightly").await;
    }

    /// Fires the schedule `name` now.
    async fn fire(&self, name: &str) {
        self.client
            .get_schedule_handle(ids::schedule(name))
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

    /// `steward upgrade run sso <args>`: its result, after checking the
    /// command exited with the outcome's documented code.
    fn run(&self, args: &[&str]) -> UpgradeResult {
        let mut all = vec!["upgrade", "run", "sso"];
        all.extend_from_slice(args);
        let (code, out, err) = self.cli(&all);
        let r: UpgradeResult =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        let outcome: steward_proto::vocab::UpgradeOutcome = r.outcome.parse().unwrap();
        assert_eq!(
            code,
            i32::from(outcome.exit_code()),
            "{} exits with its code: {err}",
            r.outcome
        );
        r
    }

    fn data_digest(&self) -> (u64, String) {
        snapshot::digest(&self.home.join("data")).unwrap()
    }

    /// The result the newest upgrade run recorded in the state store,
    /// waiting up to `within` for the first one.
    async fn newest_recorded_result(&self, within: Duration) -> UpgradeResult {
        let event = newest_progress(&self.store().await, "warm_upgrade", within).await;
        serde_json::from_str(&event.detail_json).unwrap()
    }

    /// The worker's state store.
    async fn store(&self) -> steward_activities::Store {
        let config = std::fs::read_to_string(&self.config).unwrap();
        let url = config
            .lines()
            .find_map(|l| l.strip_prefix("database_url = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        steward_activities::Store::connect(&url).await.unwrap()
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

    /// The alerts of `kind` once there is one: a rollout says it is held
    /// before the activity that raises its alert has written it.
    async fn alerts_once(&self, kind: &str) -> Vec<serde_json::Value> {
        wait_for(kind, Duration::from_secs(30), || async {
            Some(self.alerts_of(kind)).filter(|a| !a.is_empty())
        })
        .await
        .unwrap()
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

// What the modes' tests (`modes`) ask of the fixture app.

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

    /// Starts the upgrade through the API with `token` and returns once it
    /// is held.
    async fn held_through(&self, api: &steward_tests::ApiServer, token: &str) {
        let (code, started) = api
            .post(
                "/v1/upgrades/sso/start",
                token,
                serde_json::json!({ "reason": "nightly" }),
            )
            .await;
        assert_eq!(code, 202, "{started}");
        wait_for("held", Duration::from_secs(60), || async {
            self.status().await.filter(|s| s.phase == "held")
        })
        .await
        .unwrap();
    }

    /// Approves the held upgrade on the operator page open in `browser`,
    /// with `reason`; the approval the upgrade recorded once it ended
    /// upgraded.
    async fn approve_on_page(
        &self,
        browser: &steward_tests::Browser,
        reason: &str,
    ) -> steward_proto::v1::OperatorAction {
        browser
            .type_into(
                "form[action=\"/ui/upgrades/sso/approve\"] input[name=reason]",
                reason,
            )
            .await;
        browser.click("#approve-sso").await;
        let notice = browser.text("#notice").await;
        assert!(notice.contains("approved"), "{notice}");
        self.approval().await
    }

    /// The approval of the upgrade, once it ended upgraded.
    async fn approval(&self) -> steward_proto::v1::OperatorAction {
        let r = self.result().await;
        assert_eq!(r.outcome, "upgraded", "{r:?}");
        r.operator_actions
            .into_iter()
            .find(|a| a.action == "approve")
            .expect("the approval is recorded")
    }

    /// A pull request's head: a commit on `branch` of the recipe, which
    /// stays on main; its commit.
    fn pull_request(&self, branch: &str) -> String {
        let recipe = self.root.join("recipe");
        git(&recipe, &["checkout", "-q", "-b", branch]);
        std::fs::write(recipe.join("fix.txt"), "the pull request's change\n").unwrap();
        git(&recipe, &["add", "fix.txt"]);
        let who = ["-c", "user.name=t", "-c", "user.email=t@t"];
        git(
            &recipe,
            &[&who[..], &["commit", "-q", "-m", "fix"]].concat(),
        );
        let head = git(&recipe, &["rev-parse", "HEAD"]).trim().to_string();
        git(&recipe, &["checkout", "-q", "main"]);
        head
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

mod approvals;
mod faults;
mod forge;
mod hosts;
mod modes;
mod oidc;
mod shared;
mod warm;

/// Who started the current upgrade of `sso`, and whether the API signed it,
/// as its history shows.
async fn start_of(app: &App) -> (String, bool) {
    let input = start_input(app);
    (
        input["operator"].as_str().unwrap_or_default().to_string(),
        !input["signature"].as_str().unwrap_or_default().is_empty(),
    )
}

/// The input the newest run of `sso` started with, from its history.
fn start_input(app: &App) -> serde_json::Value {
    let timeline = app.ok(&["history", &sso(), "--json"]);
    timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "workflow_started")
        .map(|e| e["detail"]["input"].clone())
        .unwrap()
}
