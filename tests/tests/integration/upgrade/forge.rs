//! The forge trigger: a pull-request comment (`!testme`, `!testme
//! --quick`) delivered by a signed webhook starts a cold run or a trial of
//! the pull request's head as the commenter; the run posts its commit
//! status (pending, then its verdict, `steward/<mode>`, never a merge
//! gate) to a local server standing for the forge; nothing else starts a
//! run, and a pull request's head never moves last_good.

use std::process::Child;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;

const SECRET: &str = "webhook-secret-shared-with-the-forge";

/// The forge (tests/fixtures/forge.py), killed when dropped.
struct Forge {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Forge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Forge {
    fn start(dir: PathBuf) -> Forge {
        std::fs::create_dir_all(dir.join("pulls")).unwrap();
        std::fs::write(dir.join("token"), "forge-api-token\n").unwrap();
        let port = steward_tests::free_port();
        let child = Command::new("python3")
            .arg(workspace().join("tests/fixtures/forge.py"))
            .args([&port.to_string(), dir.to_str().unwrap()])
            .spawn()
            .unwrap();
        Forge { child, dir, port }
    }

    /// The statuses posted so far.
    fn statuses(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("statuses.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// An issue_comment event as Gitea and GitHub send it.
fn comment(pull: bool, action: &str, login: &str, body: &str) -> String {
    let mut issue = serde_json::json!({ "number": 7, "title": "fix the login page" });
    if pull {
        issue["pull_request"] = serde_json::json!({ "url": "http://forge/pulls/7" });
    }
    serde_json::json!({
        "action": action,
        "issue": issue,
        "comment": { "body": body, "user": { "login": login } },
        "repository": { "full_name": "ops/sso-recipe" },
        "sender": { "login": login },
    })
    .to_string()
}

fn signed(body: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An app on the forge: `ops/sso-recipe` is its recipe, pull request 7's
/// head a commit on a branch of it, `steward api` serving the webhook.
/// `top` declares operators (or not); `forge` adds keys to `[forge]`.
struct OnForge {
    app: App,
    forge: Forge,
    api: steward_tests::ApiServer,
    head: String,
    _keys: tempfile::TempDir,
}

impl OnForge {
    async fn start(test: &str, top: impl FnOnce(&Path) -> String, forge_keys: &str) -> OnForge {
        let keys = temp_dir();
        let forge = Forge::start(keys.path().join("forge"));
        std::fs::write(keys.path().join("forge-secret"), SECRET).unwrap();
        let top = format!(
            "{}\n[forge]\napi_url = \"http://127.0.0.1:{}/api/v1\"\nsecret_file = \"{}\"\ntoken_file = \"{}\"\nrepos = {{ \"ops/sso-recipe\" = \"sso\" }}\ntarget_url = \"http://steward.example/\"\n{forge_keys}\n",
            top(keys.path()),
            forge.port,
            keys.path().join("forge-secret").display(),
            forge.dir.join("token").display(),
        );
        let app = App::with_top(
            test,
            &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
            &format!("advance = \"cold\"\n{}", App::cold_table("{home}")),
            &top,
        )
        .await;
        let head = app.pull_request("pr-7");
        std::fs::write(forge.dir.join("pulls/7"), &head).unwrap();
        let api = steward_tests::ApiServer::start(&app.config, &app.server.address).await;
        OnForge {
            app,
            forge,
            api,
            head,
            _keys: keys,
        }
    }

    /// The forge delivers `body` as an `event`, with `signature`.
    async fn deliver(
        &self,
        event: &str,
        body: String,
        signature: Option<String>,
    ) -> (u16, serde_json::Value) {
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            ("x-gitea-event", event.to_string()),
            ("x-github-event", event.to_string()),
        ];
        if let Some(s) = signature {
            headers.push(("x-hub-signature-256", s));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, text) = self
            .api
            .call_with("POST", "/v1/forge/webhook", &headers, body)
            .await;
        let json = text.lines().next().unwrap_or_default().to_string();
        (
            code,
            serde_json::from_str::<serde_json::Value>(&json).unwrap_or(json.into()),
        )
    }

    /// The forge delivers `body` as a signed comment event.
    async fn comment(&self, body: String) -> (u16, serde_json::Value) {
        let signature = signed(&body, SECRET);
        self.deliver("issue_comment", body, Some(signature)).await
    }
}

#[tokio::test]
async fn a_pull_request_comment_starts_a_trial_and_a_cold_run_of_its_head_that_report_their_status()
{
    let ana = steward_tests::token("ana", &["release"], &[]);
    let on = OnForge::start(
        "forge",
        |keys| format!("{}{}", steward_tests::signing_key(keys), ana.entry),
        "",
    )
    .await;
    let (app, forge, head) = (&on.app, &on.forge, on.head.clone());
    let deliver = |event: &'static str, body: String, signature: Option<String>| {
        on.deliver(event, body, signature)
    };

    // What starts nothing.
    let quick = comment(true, "created", "ana", "!testme --quick");
    let (code, answer) = deliver("issue_comment", quick.clone(), None).await;
    assert_eq!(code, 401, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("no signature"),
        "{answer}"
    );
    let (code, answer) = deliver(
        "issue_comment",
        quick.clone(),
        Some(signed(&quick, "guessed")),
    )
    .await;
    assert_eq!(code, 401, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("does not match"),
        "{answer}"
    );
    let tampered = quick.replace("ana", "ann");
    let (code, _) = deliver("issue_comment", tampered, Some(signed(&quick, SECRET))).await;
    assert_eq!(code, 401, "a body changed after signing");
    let mallory = comment(true, "created", "mallory", "!testme");
    let (code, answer) = deliver(
        "issue_comment",
        mallory.clone(),
        Some(signed(&mallory, SECRET)),
    )
    .await;
    assert_eq!(code, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("`mallory` is not a declared operator"),
        "{answer}"
    );
    for (what, body) in [
        ("an issue", comment(false, "created", "ana", "!testme")),
        ("an edit", comment(true, "edited", "ana", "!testme")),
        (
            "a remark",
            comment(true, "created", "ana", "looks fine, will !testme later"),
        ),
    ] {
        let (code, answer) =
            deliver("issue_comment", body.clone(), Some(signed(&body, SECRET))).await;
        assert_eq!(code, 200, "{what}: {answer}");
        assert!(answer["ignored"].is_string(), "{what}: {answer}");
    }
    let ping = r#"{"zen": "keep it logically awesome"}"#.to_string();
    let (code, answer) = deliver("ping", ping.clone(), Some(signed(&ping, SECRET))).await;
    assert_eq!(code, 200, "{answer}");
    assert!(
        forge.statuses().is_empty(),
        "nothing ran: {:?}",
        forge.statuses()
    );

    // `!testme --quick`: a trial of the head, as ana.
    let (code, started) =
        deliver("issue_comment", quick.clone(), Some(signed(&quick, SECRET))).await;
    assert_eq!(code, 202, "{started}");
    assert_eq!(
        (
            started["mode"].as_str(),
            started["sha"].as_str(),
            started["commenter"].as_str()
        ),
        (Some("trial"), Some(head.as_str()), Some("ana")),
        "{started}"
    );
    let trial = app.result().await;
    assert_eq!(trial.outcome, "trial-passed", "{trial:?}");
    assert_eq!(
        (
            trial.mode.as_str(),
            trial.revision.as_str(),
            trial.compared_with.as_str()
        ),
        ("trial", head.as_str(), BASE),
        "{trial:?}"
    );
    let input = start_input(app);
    assert_eq!(input["operator"], "ana", "who asked is recorded: {input}");
    assert_eq!(input["forge"]["sha"], head.as_str(), "{input}");
    assert_eq!(input["forge"]["pull"], 7, "{input}");
    assert_eq!(app.last_good(), BASE, "a trial never moves last_good");

    // `!testme`: a cold run of the head; it passes and still moves nothing.
    let cold = comment(true, "created", "ana", "!testme");
    let (code, started) = deliver("issue_comment", cold.clone(), Some(signed(&cold, SECRET))).await;
    assert_eq!(code, 202, "{started}");
    assert_eq!(started["mode"], "cold", "{started}");
    let cold = app.result().await;
    assert_eq!(cold.outcome, "cold-passed", "{cold:?}");
    assert_eq!(
        (cold.mode.as_str(), cold.revision.as_str()),
        ("cold", head.as_str())
    );
    assert!(
        cold.message.contains("a revision is not a release"),
        "{cold:?}"
    );
    assert_eq!(
        app.last_good(),
        BASE,
        "a pull request's head is never promoted"
    );

    // The statuses, as the forge received them.
    let statuses = forge.statuses();
    let seen: Vec<(String, String)> = statuses
        .iter()
        .map(|s| {
            (
                s["body"]["context"].as_str().unwrap().to_string(),
                s["body"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("steward/trial", "pending"),
            ("steward/trial", "success"),
            ("steward/cold", "pending"),
            ("steward/cold", "success"),
        ]
        .map(|(c, s)| (c.to_string(), s.to_string())),
        "{statuses:?}"
    );
    for s in &statuses {
        assert_eq!(s["sha"], head.as_str(), "{s}");
        assert_eq!(s["repo"], "ops/sso-recipe", "{s}");
        assert_eq!(s["body"]["target_url"], "http://steward.example/", "{s}");
        assert!(
            s["body"]["description"]
                .as_str()
                .unwrap()
                .starts_with("informational, not a merge gate"),
            "{s}"
        );
    }
}

/// The API starts every kind of run with an operator's token, with the
/// CLI's checks: a trial, a cold run, the cold sweep; a trial without a
/// revision is refused before anything starts.
#[tokio::test]
async fn the_api_starts_a_trial_a_cold_run_and_the_cold_sweep() {
    let keys = temp_dir();
    let ana = steward_tests::token("ana", &["release"], &[]);
    let top = format!("{}{}", steward_tests::signing_key(keys.path()), ana.entry);
    let app = App::with_top(
        "api-starts",
        &[(BASE, "ok", ""), ("1.1.0+5.1.0", "ok", "")],
        &App::cold_table("{home}"),
        &top,
    )
    .await;
    let api = steward_tests::ApiServer::start(&app.config, &app.server.address).await;
    let start = |body: serde_json::Value| api.post("/v1/upgrades/sso/start", &ana.token, body);

    let (code, answer) = start(serde_json::json!({ "mode": "trial", "reason": "r" })).await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("a trial needs the release tag or git revision"),
        "{answer}"
    );
    let (code, answer) = start(serde_json::json!({
        "mode": "trial", "version": "1.1.0+5.1.0", "reason": "try the release", "wait_seconds": 120
    }))
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        (answer["outcome"].as_str(), answer["mode"].as_str()),
        (Some("trial-passed"), Some("trial")),
        "{answer}"
    );
    let (code, answer) = start(serde_json::json!({
        "mode": "cold", "reason": "fresh data", "wait_seconds": 120
    }))
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        (
            answer["outcome"].as_str(),
            answer["mode"].as_str(),
            answer["attempted"].as_str()
        ),
        (Some("cold-passed"), Some("cold"), Some("1.1.0+5.1.0")),
        "{answer}"
    );
    assert_eq!(start_input(&app)["operator"], "ana");
    assert_eq!(
        app.last_good(),
        BASE,
        "neither moved last_good (advance = warm)"
    );

    let (code, answer) = api
        .post(
            "/v1/cold-sweeps",
            &ana.token,
            serde_json::json!({ "wait_seconds": 180 }),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    let passed: Vec<&str> = answer["passed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["app"].as_str().unwrap())
        .collect();
    assert_eq!(passed, ["sso"], "{answer}");
}

/// Without declared operators, only `allowed_commenters` start runs.
#[tokio::test]
async fn without_operators_only_allowed_commenters_start_runs_from_the_forge() {
    let on = OnForge::start(
        "forge-allowed",
        |_| String::new(),
        "allowed_commenters = [\"carol\"]",
    )
    .await;
    let (code, answer) = on
        .comment(comment(true, "created", "dave", "!testme --quick"))
        .await;
    assert_eq!(code, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains(
            "`dave` may not start runs from the forge: not in [forge] allowed_commenters"
        ),
        "{answer}"
    );
    let (code, answer) = on
        .comment(comment(true, "created", "carol", "!testme --quick"))
        .await;
    assert_eq!(code, 202, "{answer}");
    let r = on.app.result().await;
    assert_eq!(
        (r.outcome.as_str(), r.revision.as_str()),
        ("trial-passed", on.head.as_str())
    );
    assert_eq!(start_input(&on.app)["operator"], "carol");
    // The status the forge got is carol's run's.
    let states: Vec<String> = on
        .forge
        .statuses()
        .iter()
        .map(|s| s["body"]["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["pending", "success"]);
}
