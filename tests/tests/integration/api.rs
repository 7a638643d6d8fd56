//! `steward api` on a real dev server: the runbook's curl calls, tokens
//! that decide who acts (and bad ones refused, counted, never sent), the
//! workflow's separation of duties on verified approvals, and a
//! property-based run of schemathesis against the generated OpenAPI
//! document.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use steward_proto::ids;
use steward_proto::v1::BackfillStatus;
use steward_tests::{
    ApiServer, Backend, Harness, RepoEntry, Token, database, make_repo, read, signing_key,
    task_queue, temp_dir, three_row_target, token, wait_for, workplan, workspace, write_config,
};
use steward_workflows::BackfillRollout;

struct Env {
    h: Harness,
    api: ApiServer,
    /// storage.
    ana: Token,
    /// storage and security.
    bob: Token,
    /// security.
    carol: Token,
    /// storage, expired.
    old: Token,
}

steward_tests::derefs_to_harness!(Env);

/// One repo, a tiny backfill `tiny` (approved by `storage` and
/// `security`; `backfill` adds to its spec), four operators, the API's key
/// pair (`api` adds to `[api]`), a worker and `steward api`.
async fn env(test: &str, backfill: &str, api: &str) -> Env {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let repo = root.join("repo");
    make_repo(&repo, &[("workplans/A-1.md", &workplan("A-1", 1))]);
    let target = three_row_target(&root.join("target.db")).await;
    let ana = token("ana", &["storage"], &[]);
    let bob = token("bob", &["storage", "security"], &[]);
    let carol = token("carol", &["security"], &[]);
    let old = token("old", &["storage"], &["--expires", "2020-01-01T00:00:00Z"]);
    let db = database(Backend::Sqlite, &root).await;
    let config = write_config(
        &root,
        &db,
        &task_queue(test),
        &[RepoEntry {
            name: "r",
            path: &repo,
            remote: None,
            push: false,
        }],
        &format!(
            r#"{key}{api}
{ana}{bob}{carol}{old}
[[backfills]]
name = "tiny"
database_url = "{target}"
count_sql = "SELECT COUNT(*) FROM t"
next_range_sql = "SELECT MIN(id), MAX(id) FROM (SELECT id FROM t WHERE id > $1 ORDER BY id LIMIT $2) x"
apply_sql = "UPDATE t SET id = id WHERE id BETWEEN $1 AND $2 AND $3 <> ''"
rollback_sql = "DELETE FROM t WHERE 0 = 1 AND $1 <> ''"
batch_size = 1
approvals = ["storage", "security"]
{backfill}
"#,
            key = signing_key(&root),
            ana = ana.entry,
            bob = bob.entry,
            carol = carol.entry,
            old = old.entry,
        ),
    );
    let h = Harness::with_worker(dir, config).await;
    let api = ApiServer::start(&h.config, &h.server.address).await;
    Env {
        h,
        api,
        ana,
        bob,
        carol,
        old,
    }
}

impl Env {
    /// Starts backfill `tiny` through the API as ana, frozen now; its answer.
    async fn start_tiny(&self) -> Value {
        let (code, started) = self
            .api
            .post(
                "/v1/backfills/tiny/start",
                &self.ana.token,
                json!({ "reason": "tonight's backfill", "freeze_at": "now" }),
            )
            .await;
        assert_eq!(code, 200, "{started}");
        started
    }

    async fn status(&self) -> BackfillStatus {
        self.query::<BackfillRollout, _>(&ids::backfill("tiny"), BackfillRollout::status)
            .await
            .unwrap()
    }

    async fn wait_phase(&self, phase: &str) -> BackfillStatus {
        self.wait_query::<BackfillRollout, _>(
            &ids::backfill("tiny"),
            || BackfillRollout::status,
            &format!("phase {phase}"),
            Duration::from_secs(60),
            |s| s.phase == phase,
        )
        .await
    }

    /// Whether any rollout of `tiny` was ever started.
    async fn any_rollout(&self) -> bool {
        self.client
            .get_workflow_handle::<BackfillRollout>(ids::backfill("tiny"))
            .describe(Default::default())
            .await
            .is_ok()
    }

    /// `POST /v1/backfills/tiny/<action>` with `reason`, as `who`.
    async fn act(&self, who: &Token, action: &str, reason: &str) -> (u16, Value) {
        self.api
            .post(
                &format!("/v1/backfills/tiny/{action}"),
                &who.token,
                json!({ "reason": reason }),
            )
            .await
    }

    /// `POST /v1/backfills/tiny/approve` for `group`, as `who`.
    async fn approve(&self, who: &Token, group: &str) -> (u16, Value) {
        self.api
            .post(
                "/v1/backfills/tiny/approve",
                &who.token,
                json!({ "group": group, "reason": format!("reviewed for {group}") }),
            )
            .await
    }
}

fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a JSON error body: {v}"))
}

