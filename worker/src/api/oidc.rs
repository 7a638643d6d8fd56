//! OpenID Connect: the organisation's identity provider vouches for who
//! asks. An access token the IdP issued (a JWT) is a bearer credential:
//! verified with `jsonwebtoken` against the keys the issuer publishes
//! (discovered from `/.well-known/openid-configuration`, fetched again when
//! a token names a key not seen yet, so a rotation needs no restart), for
//! its signature, `iss`, `aud`, `exp` and `nbf`. Who acts is the token's
//! stable subject with a readable name, in the groups the token carries at
//! that moment (mapped to steward's groups when `[api.oidc] groups` says
//! so).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// `[api.oidc]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer, exactly as its tokens name it
    /// (`https://sso.example.org/realms/ops` for Keycloak).
    pub issuer: String,
    /// steward's client id at the IdP.
    pub client_id: String,
    /// File holding the client secret (default:
    /// `$STEWARD_OIDC_CLIENT_SECRET`); never in the config.
    #[serde(default)]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// The audience the API's bearer tokens must name (default: the
    /// client id).
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim that carries the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The claim with the readable name actions are recorded under.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// IdP group → steward group. Empty: the IdP's groups as they are;
    /// otherwise only the mapped ones count.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

fn default_groups_claim() -> String {
    "groups".into()
}
fn default_name_claim() -> String {
    "preferred_username".into()
}

impl OidcConfig {
    /// Checks values that parse but are invalid; returns (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://")) {
            return Err(("issuer".into(), "must be an http(s):// URL".into()));
        }
        if self.client_id.trim().is_empty() {
            return Err(("client_id".into(), "must not be empty".into()));
        }
        Ok(())
    }

    fn audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(&self.client_id)
    }

    /// steward's groups for the IdP's `groups`.
    pub fn steward_groups(&self, groups: &[String]) -> Vec<String> {
        if self.groups.is_empty() {
            return groups.to_vec();
        }
        let mut mapped: Vec<String> = groups
            .iter()
            .filter_map(|g| self.groups.get(g).cloned())
            .collect();
        mapped.sort();
        mapped.dedup();
        mapped
    }
}

/// Who the IdP says a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The stable subject (`sub`).
    pub subject: String,
    /// The readable name.
    pub name: String,
    /// steward's groups, from the token's.
    pub groups: Vec<String>,
}

/// The keys the issuer publishes, fetched on first use and again for a key
/// not seen yet (at most every few seconds).
#[derive(Debug)]
pub struct Verifier {
    config: OidcConfig,
    keys: Mutex<Keys>,
    http: reqwest::Client,
}

#[derive(Debug)]
struct Keys {
    jwks_uri: Option<String>,
    set: JwkSet,
    fetched: Option<Instant>,
}

/// How soon the key set is fetched again for an unknown key.
const REFETCH_AFTER: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(10);

