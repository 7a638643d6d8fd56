//! The health gate: `successes` consecutive good checks within the
//! timeout, after a grace period in which failures do not count; a check
//! that passes and then fails `max_flaps` times is a restart loop. A
//! failed gate says which check failed, its answer, and when.

use std::time::Duration;

use super::Health;
use super::run_command;

/// Why the gate judged the candidate unhealthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    /// The check: `GET <url>` or the command.
    pub check: String,
    /// Its last answer (status and the start of the body, or the
    /// command's failure).
    pub answer: String,
    /// When that answer came (RFC 3339).
    pub at: String,
    /// The verdict in words.
    pub message: String,
}

/// What the check is, in words.
pub fn describe(h: &Health) -> String {
    match (&h.url, &h.command) {
        (Some(url), _) => format!("GET {url}"),
        (None, Some(argv)) => argv.join(" "),
        (None, None) => "no check".into(),
    }
}

/// One check: Ok, or its answer.
async fn check_once(h: &Health) -> Result<(), String> {
    if let Some(url) = &h.url {
        let timeout = Duration::from_secs(h.interval_seconds.max(1) * 2);
        let resp = reqwest::Client::new()
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| crate::http::cause(&e, timeout))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let excerpt: String = body.chars().take(200).collect();
        if status != h.expect_status {
            return Err(format!(
                "answered {status} (expected {}): {excerpt}",
                h.expect_status
            ));
        }
        if let Some(needle) = &h.body_contains
            && !body.contains(needle.as_str())
        {
            return Err(format!("answered {status} without `{needle}`: {excerpt}"));
        }
        return Ok(());
    }
    let argv = h.command.clone().unwrap_or_default();
    run_command(&argv, Duration::from_secs(h.timeout_seconds.max(1))).await
}

/// Runs the gate on `h`.
pub async fn gate(h: &Health) -> Result<(), Unhealthy> {
    let started = tokio::time::Instant::now();
    let grace = Duration::from_secs(h.grace_seconds);
    let deadline = started + grace + Duration::from_secs(h.timeout_seconds);
    let check = describe(h);
    let mut streak = 0;
    let mut flaps = 0;
    let mut passed_once = false;
    let mut last = ("no check ran".to_string(), crate::time::now_millis_text());
    loop {
        let in_grace = started.elapsed() < grace;
        match check_once(h).await {
            Ok(()) => {
                streak += 1;
                passed_once = true;
                if streak >= h.successes {
                    return Ok(());
                }
            }
            Err(answer) => {
                streak = 0;
                last = (answer, crate::time::now_millis_text());
                if passed_once && !in_grace {
                    flaps += 1;
                    if flaps >= h.max_flaps {
                        return Err(Unhealthy {
                            message: format!(
                                "restart loop: {check} passed and then failed {flaps} times within {}s; last: {}",
                                started.elapsed().as_secs(),
                                last.0
                            ),
                            check,
                            answer: last.0,
                            at: last.1,
                        });
                    }
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let waited = h.grace_seconds + h.timeout_seconds;
            return Err(Unhealthy {
                message: format!("unhealthy after {waited}s: {check}: {}", last.0),
                check,
                answer: last.0,
                at: last.1,
            });
        }
        tokio::time::sleep(Duration::from_secs(h.interval_seconds.max(1))).await;
    }
}
