//! The operator page: `GET /`, server-rendered from the same operations as
//! the JSON routes, with plain HTML forms for the actions (each asks for a
//! reason) and one small script (`/ui/page.js`, the only script the page's
//! policy allows) that keeps a running backfill's progress bar live from
//! `GET /v1/backfills/{name}`. Signing in stores the token in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` behind TLS); every form
//! carries the session's form token and comes from the page's own origin
//! (`guard`), so no other site, and no other port of this host, can post
//! one as the operator.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use steward_activities::backfill::BackfillSpec;
use steward_proto::names;
use steward_proto::vocab::{BackfillPhase, OperatorVerb};

use crate::ops::Ops;
use crate::ops::backfill::Rollout;
use crate::ops::findings::Filter;

use super::Api;
use super::auth::{self, COOKIE, Operator};
use super::error::{ApiError, ApiResult, Params, Segments};
use super::guard;
use crate::ops::backfill::{Action, Start};

/// A form body, refused as a JSON [`ApiError`].
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct FormBody<T>(pub T);

impl From<axum::extract::rejection::FormRejection> for ApiError {
    fn from(r: axum::extract::rejection::FormRejection) -> Self {
        Self::bad_request(format!("bad form: {}", r.body_text()))
    }
}

/// `?notice=` or `?error=`: the outcome of the last action, shown once.
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    notice: Option<String>,
    error: Option<String>,
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
}

/// An action form: the session's form token, the reason, and what the
/// action takes.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    reason: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    batch_size: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em}\
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.3em;text-align:left;vertical-align:top}\
form.act{display:inline-block;margin:.2em .4em .2em 0}input[type=text]{width:14em}progress{width:20em}\
.notice{background:#e6f4ea;padding:.5em}.error{background:#fde7e9;padding:.5em}.muted{color:#666}";

const SCRIPT: &str = r#"
for (const row of document.querySelectorAll('[data-backfill]')) {
  const name = row.dataset.backfill;
  const bar = row.querySelector('progress');
  const text = row.querySelector('.rows');
  const phase = row.querySelector('.phase');
  const tick = async () => {
    try {
      const r = await fetch('/v1/backfills/' + encodeURIComponent(name), {credentials: 'same-origin'});
      if (!r.ok) return;
      const s = await r.json();
      if (s.expected > 0) { bar.max = s.expected; bar.value = Math.min(s.rows, s.expected); }
      text.textContent = s.rows + ' of ' + (s.expected || '?') + ' rows, ' + s.batches + ' batches';
      phase.textContent = s.outcome || s.phase;
      if (s.outcome) return;
    } catch (e) { /* the next tick tries again */ }
    setTimeout(tick, 2000);
  };
  tick();
}
"#;

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{}</title>\
         <meta name=viewport content=\"width=device-width\"><link rel=stylesheet href=/ui/page.css></head>\
         <body>{body}</body></html>",
        esc(title)
    )
}

/// `GET /ui/page.js`: the page's one script.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// `GET /ui/page.css`: the page's style.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

fn sign_in_page(problem: Option<&str>) -> String {
    sign_in_with(problem, None)
}

/// The sign-in page of `api`: with a link to the identity provider when
/// `[api.oidc]` names one.
fn sign_in_of(api: &Api, problem: Option<&str>) -> String {
    sign_in_with(
        problem,
        api.oidc.as_ref().map(|v| v.config().issuer.as_str()),
    )
}

fn sign_in_with(problem: Option<&str>, idp: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!("<p class=error id=problem>{}</p>", esc(p)))
        .unwrap_or_default();
    let idp = idp
        .map(|issuer| {
            format!(
                "<p><a class=button id=oidc href=/ui/oidc/signin>Sign in with {}</a></p>",
                esc(issuer)
            )
        })
        .unwrap_or_default();
    document(
        "steward: sign in",
        &format!(
            "<h1>steward</h1>{problem}{idp}<form method=post action=/ui/signin>\
             <label>Operator token <input type=password name=token id=token autocomplete=off required></label> \
             <button type=submit id=signin>Sign in</button></form>\
             <p class=muted>Your token is the one <code>steward api token</code> printed for you; \
             the config holds only its SHA-256.</p>"
        ),
    )
}

/// The operator whose cookie the request carries.
async fn signed_in(api: &Api, headers: &HeaderMap) -> Result<Operator, ApiError> {
    api.authenticate(headers, false).await
}

