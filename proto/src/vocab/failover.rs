//! The failover drill's words.

use super::{stage, vocabulary};

vocabulary! {
    /// Where a running failover drill is.
    pub enum FailoverPhase ("failover drill phase") {
        /// Checking the primary, its streaming standbys and their lag.
        Preflight = "preflight",
        /// Writing markers and probing before the trigger.
        Baseline = "baseline",
        /// The trigger ran; writing and probing until writes succeed again.
        Observing = "observing",
        /// Checking every acknowledged marker on the service.
        Verifying = "verifying",
        /// Running the recovery command.
        Recovering = "recovering",
        /// Writing the evidence and the progress event.
        Recording = "recording",
    }
}

vocabulary! {
    /// How a failover drill ended.
    pub enum FailoverOutcome ("failover drill outcome") {
        /// The service failed over within the RTO target and lost no
        /// acknowledged write beyond the RPO target.
        Passed = "passed",
        /// It failed over, and missed the RTO or the RPO target.
        TargetMissed = "target-missed",
        /// The trigger did not interrupt writes, writes never came back, or
        /// the drill could not verify.
        Failed = "failed",
        /// Preflight refused to start (no streaming standby, lag too high,
        /// no primary).
        Refused = "refused",
    }
}

stage! {
    /// A failover drill's stage: a phase while it runs, its outcome once it ended.
    pub enum FailoverStage (FailoverPhase, FailoverOutcome, first Preflight)
}

/// A probe's answers in one line: `ok 12×, then failing 30× (…), then ok 8×`.
pub fn probe_line(spans: &[crate::v1::ProbeSpan]) -> String {
    if spans.is_empty() {
        return "no probe answered".into();
    }
    spans
        .iter()
        .map(|s| {
            if s.ok {
                format!("ok {}×", s.answers)
            } else {
                format!("failing {}× ({})", s.answers, s.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", then ")
}
