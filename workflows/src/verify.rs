//! Whether an operator action was signed by steward's API: an Ed25519
//! signature, under the key the run's plan recorded, over the message
//! `steward_proto::signing` builds. Pure computation, so a validator can
//! check it deterministically; anyone who can reach the Temporal server
//! but does not hold the API's private key cannot forge one.

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use steward_proto::signing::{self, Action};

/// Whether `signature_hex` is the API's signature over `action` under the
/// public key `key_hex`.
pub fn signed(key_hex: &str, action: &Action<'_>, signature_hex: &str) -> bool {
    let (Ok(key), Ok(sig)) = (hex::decode(key_hex), hex::decode(signature_hex)) else {
        return false;
    };
    let (Ok(key), Ok(sig)) = (
        <[u8; 32]>::try_from(key.as_slice()),
        <[u8; 64]>::try_from(sig.as_slice()),
    ) else {
        return false;
    };
    VerifyingKey::from_bytes(&key).is_ok_and(|k| {
        k.verify(&signing::message(action), &Signature::from_bytes(&sig))
            .is_ok()
    })
}

/// Why a run refused an operator request's signature.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// A signature is there and was not made by the API's key over this action.
    DoesNotVerify,
    /// No signature, and the run takes verified actions only.
    Required,
}

/// Whether a run admits `action`: Ok(true) when it carries the API's
/// signature, Ok(false) when it is unsigned and the run allows that.
pub fn admit(
    key_hex: &str,
    action: &Action<'_>,
    signature_hex: &str,
    require_verified: bool,
) -> Result<bool, Refused> {
    if signature_hex.is_empty() {
        return if require_verified {
            Err(Refused::Required)
        } else {
            Ok(false)
        };
    }
    if signed(key_hex, action, signature_hex) {
        Ok(true)
    } else {
        Err(Refused::DoesNotVerify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    #[test]
    fn only_the_apis_key_over_the_same_action_verifies() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let action = Action {
            workflow_id: "backfill-x",
            verb: "approve",
            operator: "ana",
            credential_id: "t1",
            reason: "read the dry run",
            detail: "storage",
            signed_at: "2026-12-02T00:00:00Z",
        };
        let sig = hex::encode(key.sign(&signing::message(&action)).to_bytes());
        assert!(signed(&public, &action, &sig));
        let other = Action {
            operator: "bob",
            ..action
        };
        assert!(!signed(&public, &other, &sig), "another operator's name");
        let elsewhere = Action {
            workflow_id: "backfill-y",
            ..action
        };
        assert!(!signed(&public, &elsewhere, &sig), "another run");
        let stranger = SigningKey::from_bytes(&[9u8; 32]);
        let forged = hex::encode(stranger.sign(&signing::message(&action)).to_bytes());
        assert!(!signed(&public, &action, &forged), "another key");
        assert!(!signed(&public, &action, "not hex"));
        assert!(!signed("", &action, &sig));
    }

    #[test]
    fn admit_takes_unsigned_only_where_allowed_and_never_a_bad_signature() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let action = Action {
            workflow_id: "warm-upgrade-x",
            verb: "approve",
            operator: "ana",
            credential_id: "t1",
            reason: "r",
            detail: "1.2.0",
            signed_at: "2026-12-02T00:00:00Z",
        };
        let sig = hex::encode(key.sign(&signing::message(&action)).to_bytes());
        assert_eq!(admit(&public, &action, &sig, true), Ok(true));
        assert_eq!(admit(&public, &action, "", false), Ok(false));
        assert_eq!(admit(&public, &action, "", true), Err(Refused::Required));
        let forged = hex::encode([1u8; 64]);
        assert_eq!(
            admit(&public, &action, &forged, false),
            Err(Refused::DoesNotVerify)
        );
    }
}