#[tokio::test]
async fn the_runbooks_curl_calls_work_against_the_api() {
    let e = env("api-runbook", "", "sweep_wait_seconds = 120").await;
    let t = &e.ana.token;
    // POST /consistency/sweep/remote-all -d '{"max_seconds": 300}'
    let (code, swept) = e
        .api
        .post(
            "/consistency/sweep/remote-all",
            t,
            json!({ "max_seconds": 300, "source": "bridge" }),
        )
        .await;
    assert_eq!(code, 200, "{swept}");
    assert_eq!(swept["source"], "bridge");
    assert_eq!(swept["exit_code"], 0, "{swept}");
    let id = swept["workflow_id"].as_str().unwrap().to_string();
    let cli = e.ok(&["sweep", "run", "--by", "ana"]);
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        keys(&swept),
        keys(&cli),
        "the API answers with what `steward sweep run` prints"
    );
    // curl ".../progress/?event_type=consistency_sweep_remote_all&limit=5"
    let (code, events) = e
        .api
        .get(
            "/progress/?event_type=consistency_sweep_remote_all&limit=5",
            t,
        )
        .await;
    assert_eq!(code, 200, "{events}");
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2, "both sweeps, newest first: {events:?}");
    assert_eq!(events[1]["workflow_id"], id.as_str());
    assert_eq!(events[1]["source"], "bridge");
    assert_eq!(events[1]["detail"]["exit_code"], 0);
    let (_, one) = e
        .api
        .get(
            "/progress/?event_type=consistency_sweep_remote_all&limit=1",
            t,
        )
        .await;
    assert_eq!(one.as_array().unwrap().len(), 1, "limit holds");

    // Past the API's wait, a 202 with the workflow id; the sweep goes on.
    let (code, accepted) = e
        .api
        .post(
            "/consistency/sweep/remote-all",
            t,
            json!({ "max_seconds": 300, "source": "bridge", "wait_seconds": 0 }),
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let later = accepted["workflow_id"].as_str().unwrap().to_string();
    assert!(later.starts_with("sweep-bridge-"), "{accepted}");
    wait_for(
        "the accepted sweep's event",
        Duration::from_secs(60),
        || async {
            let (_, events) = e
                .api
                .get(
                    "/progress/?event_type=consistency_sweep_remote_all&limit=5",
                    t,
                )
                .await;
            (events[0]["workflow_id"] == later.as_str()).then_some(())
        },
    )
    .await
    .unwrap();

    // Errors are JSON, name the problem, and carry the right status.
    for (method, path, body, status, says) in [
        (
            "POST",
            "/consistency/sweep/remote-all",
            json!({ "max_seconds": 0 }),
            400,
            "max_seconds",
        ),
        (
            "POST",
            "/consistency/sweep/remote-all",
            json!({ "max_secs": 5 }),
            400,
            "max_secs",
        ),
        (
            "POST",
            "/consistency/sweep/remote-all",
            json!("not an object"),
            400,
            "JSON",
        ),
        ("GET", "/progress/?limit=0", Value::Null, 400, "limit"),
        ("GET", "/progress/?limit=many", Value::Null, 400, "limit"),
        ("GET", "/v1/backfills/nope", Value::Null, 404, "nope"),
        (
            "POST",
            "/v1/backfills/tiny/explode",
            json!({ "reason": "x" }),
            404,
            "explode",
        ),
        (
            "POST",
            "/v1/backfills/tiny/freeze",
            json!({ "reason": " " }),
            400,
            "reason",
        ),
        (
            "POST",
            "/v1/schedules/nope/pause",
            json!({ "reason": "x" }),
            404,
            "nope",
        ),
        ("GET", "/v1/upgrades/nope", Value::Null, 404, "nope"),
        ("GET", "/v1/findings?check=Z-99", Value::Null, 400, "Z-99"),
        (
            "GET",
            "/v1/history/no-such-run",
            Value::Null,
            404,
            "no-such-run",
        ),
        ("GET", "/no/such/route", Value::Null, 404, "route"),
        ("DELETE", "/v1/inbox", Value::Null, 405, "method"),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (code, answer) = e.api.call(method, path, Some(t), body).await;
        assert_eq!(code, status, "{method} {path}: {answer}");
        assert!(
            error_of(&answer).contains(says),
            "{method} {path} names `{says}`: {answer}"
        );
    }
    // The timeline of the API's sweep, and the rest of the CLI's reads.
    let (code, timeline) = e.api.get(&format!("/v1/history/{id}"), t).await;
    assert_eq!(code, 200, "{timeline}");
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["kind"] == "workflow_started"),
        "{timeline}"
    );
    for path in [
        "/v1/inbox",
        "/v1/schedules",
        "/v1/alerts",
        "/v1/findings",
        "/v1/whoami",
    ] {
        let (code, answer) = e.api.get(path, t).await;
        assert_eq!(code, 200, "{path}: {answer}");
    }
    // The store at a glance: the bridge's sweep and the CLI's, the one
    // repo with its workstream, nothing waiting.
    let (code, summary) = e.api.get("/v1/summary", t).await;
    assert_eq!(code, 200, "{summary}");
    assert_eq!(summary["repos"], 1, "{summary}");
    assert_eq!(summary["workstreams"], 1, "{summary}");
    assert!(
        summary["last_sweep"]["bridge"]["workflow_id"]
            .as_str()
            .is_some_and(|w| w.starts_with("sweep-bridge-")),
        "{summary}"
    );
    assert!(summary["last_sweep"]["manual"].is_object(), "{summary}");
    assert_eq!(summary["runs_waiting"], 0, "{summary}");
    let (code, _) = e.api.get("/v1/summary", "stw_not-a-token").await;
    assert_eq!(code, 401);
    let (_, me) = e.api.get("/v1/whoami", t).await;
    assert_eq!(
        (me["name"].as_str(), me["credential_id"].as_str()),
        (Some("ana"), Some(e.ana.id.as_str()))
    );
    let (code, doc) = e.api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(code, 200);
    assert!(
        doc["paths"]["/consistency/sweep/remote-all"]["post"].is_object(),
        "{doc}"
    );
    assert!(doc["paths"]["/progress/"]["get"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["scheme"], "bearer",
        "the document says how to authenticate"
    );
}

