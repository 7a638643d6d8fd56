//! The restored copy, served: steward's own API started read-only against
//! it (`steward api read-only`: no Temporal, no config, writes refused),
//! asked for `/readyz` and `/v1/summary` on a loopback port, and its
//! summary compared with the copy's own. A backup that restores but that
//! steward cannot serve from is not a backup an operator can fall back on.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use steward_proto::v1::HealthCheck;
use tokio::io::AsyncBufReadExt as _;

use crate::store::Store;
use crate::store::summary::StoreSummary;

/// The environment variable that carries the read-only API's token.
pub const TOKEN_ENV: &str = "STEWARD_READ_ONLY_TOKEN";

/// The environment variable that carries the store's URL (never argv).
pub const DATABASE_URL_ENV: &str = "STEWARD_READ_ONLY_DATABASE_URL";

/// What `steward api read-only` prints on stderr once it listens, before
/// its URL.
pub const LISTENING: &str = "steward api (read-only) at ";

/// The check's name in the drill's health list.
pub const CHECK: &str = "served";

/// How long the API may take to start and answer.
const WITHIN: Duration = Duration::from_secs(30);

/// Starts `program api read-only` on the store at `url`, asks it, stops
/// it: a passed check naming what it served, or what went wrong.
pub async fn check(program: &Path, url: &str) -> HealthCheck {
    let (ok, detail) = match tokio::time::timeout(WITHIN, ask(program, url)).await {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(why)) => (false, why),
        Err(_) => (
            false,
            format!(
                "steward's read-only API did not answer within {} s",
                WITHIN.as_secs()
            ),
        ),
    };
    HealthCheck {
        name: CHECK.into(),
        ok,
        detail,
    }
}

async fn ask(program: &Path, url: &str) -> Result<String, String> {
    let expected = expected(url).await?;
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut cmd = tokio::process::Command::new(program);
    // A worker killed mid-drill takes the API with it.
    crate::command::dies_with_parent(&mut cmd);
    let mut child = cmd
        .args(["api", "read-only"])
        .env(DATABASE_URL_ENV, url)
        .env(TOKEN_ENV, &token)
        .env_remove("STEWARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {} api read-only: {e}", program.display()))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut said = Vec::new();
    let base = loop {
        match lines.next_line().await {
            Ok(Some(line)) => match line.strip_prefix(LISTENING) {
                Some(url) => break url.trim().to_string(),
                None => said.push(line),
            },
            _ => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "steward's read-only API did not start ({status}): {}",
                    said.join(" / ")
                ));
            }
        }
    };
    let answer = asked(&base, &token, &expected).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    answer
}

/// The copy's own summary, read directly.
async fn expected(url: &str) -> Result<StoreSummary, String> {
    let store = Store::open_read_only(url)
        .await
        .map_err(|e| format!("the restored copy does not open read-only: {e}"))?;
    let summary = store
        .summary()
        .await
        .map_err(|e| format!("the restored copy's summary cannot be read: {e}"));
    store.pool().close().await;
    summary
}

async fn asked(base: &str, token: &str, expected: &StoreSummary) -> Result<String, String> {
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
    };
    let ready = get("readyz")
        .await
        .map_err(|e| format!("GET /readyz: {e}"))?;
    if !ready.status().is_success() {
        let status = ready.status();
        let body = ready.text().await.unwrap_or_default();
        return Err(format!("GET /readyz answered {status}: {body}"));
    }
    let answer = get("v1/summary")
        .await
        .map_err(|e| format!("GET /v1/summary: {e}"))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("GET /v1/summary answered {status}: {body}"));
    }
    let served: StoreSummary = serde_json::from_str(&body)
        .map_err(|e| format!("GET /v1/summary answered what is not a summary ({e}): {body}"))?;
    if &served != expected {
        return Err(format!(
            "GET /v1/summary served {} but the copy holds {}",
            serde_json::to_string(&served).unwrap_or_default(),
            serde_json::to_string(expected).unwrap_or_default()
        ));
    }
    let last: Vec<String> = served
        .last_sweep
        .iter()
        .take(5)
        .map(|(source, s)| format!("{source} at {}", s.at))
        .collect();
    Ok(format!(
        "steward's read-only API served /readyz and /v1/summary from the copy: {} repos, \
         {} workstreams, {} tasks, {} open findings; last sweep: {}",
        served.repos,
        served.workstreams,
        served.tasks,
        served.open_findings,
        if last.is_empty() {
            "none".to_string()
        } else {
            last.join(", ")
        }
    ))
}