/// The operator a form was posted by: signed in, and the form carries
/// their session's form token.
async fn poster(api: &Api, headers: &HeaderMap, csrf: &str) -> Result<Operator, ApiError> {
    let op = api.authenticate(headers, true).await?;
    let token = auth::token_of(headers).unwrap_or_default();
    if guard::csrf_ok(&token, csrf) {
        Ok(op)
    } else {
        Err(ApiError::forbidden(
            "this form does not carry your session's form token: reload the page and try again",
        ))
    }
}

/// `GET /`: the sign-in form, or the operator's page.
pub async fn page(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Params(flash): Params<Flash>,
) -> Response {
    let op = match signed_in(&api, &headers).await {
        Ok(op) => op,
        Err(e) if auth::token_of(&headers).is_none() => {
            drop(e);
            return Html(sign_in_of(&api, None)).into_response();
        }
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                Html(sign_in_of(&api, Some(&e.message))),
            )
                .into_response();
        }
    };
    let csrf = guard::csrf_token(&auth::token_of(&headers).unwrap_or_default());
    let mut body = format!(
        "<h1>steward</h1><p>Signed in as <b id=operator>{}</b> ({}), credential <code>{}</code>. \
         <form class=act method=post action=/ui/signout><input type=hidden name=csrf value=\"{csrf}\">\
         <button>Sign out</button></form></p>",
        esc(&op.name),
        esc(&op.groups.join(", ")),
        esc(&op.credential_id)
    );
    if let Some(n) = &flash.notice {
        let _ = write!(body, "<p class=notice id=notice>{}</p>", esc(n));
    }
    if let Some(e) = &flash.error {
        let _ = write!(body, "<p class=error id=error>{}</p>", esc(e));
    }
    let ops = api.ops();
    body.push_str(&at_a_glance(&ops).await);
    body.push_str(&waiting(&api, &csrf).await);
    body.push_str(&backfills(&api, &ops, &op, &csrf).await);
    body.push_str(&schedules(&api, &ops, &csrf).await);
    body.push_str(&sweeps(&ops).await);
    body.push_str(&alerts(&ops, &csrf));
    body.push_str("<script src=/ui/page.js></script>");
    Html(document("steward", &body)).into_response()
}

fn reason_input() -> &'static str {
    "<input type=text name=reason placeholder=reason required>"
}

fn action_form(action: &str, id: &str, label: &str, extra: &str, csrf: &str) -> String {
    format!(
        "<form class=act method=post action=\"{}\"><input type=hidden name=csrf value=\"{}\">{extra}{} \
         <button type=submit id=\"{}\">{}</button></form>",
        esc(action),
        esc(csrf),
        reason_input(),
        esc(id),
        esc(label)
    )
}