#[tokio::test]
async fn tokens_decide_who_acts_and_bad_ones_are_refused_counted_and_never_sent() {
    let e = env("api-tokens", "", "").await;
    e.start_tiny().await;
    e.wait_phase("awaiting_approval").await;

    // `steward api` never makes a local operator: only `steward dev` does.
    let (code, answer) = e
        .api
        .call("GET", "/ui/signin/local?secret=stw_0000", None, None)
        .await;
    assert_eq!(code, 404, "{answer}");
    assert!(
        answer.to_string().contains("only `steward dev`"),
        "{answer}"
    );
    let approve = json!({ "group": "storage", "reason": "looks fine" });
    let cases = [
        (None, "no credential", "missing"),
        (Some("stw_0000"), "not an operator's", "unknown"),
        (Some(e.old.token.as_str()), "expired", "expired"),
    ];
    for (bad, says, reason) in cases {
        let metric = format!("steward_api_auth_failures_total{{reason=\"{reason}\"}}");
        let before = e.api.metric(&metric).await;
        let (code, answer) = e
            .api
            .call(
                "POST",
                "/v1/backfills/tiny/approve",
                bad,
                Some(approve.clone()),
            )
            .await;
        assert_eq!(code, 401, "{answer}");
        assert!(error_of(&answer).contains(says), "{answer}");
        assert_eq!(
            e.api.metric(&metric).await,
            before + 1.0,
            "{metric} counted"
        );
    }
    let s = e.status().await;
    assert!(
        s.approvals.is_empty() && s.operator_actions.iter().all(|a| a.action == "start"),
        "nothing reached the rollout: {:?}",
        s.operator_actions
    );

    // The body cannot say who: an `operator` field is refused, not used.
    let (code, answer) = e
        .api
        .post(
            "/v1/backfills/tiny/approve",
            &e.bob.token,
            json!({ "group": "storage", "reason": "x", "operator": "mallory" }),
        )
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(error_of(&answer).contains("operator"), "{answer}");

    let (code, answer) = e.approve(&e.bob, "storage").await;
    assert_eq!(code, 200, "{answer}");
    let s = e.status().await;
    let approval = s
        .operator_actions
        .iter()
        .find(|a| a.action == "approve")
        .unwrap();
    assert_eq!(
        (
            approval.operator.as_str(),
            approval.credential_id.as_str(),
            approval.verified,
            approval.reason.as_str(),
        ),
        ("bob", e.bob.id.as_str(), true, "reviewed for storage"),
        "recorded as the token's operator, verified"
    );
    let start = s
        .operator_actions
        .iter()
        .find(|a| a.action == "start")
        .unwrap();
    assert_eq!(
        (
            start.operator.as_str(),
            start.credential_id.as_str(),
            start.verified
        ),
        ("ana", e.ana.id.as_str(), true)
    );

    // Revoking is removing the entry: the next request is refused.
    let config = read(&e.config).replace(&e.carol.entry, "");
    std::fs::write(&e.config, config).unwrap();
    let (code, answer) = e.approve(&e.carol, "security").await;
    assert_eq!(code, 401, "{answer}");
    let s = e.status().await;
    assert_eq!(
        s.approvals,
        vec!["storage".to_string()],
        "the revoked token sent nothing"
    );
}

