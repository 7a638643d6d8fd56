//! The custom search attributes steward's operator-driven workflows (the
//! backfill rollout, the warm upgrade) keep up to date, so the Temporal UI
//! and `temporal workflow list -q` can find a run by phase, by what it is
//! about, and whether it waits for an operator (`steward inbox`).
//!
//! Upserting is a command in the history, so it came in behind the
//! [`SEARCH_ATTRIBUTES_PATCH`]: histories recorded before replay without it.

use steward_proto::names;
use temporalio_common::search_attributes::{SearchAttributeKey, SearchAttributeUpdate};

/// Patch that made the backfill and the upgrade set their search
/// attributes.
pub const SEARCH_ATTRIBUTES_PATCH: &str = "steward-search-attributes";

/// `StewardPhase`: the run's phase or outcome, as its status shows it.
pub const PHASE: SearchAttributeKey<String> = SearchAttributeKey::keyword(names::SA_PHASE);
/// `StewardSubject`: the backfill or app the run is about.
pub const SUBJECT: SearchAttributeKey<String> = SearchAttributeKey::keyword(names::SA_SUBJECT);
/// `StewardWaiting`: whether the run waits for an operator.
pub const WAITING: SearchAttributeKey<bool> = SearchAttributeKey::bool(names::SA_WAITING);
/// `StewardHostWait`: the hosts whose workers the run's pinned steps wait
/// for (`crate::hosts`).
pub const HOST_WAIT: SearchAttributeKey<Vec<String>> =
    SearchAttributeKey::keyword_list(names::SA_HOST_WAIT);

/// The updates that say what the run is about, where it is, and whether
/// it waits for an operator.
pub fn stage(subject: &str, phase: &str, waiting: bool) -> [SearchAttributeUpdate; 3] {
    [
        SUBJECT.value_set(subject.to_string()),
        PHASE.value_set(phase.to_string()),
        WAITING.value_set(waiting),
    ]
}