async fn waiting(api: &Api, csrf: &str) -> String {
    let mut out = String::from("<h2>Waiting for you</h2>");
    let inbox = match api.inbox().await {
        Ok(inbox) => inbox,
        Err(e) => return out + &format!("<p class=error>{}</p>", esc(&e.to_string())),
    };
    if inbox.runs.is_empty() && inbox.paused_schedules.is_empty() {
        out.push_str("<p class=muted id=nothing-waiting>Nothing waits for an operator.</p>");
    }
    if !inbox.runs.is_empty() {
        out.push_str("<table><tr><th>Run</th><th>Where</th><th>Since</th><th>Action</th></tr>");
        for run in &inbox.runs {
            let subject = run.subject.clone().unwrap_or_default();
            let actions = if !run.waiting_for_hosts.is_empty() {
                format!(
                    "start a worker with <code>[worker] host</code> = {}",
                    esc(&run.waiting_for_hosts.join(" or "))
                )
            } else if run.workflow_type == names::WARM_UPGRADE {
                held_upgrade(api, &run.workflow_id, &subject, csrf).await
            } else {
                "see Backfills below".to_string()
            };
            let _ = write!(
                out,
                "<tr><td>{} <span class=muted>{}</span></td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
                esc(&subject),
                esc(&run.workflow_id),
                esc(run.phase.as_deref().unwrap_or("")),
                esc(run.started.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table>");
    }
    out
}

/// What a held upgrade waits for, and the form that approves it: the one
/// run the page asks itself (a hold is rare and needs its target version).
async fn held_upgrade(api: &Api, workflow_id: &str, app: &str, csrf: &str) -> String {
    match api.upgrade_run_status(app, workflow_id).await {
        Ok(s) if !s.hold.is_empty() => format!(
            "held ({}) from {} to {}: {}",
            esc(&s.hold),
            esc(&s.last_good),
            esc(&s.target),
            action_form(
                &format!("/ui/upgrades/{app}/approve"),
                &format!("approve-{app}"),
                &format!("Approve {}", s.target),
                &format!(
                    "<input type=hidden name=version value=\"{}\">",
                    esc(&s.target)
                ),
                csrf
            )
        ),
        Ok(s) => esc(&s.phase),
        Err(e) => format!("<span class=error>{}</span>", esc(&e.to_string())),
    }
}

/// Every configured backfill with its newest rollout, from one visibility
/// query: a running one with its phase, its actions and a progress bar the
/// script fills from its status; else how the last one ended and a start.
async fn backfills(api: &Api, ops: &Ops, op: &Operator, csrf: &str) -> String {
    let mut out = String::from("<h2>Backfills</h2>");
    let specs = &ops.loaded().config.backfills;
    if specs.is_empty() {
        return out + "<p class=muted>None configured.</p>";
    }
    let rollouts = match api.rollouts().await {
        Ok(rollouts) => rollouts,
        Err(e) => return out + &format!("<p class=error>{}</p>", esc(&e.to_string())),
    };
    out.push_str(
        "<table><tr><th>Backfill</th><th>Phase</th><th>Progress</th><th>Actions</th></tr>",
    );
    for spec in specs {
        let name = esc(&spec.name);
        match rollouts.iter().find(|r| r.name == spec.name) {
            Some(r) if r.running => {
                let _ = write!(
                    out,
                    "<tr data-backfill=\"{name}\"><td>{name}</td><td class=phase>{phase}</td>\
                     <td><progress></progress> <span class=rows></span></td><td>{actions}</td></tr>",
                    phase = esc(if r.phase.is_empty() {
                        "starting"
                    } else {
                        &r.phase
                    }),
                    actions = backfill_actions(spec, r, op, csrf),
                );
            }
            last => {
                let ended = match last {
                    Some(r) => format!(
                        "{} <span class=muted>{}</span>",
                        esc(&r.phase),
                        esc(r.closed.as_deref().unwrap_or(""))
                    ),
                    None => "<span class=muted>no rollout</span>".into(),
                };
                let _ = write!(
                    out,
                    "<tr><td>{name}</td><td class=phase>{ended}</td><td></td><td>{}</td></tr>",
                    action_form(
                        &format!("/ui/backfills/{}/start", spec.name),
                        &format!("start-{}", spec.name),
                        "Start (dry run)",
                        "",
                        csrf
                    )
                );
            }
        }
    }
    out + "</table>"
}

/// The forms for the actions running rollout `r`'s phase takes; approve
/// offers the operator's approving groups (the run refuses a group that
/// has approved already, and says so).
fn backfill_actions(spec: &BackfillSpec, r: &Rollout, op: &Operator, csrf: &str) -> String {
    let Ok(phase) = r.phase.parse::<BackfillPhase>() else {
        return String::new();
    };
    let paused = steward_workflows::backfill::paused_by_attributes(phase, r.waiting);
    let mut out = String::new();
    for verb in steward_workflows::backfill::verbs_in(phase, paused) {
        let extra = match verb {
            OperatorVerb::Approve => {
                let options: String = spec
                    .approvals
                    .iter()
                    .filter(|g| op.groups.is_empty() || op.groups.contains(g))
                    .map(|g| format!("<option>{}</option>", esc(g)))
                    .collect();
                if options.is_empty() {
                    continue;
                }
                format!("<select name=group>{options}</select>")
            }
            OperatorVerb::Set => {
                "<input type=number name=batch_size min=1 placeholder=\"batch size\" required>"
                    .into()
            }
            _ => String::new(),
        };
        out.push_str(&action_form(
            &format!("/ui/backfills/{}/{verb}", spec.name),
            &format!("{verb}-{}", spec.name),
            verb.as_str(),
            &extra,
            csrf,
        ));
    }
    out
}

async fn schedules(api: &Api, ops: &Ops, csrf: &str) -> String {
    let mut out = String::from("<h2>Schedules</h2>");
    let wanted = ops.loaded().schedules();
    let rows = api.schedules().await.unwrap_or_default();
    if wanted.is_empty() {
        return out + "<p class=muted>None configured.</p>";
    }
    out.push_str("<table><tr><th>Schedule</th><th>State</th><th>Next</th><th>Action</th></tr>");
    for s in &wanted {
        let id = crate::schedules::schedule_id(s);
        let row = rows.iter().find(|r| r.id == id);
        let paused = row.is_some_and(|r| r.paused);
        let state = match row {
            None => "not synced".to_string(),
            Some(r) if r.paused => format!(
                "paused: {}",
                esc(r.paused_reason.as_deref().unwrap_or("no reason given"))
            ),
            Some(_) => "running".into(),
        };
        let change = if paused { "resume" } else { "pause" };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{state}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            esc(row
                .and_then(|r| r.next_runs.first())
                .map_or("", String::as_str)),
            action_form(
                &format!("/ui/schedules/{}/{change}", s.name),
                &format!("{change}-{}", s.name),
                change,
                "",
                csrf
            )
        );
    }
    out + "</table>"
}

/// The store's summary in one line (what `/v1/summary` serves).
async fn at_a_glance(ops: &Ops) -> String {
    let summary = match ops.store().await {
        Ok(store) => store.summary().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match summary {
        Ok(s) => format!(
            "<p id=summary>{} repos, {} workstreams, {} tasks, {} open findings, \
             {} status changes waiting for writeback</p>",
            s.repos, s.workstreams, s.tasks, s.open_findings, s.pending_changes
        ),
        Err(e) => format!(
            "<p class=error id=summary>The state store did not answer: {}</p>",
            esc(&e)
        ),
    }
}

async fn sweeps(ops: &Ops) -> String {
    let mut out = String::from("<h2>Last sweep per source</h2>");
    let views = ops
        .progress(Some(names::SWEEP_EVENT_TYPE), 200)
        .await
        .unwrap_or_default();
    let mut seen: Vec<&str> = Vec::new();
    out.push_str("<table><tr><th>Source</th><th>When</th><th>Exit</th><th>Open findings</th><th>Run</th></tr>");
    for e in &views {
        if seen.contains(&e.source.as_str()) {
            continue;
        }
        seen.push(&e.source);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=muted>{}</td></tr>",
            esc(&e.source),
            esc(&e.created_at),
            e.detail["exit_code"],
            e.detail["open_findings"].as_array().map_or(0, Vec::len),
            esc(&e.workflow_id)
        );
    }
    out.push_str("</table>");
    if seen.is_empty() {
        out.push_str("<p class=muted>No sweep has run yet.</p>");
    }
    let findings = ops
        .findings(Filter {
            limit: Some(50),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let open: Vec<_> = findings
        .iter()
        .filter(|f| f.resolved_at.is_none())
        .collect();
    if !open.is_empty() {
        out.push_str("<h3>Open findings</h3><table><tr><th>Repo</th><th>Check</th><th>Subject</th><th>Since</th><th>Finding</th></tr>");
        for f in open {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.repo),
                esc(&f.check),
                esc(&f.subject),
                esc(&f.first_seen),
                esc(&f.message)
            );
        }
        out.push_str("</table>");
    }
    out
}

fn alerts(ops: &Ops, csrf: &str) -> String {
    let mut out = String::from("<h2>Alerts</h2>");
    let open = ops.unacknowledged_critical();
    if !open.is_empty() {
        out.push_str("<h3>Critical, not acknowledged</h3><table><tr><th>When</th><th>Subject</th><th>Message</th><th></th></tr>");
        for a in &open {
            let text = |k: &str| esc(a[k].as_str().unwrap_or(""));
            let id = a["id"].as_str().unwrap_or("");
            let _ = write!(
                out,
                "<tr data-alert=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(id),
                text("at"),
                text("subject"),
                text("message"),
                action_form(
                    &format!("/ui/alerts/{id}/ack"),
                    &format!("ack-{id}"),
                    "Acknowledge",
                    "",
                    csrf
                )
            );
        }
        out.push_str("</table>");
    }
    let alerts = ops.alerts(20).unwrap_or_default();
    if alerts.is_empty() {
        return out + "<p class=muted>No alerts.</p>";
    }
    out.push_str("<table><tr><th>When</th><th>Severity</th><th>Subject</th><th>Message</th></tr>");
    for a in alerts.iter().take(20) {
        let text = |k: &str| esc(a[k].as_str().unwrap_or(""));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text("at"),
            text("severity"),
            text("subject"),
            text("message")
        );
    }
    out + "</table>"
}

/// Back to the page, with what happened.
fn back(outcome: ApiResult<String>) -> Response {
    let (key, text) = match outcome {
        Ok(notice) => ("notice", notice),
        Err(e) => ("error", e.message),
    };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(key, &text)
        .finish();
    Redirect::to(&format!("/?{query}")).into_response()
}

/// Whether the request came over TLS (to steward, or to the proxy in
/// front of it): the session cookie is then `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn cookie(value: &str, max_age: Option<u32>, secure: bool) -> HeaderValue {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/{age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("steward_token=; Max-Age=0; Path=/"))
}

