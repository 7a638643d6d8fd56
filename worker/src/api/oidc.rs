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
use std::time::{Duration, Instant, SystemTime};

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

/// A page sign-in that came back: who, until when (the ID token's
/// expiry), and the refresh token that reads their groups again.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who.
    pub who: Identity,
    /// Until when.
    pub until: SystemTime,
    /// The refresh token, when the IdP gave one.
    pub refresh: Option<String>,
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
    pending: Mutex<std::collections::HashMap<String, Pending>>,
    http: reqwest::Client,
}

#[derive(Debug)]
struct Keys {
    jwks_uri: Option<String>,
    endpoints: Option<Endpoints>,
    set: JwkSet,
    fetched: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Endpoints {
    authorization: String,
    token: String,
}

/// A sign-in begun and not yet back from the issuer.
#[derive(Debug)]
struct Pending {
    verifier: String,
    nonce: String,
    redirect: String,
    at: Instant,
}

/// How long a sign-in may take at the identity provider.
const SIGN_IN_WITHIN: Duration = Duration::from_secs(600);

/// The environment variable the client secret is read from, without
/// `client_secret_file`.
pub const SECRET_ENV: &str = "STEWARD_OIDC_CLIENT_SECRET";

/// 256 random bits, URL-safe.
fn random() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(hex::encode(bytes))
}

