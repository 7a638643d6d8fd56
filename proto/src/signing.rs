//! What the API signs when it sends an operator's action, and the workflow
//! verifies before it accepts one: the workflow and the run it is for, the
//! action, the verified operator and their credential, the reason, what
//! the action sets, and when. Each field is length-prefixed, so no reason
//! can be made to read as another field. Both sides build the message
//! here, so they cannot drift.
//!
//! The run binding is what keeps a signature from being replayed on
//! another run: an update is signed for the first run id of the workflow's
//! chain (kept across continue-as-new, new for every start), and a start,
//! which has no run yet, for a fresh nonce that the run claims once in the
//! state store. The workflow adds the rest of the rule (each signature at
//! most once per run, none older than [`crate::limits::SIGNATURE_MAX_AGE_SECONDS`]).

use crate::v1::{ApproveRequest, BackfillInput, OperatorRequest, UpgradeInput};

/// An operator action as signed.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    /// The workflow it is sent to.
    pub workflow_id: &'a str,
    /// The run it is for: the first run id of the workflow's chain for an
    /// update, the start's nonce for a start.
    pub run: &'a str,
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
    /// The action `verb` that `req` carries to run `run` of `workflow_id`;
    /// `detail` is what the request sets (from this module's `*_detail`
    /// functions).
    pub fn of(
        workflow_id: &'a str,
        run: &'a str,
        verb: &'a str,
        req: &'a impl Signed,
        detail: &'a str,
    ) -> Self {
        Action {
            workflow_id,
            run,
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
    /// The API's signature (hex); empty when unsigned.
    fn signature(&self) -> &str;
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
            fn signature(&self) -> &str {
                &self.signature
            }
        }
    )*};
}

signed!(OperatorRequest, ApproveRequest, BackfillInput, UpgradeInput);

/// The bytes the API signs for `a`.
pub fn message(a: &Action<'_>) -> Vec<u8> {
    framed(
        "steward-operator-action-v2\n",
        &[
            a.workflow_id,
            a.run,
            a.verb,
            a.operator,
            a.credential_id,
            a.reason,
            a.detail,
            a.signed_at,
        ],
    )
}

/// The bytes the API signed before signatures named the run (`a.run` is
/// not part of them). Only runs recorded before the binding read them, so
/// that their replay recomputes what they decided; no run accepts a new
/// action signed this way.
pub fn unbound_message(a: &Action<'_>) -> Vec<u8> {
    framed(
        "steward-operator-action-v1\n",
        &[
            a.workflow_id,
            a.verb,
            a.operator,
            a.credential_id,
            a.reason,
            a.detail,
            a.signed_at,
        ],
    )
}

fn framed(header: &str, fields: &[&str]) -> Vec<u8> {
    let mut out = String::from(header);
    for field in fields {
        out.push_str(&format!("{}:{field}\n", field.len()));
    }
    out.into_bytes()
}

/// The credential of a person the organisation's identity provider
/// vouched for: their stable subject and the groups it gave them at that
/// moment. The API signs it as the action's credential, so a run reads
/// those groups back only from an action whose signature holds.
pub fn idp_credential(subject: &str, groups: &[String]) -> String {
    format!("{IDP_PREFIX}{subject}#{}", groups.join(","))
}

/// The groups an identity provider's credential carries; None for any
/// other credential.
pub fn idp_groups(credential_id: &str) -> Option<Vec<String>> {
    let (_, groups) = credential_id.strip_prefix(IDP_PREFIX)?.rsplit_once('#')?;
    Some(
        groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect(),
    )
}

const IDP_PREFIX: &str = "oidc:";

/// What an operator update carries, as signed: the group of an approval,
/// the settings of a `set`, nothing for the others.
pub fn request_detail(verb: &str, req: &OperatorRequest) -> String {
    match verb {
        "approve" => req.group.clone(),
        "set" => {
            let mut detail = format!(
                "batch_size={} max_lag={}",
                req.batch_size, req.max_lag_seconds
            );
            // Throttles by name, in order; none leaves the text as signed
            // before throttles existed.
            let mut throttles: Vec<_> = req.throttle_max.iter().collect();
            throttles.sort_by(|a, b| a.0.cmp(b.0));
            for (name, max) in throttles {
                detail.push_str(&format!(" throttle.{name}={max}"));
            }
            detail
        }
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

/// What an upgrade's start carries, as signed: the app, the version and
/// the mode.
pub fn upgrade_start_detail(input: &UpgradeInput) -> String {
    format!(
        "app={} version={} trial={} cold={}",
        input.app, input.version, input.trial, input.cold
    )
}

/// What an upgrade's approval carries, as signed: the exact version.
pub fn approve_detail(req: &ApproveRequest) -> String {
    req.version.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> Action<'static> {
        Action {
            workflow_id: "backfill-x",
            run: "0b9d8c3e-run",
            verb: "approve",
            operator: "ana",
            credential_id: "t1",
            reason: "ok",
            detail: "group",
            signed_at: "2026-12-02T00:00:00Z",
        }
    }

    #[test]
    fn an_idp_credential_carries_its_groups() {
        let c = idp_credential("5c1e-ana", &["release".into(), "storage".into()]);
        assert_eq!(c, "oidc:5c1e-ana#release,storage");
        assert_eq!(
            idp_groups(&c),
            Some(vec!["release".into(), "storage".into()])
        );
        assert_eq!(idp_groups("oidc:x#"), Some(vec![]));
        assert_eq!(idp_groups("a1b2c3d4e5f6"), None);
    }

    #[test]
    fn no_field_can_be_made_to_read_as_another() {
        let a = Action {
            reason: "ok\n5:group",
            detail: "",
            ..action()
        };
        assert_ne!(message(&a), message(&action()));
    }

    #[test]
    fn the_run_is_part_of_what_is_signed() {
        let other = Action {
            run: "another-run",
            ..action()
        };
        assert_ne!(message(&action()), message(&other));
        assert_eq!(
            unbound_message(&action()),
            unbound_message(&other),
            "the unbound form never named the run"
        );
        assert_ne!(message(&action()), unbound_message(&action()));
    }

    #[test]
    fn a_set_signs_its_throttles_and_reads_as_before_without_them() {
        let plain = OperatorRequest {
            batch_size: 50,
            ..Default::default()
        };
        assert_eq!(request_detail("set", &plain), "batch_size=50 max_lag=0");
        let throttled = |cpu: f64| OperatorRequest {
            throttle_max: [("queue".to_string(), 10.0), ("cpu".to_string(), cpu)].into(),
            ..plain.clone()
        };
        assert_eq!(
            request_detail("set", &throttled(70.0)),
            "batch_size=50 max_lag=0 throttle.cpu=70 throttle.queue=10"
        );
        assert_ne!(
            request_detail("set", &throttled(70.0)),
            request_detail("set", &throttled(99.0)),
            "a changed maximum no longer verifies"
        );
    }
}