/// A JWT's shape: three base64url parts.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Verifier {
    /// A verifier for `config`'s issuer.
    pub fn new(config: OidcConfig) -> Self {
        Self {
            config,
            keys: Mutex::new(Keys {
                jwks_uri: None,
                set: JwkSet { keys: Vec::new() },
                fetched: None,
            }),
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// The config it verifies for.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Who `token` is, or why it is refused (said to the caller).
    pub async fn verify(&self, token: &str) -> Result<Identity, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("not a token from the identity provider: {e}"))?;
        let kid = header
            .kid
            .clone()
            .ok_or("the token names no signing key (kid)")?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[self.config.audience()]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| refusal(&e, self.config.audience()))?;
        let claims = data.claims;
        let subject = claims["sub"].as_str().unwrap_or_default().to_string();
        let name = claims[self.config.name_claim.as_str()]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(&subject)
            .to_string();
        let groups: Vec<String> = match &claims[self.config.groups_claim.as_str()] {
            serde_json::Value::Array(list) => list
                .iter()
                .filter_map(|g| g.as_str())
                // Keycloak writes group paths (`/release`).
                .map(|g| g.trim_start_matches('/').to_string())
                .collect(),
            serde_json::Value::String(one) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            subject,
            name,
            groups: self.config.steward_groups(&groups),
        })
    }

    /// The published key `kid`, fetching the key set again when it is not
    /// in the one held.
    async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        let mut keys = self.keys.lock().await;
        if keys.set.find(kid).is_none()
            && keys.fetched.is_none_or(|at| at.elapsed() >= REFETCH_AFTER)
        {
            self.fetch(&mut keys).await?;
        }
        let jwk = keys.set.find(kid).ok_or_else(|| {
            format!(
                "the token is signed with a key ({kid}) the issuer does not publish: not a token \
                 of {}",
                self.config.issuer
            )
        })?;
        DecodingKey::from_jwk(jwk).map_err(|e| format!("the issuer's key {kid} is unusable: {e}"))
    }

    async fn fetch(&self, keys: &mut Keys) -> Result<(), String> {
        if keys.jwks_uri.is_none() {
            let url = format!(
                "{}/.well-known/openid-configuration",
                self.config.issuer.trim_end_matches('/')
            );
            let doc: serde_json::Value = self.get(&url).await?;
            keys.jwks_uri = Some(
                doc["jwks_uri"]
                    .as_str()
                    .ok_or_else(|| format!("{url} names no jwks_uri"))?
                    .to_string(),
            );
        }
        let uri = keys.jwks_uri.clone().unwrap_or_default();
        let set: serde_json::Value = self.get(&uri).await?;
        // Keys of a kind this library does not know are skipped, not fatal.
        let usable: Vec<serde_json::Value> = set["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|k| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()).is_ok())
            .collect();
        keys.set = serde_json::from_value(serde_json::json!({ "keys": usable }))
            .map_err(|e| format!("the issuer's key set from {uri} is unreadable: {e}"))?;
        keys.fetched = Some(Instant::now());
        Ok(())
    }

    async fn get(&self, url: &str) -> Result<serde_json::Value, String> {
        let resp = self.http.get(url).send().await.map_err(|e| {
            format!(
                "the identity provider does not answer at {url}: {}",
                steward_activities::http::cause(&e, TIMEOUT)
            )
        })?;
        if !resp.status().is_success() {
            return Err(format!(
                "the identity provider answered {} at {url}",
                resp.status()
            ));
        }
        resp.json()
            .await
            .map_err(|e| format!("the identity provider's answer at {url} is not JSON: {e}"))
    }
}

/// Why a token was refused, as its holder is told.
fn refusal(e: &jsonwebtoken::errors::Error, audience: &str) -> String {
    match e.kind() {
        ErrorKind::ExpiredSignature => "the identity provider's token expired".into(),
        ErrorKind::ImmatureSignature => {
            "the identity provider's token is not valid yet (nbf)".into()
        }
        ErrorKind::InvalidAudience => {
            format!("the token is for another audience, not `{audience}`")
        }
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not its key's".into(),
        _ => format!("the token is refused: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_mapped_when_a_mapping_is_given() {
        let mut c = OidcConfig {
            issuer: "https://sso".into(),
            client_id: "steward".into(),
            client_secret_file: None,
            audience: None,
            groups_claim: default_groups_claim(),
            name_claim: default_name_claim(),
            groups: BTreeMap::new(),
        };
        let idp = vec!["ops-release".to_string(), "everyone".to_string()];
        assert_eq!(c.steward_groups(&idp), idp);
        c.groups.insert("ops-release".into(), "release".into());
        assert_eq!(c.steward_groups(&idp), vec!["release".to_string()]);
        assert_eq!(c.audience(), "steward");
    }

    #[test]
    fn a_jwt_is_told_from_a_steward_token() {
        assert!(looks_like_jwt("eyJh.eyJz.sig-_"));
        assert!(!looks_like_jwt("stw_0123abcd"));
        assert!(!looks_like_jwt("a.b"));
    }
}
