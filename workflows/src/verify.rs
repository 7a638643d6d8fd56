//! Whether an operator action was signed by steward's API: an Ed25519
//! signature, under the key the run's plan recorded, over the message
//! `steward_proto::signing` builds. Pure computation, so a validator can
//! check it deterministically; anyone who can reach the Temporal server
//! but does not hold the API's private key cannot forge one. What else a
//! run asks of a signature (its run, its age, its first use) is
//! `crate::operator`.

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use steward_proto::signing::{self, Action};

/// Whether `signature_hex` is the API's signature over `action`, its run
/// included, under the public key `key_hex`.
pub fn signed(key_hex: &str, action: &Action<'_>, signature_hex: &str) -> bool {
    verifies(key_hex, &signing::message(action), signature_hex)
}

/// The same over the message signed before signatures named the run; only
/// the replay of runs recorded then asks it.
pub fn signed_unbound(key_hex: &str, action: &Action<'_>, signature_hex: &str) -> bool {
    verifies(key_hex, &signing::unbound_message(action), signature_hex)
}

fn verifies(key_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let (Ok(key), Ok(sig)) = (hex::decode(key_hex), hex::decode(signature_hex)) else {
        return false;
    };
    let (Ok(key), Ok(sig)) = (
        <[u8; 32]>::try_from(key.as_slice()),
        <[u8; 64]>::try_from(sig.as_slice()),
    ) else {
        return false;
    };
    VerifyingKey::from_bytes(&key)
        .is_ok_and(|k| k.verify(message, &Signature::from_bytes(&sig)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    #[test]
    fn only_the_apis_key_over_the_same_action_for_the_same_run_verifies() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let action = Action {
            workflow_id: "backfill-x",
            run: "first-run-id",
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
        assert!(!signed(&public, &elsewhere, &sig), "another workflow");
        let later = Action {
            run: "a-later-run",
            ..action
        };
        assert!(!signed(&public, &later, &sig), "another run");
        let stranger = SigningKey::from_bytes(&[9u8; 32]);
        let forged = hex::encode(stranger.sign(&signing::message(&action)).to_bytes());
        assert!(!signed(&public, &action, &forged), "another key");
        assert!(!signed(&public, &action, "not hex"));
        assert!(!signed("", &action, &sig));
        let unbound = hex::encode(key.sign(&signing::unbound_message(&action)).to_bytes());
        assert!(!signed(&public, &action, &unbound), "an unbound signature");
        assert!(signed_unbound(&public, &later, &unbound));
    }
}
