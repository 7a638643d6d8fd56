//! Operators of the organisation's identity provider: the API takes the
//! access tokens a real OpenID provider (oidc-provider) issues, verified
//! against its published keys, beside steward's own tokens. Who acts is
//! the IdP's user with the groups the IdP gave at that moment: the run
//! checks membership and separation of duties on them. Every bad token is
//! a 401 naming why, and nothing reaches the run.

use steward_tests::{Idp, signed_by_another_key, tampered};

use super::*;

fn users(bob_groups: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "ana": { "name": "Ana Lima", "password": "a", "groups": ["release"] },
        "bob": { "name": "Bob Quist", "password": "b", "groups": bob_groups },
        "dan": { "name": "Dan Ode", "password": "d", "groups": ["storage"] },
    })
}

/// The provider (ana, bob in `release`, dan in `storage`) and an app
/// whose upgrade to 1.4.0+5.0.0 holds for `release`'s approval, with
/// `[api.oidc]` (and `oidc` in it) and `top` after it.
async fn on_idp(test: &str, keys: &Path, oidc: &str, top: &str) -> (Idp, App) {
    let idp = Idp::start(
        &keys.join("idp"),
        users(&["release"]),
        "http://127.0.0.1:1/ui/oidc/callback",
    )
    .await;
    let top = format!(
        "{}\n[api.oidc]\nissuer = \"{}\"\nclient_id = \"steward\"\naudience = \"urn:steward\"\n{oidc}\n\n{top}",
        steward_tests::signing_key(keys),
        idp.issuer(),
    );
    let app = App::with_top(
        test,
        &[
            (BASE, "ok", ""),
            ("1.4.0+5.0.0", "ok", "Needs a manual migration first."),
        ],
        "approval_wait = \"10m\"\napproval_group = \"release\"",
        &top,
    )
    .await;
    (idp, app)
}

#[tokio::test]
async fn the_api_takes_the_idps_access_tokens_and_the_run_checks_the_groups_they_carry() {
    let keys = temp_dir();
    // A steward token keeps working beside the IdP's.
    let carl = steward_tests::token("carl", &["storage"], &[]);
    let (mut idp, app) = on_idp("oidc-api", keys.path(), "", &carl.entry).await;
    let api = steward_tests::ApiServer::start(&app.config, &app.server.address).await;

    let ana = idp.token("ana", "urn:steward").await;
    let (code, me) = api.get("/v1/whoami", &ana).await;
    assert_eq!(code, 200, "{me}");
    assert_eq!(me["name"], "ana", "{me}");
    assert_eq!(me["groups"], serde_json::json!(["release"]), "{me}");
    assert_eq!(me["credential_id"], "oidc:ana-cli#release", "{me}");
    let (code, me) = api.get("/v1/whoami", &carl.token).await;
    assert_eq!((code, me["name"].as_str()), (200, Some("carl")), "{me}");

    // ana starts the upgrade; it holds for the migration.
    app.held_through(&api, &ana).await;
    let input = start_input(&app);
    assert_eq!(
        (input["operator"].as_str(), input["credential_id"].as_str()),
        (Some("ana"), Some("oidc:ana-cli#release")),
        "{input}"
    );
    assert!(!input["signature"].as_str().unwrap().is_empty(), "signed");

    // Bad tokens: each refused by the API, saying why.
    let approve = serde_json::json!({ "version": "1.4.0+5.0.0", "reason": "read the notes" });
    let bob = idp.token("bob", "urn:steward").await;
    idp.short_lived(true);
    let expiring = idp.token("bob", "urn:steward").await;
    idp.short_lived(false);
    let elsewhere = idp.token("bob", "urn:other-app").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    for (token, says) in [
        (expiring, "expired"),
        (elsewhere, "another audience"),
        (signed_by_another_key(&bob), "signature does not verify"),
        (tampered(&bob), "signature does not verify"),
    ] {
        let (code, answer) = api
            .post("/v1/upgrades/sso/approve", &token, approve.clone())
            .await;
        assert_eq!(code, 401, "{says}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{says}: {answer}"
        );
    }
    assert!(
        app.alerts_of("upgrade.approval-refused").is_empty(),
        "nothing reached the run"
    );
    assert_eq!(app.status().await.unwrap().phase, "held");

    // The run judges the IdP's groups: ana started it, dan is not in
    // `release`; bob is.
    for (who, says) in [
        ("ana", "started this upgrade"),
        ("dan", "not in group `release`"),
    ] {
        let token = idp.token(who, "urn:steward").await;
        let (code, answer) = api
            .post("/v1/upgrades/sso/approve", &token, approve.clone())
            .await;
        assert_eq!(code, 409, "{who}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{who}: {answer}"
        );
    }
    // Out of `release` at the IdP: bob's next request cannot approve.
    idp.set_users(users(&[]));
    let outside = idp.token("bob", "urn:steward").await;
    let (code, answer) = api
        .post("/v1/upgrades/sso/approve", &outside, approve.clone())
        .await;
    assert_eq!(code, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not in group `release`"),
        "{answer}"
    );
    idp.set_users(users(&["release"]));
    let bob = idp.token("bob", "urn:steward").await;
    let (code, answer) = api
        .post("/v1/upgrades/sso/approve", &bob, approve.clone())
        .await;
    assert_eq!(code, 200, "{answer}");
    let approval = app.approval().await;
    assert_eq!(
        (
            approval.operator.as_str(),
            approval.credential_id.as_str(),
            approval.verified
        ),
        ("bob", "oidc:bob-cli#release", true),
        "{approval:?}"
    );

    // A rotated key set: new tokens are taken at once, the old key's not.
    idp.rotate_keys().await;
    let fresh = idp.token("ana", "urn:steward").await;
    let (code, me) = api.get("/v1/whoami", &fresh).await;
    assert_eq!(code, 200, "{me}");
    let (code, answer) = api.get("/v1/whoami", &ana).await;
    assert_eq!(code, 401, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("does not publish"),
        "{answer}"
    );
    let refused = api
        .metric("steward_api_auth_failures_total{reason=\"idp\"}")
        .await;
    assert_eq!(refused, 5.0, "each refusal counted");
}

