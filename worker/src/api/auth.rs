//! Who is asking: the operator whose token the request carries (a bearer
//! header, or the operator page's cookie), found by the token's SHA-256
//! among `[[operators]]` of the config as it is now (the config watch
//! reads the file again when it changes), so a token removed from it (or
//! past its `expires`) stops working on the next request. Every refusal is
//! counted by reason for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;

use super::error::ApiError;
use crate::config::{Loaded, OperatorConfig};
use crate::ops::Actor;
use crate::ops::sign::token_hash;

/// The cookie the operator page keeps the token in.
pub const COOKIE: &str = "steward_token";

/// A verified operator: the token's name, groups and credential.
pub type Operator = Actor;

/// Refused requests, by reason.
#[derive(Debug, Default)]
pub struct Failures {
    /// No token at all.
    pub missing: AtomicU64,
    /// A token no operator has.
    pub unknown: AtomicU64,
    /// A token past its `expires`.
    pub expired: AtomicU64,
    /// An identity provider's token that did not verify.
    pub idp: AtomicU64,
}

impl Failures {
    /// The counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        let mut out = String::from(
            "# HELP steward_api_auth_failures_total Requests the API refused for their credential, by reason\n\
             # TYPE steward_api_auth_failures_total counter\n",
        );
        for (reason, n) in [
            ("missing", &self.missing),
            ("unknown", &self.unknown),
            ("expired", &self.expired),
            ("idp", &self.idp),
        ] {
            out.push_str(&format!(
                "steward_api_auth_failures_total{{reason=\"{reason}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// The token a request carries: `Authorization: Bearer ...`, else the
/// operator page's cookie.
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty())
}

/// The operator `steward dev` makes for its session when the config
/// declares none: known only to that process, signed in once through the
/// link it prints (a one-time secret, as Jupyter does), gone when it stops.
/// `steward api` never has one.
#[derive(Debug)]
pub struct LocalOperator {
    /// Who acts (the user who ran `steward dev`).
    pub name: String,
    /// The SHA-256 of the session's token, which the page's cookie carries.
    token_sha256: String,
    /// The session's token, handed over once.
    token: String,
    /// The SHA-256 of the sign-in link's secret, until it is used.
    secret_sha256: std::sync::Mutex<Option<String>>,
}

impl LocalOperator {
    /// A local operator `name`, with its session token and the sign-in
    /// link's secret (both fresh), and that secret.
    pub fn new(name: &str) -> anyhow::Result<(Self, String)> {
        let token = crate::ops::sign::new_token()?;
        let secret = crate::ops::sign::new_token()?;
        Ok((
            Self {
                name: name.to_string(),
                token_sha256: token_hash(&token),
                token,
                secret_sha256: std::sync::Mutex::new(Some(token_hash(&secret))),
            },
            secret,
        ))
    }

    /// The session's token, once for the link's secret; None for any other
    /// secret, or once the link was used.
    pub fn redeem(&self, secret: &str) -> Option<String> {
        let mut unused = self.secret_sha256.lock().unwrap_or_else(|p| p.into_inner());
        let expected = unused.as_deref()?;
        let given = token_hash(secret);
        // Hashes of equal length, compared without an early exit.
        let same = expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !same {
            return None;
        }
        *unused = None;
        Some(self.token.clone())
    }

    fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            groups: Vec::new(),
            credential_id: "local-session".into(),
            process: false,
        }
    }
}

/// The operator whose token `headers` carry, as `loaded` declares them
/// (or `steward dev`'s local operator); a 401 naming why otherwise.
pub fn authenticate(
    loaded: &Loaded,
    local: Option<&LocalOperator>,
    headers: &HeaderMap,
    failures: &Failures,
) -> Result<Operator, ApiError> {
    let Some(token) = token_of(headers) else {
        failures.missing.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::unauthorized(
            "no credential: send `Authorization: Bearer <your operator token>`",
        ));
    };
    let operators = &loaded.config.operators;
    let hash = token_hash(&token);
    if let Some(local) = local.filter(|l| l.token_sha256 == hash) {
        return Ok(local.actor());
    }
    let Some(op) = operators
        .iter()
        .find(|o| o.token_sha256.eq_ignore_ascii_case(&hash))
    else {
        failures.unknown.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::unauthorized(
            "this token is not an operator's (revoked, or never issued)",
        ));
    };
    if expired(op) {
        failures.expired.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::unauthorized(format!(
            "the token of `{}` expired at {}",
            op.name,
            op.expires.as_deref().unwrap_or_default()
        )));
    }
    Ok(Actor {
        name: op.name.clone(),
        groups: op.groups.clone(),
        credential_id: op.credential_id(),
        process: false,
    })
}

impl axum::extract::FromRequestParts<std::sync::Arc<super::Api>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        api: &std::sync::Arc<super::Api>,
    ) -> Result<Self, ApiError> {
        let changes = !matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        api.authenticate(&parts.headers, changes).await
    }
}

fn expired(op: &OperatorConfig) -> bool {
    op.expires
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t <= chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_bearer_header_or_the_pages_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&h), None);
        h.insert("cookie", "a=b; steward_token=stw_1".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("stw_1"));
        h.insert("authorization", "Bearer stw_2".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("stw_2"));
        let t = crate::ops::sign::new_token().unwrap();
        assert!(t.starts_with("stw_") && t.len() == 68);
        assert_eq!(token_hash(&t).len(), 64);
        assert_ne!(crate::ops::sign::new_token().unwrap(), t);
    }
}
