//! Every refusal of the API: JSON with a message that names the problem,
//! and the status that fits it, chosen by the variant of the operations
//! layer's error. The extractors refuse what no route takes (a body that
//! is not the route's JSON, a NUL byte in a path or query) the same way.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::ops;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, in words an operator can act on.
    pub error: String,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no valid credential.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: a credential, but not for this (or a request from another
    /// origin).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: no such backfill, app, schedule or run.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ops::Error> for ApiError {
    fn from(e: ops::Error) -> Self {
        let status = match &e {
            ops::Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            ops::Error::NotFound(_) => StatusCode::NOT_FOUND,
            ops::Error::Forbidden(_) => StatusCode::FORBIDDEN,
            ops::Error::AlreadyRunning { .. }
            | ops::Error::Refused(_)
            | ops::Error::RunFailed(_) => StatusCode::CONFLICT,
            ops::Error::Upstream { .. } => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        Self::bad_request(format!(
            "the body is not the JSON this route takes: {}",
            r.body_text()
        ))
    }
}

/// A JSON object body, refused as a JSON [`ApiError`]: every route takes
/// an object (serde would also take a struct's fields as an array).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "the body is not the JSON this route takes: a JSON object",
            ));
        }
        serde_json::from_value(value).map(Body).map_err(|e| {
            ApiError::bad_request(format!("the body is not the JSON this route takes: {e}"))
        })
    }
}

/// Refuses a NUL byte in `text`: no name, time or filter has one, and the
/// store would answer it with an error of its own.
fn no_nul(text: &str, what: &str) -> ApiResult<()> {
    if text.contains('\0') {
        Err(ApiError::bad_request(format!(
            "the {what} contains a NUL byte"
        )))
    } else {
        Ok(())
    }
}

/// A query string, refused as a JSON [`ApiError`].
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let decoded: String = form_urlencoded::parse(query.as_bytes())
            .flat_map(|(k, v)| [k.into_owned(), v.into_owned()])
            .collect();
        no_nul(&decoded, "query")?;
        serde_urlencoded_from(query)
            .map(Params)
            .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))
    }
}

fn serde_urlencoded_from<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?,
    )
    .map(|q| q.0)
    .map_err(|r| r.body_text())
}

/// Path segments, refused as a JSON [`ApiError`].
#[derive(Debug)]
pub struct Segments<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::bad_request(format!("bad path: {}", r.body_text())))?;
        for (_, value) in &raw {
            no_nul(value, "path")?;
        }
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::bad_request(format!("bad path: {}", r.body_text())))?;
        Ok(Segments(value))
    }
}

/// Whole numbers as JSON Schema has them: `250` and `250.0` alike (and, in
/// a query string, their text), within the field's type.
pub mod whole {
    use serde::Deserializer;
    use serde::de::{self, Visitor};

    struct Whole;

    impl Visitor<'_> for Whole {
        type Value = Option<i128>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.into()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.into()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e30 {
                Ok(Some(v as i128))
            } else {
                Err(E::custom(format!("{v} is not a whole number")))
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if let Ok(n) = v.parse::<i128>() {
                return Ok(Some(n));
            }
            match v.parse::<f64>() {
                Ok(f) => self.visit_f64(f),
                Err(_) => Err(E::custom(format!("`{v}` is not a whole number"))),
            }
        }
    }

    /// An optional whole number of type `T`.
    pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i128>,
    {
        let Some(n) = d.deserialize_any(Whole)? else {
            return Ok(None);
        };
        T::try_from(n)
            .map(Some)
            .map_err(|_| de::Error::custom(format!("{n} is out of range")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Q {
        #[serde(default, deserialize_with = "whole::option")]
        limit: Option<u32>,
    }

    #[test]
    fn a_whole_number_may_be_written_as_a_float_but_not_as_a_fraction() {
        let q: Q = serde_json::from_str(r#"{"limit": 250.0}"#).unwrap();
        assert_eq!(q.limit, Some(250));
        let q: Q = serde_json::from_str(r#"{"limit": 250}"#).unwrap();
        assert_eq!(q.limit, Some(250));
        assert!(serde_json::from_str::<Q>(r#"{"limit": 2.5}"#).is_err());
        assert!(serde_json::from_str::<Q>(r#"{"limit": -1}"#).is_err());
        assert!(serde_json::from_str::<Q>(r#"{"limit": 1e300}"#).is_err());
        let q: Q = serde_json::from_str("{}").unwrap();
        assert_eq!(q.limit, None);
        let q: Q = serde_json::from_str(r#"{"limit": null}"#).unwrap();
        assert_eq!(
            q.limit, None,
            "null is no value, as the schema's optional field allows"
        );
        let q: Q = serde_urlencoded_from("limit=7.0").unwrap();
        assert_eq!(q.limit, Some(7));
        assert!(serde_urlencoded_from::<Q>("limit=many").is_err());
    }

    #[test]
    fn each_error_of_the_operations_layer_has_its_status() {
        use ops::Error;
        for (e, status) in [
            (Error::BadRequest("x".into()), 400),
            (Error::NotFound("x".into()), 404),
            (Error::Forbidden("x".into()), 403),
            (Error::Refused("x".into()), 409),
            (
                Error::AlreadyRunning {
                    workflow_id: "w".into(),
                    message: "x".into(),
                },
                409,
            ),
            (Error::RunFailed("x".into()), 409),
            (Error::upstream("x", "y"), 502),
        ] {
            assert_eq!(ApiError::from(e).status.as_u16(), status);
        }
    }
}
