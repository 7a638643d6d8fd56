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
    tokio::select! {
        outcome = beating(ctx, Duration::from_secs(2), work) => outcome,
        _ = ctx.cancelled() => Err(ActivityError::cancelled()),
    }
}

/// Runs `work`, heartbeating every `every`, to its end: `work` itself
/// reads [`ActivityContext::is_cancelled`] and decides what a cancellation
/// means (the worker learns of one from a heartbeat's reply).
pub async fn beating<T>(
    ctx: &ActivityContext,
    every: Duration,
    work: impl Future<Output = T>,
) -> T {
    let beat = async {
        loop {
            tokio::time::sleep(every).await;
            let _ = ctx.record_heartbeat(()).await;
        }
    };
    tokio::select! {
        outcome = work => outcome,
        _ = beat => unreachable!("the heartbeat loop never ends"),
    }
}
