//! `[[shared]]` services: two apps' concurrent cold runs on one shared
//! service each get a resource of their own; a run cancelled by an
//! operator deletes its resource; one terminated leaves its resource for
//! the reaper, which never touches a resource made by hand; runs wait
//! while the service's own app is being upgraded.

use super::*;
use temporalio_client::{WorkflowCancelOptions, WorkflowTerminateOptions};

fn service() -> PathBuf {
    workspace().join("tests/fixtures/shared_service.py")
}

impl App {
    /// `sso` and `wiki`, each with a cold setup that uses the shared
    /// service `kc` (realms as files in `<root>/realms`), kept warm by the
    /// app `kc` (whose newest release asks for a manual migration). sso's
    /// cold asserts wait for `<root>/go`; both check their realm exists.
    async fn sharing(test: &str) -> App {
        let cold = App::cold_table("{home}").replace(
            "asserts = [[",
            r#"asserts = [["sh", "-c", "while [ ! -f {root}/go ]; do sleep 0.2; done; sleep 1; test -f {root}/realms/{shared.kc}"], ["#,
        );
        let svc = |verb: &str| {
            format!(
                r#"["python3", "{}", "{{root}}/realms", "{verb}"{}]"#,
                service().display(),
                if verb == "create" || verb == "delete" {
                    r#", "{resource}""#
                } else {
                    ""
                }
            )
        };
        let extra = format!(
            r#"uses = ["kc"]
{cold}
[[apps]]
name = "wiki"
recipe_repo = "{{root}}/recipe"
deploy = ["true"]
undeploy = ["true"]
health = {{ command = ["true"], interval_seconds = 1 }}
snapshot_dir = "{{root}}/wiki-snaps"
uses = ["kc"]

[apps.cold]
deploy = ["mkdir", "-p", "{{scratch}}/data"]
undeploy = ["true"]
asserts = [["sh", "-c", "sleep 3; test -f {{root}}/realms/{{shared.kc}}"]]

[[apps]]
name = "kc"
recipe_repo = "{{root}}/kc-recipe"
deploy = ["true"]
undeploy = ["true"]
health = {{ command = ["true"], interval_seconds = 1 }}
snapshot_dir = "{{root}}/kc-snaps"
approval_wait = "10m"

[[shared]]
name = "kc"
app = "kc"
create = {create}
delete = {delete}
list = {list}
health = {{ command = {health}, interval_seconds = 1, timeout_seconds = 5 }}
resource = "realm-{{app}}-{{run}}"
reap_after = "0s"
wait = "5m"

[[schedules]]
name = "reaper"
workflow = "shared-reap"
cron = "*/30 * * * *"
"#,
            create = svc("create"),
            delete = svc("delete"),
            list = svc("list"),
            health = svc("health"),
        );
        let app = App::new(test, &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")], &extra).await;
        let kc = app.root().join("kc-recipe");
        steward_tests::make_repo(&kc, &[("README.md", "keycloak\n")]);
        for (tag, notes) in [
            ("26.0.0+1.0.0", "release 26.0.0"),
            ("26.1.0+1.0.0", "Manual migration: re-import the realms."),
        ] {
            git(
                &kc,
                &[
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "tag",
                    "-a",
                    tag,
                    "-m",
                    notes,
                ],
            );
        }
        std::fs::create_dir_all(app.realms()).unwrap();
        app
    }

    fn root(&self) -> PathBuf {
        self.home.parent().unwrap().to_path_buf()
    }

    fn realms(&self) -> PathBuf {
        self.root().join("realms")
    }

    /// The realms the service holds now.
    fn realms_now(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.realms())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The service's log: (verb, realm, realms right after).
    fn service_log(&self) -> Vec<(String, String, usize)> {
        std::fs::read_to_string(self.root().join("realms.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
            })
            .collect()
    }

    fn start_cold(&self, app: &str) {
        let (code, _, err) = self.cli(&[
            "upgrade",
            "run",
            app,
            "--cold",
            "--no-wait",
            "--reason",
            "ci run",
        ]);
        assert_eq!(code, 0, "{err}");
    }

    /// Starts sso's cold run and returns once it holds its realm and
    /// waits in its asserts (for `<root>/go`).
    async fn start_holding_a_realm(&self) {
        self.start_cold("sso");
        wait_for(
            "the cold run's asserts",
            Duration::from_secs(60),
            || async {
                (self.phase_of("sso").await.as_deref() == Some("cold_testing")
                    && self.realms_now().len() == 1)
                    .then_some(())
            },
        )
        .await
        .unwrap();
    }

    /// Whether a cold deployment of sso (the fixture serving from a scratch
    /// folder) still runs.
    fn cold_deployment_runs(&self) -> bool {
        Command::new("pgrep")
            .args(["-f", self.home.join("snapshots/cold").to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    }

    async fn phase_of(&self, app: &str) -> Option<String> {
        self.query::<WarmUpgrade, _>(&ids::warm_upgrade(app), WarmUpgrade::status)
            .await
            .ok()
            .map(|s| s.phase)
    }

    /// Waits until `app`'s run is closed; its status.
    async fn closed(&self, app: &str) -> temporalio_client::WorkflowExecutionStatus {
        wait_for("the run closed", Duration::from_secs(60), || async {
            let d = self
                .client
                .get_workflow_handle::<WarmUpgrade>(ids::warm_upgrade(app))
                .describe(Default::default())
                .await
                .ok()?;
            (d.status() != temporalio_client::WorkflowExecutionStatus::Running).then(|| d.status())
        })
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn two_concurrent_cold_runs_on_one_shared_service_each_get_their_own_resource_and_both_pass()
{
    let app = App::sharing("shared-two").await;
    std::fs::write(app.root().join("go"), "").unwrap();
    app.start_cold("sso");
    app.start_cold("wiki");
    let sso = app
        .h
        .result::<WarmUpgrade>(&ids::warm_upgrade("sso"), Duration::from_secs(120))
        .await;
    let wiki = app
        .h
        .result::<WarmUpgrade>(&ids::warm_upgrade("wiki"), Duration::from_secs(120))
        .await;
    assert_eq!(sso.outcome, "cold-passed", "{sso:?}");
    assert_eq!(wiki.outcome, "cold-passed", "{wiki:?}");
    let log = app.service_log();
    let created: Vec<&str> = log
        .iter()
        .filter(|(v, _, _)| v == "create")
        .map(|(_, r, _)| r.as_str())
        .collect();
    let short = |run: &str| run.replace('-', "")[..8].to_string();
    assert_eq!(created.len(), 2, "one resource per run, made once: {log:?}");
    assert!(
        created.contains(&format!("realm-sso-{}", short(&sso.run_id)).as_str()),
        "{log:?}"
    );
    assert!(
        created.contains(&format!("realm-wiki-{}", short(&wiki.run_id)).as_str()),
        "{log:?}"
    );
    assert!(
        log.iter().any(|(_, _, n)| *n == 2),
        "the two runs held their resources at the same time: {log:?}"
    );
    assert_eq!(
        log.iter().filter(|(v, _, _)| v == "delete").count(),
        2,
        "each deleted when its run ended: {log:?}"
    );
    assert!(app.realms_now().is_empty(), "{:?}", app.realms_now());
    // Nothing is left for the reaper, and the list says so.
    let (code, out, err) = app.cli(&["shared", "list"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["resources"], serde_json::json!([]), "{list}");
}

#[tokio::test]
async fn a_run_cancelled_by_an_operator_deletes_its_resource() {
    let app = App::sharing("shared-cancel").await;
    app.start_holding_a_realm().await;
    app.client
        .get_workflow_handle::<WarmUpgrade>(ids::warm_upgrade("sso"))
        .cancel(
            WorkflowCancelOptions::builder()
                .reason("ci run no longer wanted")
                .build(),
        )
        .await
        .unwrap();
    app.closed("sso").await;
    assert!(app.realms_now().is_empty(), "{:?}", app.realms_now());
    let log = app.service_log();
    assert_eq!(
        log.iter().map(|(v, _, _)| v.as_str()).collect::<Vec<_>>(),
        ["create", "delete"],
        "{log:?}"
    );
    // The cold deployment is undeployed too, its scratch data removed.
    assert!(app.scratch_left().is_empty(), "{:?}", app.scratch_left());
    assert!(
        !app.cold_deployment_runs(),
        "the cold deployment was stopped"
    );
}

#[tokio::test]
async fn a_terminated_runs_resource_is_reaped_and_one_made_by_hand_never_is() {
    let app = App::sharing("shared-reap").await;
    app.start_holding_a_realm().await;
    let left = app.realms_now()[0].clone();
    // Killed mid-way: no workflow code runs after a terminate.
    app.client
        .get_workflow_handle::<WarmUpgrade>(ids::warm_upgrade("sso"))
        .terminate(WorkflowTerminateOptions::builder().reason("stuck").build())
        .await
        .unwrap();
    app.closed("sso").await;
    assert_eq!(app.realms_now(), vec![left.clone()], "left behind");
    // A realm someone made by hand, named as steward would name one.
    let by_hand = "realm-sso-0000aaaa";
    let made = Command::new("python3")
        .arg(service())
        .args([app.realms().to_str().unwrap(), "create", by_hand])
        .status()
        .unwrap();
    assert!(made.success());

    let (code, out, err) = app.cli(&["shared", "list"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = list["resources"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    let row = |name: &str| rows.iter().find(|r| r["resource"] == name).unwrap().clone();
    assert_eq!(row(&left)["made_by_steward"], true, "{list}");
    assert_eq!(row(&left)["app"], "sso", "{list}");
    assert_eq!(row(&left)["run_closed"], true, "{list}");
    assert_eq!(row(by_hand)["made_by_steward"], false, "{list}");

    // The reaper's schedule fires.
    let (code, out, err) = app.cli(&["schedules", "sync"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&ids::schedule("reaper")), "{out}");
    app.fire("reaper").await;
    wait_for("the reaper's pass", Duration::from_secs(60), || async {
        (app.realms_now() == vec![by_hand.to_string()]).then_some(())
    })
    .await
    .unwrap();
    let pass = newest_progress(&app.store().await, "shared_reap", Duration::from_secs(30)).await;
    let reaped: serde_json::Value = serde_json::from_str(&pass.detail_json).unwrap();
    let names: Vec<&str> = reaped["reaped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![left.as_str()], "{reaped}");
    assert_eq!(reaped["reaped"][0]["run"], "closed", "{reaped}");
    assert_eq!(reaped["reaped"][0]["app"], "sso", "{reaped}");
    assert_eq!(app.realms_now(), vec![by_hand.to_string()], "never reaped");
    // A second pass finds nothing more to do.
    let (code, out, err) = app.cli(&["shared", "reap", "--by", "ana"]);
    assert_eq!(code, 0, "{err}");
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["reaped"], serde_json::json!([]), "{again}");
    assert_eq!(app.alerts_of("shared.reaped").len(), 1);
    // No code of a terminated run runs: its cold deployment is left for
    // the operator who terminated it; the test stops it.
    let _ = Command::new("pkill")
        .args(["-f", app.home.join("snapshots/cold").to_str().unwrap()])
        .status();
}

#[tokio::test]
async fn runs_on_a_shared_service_wait_while_it_is_upgraded_like_any_app() {
    let app = App::sharing("shared-wait").await;
    std::fs::write(app.root().join("go"), "").unwrap();
    // The service's own upgrade, held for its manual migration, holds
    // kc's upgrade lease while it waits.
    let (code, _, err) = app.cli(&[
        "upgrade",
        "run",
        "kc",
        "--no-wait",
        "--reason",
        "keycloak 26.1",
    ]);
    assert_eq!(code, 0, "{err}");
    wait_for("kc held", Duration::from_secs(60), || async {
        (app.phase_of("kc").await.as_deref() == Some("held")).then_some(())
    })
    .await
    .unwrap();
    app.start_cold("wiki");
    wait_for("wiki waiting", Duration::from_secs(60), || async {
        (app.phase_of("wiki").await.as_deref() == Some("sharing_resources")).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        app.phase_of("wiki").await.as_deref(),
        Some("sharing_resources"),
        "still waiting"
    );
    assert!(app.realms_now().is_empty(), "no realm while kc is upgraded");
    let (code, _, err) = app.cli(&[
        "upgrade",
        "approve",
        "kc",
        "--version",
        "26.1.0+1.0.0",
        "--reason",
        "realms exported",
        "--by",
        "ana",
    ]);
    assert_eq!(code, 0, "{err}");
    let kc = app
        .h
        .result::<WarmUpgrade>(&ids::warm_upgrade("kc"), Duration::from_secs(120))
        .await;
    assert_eq!(kc.outcome, "upgraded", "{kc:?}");
    let wiki = app
        .h
        .result::<WarmUpgrade>(&ids::warm_upgrade("wiki"), Duration::from_secs(120))
        .await;
    assert_eq!(wiki.outcome, "cold-passed", "{wiki:?}");
    assert!(app.realms_now().is_empty());
}

#[tokio::test]
async fn a_run_whose_worker_is_killed_still_deletes_its_resource_once_it_ends() {
    let mut app = App::sharing("shared-kill").await;
    app.start_holding_a_realm().await;
    app.worker().kill9();
    std::fs::write(app.root().join("go"), "").unwrap();
    app.start_worker();
    let r = app
        .h
        .result::<WarmUpgrade>(&ids::warm_upgrade("sso"), Duration::from_secs(120))
        .await;
    assert_eq!(r.outcome, "cold-passed", "{r:?}");
    assert!(app.realms_now().is_empty(), "{:?}", app.realms_now());
    let log = app.service_log();
    assert_eq!(
        log.iter().map(|(v, _, _)| v.as_str()).collect::<Vec<_>>(),
        ["create", "delete"],
        "made once, deleted once, across the worker's death: {log:?}"
    );
}