/// `POST /ui/signin`: checks the token, keeps it in the cookie.
pub async fn sign_in(
    State(api): State<Arc<Api>>,
    request: HeaderMap,
    FormBody(form): FormBody<SignIn>,
) -> Response {
    let token = form.token.trim().to_string();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(header::AUTHORIZATION, v);
    }
    match api.authenticate(&headers, false).await {
        Ok(_)
            if token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, cookie(&token, None, over_tls(&request)));
            r
        }
        Ok(_) => (
            StatusCode::BAD_REQUEST,
            Html(sign_in_page(Some(
                "this token has characters a token never has",
            ))),
        )
            .into_response(),
        Err(e) => (
            StatusCode::UNAUTHORIZED,
            Html(sign_in_page(Some(&e.message))),
        )
            .into_response(),
    }
}

/// The sign-in link's query.
#[derive(Debug, serde::Deserialize)]
pub struct LocalSignIn {
    secret: String,
}

/// `GET /ui/signin/local?secret=...`: the link `steward dev` prints signs
/// its local operator in, once.
pub async fn sign_in_local(
    State(api): State<Arc<Api>>,
    request: HeaderMap,
    axum::extract::Query(link): axum::extract::Query<LocalSignIn>,
) -> Response {
    let Some(local) = &api.local else {
        return (
            StatusCode::NOT_FOUND,
            Html(sign_in_page(Some(
                "this API has no local session: only `steward dev` makes one, when the config \
                 declares no operators",
            ))),
        )
            .into_response();
    };
    match local.redeem(&link.secret) {
        Some(token) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, cookie(&token, None, over_tls(&request)));
            r
        }
        None => (
            StatusCode::UNAUTHORIZED,
            Html(sign_in_page(Some(
                "this sign-in link was used already, or is not this session's: restart \
                 `steward dev` for a new one",
            ))),
        )
            .into_response(),
    }
}

