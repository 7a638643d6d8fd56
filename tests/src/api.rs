//! The HTTP API as tests use it: operator tokens made by `steward api
//! token`, a `steward api` process on a free port, and JSON calls to it.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{Steward, free_port, run_steward, wait_for};

/// An operator's token and the `[[operators]]` entry that declares it.
pub struct Token {
    /// The token the operator sends.
    pub token: String,
    /// Its `[[operators]]` TOML entry.
    pub entry: String,
    /// The credential's id.
    pub id: String,
}

/// Makes a token with `steward api token <name> --groups <groups>`,
/// `extra` added to its arguments (`--expires ...`).
pub fn token(name: &str, groups: &[&str], extra: &[&str]) -> Token {
    let groups = groups.join(",");
    let mut args = vec!["api", "token", name];
    if !groups.is_empty() {
        args.extend(["--groups", groups.as_str()]);
    }
    args.extend_from_slice(extra);
    let (code, out, err) = run_steward(Path::new("unused.toml"), "127.0.0.1:1", &args);
    assert_eq!(code, 0, "steward api token: {err}");
    let v: Value = serde_json::from_str(&out).expect("steward api token prints JSON");
    Token {
        token: v["token"].as_str().unwrap().into(),
        entry: v["config"].as_str().unwrap().into(),
        id: v["token_id"].as_str().unwrap().into(),
    }
}

/// The `[api]` table of a key pair made by `steward api keygen` in `dir`.
pub fn signing_key(dir: &Path) -> String {
    let file = dir.join("api-signing.key");
    let (code, out, err) = run_steward(
        Path::new("unused.toml"),
        "127.0.0.1:1",
        &["api", "keygen", "--out", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "steward api keygen: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["config"].as_str().unwrap().into()
}

/// A `steward api` process.
pub struct ApiServer {
    /// The process (killed when dropped).
    pub process: Steward,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    http: reqwest::Client,
}

impl ApiServer {
    /// Starts `steward api` on `config` against `address`, and waits until
    /// it answers.
    pub async fn start(config: &Path, address: &str) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let process = Steward::start(config, address, &["api", "--listen", &listen]);
        let base = format!("http://{listen}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let server = Self {
            process,
            base,
            http,
        };
        let log = || server.process.log();
        wait_for("the API to answer", Duration::from_secs(30), || async {
            server
                .http
                .get(format!("{}/openapi.json", server.base))
                .send()
                .await
                .ok()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", log()));
        server
    }

    /// `method path` with `token` as bearer and `body` as JSON: (status,
    /// the JSON answer, or the text as a JSON string).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the API answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `method path` with exactly `headers` and `body`, redirects not
    /// followed (a form's answer is a redirect): (status, the body, and
    /// the `location` it points to appended after a newline).
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> (u16, String) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().await.expect("the API answers");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        (status, format!("{text}\n{location}"))
    }

    /// `GET path` without a credential: (status, the answer's headers).
    pub async fn headers(&self, path: &str) -> (u16, reqwest::header::HeaderMap) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the API answers");
        (resp.status().as_u16(), resp.headers().clone())
    }

    /// `GET path` as `token`.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, Some(token), None).await
    }

    /// `POST path` as `token` with `body`.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// The value of Prometheus sample `name` in `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.call("GET", "/metrics", None, None).await;
        text.as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {name} in /metrics: {text}"))
    }
}
