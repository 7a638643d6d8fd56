//! What keeps a browser from being turned against an operator. Every
//! answer says it may not be framed and what the page may load; every
//! state-changing request from a browser must come from the API's own
//! origin (another port of the same host is another origin, though
//! `SameSite` cookies go there); the page's forms also carry a token
//! derived from the session's own credential ([`csrf_token`]), which a page
//! elsewhere cannot know.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// The page's policy: its own script and style only, forms to itself, no
/// frame around it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the browser headers to every answer, and refuses a state-changing
/// request whose `Origin` (or, without one, `Referer`) is not this API.
pub async fn browser(req: Request<Body>, next: Next) -> Response {
    if changes_state(req.method())
        && let Err(refusal) = same_origin(req.headers())
    {
        return with_headers(refusal.into_response());
    }
    with_headers(next.run(req).await)
}

fn changes_state(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn with_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// The origin a browser says the request comes from, against the host it
/// was sent to. A request with neither header is not a browser's form
/// (curl, the bridge), unless it rides on the page's cookie.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let claimed = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(claimed) = claimed else {
        let by_cookie =
            headers.get(header::AUTHORIZATION).is_none() && headers.get(header::COOKIE).is_some();
        return if by_cookie {
            Err(ApiError::forbidden(
                "a request on the page's session must say where it comes from (Origin)",
            ))
        } else {
            Ok(())
        };
    };
    let authority = claimed
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "a request from another origin ({claimed}) is refused: steward's page acts only from {host}"
        )))
    }
}

/// The token the page's forms carry: derived from the session's credential,
/// so a page that does not hold the credential cannot make it, and the
/// same for every API process that knows the credential.
pub fn csrf_token(credential: &str) -> String {
    hex::encode(&Sha256::digest(format!("steward-csrf-v1\n{}", credential.trim()).as_bytes())[..16])
}

/// Whether `given` is the form token of `credential`, compared in constant
/// time.
pub fn csrf_ok(credential: &str, given: &str) -> bool {
    let want = csrf_token(credential);
    want.len() == given.len()
        && want
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_apis_own_origin_may_change_state() {
        let own = [("host", "127.0.0.1:8234")];
        assert!(same_origin(&headers(&[own[0], ("origin", "http://127.0.0.1:8234")])).is_ok());
        assert!(
            same_origin(&headers(&[
                own[0],
                ("referer", "http://127.0.0.1:8234/?notice=x")
            ]))
            .is_ok()
        );
        for other in [
            "http://127.0.0.1:9999",
            "http://evil.example",
            "http://127.0.0.1:8234.evil.example",
            "null",
        ] {
            let e = same_origin(&headers(&[own[0], ("origin", other)])).unwrap_err();
            assert_eq!(e.status.as_u16(), 403, "{other}");
        }
        assert!(
            same_origin(&headers(&[own[0], ("authorization", "Bearer x")])).is_ok(),
            "a script with a token and no Origin"
        );
        assert!(
            same_origin(&headers(&[own[0], ("cookie", "steward_token=x")])).is_err(),
            "the page's session without an Origin"
        );
    }

    #[test]
    fn the_form_token_is_the_credentials_own() {
        let t = csrf_token("stw_abc");
        assert_eq!(t.len(), 32);
        assert!(csrf_ok("stw_abc", &t));
        assert!(!csrf_ok("stw_abd", &t));
        assert!(!csrf_ok("stw_abc", ""));
        assert!(!csrf_ok("stw_abc", &t[..31]));
    }
}