/// The callback's query: the issuer's answer.
#[derive(Debug, serde::Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The cookie that ties a sign-in to the browser that began it.
const SIGN_IN_COOKIE: &str = "steward_signin";

/// `GET /ui/oidc/signin`: off to the identity provider (authorization
/// code with PKCE, `state`, `nonce`), the state kept in a cookie of this
/// browser.
pub async fn oidc_sign_in(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let Some(idp) = &api.oidc else {
        return (
            StatusCode::NOT_FOUND,
            Html(sign_in_page(Some("no [api.oidc] in the config"))),
        )
            .into_response();
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = if over_tls(&headers) { "https" } else { "http" };
    let callback = format!("{scheme}://{host}/ui/oidc/callback");
    match idp.begin(&callback).await {
        Ok((url, state)) => {
            let mut r = Redirect::to(&url).into_response();
            let secure = if over_tls(&headers) { "; Secure" } else { "" };
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{SIGN_IN_COOKIE}={state}; HttpOnly; SameSite=Lax; Path=/ui/oidc; Max-Age=600{secure}"
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(why) => (StatusCode::BAD_GATEWAY, Html(sign_in_of(&api, Some(&why)))).into_response(),
    }
}

/// `GET /ui/oidc/callback`: the identity provider's answer; a session
/// that ends with the ID token.
pub async fn oidc_callback(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    axum::extract::Query(back): axum::extract::Query<Callback>,
) -> Response {
    let refuse =
        |code: StatusCode, why: &str| (code, Html(sign_in_of(&api, Some(why)))).into_response();
    let Some(idp) = &api.oidc else {
        return refuse(StatusCode::NOT_FOUND, "no [api.oidc] in the config");
    };
    if let Some(e) = &back.error {
        let said = back.error_description.as_deref().unwrap_or(e);
        return refuse(
            StatusCode::UNAUTHORIZED,
            &format!("the identity provider said: {said}"),
        );
    }
    let (Some(code), Some(state)) = (&back.code, &back.state) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the identity provider sent no code",
        );
    };
    let began_here = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim() == format!("{SIGN_IN_COOKIE}={state}"));
    if !began_here {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this sign-in was not begun in this browser: sign in again",
        );
    }
    match idp.finish(code, state).await {
        Ok(signed_in) => {
            let secs = signed_in
                .until
                .duration_since(std::time::SystemTime::now())
                .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
            let session = api.begin_session(signed_in);
            // A page of this site moves on to `/`, so the session's
            // SameSite=Strict cookie goes with it even when the identity
            // provider is another site.
            let mut r = Html(document(
                "steward: signed in",
                "<meta http-equiv=refresh content=\"0;url=/\"><p>Signed in. <a href=/>Continue</a></p>",
            ))
            .into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                cookie(&session, Some(secs), over_tls(&headers)),
            );
            r
        }
        Err(why) => refuse(StatusCode::UNAUTHORIZED, &why),
    }
}

