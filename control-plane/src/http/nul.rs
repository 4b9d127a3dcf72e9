//! NUL characters are refused at the door: in the URL (`%00` in the path or
//! the query) here, in JSON bodies by `api::body::JsonBody`. No Drover name,
//! filter or text can hold one, and PostgreSQL cannot store or even compare
//! one (`invalid byte sequence for encoding "UTF8": 0x00`: a 500 on
//! PostgreSQL where SQLite answered), so both backends refuse the same
//! input with the same 400 and nothing is written.
//!
//! Owns only that check; the other input rules are each handler's.

use axum::{
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

/// What the refusal says (also used for JSON bodies).
pub const REFUSAL: &str = "the request contains a NUL character (%00 or \\u0000); no name, \
filter or text in Drover can hold one: remove it and send the request again";

/// Whether a URL's path or query spells a NUL (`%00`; a raw NUL cannot be
/// in a URI).
pub fn url_has_nul(uri: &axum::http::Uri) -> bool {
    uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00"))
}

/// Middleware: 400 `{"error": REFUSAL}` for a URL with a NUL, before the
/// gate (nothing is looked up, logged or audited with it).
pub async fn refuse(req: Request, next: Next) -> Response {
    if url_has_nul(req.uri()) {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": REFUSAL }))).into_response();
    }
    next.run(req).await
}

/// Whether JSON text holds a NUL in a string: a `\u0000` escape whose
/// backslash is not itself escaped (a raw NUL byte is not valid JSON and
/// the decoder refuses it anyway).
pub fn json_has_nul(bytes: &[u8]) -> bool {
    const ESC: &[u8] = b"\\u0000";
    (0..bytes.len().saturating_sub(ESC.len() - 1)).any(|i| {
        bytes[i..i + ESC.len()].eq_ignore_ascii_case(ESC)
            && bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let nul: axum::http::Uri = "/api/v1/updates/history?package=a%00b".parse().unwrap();
        assert!(url_has_nul(&nul));
        let path: axum::http::Uri = "/api/v1/agents/a%00".parse().unwrap();
        assert!(url_has_nul(&path));
        let fine: axum::http::Uri = "/api/v1/updates/history?package=a%2500".parse().unwrap();
        assert!(!url_has_nul(&fine), "%25 is a percent sign, then 00");
    }

    #[test]
    fn json_escapes() {
        assert!(json_has_nul(br#"{"name":"a\u0000b"}"#));
        assert!(json_has_nul(br#"{"name":"\U0000"}"#));
        assert!(json_has_nul(br#"{"a\u0000":1}"#));
        assert!(
            json_has_nul(br#"{"name":"\\\u0000"}"#),
            "escaped backslash, then NUL"
        );
        assert!(
            !json_has_nul(br#"{"name":"\\u0000"}"#),
            "a backslash, then text u0000"
        );
        assert!(!json_has_nul(br#"{"name":"\u0001"}"#));
        assert!(!json_has_nul(b""));
    }
}
