//! Activity options shared by the workflows: one retry shape (1 s doubling
//! to 10 s), with or without a heartbeat timeout, and the summary the
//! Temporal UI shows for each activity.

use std::time::Duration;

use temporalio_common::RetryPolicy;
use temporalio_sdk::ActivityOptions;

/// A short activity: `start_to_close` seconds, `attempts` tries.
pub fn quick(start_to_close: u64, attempts: u32) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(start_to_close))
        .retry_policy(policy(attempts))
        .build()
}

/// A long activity that heartbeats: a dead worker is noticed within 10 s
/// instead of the whole `start_to_close`.
pub fn heartbeating(start_to_close: u64, attempts: u32) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(start_to_close))
        .heartbeat_timeout(Duration::from_secs(10))
        .retry_policy(policy(attempts))
        .build()
}

/// `options` with the one-line summary the Temporal UI shows for the
/// activity.
pub fn summarized(mut options: ActivityOptions, summary: impl Into<String>) -> ActivityOptions {
    options.summary = Some(summary.into());
    options
}

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .maximum_interval(Duration::from_secs(10))
        .maximum_attempts(attempts)
        .build()
}
