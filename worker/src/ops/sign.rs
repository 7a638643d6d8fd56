//! The API's signature on the operator actions it sends, with the private
//! half of the key whose public half (`[api] verify_key`) every run's plan
//! records: the workflow verifies it (`steward_workflows::operator`) before
//! it counts the name as verified. A signature names the run it is for:
//! an update the first run of the workflow's chain (asked of the server
//! before signing), a start a fresh nonce the run claims once.

use std::path::Path;

use anyhow::Context as _;
use ed25519_dalek::{Signer as _, SigningKey};
use steward_proto::signing::{self, Action};

/// Environment variable that may hold the private key (hex) instead of a
/// file.
pub const KEY_ENV: &str = "STEWARD_API_SIGNING_KEY";

/// The API's signing key.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("verify_key", &self.verify_key())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The key from `STEWARD_API_SIGNING_KEY`, else from `file`; None when
    /// neither is set (actions then go unsigned, and count as unverified).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Option<Self>> {
        let text = match std::env::var(KEY_ENV) {
            Ok(k) if !k.trim().is_empty() => k,
            _ => match file {
                Some(f) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading the API's signing key {}", f.display()))?,
                None => return Ok(None),
            },
        };
        let bytes = hex::decode(text.trim()).context("the signing key is not hex")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("the signing key is not 32 bytes"))?;
        Ok(Some(Self {
            key: SigningKey::from_bytes(&bytes),
        }))
    }

    /// A new random key pair.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(Self {
            key: SigningKey::from_bytes(&bytes),
        })
    }

    /// The private key, hex, for the key file.
    pub fn secret_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// The public key, hex, for `[api] verify_key`.
    pub fn verify_key(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// The signature (hex) over `action`.
    pub fn sign(&self, action: &Action<'_>) -> String {
        hex::encode(self.key.sign(&signing::message(action)).to_bytes())
    }
}

/// Now, as the API stamps what it signs (to the second, which is what a
/// workflow reads).
pub fn now() -> String {
    steward_activities::time::now_secs_text()
}

/// SHA-256 of an operator token, hex: what `[[operators]] token_sha256`
/// holds.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.trim().as_bytes()))
}

/// A new random operator token (`stw_` and 64 hex digits).
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("stw_{}", hex::encode(bytes)))
}

/// A fresh nonce for a start's signature: 128 random bits, hex.
pub fn nonce() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(bytes))
}

/// The first run id of the chain `workflow_id` runs now (the same across
/// continue-as-new, new for every start), which an update's signature
/// names.
pub async fn chain<W: temporalio_common::HasWorkflowDefinition>(
    client: &temporalio_client::Client,
    workflow_id: &str,
) -> Result<String, temporalio_client::errors::WorkflowInteractionError> {
    let described = client
        .get_workflow_handle::<W>(workflow_id)
        .describe(Default::default())
        .await?;
    let info = described.raw_description.workflow_execution_info.as_ref();
    let first = info.map(|i| i.first_run_id.clone()).unwrap_or_default();
    Ok(if first.is_empty() {
        info.and_then(|i| i.execution.as_ref())
            .map(|e| e.run_id.clone())
            .unwrap_or_default()
    } else {
        first
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_api_signs_the_workflow_verifies() {
        let s = Signer::generate().unwrap();
        let a = Action {
            workflow_id: "warm-upgrade-kc",
            run: "first-run",
            verb: "approve",
            operator: "ana",
            credential_id: "c1",
            reason: "notes read",
            detail: "10.7.9",
            signed_at: &now(),
        };
        assert!(steward_workflows::verify::signed(
            &s.verify_key(),
            &a,
            &s.sign(&a)
        ));
        let other = Signer::generate().unwrap();
        assert!(!steward_workflows::verify::signed(
            &other.verify_key(),
            &a,
            &s.sign(&a)
        ));
    }
}