#[tokio::test]
async fn approvals_check_membership_and_separation_of_duties_in_the_workflow() {
    let e = env("api-duties", "require_verified = true", "").await;
    // Verified-only: a typed name cannot start it, neither through the
    // CLI nor straight through Temporal.
    let (code, _, err) = e.cli(&[
        "backfill",
        "start",
        "tiny",
        "--freeze-at",
        "now",
        "--reason",
        "go",
        "--by",
        "ana",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("require_verified") && err.contains("API"),
        "{err}"
    );
    let unsigned = steward_proto::v1::BackfillInput {
        name: "tiny".into(),
        freeze_at: "now".into(),
        operator: "ana".into(),
        reason: "typed".into(),
        ..Default::default()
    };
    e.start_directly(BackfillRollout::run, unsigned, &ids::backfill("tiny"))
        .await;
    let refused =
        e.h.result::<BackfillRollout>(&ids::backfill("tiny"), Duration::from_secs(60))
            .await;
    assert_eq!(refused.outcome, "preconditions_failed", "{refused:?}");
    assert!(refused.error.contains("require_verified"), "{refused:?}");

    let started = e.start_tiny().await;
    let run_id = started["run_id"].as_str().unwrap().to_string();
    wait_for("the new rollout", Duration::from_secs(60), || async {
        let s = e.status().await;
        (s.phase == "awaiting_approval" && s.operator_actions.len() == 1).then_some(())
    })
    .await
    .unwrap();
    // A typed name is refused, naming why.
    let (code, _, err) = e.cli(&[
        "backfill", "approve", "tiny", "--group", "storage", "--reason", "ok", "--by", "bob",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("require_verified"), "{err}");

    // Live settings through the API carry the value before the change.
    let (code, set) = e
        .api
        .post(
            "/v1/backfills/tiny/set",
            &e.bob.token,
            json!({ "reason": "faster", "batch_size": 2 }),
        )
        .await;
    assert_eq!(code, 200, "{set}");
    assert!(set["message"].as_str().unwrap().contains("1 → 2"), "{set}");

    for (who, group, says) in [
        (&e.ana, "storage", "started this rollout"),
        (&e.carol, "storage", "not in group `storage`"),
    ] {
        let (code, answer) = e.approve(who, group).await;
        assert_eq!(code, 409, "{answer}");
        assert!(error_of(&answer).contains(says), "{answer}");
    }
    let (code, answer) = e.approve(&e.bob, "storage").await;
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = e.approve(&e.bob, "security").await;
    assert_eq!(code, 409, "{answer}");
    assert!(
        error_of(&answer).contains("one operator approves for one group"),
        "{answer}"
    );
    let (code, answer) = e.approve(&e.carol, "security").await;
    assert_eq!(code, 200, "{answer}");
    let done =
        e.h.result::<BackfillRollout>(&ids::backfill("tiny"), Duration::from_secs(60))
            .await;
    assert_eq!(done.outcome, "done", "{done:?}");

    // The history records each action with the verified name, the
    // credential, the reason and the value before the change.
    let (code, timeline) = e
        .api
        .get(
            &format!("/v1/history/{}?run_id={run_id}", ids::backfill("tiny")),
            &e.ana.token,
        )
        .await;
    assert_eq!(code, 200, "{timeline}");
    let text = timeline.to_string();
    for needle in [
        "bob (faster): set accepted: batch_size 1 → 2",
        "bob (reviewed for storage): approve accepted",
        "carol (reviewed for security): approve accepted",
    ] {
        assert!(text.contains(needle), "`{needle}` in the timeline: {text}");
    }
    let s = e.status().await;
    let verified: Vec<(&str, &str, bool)> = s
        .operator_actions
        .iter()
        .map(|a| (a.operator.as_str(), a.credential_id.as_str(), a.verified))
        .collect();
    assert_eq!(
        verified,
        vec![
            ("ana", e.ana.id.as_str(), true),
            ("bob", e.bob.id.as_str(), true),
            ("bob", e.bob.id.as_str(), true),
            ("carol", e.carol.id.as_str(), true),
        ],
        "start, set, approve, approve: each verified, with its credential"
    );
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_spec() {
    let bin = workspace().join(".venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run ./scripts/setup (it installs schemathesis into .venv)",
        bin.display()
    );
    // The sweep endpoint holds its response up to `sweep_wait_seconds`: the
    // request timeout stays well above it, so a slow sweep answers 202
    // rather than looking like a hung server.
    let e = env("api-schemathesis", "", "sweep_wait_seconds = 8").await;
    let (_, doc) = e.api.call("GET", "/openapi.json", None, None).await;
    let operations: usize = doc["paths"]
        .as_object()
        .expect("the document lists paths")
        .values()
        .map(|p| p.as_object().map_or(0, |ops| ops.len()))
        .sum();
    assert!(operations > 20, "the document lists every route: {doc}");
    let out = Command::new(&bin)
        .args([
            "run",
            &format!("{}/openapi.json", e.api.base),
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--seed",
            "18",
            "--request-timeout",
            "40",
            "-H",
            &format!("Authorization: Bearer {}", e.ana.token),
        ])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(&e.root)
        .output()
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}"
    );
    assert!(
        report.contains(&format!("Tested: {operations}\n")),
        "all {operations} operations were tested:\n{report}"
    );
}

/// The signed start and the signed updates a run of `workflow_id`
/// accepted, read back from its history as anyone with a token (or with
/// the Temporal frontend) can.
async fn signed_inputs(
    e: &Env,
    workflow_id: &str,
    run_id: &str,
) -> (
    steward_proto::v1::BackfillInput,
    Vec<(String, steward_proto::v1::OperatorRequest)>,
) {
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    let events = steward_worker::history::fetch_events(&e.client, workflow_id, Some(run_id))
        .await
        .unwrap();
    let mut start = None;
    let mut updates = Vec::new();
    for event in &events {
        match &event.attributes {
            Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => {
                let v = steward_worker::history::decode_payloads(a.input.as_ref());
                start = Some(serde_json::from_value(v).unwrap());
            }
            Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a)) => {
                let input = a
                    .accepted_request
                    .as_ref()
                    .and_then(|r| r.input.as_ref())
                    .unwrap();
                let v = steward_worker::history::decode_payloads(input.args.as_ref());
                updates.push((input.name.clone(), serde_json::from_value(v).unwrap()));
            }
            _ => {}
        }
    }
    (start.expect("a start event"), updates)
}