fn serde_urlencoded(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form/").expect("a constant URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
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
                endpoints: None,
                set: JwkSet { keys: Vec::new() },
                fetched: None,
            }),
            pending: Mutex::new(std::collections::HashMap::new()),
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

    /// Who the access token `token` is, or why it is refused (said to the
    /// caller).
    pub async fn verify(&self, token: &str) -> Result<Identity, String> {
        let claims = self.claims(token, self.config.audience()).await?;
        Ok(self.identity(&claims))
    }

    /// The claims of `token`, a JWT the issuer signed for `audience`, or
    /// why it is refused.
    async fn claims(&self, token: &str, audience: &str) -> Result<serde_json::Value, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("not a token from the identity provider: {e}"))?;
        let kid = header
            .kid
            .clone()
            .ok_or("the token names no signing key (kid)")?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| refusal(&e, audience))
    }

    fn identity(&self, claims: &serde_json::Value) -> Identity {
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
        Identity {
            subject,
            name,
            groups: self.config.steward_groups(&groups),
        }
    }

    /// Starts a sign-in of the page: where to send the browser (the
    /// issuer's authorization endpoint, with PKCE, `state` and `nonce`),
    /// for `redirect` (steward's callback).
    /// Also the `state`, which the browser keeps to prove it began it.
    pub async fn begin(&self, redirect: &str) -> Result<(String, String), String> {
        let endpoints = self.endpoints().await?;
        let (verifier, state, nonce) = (random()?, random()?, random()?);
        let challenge = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            <sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()),
        );
        let mut pending = self.pending.lock().await;
        pending.retain(|_, p| p.at.elapsed() < SIGN_IN_WITHIN);
        pending.insert(
            state.clone(),
            Pending {
                verifier,
                nonce: nonce.clone(),
                redirect: redirect.to_string(),
                at: Instant::now(),
            },
        );
        let mut url = reqwest::Url::parse(&endpoints.authorization)
            .map_err(|e| format!("the issuer's authorization endpoint is not a URL: {e}"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", "openid profile groups")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok((url.to_string(), state))
    }

    /// Ends a sign-in: the authorization `code` for the sign-in `state`
    /// began, exchanged (with the PKCE verifier and the client secret) for
    /// an ID token, checked (signature, issuer, audience, expiry, the
    /// nonce) with the access token that carries the groups. Who signed
    /// in, and until when.
    pub async fn finish(&self, code: &str, state: &str) -> Result<SignedIn, String> {
        let pending = self
            .pending
            .lock()
            .await
            .remove(state)
            .filter(|p| p.at.elapsed() < SIGN_IN_WITHIN)
            .ok_or("this sign-in was not started here, or took too long: sign in again")?;
        let tokens = self
            .token_endpoint(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &pending.redirect),
                ("code_verifier", &pending.verifier),
            ])
            .await?;
        let id_token = tokens["id_token"].as_str().ok_or("no ID token came back")?;
        let id = self.claims(id_token, &self.config.client_id).await?;
        if id["nonce"].as_str() != Some(pending.nonce.as_str()) {
            return Err("the ID token's nonce is not this sign-in's".into());
        }
        let until = id["exp"]
            .as_u64()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
            .ok_or("the ID token has no expiry")?;
        // The groups come with the access token (the ID token carries the
        // identity); both must name the same person.
        let access = tokens["access_token"].as_str().unwrap_or_default();
        let who = match self.claims(access, self.config.audience()).await {
            Ok(claims) if claims["sub"] == id["sub"] => self.identity(&claims),
            _ => self.identity(&id),
        };
        Ok(SignedIn {
            who,
            until,
            refresh: tokens["refresh_token"].as_str().map(String::from),
        })
    }

    /// The groups `subject` has at the IdP now, by the session's refresh
    /// token: who they are, and the refresh token to use next time.
    pub async fn refresh(
        &self,
        subject: &str,
        refresh: &str,
    ) -> Result<(Identity, Option<String>), String> {
        let tokens = self
            .token_endpoint(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await?;
        let access = tokens["access_token"]
            .as_str()
            .ok_or("no access token came back")?;
        let claims = self.claims(access, self.config.audience()).await?;
        if claims["sub"].as_str() != Some(subject) {
            return Err("the identity provider answered for someone else".into());
        }
        Ok((
            self.identity(&claims),
            tokens["refresh_token"].as_str().map(String::from),
        ))
    }

    /// The issuer's token endpoint's answer to `form`, with steward's
    /// client credentials.
    async fn token_endpoint(&self, form: &[(&str, &str)]) -> Result<serde_json::Value, String> {
        let endpoints = self.endpoints().await?;
        let secret = self.client_secret()?;
        let body = serde_urlencoded(form);
        let resp = self
            .http
            .post(&endpoints.token)
            .basic_auth(&self.config.client_id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the identity provider's token endpoint does not answer: {}",
                    steward_activities::http::cause(&e, TIMEOUT)
                )
            })?;
        let status = resp.status();
        let tokens: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!(
                "the identity provider refused ({status}): {}",
                tokens["error_description"]
                    .as_str()
                    .or(tokens["error"].as_str())
                    .unwrap_or_default()
            ));
        }
        Ok(tokens)
    }

    fn client_secret(&self) -> Result<String, String> {
        let secret = match &self.config.client_secret_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| format!("reading the OIDC client secret from {}: {e}", f.display()))?,
            None => std::env::var(SECRET_ENV).map_err(|_| {
                format!("the OIDC client secret is not set: put it in ${SECRET_ENV} or name client_secret_file")
            })?,
        };
        Ok(secret.trim().to_string())
    }

    async fn endpoints(&self) -> Result<Endpoints, String> {
        let mut keys = self.keys.lock().await;
        if keys.endpoints.is_none() {
            self.discover(&mut keys).await?;
        }
        keys.endpoints.clone().ok_or_else(|| "no endpoints".into())
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

    async fn discover(&self, keys: &mut Keys) -> Result<(), String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let doc: serde_json::Value = self.get(&url).await?;
        let field = |name: &str| {
            doc[name]
                .as_str()
                .map(String::from)
                .ok_or_else(|| format!("{url} names no {name}"))
        };
        keys.jwks_uri = Some(field("jwks_uri")?);
        keys.endpoints = Some(Endpoints {
            authorization: field("authorization_endpoint")?,
            token: field("token_endpoint")?,
        });
        Ok(())
    }

    async fn fetch(&self, keys: &mut Keys) -> Result<(), String> {
        if keys.jwks_uri.is_none() {
            self.discover(keys).await?;
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
