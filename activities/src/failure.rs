//! Activity errors as Temporal application failures. A permanent one (bad
//! input, a constraint violated, a lock lost) is not retried, since no
//! retry can change it; the rest are retried by the activity's retry
//! policy (`workflows/src/options.rs`).

use temporalio_common::error::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;

/// An error or a message.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A failure the activity's retry policy retries.
pub(crate) fn retryable(e: impl Into<Cause>) -> ActivityError {
    ActivityError::application(ApplicationFailure::new(e))
}

/// A failure that is not retried.
pub(crate) fn permanent(e: impl Into<Cause>) -> ActivityError {
    ActivityError::application(ApplicationFailure::non_retryable(e))
}
