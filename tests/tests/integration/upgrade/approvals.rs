//! Holds and approvals: a major bump expires held, manual-migration notes
//! release for one version, a scheduled run found by app name, the page
//! in a real browser, and a verified approval refused when a typed name
//! started the run.

use super::*;

#[tokio::test]
async fn a_major_bump_is_held_and_expires_as_held() {
    // The notes wrap a sentence over two lines.
    let notes = "Version 2.\n\n- Manual migration: run `kc.sh migrate`\n  before the first start.\n- Faster login.";
    let app = App::new(
        "major",
        &[(BASE, "ok", ""), ("2.0.0+5.0.0", "ok", notes)],
        "approval_wait = \"2s\"",
    )
    .await;
    let r = app.run(&["--reason", "nightly"]);
    assert_eq!(r.outcome, "held-major", "{r:?}");
    assert_eq!(app.serving(), BASE, "nothing upgraded silently");
    assert_eq!(app.last_good(), BASE);
    let alerts = app.alerts_once("upgrade.held-major").await;
    assert_eq!(alerts.len(), 1);
    let timed_out = app.alerts_of("upgrade.approval-timed-out");
    assert_eq!(timed_out.len(), 1, "the wait that ran out is told");
    // The alert carries the notes, the matching sentence whole, and an
    // approval command that works as written (the reason it needs).
    let alert = &alerts[0];
    assert_eq!(
        alert["detail"]["matching_notes"],
        serde_json::json!(["- Manual migration: run `kc.sh migrate` before the first start."]),
        "{alert}"
    );
    assert!(
        alert["detail"]["notes"]
            .as_str()
            .is_some_and(|n| n.contains("Faster login")),
        "{alert}"
    );
    let message = alert["message"].as_str().unwrap();
    assert!(
        message.contains("`steward upgrade approve sso --version 2.0.0+5.0.0 --reason \"...\"`"),
        "{message}"
    );
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
    let alerts = app.alerts_once("upgrade.held-manual-migration").await;
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
    app.held_through(&api, &ana.token).await;
    // What the alert tells the approvers works under require_verified:
    // the API, not the CLI.
    let held = &app.alerts_once("upgrade.held-manual-migration").await[0];
    let message = held["message"].as_str().unwrap();
    assert!(
        message.contains("`POST /v1/upgrades/sso/approve`")
            && !message.contains("steward upgrade approve"),
        "{message}"
    );
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
    // Each refusal is told to those waiting on the approval.
    let refused = app.alerts_of("upgrade.approval-refused");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused.iter().any(|a| a["message"]
            .as_str()
            .unwrap()
            .contains("not in group `release`")),
        "{refused:?}"
    );
    let (code, _, err) = app.approve("1.4.0+5.0.0", "typed", "bob");
    assert_ne!(code, 0);
    assert!(err.contains("require_verified"), "{err}");
    assert_eq!(
        start_of(&app).await,
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
    let approval = app.approve_on_page(&browser, "realm table migrated").await;
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

#[tokio::test]
async fn a_held_upgrade_fires_in_alertmanager_and_resolves_once_approved() {
    let am = steward_tests::Alertmanager::start(&["alertname", "app"]).await;
    let notes = "Needs a manual migration first.";
    let app = App::with_top(
        "am-held",
        &[(BASE, "ok", ""), ("1.4.0+5.0.0", "ok", notes)],
        "approval_wait = \"10m\"",
        &format!(
            "[alerts]\nalertmanager = \"{}\"\npage_url = \"https://steward.example/\"\n",
            am.url
        ),
    )
    .await;
    let (code, _, err) = app.cli(&["upgrade", "run", "sso", "--no-wait", "--reason", "nightly"]);
    assert_eq!(code, 0, "{err}");
    let held = |n: &serde_json::Value, status: &str| {
        n["status"] == status
            && n["alerts"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a| a["labels"]["alertname"] == "upgrade.held-manual-migration")
            })
    };
    let firing = am.notified("the hold, firing", |n| held(n, "firing")).await;
    let alert = &firing["alerts"][0];
    assert_eq!(alert["labels"]["app"], "sso", "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    assert_eq!(alert["annotations"]["workflow_id"], sso(), "{alert}");
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("approve with"),
        "{alert}"
    );
    let (code, _, err) = app.approve("1.4.0+5.0.0", "migration done", "ana");
    assert_eq!(code, 0, "{err}");
    assert_eq!(app.result().await.outcome, "upgraded");
    am.notified("the hold, resolved", |n| held(n, "resolved"))
        .await;
    let listed = app.ok(&["alerts", "list"]);
    let of = |kind: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}: {listed}"))
            .clone()
    };
    let hold = of("upgrade.held-manual-migration");
    assert!(hold["resolved_at"].is_string(), "{hold}");
    let approved = of("upgrade.approved");
    assert!(
        approved["message"]
            .as_str()
            .unwrap()
            .contains("approved by ana: migration done"),
        "{approved}"
    );
}
