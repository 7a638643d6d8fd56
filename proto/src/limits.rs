//! Bounds on what one payload may carry, so that no input, however large,
//! can push a payload past the server's blob limit (2 MiB on a default
//! server, with warnings from 512 KiB) and leave a run stuck.
//!
//! What is cut is counted, never dropped silently: `findings_omitted` on
//! the repo outcome and on the sweep result.

/// Findings one repo's activity returns; the rest are counted.
pub const FINDINGS_PER_REPO: usize = 100;

/// Findings one sweep result lists; the rest are counted.
pub const FINDINGS_PER_SWEEP: usize = 1000;

/// Characters in an operator's name or reason (signals, updates, CLI).
pub const OPERATOR_TEXT_CHARS: usize = 2000;

/// Characters of one finding's message.
pub const FINDING_MESSAGE_CHARS: usize = 500;

/// Batches one batch activity may apply: its result lists the skipped
/// ones, each error cut at [`FINDING_MESSAGE_CHARS`].
pub const BATCHES_PER_ACTIVITY: u32 = 1000;

/// `None` when `text` is within [`OPERATOR_TEXT_CHARS`], else the refusal
/// naming `what` and the limit.
pub fn operator_text_too_long(what: &str, text: &str) -> Option<String> {
    let n = text.chars().count();
    (n > OPERATOR_TEXT_CHARS).then(|| {
        format!("the {what} is {n} characters long; at most {OPERATOR_TEXT_CHARS} are accepted")
    })
}