/// `POST /ui/signout`: forgets the cookie.
pub async fn sign_out(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    if let Some(token) = auth::token_of(&headers) {
        api.end_session(&token);
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie("", Some(0), over_tls(&headers)));
    r
}

/// `POST /ui/backfills/{name}/{action}`, `start` included.
pub async fn backfill_action(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Segments((name, action)): Segments<(String, String)>,
    FormBody(form): FormBody<ActionForm>,
) -> Response {
    let op = match poster(&api, &headers, &form.csrf).await {
        Ok(op) => op,
        Err(e) => return back(Err(e)),
    };
    let ops = api.ops();
    if action == OperatorVerb::Start.as_str() {
        let start = Start {
            dry_run: true,
            reason: form.reason,
            ..Default::default()
        };
        let started = ops.start_backfill(&op, &name, start).await;
        return back(
            started
                .map(|s| format!("started {} (dry run)", s.workflow_id))
                .map_err(ApiError::from),
        );
    }
    let verb = match super::routes::backfill_verb(&action) {
        Ok(verb) => verb,
        Err(e) => return back(Err(e)),
    };
    let batch_size = match form.batch_size.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => match n.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return back(Err(ApiError::bad_request(format!(
                    "batch size `{n}` is not a number"
                ))));
            }
        },
    };
    let body = Action {
        reason: form.reason,
        group: form.group,
        batch_size,
        max_lag_seconds: None,
        throttle_max: Default::default(),
    };
    back(
        ops.act_on_backfill(&op, &name, verb, body)
            .await
            .map(|r| format!("{action} {name}: {}", r.message))
            .map_err(ApiError::from),
    )
}

/// `POST /ui/upgrades/{app}/approve`.
pub async fn upgrade_approve(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Segments(app): Segments<String>,
    FormBody(form): FormBody<ActionForm>,
) -> Response {
    let op = match poster(&api, &headers, &form.csrf).await {
        Ok(op) => op,
        Err(e) => return back(Err(e)),
    };
    let version = form.version.unwrap_or_default();
    back(
        api.ops()
            .approve_upgrade(&op, &app, &version, &form.reason)
            .await
            .map(|r| format!("{app}: {}", r.message))
            .map_err(ApiError::from),
    )
}

/// `POST /ui/alerts/{id}/ack`.
pub async fn alert_ack(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Segments(id): Segments<String>,
    FormBody(form): FormBody<ActionForm>,
) -> Response {
    let op = match poster(&api, &headers, &form.csrf).await {
        Ok(op) => op,
        Err(e) => return back(Err(e)),
    };
    back(
        api.ops()
            .acknowledge_alert(&op, &id, &form.reason)
            .map(|_| format!("alert {id} acknowledged"))
            .map_err(ApiError::from),
    )
}

/// `POST /ui/schedules/{name}/{change}`.
pub async fn schedule_change(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Segments((name, change)): Segments<(String, String)>,
    FormBody(form): FormBody<ActionForm>,
) -> Response {
    let op = match poster(&api, &headers, &form.csrf).await {
        Ok(op) => op,
        Err(e) => return back(Err(e)),
    };
    let pause = match super::routes::schedule_change_of(&change) {
        Ok(pause) => pause,
        Err(e) => return back(Err(e)),
    };
    back(
        api.ops()
            .change_schedule(&op, &name, pause, &form.reason)
            .await
            .map(|c| {
                format!(
                    "{} {}",
                    c.schedule_id,
                    if c.paused { "paused" } else { "resumed" }
                )
            })
            .map_err(ApiError::from),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc("<b a=\"x\">'&'</b>"),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }
}
