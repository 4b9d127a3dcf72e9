//! [`JsonBody`], the one extractor of JSON request bodies: the body is read
//! up to [`bus_schema::MAX_MESSAGE_BYTES`] and decoded by `bus_schema::codec`
//! with the same depth and length limits as every bus message, so a deeply
//! nested body is refused before serde recurses into it.
//!
//! Owns only reading and decoding the body; what the fields mean is each
//! handler's business.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use bus_schema::codec;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON request body decoded into `T` within the codec's limits. Refuses
/// with 415 (not JSON), 413 (too large) or 400 (malformed, too deep, too
/// long, wrong fields, a NUL in a string: `http::nul`), each as
/// `{"error": ...}`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| codec::is_json(Some(ct)));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with Content-Type: application/json",
            ));
        }
        let limit = bus_schema::MAX_MESSAGE_BYTES;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than {limit} bytes"),
                )
            })?;
        if crate::http::nul::json_has_nul(&bytes) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                crate::http::nul::REFUSAL,
            ));
        }
        codec::decode_json(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            )
        })
    }
}