/// The operator page signs in through the identity provider's own login
/// page (authorization code with PKCE) in a real browser, approves a held
/// upgrade as the IdP's user, and signs out; the history names them.
#[tokio::test]
async fn an_idp_user_signs_in_to_the_page_in_a_real_browser_approves_and_signs_out() {
    let keys = temp_dir();
    std::fs::write(keys.path().join("client-secret"), "steward-secret\n").unwrap();
    let secret = format!(
        "client_secret_file = \"{}\"",
        keys.path().join("client-secret").display()
    );
    let (mut idp, app) = on_idp("oidc-page", keys.path(), &secret, "").await;
    let api = steward_tests::ApiServer::start(&app.config, &app.server.address).await;
    idp.set_redirect(&format!("{}/ui/oidc/callback", api.base))
        .await;
    app.held_through(&api, &idp.token("ana", "urn:steward").await)
        .await;

    let browser = steward_tests::Browser::start(&keys.path().join("chromium")).await;
    browser.open(&format!("{}/", api.base)).await;
    browser.click("#oidc").await;
    // The identity provider's own login and consent pages.
    browser.type_into("input[name=login]", "bob").await;
    browser.type_into("input[name=password]", "b").await;
    browser.click("button[type=submit]").await;
    // The click returns before the consent page replaces the login page,
    // whose own submit button a second click would otherwise find.
    wait_for("the consent page", Duration::from_secs(30), || async {
        browser
            .find("input[name=login]")
            .await
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    browser.click("button[type=submit]").await;
    wait_for("signed in", Duration::from_secs(30), || async {
        browser.find("#operator").await
    })
    .await
    .unwrap();
    assert_eq!(browser.text("#operator").await, "bob");
    // Out of `release` at the IdP: the page's next approval is refused,
    // though bob signed in while he was in it.
    idp.set_users(users(&[]));
    browser
        .type_into(
            "form[action=\"/ui/upgrades/sso/approve\"] input[name=reason]",
            "too late",
        )
        .await;
    browser.click("#approve-sso").await;
    let refused = browser.text("#error").await;
    assert!(refused.contains("not in group `release`"), "{refused}");
    idp.set_users(users(&["release"]));
    browser.open(&format!("{}/", api.base)).await;
    let approval = app.approve_on_page(&browser, "realm table migrated").await;
    assert_eq!(
        (
            approval.operator.as_str(),
            approval.credential_id.as_str(),
            approval.verified
        ),
        ("bob", "oidc:bob#release", true),
        "{approval:?}"
    );
    let (code, out, err) = app.cli(&["history", &sso()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bob (realm table migrated)"), "{out}");

    // Signing out ends the session: the page asks again.
    browser.click("form[action=\"/ui/signout\"] button").await;
    wait_for("signed out", Duration::from_secs(30), || async {
        browser.find("#oidc").await
    })
    .await
    .unwrap();
    assert!(browser.find("#operator").await.is_none());
}
