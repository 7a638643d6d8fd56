//! What the API signs when it sends an operator's action, and the workflow
//! verifies before it accepts one: the run, the action, the verified
//! operator and their credential, the reason, what the action sets, and
//! when. Each field is length-prefixed, so no reason can be made to read as
//! another field. Both sides build the message here, so they cannot drift.

use crate::v1::{ApproveRequest, BackfillInput, OperatorRequest};

/// An operator action as signed.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    /// The workflow it is sent to (a signature is for that run only).
    pub workflow_id: &'a str,
    /// `start`, `freeze`, `approve`, ...
    pub verb: &'a str,
    /// The operator the credential belongs to.
    pub operator: &'a str,
    /// The credential's id.
    pub credential_id: &'a str,
    /// Why.
    pub reason: &'a str,
    /// What the action carries: the group, the version, the settings.
    pub detail: &'a str,
    /// When the API signed it (RFC 3339).
    pub signed_at: &'a str,
}

impl<'a> Action<'a> {
    /// The action `verb` that `req` carries to `workflow_id`; `detail` is
    /// what the request sets (from this module's `*_detail` functions).
    pub fn of(workflow_id: &'a str, verb: &'a str, req: &'a impl Signed, detail: &'a str) -> Self {
        Action {
            workflow_id,
            verb,
            operator: req.operator(),
            credential_id: req.credential_id(),
            reason: req.reason(),
            detail,
            signed_at: req.signed_at(),
        }
    }
}

/// A message that carries an operator's signed action: who, with which
/// credential, why and when.
pub trait Signed {
    /// The operator the credential belongs to.
    fn operator(&self) -> &str;
    /// The credential's id.
    fn credential_id(&self) -> &str;
    /// Why.
    fn reason(&self) -> &str;
    /// When the API signed it.
    fn signed_at(&self) -> &str;
}

macro_rules! signed {
    ($($message:ty),*) => {$(
        impl Signed for $message {
            fn operator(&self) -> &str {
                &self.operator
            }
            fn credential_id(&self) -> &str {
                &self.credential_id
            }
            fn reason(&self) -> &str {
                &self.reason
            }
            fn signed_at(&self) -> &str {
                &self.signed_at
            }
        }
    )*};
}

signed!(OperatorRequest, ApproveRequest, BackfillInput);

/// The bytes the API signs for `a`.
pub fn message(a: &Action<'_>) -> Vec<u8> {
    let mut out = String::from("steward-operator-action-v1\n");
    for field in [
        a.workflow_id,
        a.verb,
        a.operator,
        a.credential_id,
        a.reason,
        a.detail,
        a.signed_at,
    ] {
        out.push_str(&format!("{}:{field}\n", field.len()));
    }
    out.into_bytes()
}

/// What an operator update carries, as signed: the group of an approval,
/// the settings of a `set`, nothing for the others.
pub fn request_detail(verb: &str, req: &OperatorRequest) -> String {
    match verb {
        "approve" => req.group.clone(),
        "set" => format!(
            "batch_size={} max_lag={}",
            req.batch_size, req.max_lag_seconds
        ),
        _ => String::new(),
    }
}

/// What a backfill's start carries, as signed.
pub fn backfill_start_detail(input: &BackfillInput) -> String {
    format!(
        "name={} dry_run={} batch_size={} freeze_at={}",
        input.name, input.dry_run, input.batch_size, input.freeze_at
    )
}

/// What an upgrade's approval carries, as signed: the exact version.
pub fn approve_detail(req: &ApproveRequest) -> String {
    req.version.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_field_can_be_made_to_read_as_another() {
        let a = Action {
            workflow_id: "backfill-x",
            verb: "approve",
            operator: "ana",
            credential_id: "t1",
            reason: "ok\n5:group",
            detail: "",
            signed_at: "2026-12-02T00:00:00Z",
        };
        let b = Action {
            reason: "ok",
            detail: "group",
            ..a
        };
        assert_ne!(message(&a), message(&b));
    }
}
