//! Heartbeating around long activity work, so a worker that dies is noticed
//! within the heartbeat timeout instead of the whole start-to-close timeout,
//! and a cancelled activity stops.

use std::future::Future;
use std::time::Duration;

use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Runs `work`, heartbeating every two seconds; ends early with a
/// cancellation when the activity is cancelled.
pub async fn with_heartbeat<T>(
    ctx: &ActivityContext,
    work: impl Future<Output = Result<T, ActivityError>>,
) -> Result<T, ActivityError> {
    let beat = async {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = ctx.record_heartbeat(()).await;
        }
    };
    tokio::select! {
        outcome = work => outcome,
        _ = beat => unreachable!("the heartbeat loop never ends"),
        _ = ctx.cancelled() => Err(ActivityError::cancelled()),
    }
}