#[tokio::test]
async fn a_signed_action_counts_once_on_the_run_it_was_signed_for() {
    let e = env("api-replay", "require_verified = true", "").await;
    let handle = e
        .client
        .get_workflow_handle::<BackfillRollout>(ids::backfill("tiny"));
    let id = ids::backfill("tiny");

    // Run 1: a signed start (waiting for a freeze), a signed freeze, two
    // signed approvals from different people; done.
    let (code, first) = e
        .api
        .post(
            "/v1/backfills/tiny/start",
            &e.ana.token,
            json!({ "reason": "first run" }),
        )
        .await;
    assert_eq!(code, 200, "{first}");
    let first_run = first["run_id"].as_str().unwrap().to_string();
    e.wait_phase("awaiting_freeze").await;
    let (code, answer) = e.act(&e.ana, "freeze", "window open").await;
    assert_eq!(code, 200, "{answer}");
    e.wait_phase("awaiting_approval").await;
    assert_eq!(e.approve(&e.bob, "storage").await.0, 200);
    let (_, updates) = signed_inputs(&e, &id, &first_run).await;
    let (_, bobs) = updates
        .iter()
        .find(|(n, _)| n == "approve")
        .unwrap()
        .clone();
    // Within the run: the same signed approval again is refused as a
    // replay, before any other rule, and changes nothing.
    let replayed = handle
        .execute_update(BackfillRollout::approve, bobs.clone(), Default::default())
        .await
        .expect_err("a replayed approval is refused");
    assert!(
        replayed
            .to_string()
            .contains("already used on this rollout"),
        "{replayed}"
    );
    assert_eq!(e.status().await.approvals, vec!["storage".to_string()]);
    assert_eq!(e.approve(&e.carol, "security").await.0, 200);
    let done =
        e.h.result::<BackfillRollout>(&id, Duration::from_secs(60))
            .await;
    assert_eq!(done.outcome, "done", "{done:?}");
    let (start, updates) = signed_inputs(&e, &id, &first_run).await;
    assert!(
        !start.signature.is_empty() && !start.nonce.is_empty(),
        "{start:?}"
    );
    assert_eq!(updates.len(), 3, "freeze and two approvals: {updates:?}");

    // Across runs: the first run's signed start, copied from its history
    // and sent straight to Temporal, starts a run that refuses it and
    // touches nothing.
    let copied_run = e
        .start_directly(BackfillRollout::run, start.clone(), &id)
        .await;
    let copied =
        e.h.result::<BackfillRollout>(&id, Duration::from_secs(60))
            .await;
    assert_eq!(copied.outcome, "preconditions_failed", "{copied:?}");
    assert!(
        copied
            .error
            .contains(&format!("already used by run {first_run}")),
        "{copied:?}"
    );
    assert_eq!(copied.rows, 0);
    let s = e.status().await;
    assert!(
        s.operator_actions.iter().all(|a| !a.verified),
        "the copied start is not recorded as verified: {:?}",
        s.operator_actions
    );
    assert_ne!(copied_run, first_run);

    // A fresh run, started properly: the first run's freeze and approvals,
    // sent to it straight through Temporal, do not verify for this run.
    let (code, third) = e
        .api
        .post(
            "/v1/backfills/tiny/start",
            &e.ana.token,
            json!({ "reason": "third run" }),
        )
        .await;
    assert_eq!(code, 200, "{third}");
    let third_run = third["run_id"].as_str().unwrap().to_string();
    e.wait_phase("awaiting_freeze").await;
    for (name, req) in &updates {
        let refused = match name.as_str() {
            "freeze" => {
                handle
                    .execute_update(BackfillRollout::freeze, req.clone(), Default::default())
                    .await
            }
            "approve" => {
                handle
                    .execute_update(BackfillRollout::approve, req.clone(), Default::default())
                    .await
            }
            other => panic!("unexpected update {other}"),
        }
        .map(|_| ())
        .expect_err("an earlier run's signature is refused");
        assert!(
            refused
                .to_string()
                .contains("was not signed by this deployment's API for this rollout"),
            "{name}: {refused}"
        );
    }
    let s = e.status().await;
    assert_eq!(s.phase, "awaiting_freeze", "nothing applied: {s:?}");
    assert!(s.approvals.is_empty(), "{s:?}");
    assert_eq!(
        s.operator_actions.len(),
        1,
        "only the start: {:?}",
        s.operator_actions
    );
    let (code, answer) = e.act(&e.ana, "abort", "done testing").await;
    assert_eq!(code, 200, "{answer}");
    let aborted =
        e.h.result::<BackfillRollout>(&id, Duration::from_secs(60))
            .await;
    assert_eq!(aborted.outcome, "aborted", "{aborted:?} ({third_run})");
}

/// Serves `html` at `/` on a port of its own: another origin of the same
/// host, as a page an attacker got onto a neighbouring port.
fn serve_page(html: String) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    base
}

#[tokio::test]
async fn a_page_on_another_port_cannot_act_as_the_signed_in_operator() {
    let e = env("api-csrf", "", "").await;
    let keys = temp_dir();
    let browser = steward_tests::Browser::start(&keys.path().join("chromium")).await;
    browser.open(&format!("{}/", e.api.base)).await;
    browser.type_into("#token", &e.ana.token).await;
    browser.click("#signin").await;
    assert_eq!(browser.text("#operator").await, "ana");
    // The same host, another port: a form that posts to the API as soon
    // as it loads, riding on the page's cookie.
    let attack = serve_page(format!(
        "<!doctype html><form id=f method=post action=\"{}/ui/backfills/tiny/start\">\
         <input name=reason value=pwned></form><script>document.getElementById('f').submit()</script>",
        e.api.base
    ));
    browser.open(&format!("{attack}/")).await;
    wait_for("the attack to land", Duration::from_secs(20), || async {
        browser
            .source()
            .await
            .contains("another origin")
            .then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!e.any_rollout().await, "no rollout was started");
    // The page itself: a form without the session's form token is refused
    // too, even from the page's own origin.
    let (code, answer) = e
        .api
        .call_with(
            "POST",
            "/ui/backfills/tiny/start",
            &[
                ("cookie", &format!("steward_token={}", e.ana.token)),
                ("origin", &e.api.base),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "reason=forged".into(),
        )
        .await;
    assert_eq!(code, 303, "{answer}");
    assert!(
        answer.contains("form%20token") || answer.contains("form+token"),
        "{answer}"
    );
    let (code, headers) = e.api.headers("/").await;
    assert_eq!(code, 200);
    assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
    let csp = headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!e.any_rollout().await, "the forged form started nothing");
    // And the page's own form, with its token, works.
    browser.open(&format!("{}/", e.api.base)).await;
    browser
        .type_into(
            "form[action=\"/ui/backfills/tiny/start\"] input[name=reason]",
            "a real one",
        )
        .await;
    browser.click("#start-tiny").await;
    assert!(browser.text("#notice").await.contains("started"));
    // The start is recorded by the run's first workflow task, which may
    // come a moment after the page says it started.
    let start = wait_for("the start recorded", Duration::from_secs(30), || async {
        e.status().await.operator_actions.into_iter().next()
    })
    .await
    .unwrap();
    assert_eq!(start.operator, "ana");
}

#[tokio::test]
async fn a_broken_config_never_reaches_a_client_and_the_last_good_one_serves() {
    let e = env("api-broken-config", "", "").await;
    let good = read(&e.config);
    // Mid-edit: a line with a password and an unclosed string.
    std::fs::write(
        &e.config,
        format!("{good}\ndatabase_url = \"postgres://steward:s3cret-pw@db/steward\n"),
    )
    .unwrap();
    for token in [Some(e.ana.token.as_str()), Some("stw_made_up"), None] {
        let (code, answer) = e.api.call("GET", "/v1/whoami", token, None).await;
        assert!(
            !answer.to_string().contains("s3cret") && !answer.to_string().contains("line"),
            "{answer}"
        );
        match token {
            Some(t) if t == e.ana.token => assert_eq!(code, 200, "the last good config: {answer}"),
            _ => assert_eq!(code, 401, "{answer}"),
        }
    }
    let (code, page) = e.api.call("GET", "/", None, None).await;
    assert_eq!(code, 200);
    assert!(!page.to_string().contains("s3cret"));
    assert_eq!(e.api.metric("steward_config_stale").await, 1.0);
    let (_, text) = e.api.call("GET", "/metrics", None, None).await;
    let text = text.as_str().unwrap();
    steward_tests::assert_promtool_accepts(text, "the API's /metrics");
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let family = family.split(' ').next().unwrap();
        assert!(
            steward_worker::api::EXPORTED.contains(&family),
            "{family} is not in api::EXPORTED"
        );
    }
    assert!(e.api.metric("steward_config_reload_failures_total").await >= 1.0);
    let log = e.api.process.log();
    assert!(log.contains("does not parse at line"), "{log}");
    assert!(!log.contains("s3cret"), "the log is redacted: {log}");
    // Fixed: in force at once, and a token removed in the fix is refused.
    std::fs::write(&e.config, good.replace(&e.carol.entry, "")).unwrap();
    let (code, _) = e.api.get("/v1/whoami", &e.carol.token).await;
    assert_eq!(code, 401);
    assert_eq!(e.api.metric("steward_config_stale").await, 0.0);
}

