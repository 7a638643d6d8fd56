//! What an operator is told when an HTTP call (health check, action,
//! webhook) fails: the cause, never the URL's secrets (the caller names the
//! URL it may show).

use std::error::Error as _;
use std::time::Duration;

/// The cause of a failed request, without its URL: "no answer within 2s",
/// "could not connect: Connection refused (os error 111)", ...
pub fn cause(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}s", timeout.as_secs_f64());
    }
    // The innermost cause names the problem; reqwest's own text does not.
    let mut source = e.source();
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    match last {
        Some(root) => format!("{what}: {root}"),
        None => what.to_string(),
    }
}
