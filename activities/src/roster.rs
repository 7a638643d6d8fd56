//! Who may act on a run, as the worker's config declares it: the
//! operators with their groups, and the API's public key that verifies
//! their signed actions. Plans hand both to each run when it starts, so
//! its validators judge approvals by what was declared then.

use steward_proto::v1::OperatorGroups;

/// The declared operators and the key that verifies their actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// Each operator with their groups (empty: a single-operator setup).
    pub operators: Vec<OperatorGroups>,
    /// The API's Ed25519 public key, hex; empty when no API is set up.
    pub verify_key: String,
}