#[tokio::test]
async fn nul_bytes_and_control_characters_are_refused_everywhere_and_never_printed() {
    let e = env("api-bad-text", "", "").await;
    let t = &e.ana.token;
    for path in [
        "/progress/?event_type=%00",
        "/v1/history/a%00b",
        "/v1/findings?repo=%00",
        "/v1/backfills/ti%00ny",
    ] {
        let (code, answer) = e.api.get(path, t).await;
        assert_eq!(code, 400, "{path}: {answer}");
        assert!(error_of(&answer).contains("NUL"), "{path}: {answer}");
    }
    let (code, answer) = e
        .api
        .post(
            "/v1/backfills/tiny/start",
            t,
            json!({ "reason": "ok\u{1b}[2J\u{1b}[Hall clear", "freeze_at": "now" }),
        )
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(error_of(&answer).contains("control character"), "{answer}");
    let (code, _, err) = e.cli(&[
        "backfill",
        "start",
        "tiny",
        "--reason",
        "two\nlines",
        "--by",
        "ana",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("control character"), "{err}");
    // Straight to Temporal, past the CLI and the API: the validator refuses.
    e.start_tiny().await;
    e.wait_phase("awaiting_approval").await;
    let direct = e
        .client
        .get_workflow_handle::<BackfillRollout>(ids::backfill("tiny"))
        .execute_update(
            BackfillRollout::pause,
            steward_proto::v1::OperatorRequest {
                operator: "bob".into(),
                reason: "\u{1b}]0;owned\u{7}".into(),
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect_err("control characters are refused by the validator");
    assert!(direct.to_string().contains("control character"), "{direct}");
    let (code, out, err) = e.cli(&["history", &ids::backfill("tiny")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "the timeline prints no control character"
    );
}

#[tokio::test]
async fn who_may_do_what_follows_the_permissions_in_the_api_and_the_workflow() {
    // ana (storage) may run `tiny`; carol (security) may only approve it;
    // nobody else may start sweeps but the `oncall` group.
    let permissions = r#"
[[permissions]]
groups = ["storage"]
verbs = ["*"]
on = ["backfill:tiny"]

[[permissions]]
groups = ["oncall"]
verbs = ["start"]
on = ["sweep"]
"#;
    let e = env(
        "api-permissions",
        &format!("require_verified = true\n{permissions}"),
        "",
    )
    .await;
    let (code, answer) = e
        .api
        .post(
            "/v1/backfills/tiny/start",
            &e.carol.token,
            json!({ "reason": "not mine", "freeze_at": "now" }),
        )
        .await;
    assert_eq!(code, 403, "{answer}");
    assert!(
        error_of(&answer).contains("`carol` may not `start` backfill `tiny`"),
        "{answer}"
    );
    let (code, answer) = e
        .api
        .post("/consistency/sweep/remote-all", &e.ana.token, json!({}))
        .await;
    assert_eq!(code, 403, "{answer}");
    e.start_tiny().await;
    e.wait_phase("awaiting_approval").await;
    let (code, answer) = e.act(&e.carol, "pause", "stop it").await;
    assert_eq!(code, 403, "{answer}");
    // The check-config shows the rules as they resolve.
    let shown = e.ok(&["check-config"]);
    assert_eq!(shown["permissions"][0]["on"][0], "backfill:tiny", "{shown}");
    // A direct update cannot go around the API: signed for carol by the
    // API's key (as if she had stolen a signing), the validator still
    // refuses her the verb.
    let mut req = steward_proto::v1::OperatorRequest {
        operator: "carol".into(),
        reason: "around the API".into(),
        credential_id: e.carol.id.clone(),
        ..Default::default()
    };
    let signer = steward_worker::ops::sign::Signer::load(Some(&e.root.join("api-signing.key")))
        .unwrap()
        .unwrap();
    let chain =
        steward_worker::ops::sign::chain::<BackfillRollout>(&e.client, &ids::backfill("tiny"))
            .await
            .unwrap();
    req.signed_at = steward_worker::ops::sign::now();
    let detail = steward_proto::signing::request_detail("abort", &req);
    req.signature = signer.sign(&steward_proto::signing::Action::of(
        &ids::backfill("tiny"),
        &chain,
        "abort",
        &req,
        &detail,
    ));
    let refused = e
        .client
        .get_workflow_handle::<BackfillRollout>(ids::backfill("tiny"))
        .execute_update(BackfillRollout::abort, req, Default::default())
        .await
        .expect_err("carol may not abort");
    assert!(
        refused
            .to_string()
            .contains("`carol` may not `abort` backfill `tiny`"),
        "{refused}"
    );
    assert_eq!(
        e.status().await.phase,
        "awaiting_approval",
        "nothing applied"
    );
    // Approvals follow the approving groups, as before.
    assert_eq!(e.approve(&e.bob, "storage").await.0, 200);
    assert_eq!(e.approve(&e.carol, "security").await.0, 200);
    let done =
        e.h.result::<BackfillRollout>(&ids::backfill("tiny"), Duration::from_secs(60))
            .await;
    assert_eq!(done.outcome, "done", "{done:?}");
}

#[tokio::test]
async fn a_verified_approval_of_a_rollout_a_typed_name_started_is_refused() {
    // Without require_verified, the CLI may start a rollout with a typed
    // name; the API's verified approval then cannot show it comes from
    // someone else, and says so.
    let e = env("api-typed-start", "", "").await;
    let (code, _, err) = e.cli(&[
        "backfill",
        "start",
        "tiny",
        "--freeze-at",
        "now",
        "--reason",
        "typed",
        "--by",
        "ana",
    ]);
    assert_eq!(code, 0, "{err}");
    e.wait_phase("awaiting_approval").await;
    let (code, answer) = e.approve(&e.bob, "storage").await;
    assert_eq!(code, 409, "{answer}");
    assert!(error_of(&answer).contains("typed name (`ana`)"), "{answer}");
    assert!(e.status().await.approvals.is_empty(), "nothing applied");
    let (code, _, err) = e.cli(&[
        "backfill",
        "approve",
        "tiny",
        "--group",
        "storage",
        "--reason",
        "on my word",
        "--by",
        "bob",
    ]);
    assert_eq!(code, 0, "typed names compare as typed names: {err}");
    let s = e.status().await;
    assert_eq!(s.approvals, vec!["storage".to_string()]);
    assert!(s.operator_actions.iter().all(|a| !a.verified), "{s:?}");
}

/// The page as `who` sees it.
async fn page(e: &Env, who: &Token) -> String {
    let (code, page) = e.api.call("GET", "/", Some(&who.token), None).await;
    assert_eq!(code, 200, "{page}");
    page.as_str().expect("the page is HTML").to_string()
}

#[tokio::test]
async fn the_page_lists_rollouts_from_visibility_and_an_operator_reads_their_own_change_at_once() {
    let e = env("api-shared-reads", "", "").await;
    let never = page(&e, &e.ana).await;
    assert!(
        never.contains("no rollout") && never.contains("id=\"start-tiny\""),
        "{never}"
    );
    assert!(
        never.contains("<p id=summary>0 repos, 0 workstreams, 0 tasks, 0 open findings"),
        "the store at a glance: {never}"
    );
    e.start_tiny().await;
    e.wait_phase("awaiting_approval").await;
    // The running rollout, as its search attributes say: its phase, the
    // operator's own approving group offered (ana is in storage only),
    // and the row the script keeps live.
    let running = wait_for(
        "the page to show the rollout",
        Duration::from_secs(30),
        || async {
            let p = page(&e, &e.ana).await;
            p.contains("data-backfill=\"tiny\"").then_some(p)
        },
    )
    .await
    .unwrap();
    assert!(
        running.contains("<td class=phase>awaiting_approval</td>"),
        "{running}"
    );
    assert!(running.contains("<option>storage</option>"), "{running}");
    assert!(!running.contains("<option>security</option>"), "{running}");
    assert!(running.contains("id=\"abort-tiny\"") && !running.contains("id=\"start-tiny\""));
    // Reads are shared between requests for a moment; a change made
    // through the API is read back at once all the same.
    let (code, before) = e.api.get("/v1/backfills/tiny", &e.ana.token).await;
    assert_eq!(code, 200, "{before}");
    assert_eq!(before["approvals"], json!([]), "{before}");
    let (code, answer) = e.approve(&e.bob, "storage").await;
    assert_eq!(code, 200, "{answer}");
    let (_, after) = e.api.get("/v1/backfills/tiny", &e.ana.token).await;
    assert_eq!(after["approvals"], json!(["storage"]), "{after}");
    let (code, answer) = e.act(&e.ana, "abort", "not tonight").await;
    assert_eq!(code, 200, "{answer}");
    e.wait_phase("rolled_back_frozen").await;
    wait_for(
        "the page to offer unfreeze",
        Duration::from_secs(30),
        || async {
            let p = page(&e, &e.ana).await;
            (p.contains("<td class=phase>rolled_back_frozen</td>")
                && p.contains("id=\"unfreeze-tiny\""))
            .then_some(())
        },
    )
    .await
    .unwrap();
    let (code, answer) = e.act(&e.ana, "unfreeze", "rolled back, ingest on").await;
    assert_eq!(code, 200, "{answer}");
    // Closed: how it ended, and a start again.
    let ended = wait_for(
        "the page to show the end",
        Duration::from_secs(60),
        || async {
            let p = page(&e, &e.ana).await;
            (!p.contains("data-backfill=")).then_some(p)
        },
    )
    .await
    .unwrap();
    let outcome = e.status().await.outcome;
    assert!(!outcome.is_empty());
    assert!(
        ended.contains(&format!("<td class=phase>{outcome} <span class=muted>")),
        "{outcome}: {ended}"
    );
    assert!(ended.contains("id=\"start-tiny\""), "{ended}");
}

#[tokio::test]
async fn a_second_api_replica_serves_the_same_session_when_the_first_is_killed() {
    let mut e = env("api-replicas", "", "").await;
    let second = ApiServer::start(&e.config, &e.server.address).await;
    let cookie = format!("steward_token={}", e.ana.token);
    let page = |api: &ApiServer| {
        let cookie = cookie.clone();
        let base = api.base.clone();
        async move {
            let resp = reqwest::Client::new()
                .get(format!("{base}/"))
                .header("cookie", cookie)
                .send()
                .await
                .expect("the page answers");
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };
    let (code, first_page) = page(&e.api).await;
    assert_eq!(code, 200, "{first_page}");
    assert!(
        first_page.contains("ana"),
        "signed in on the first: {first_page}"
    );

    e.api.process.kill9();
    let (code, page_after) = page(&second).await;
    assert_eq!(code, 200, "{page_after}");
    assert!(page_after.contains("ana"), "the same session on the second");
    let (code, me) = second.get("/v1/whoami", &e.ana.token).await;
    assert_eq!((code, me["name"].as_str()), (200, Some("ana")), "{me}");
    // An action through the second is signed with the deployment's key,
    // as the first would have: the run verifies it.
    let (code, started) = second
        .post(
            "/v1/backfills/tiny/start",
            &e.ana.token,
            json!({ "reason": "after the first replica died", "freeze_at": "now" }),
        )
        .await;
    assert_eq!(code, 200, "{started}");
    let start = wait_for("the start recorded", Duration::from_secs(30), || async {
        e.status()
            .await
            .operator_actions
            .into_iter()
            .find(|a| a.action == "start")
    })
    .await
    .unwrap();
    assert!(start.verified && start.operator == "ana", "{start:?}");
}

#[tokio::test]
async fn a_critical_alert_waits_in_the_inbox_until_an_operator_acknowledges_it_with_a_reason() {
    let e = env("api-ack", "", "").await;
    let t = &e.ana.token;
    // A drill's critical alert, raised by the sink every worker raises
    // through, into the folder the API reads.
    let loaded = steward_worker::config::load(&e.config).unwrap();
    let id = "run-7-restore-drill";
    steward_worker::serve::alert_sink(&loaded)
        .raise(&steward_proto::v1::Alert {
            id: id.into(),
            severity: "critical".into(),
            kind: "restore.failed".into(),
            subject: "/backups/state-1.age".into(),
            message: "restore drill mismatch: table tasks differs".into(),
            at: "2026-12-07T03:00:00Z".into(),
            detail_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (code, inbox) = e.api.get("/v1/inbox", t).await;
    assert_eq!(code, 200, "{inbox}");
    assert_eq!(inbox["unacknowledged_critical"][0]["id"], id, "{inbox}");
    let shown = page(&e, &e.ana).await;
    assert!(
        shown.contains("Critical, not acknowledged") && shown.contains(&format!("id=\"ack-{id}\"")),
        "{shown}"
    );

    let path = format!("/v1/alerts/{id}/ack");
    let (code, refused) = e.api.post(&path, t, json!({})).await;
    assert_eq!(code, 400, "a reason is required: {refused}");
    let (code, ack) = e
        .api
        .post(
            &path,
            t,
            json!({ "reason": "the restore target was being rebuilt" }),
        )
        .await;
    assert_eq!(code, 200, "{ack}");
    assert_eq!(ack["by"], "ana", "{ack}");
    let (_, inbox) = e.api.get("/v1/inbox", t).await;
    assert_eq!(inbox["unacknowledged_critical"], json!([]), "{inbox}");
    let (_, alerts) = e.api.get("/v1/alerts", t).await;
    let shown = &alerts[0]["acknowledged"];
    assert_eq!(
        (shown["by"].as_str(), shown["reason"].as_str()),
        (Some("ana"), Some("the restore target was being rebuilt")),
        "{alerts}"
    );
    assert!(
        shown["at"].as_str().is_some_and(|a| a.ends_with('Z')),
        "{alerts}"
    );
    // Acknowledged once: a second acknowledgement keeps the first.
    let again = e.ok(&["alerts", "ack", id, "--reason", "me too", "--by", "bob"]);
    assert_eq!(again["by"], "ana", "{again}");
    let (code, _, err) = e.cli(&[
        "alerts",
        "ack",
        "no-such-alert",
        "--reason",
        "x",
        "--by",
        "bob",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no alert `no-such-alert`"), "{err}");

    // The page's button: the signed-in operator's form, with its token.
    let second = "run-8-restore-drill";
    steward_worker::serve::alert_sink(&loaded)
        .raise(&steward_proto::v1::Alert {
            id: second.into(),
            severity: "critical".into(),
            kind: "restore.failed".into(),
            subject: "/backups/state-2.age".into(),
            message: "restore drill failed: the off-node copy is missing".into(),
            at: "2026-12-08T03:00:00Z".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let shown = page(&e, &e.ana).await;
    let csrf = shown
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's form token")
        .to_string();
    let (code, answer) = e
        .api
        .call_with(
            "POST",
            &format!("/ui/alerts/{second}/ack"),
            &[
                ("cookie", &format!("steward_token={}", e.ana.token)),
                ("origin", &e.api.base),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            format!("csrf={csrf}&reason=copied+again+by+hand"),
        )
        .await;
    assert_eq!(code, 303, "{answer}");
    let (_, alerts) = e.api.get("/v1/alerts", t).await;
    let acked = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == second)
        .unwrap();
    assert_eq!(acked["acknowledged"]["by"], "ana", "{acked}");
    assert_eq!(
        acked["acknowledged"]["reason"], "copied again by hand",
        "{acked}"
    );
}
