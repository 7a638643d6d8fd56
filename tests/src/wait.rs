//! Waiting on a condition with a deadline, never a bare sleep.

use std::time::{Duration, Instant};

use anyhow::bail;

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The newest progress event of `event_type` in `store`, waiting up to
/// `within` for the first one to be recorded.
pub async fn newest_progress(
    store: &steward_activities::Store,
    event_type: &str,
    within: Duration,
) -> steward_proto::v1::ProgressEvent {
    wait_for(
        &format!("a `{event_type}` progress event"),
        within,
        || async {
            store
                .progress(Some(event_type), 0, 1)
                .await
                .ok()?
                .into_iter()
                .next()
        },
    )
    .await
    .unwrap()
}
