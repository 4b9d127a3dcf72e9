//! `POST /api/v1/enroll/bootstrap` (public, rate-limited per address): a
//! host presents a registration token and gets what `install.sh` does not
//! carry, the enrolment-only broker user's credentials (`enroll.creds`) and
//! nothing else secret. (`GET /api/v1/releases`, the artifacts, is
//! `api::agent_releases`'s.)
//!
//! The token is checked, not used up (the agent's enrolment uses it). An
//! unknown or revoked token is 401, an expired or used-up one 410. Every
//! answer for a known token is audited by the token's id, never its secret.
//! Owns only the HTTP side; the rules are `install.rs`'s and `tokens.rs`'s.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{ConnectInfo, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde_json::{json, Value};

use super::ApiError;
use crate::install::{self, BOOTSTRAP_RATE};
use crate::state::AppState;
use crate::tokens::TokenRefusal;

/// Largest bootstrap body read.
const MAX_BODY: usize = 4096;

pub fn routes() -> Router<AppState> {
    Router::new().route("/enroll/bootstrap", post(bootstrap))
}

/// The token from `Authorization: Bearer`, a JSON body `{"token": ...}` or
/// a form body `token=...`.
fn presented_token(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_string());
    }
    let limits = bus_schema::codec::Limits::MESSAGE.with_max_bytes(MAX_BODY);
    if let Ok(v) =
        bus_schema::codec::decode_with::<Value>(body, Some(bus_schema::CONTENT_TYPE_JSON), limits)
    {
        return v["token"].as_str().map(str::to_string);
    }
    crate::auth::form_urlencoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// Answers `text/plain` when the client asks for it (`install.sh` does),
/// JSON otherwise.
fn answer(plain: bool, status: StatusCode, message: &str, json: Value) -> Response {
    if plain {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response()
    } else if status.is_success() {
        (status, Json(json)).into_response()
    } else {
        ApiError::new(status, message).into_response()
    }
}

async fn bootstrap(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let plain = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/plain"));
    let ip = addr.ip().to_string();
    if !install::allow("bootstrap", BOOTSTRAP_RATE, &ip) {
        return answer(
            plain,
            StatusCode::TOO_MANY_REQUESTS,
            "too many bootstrap requests from this address; try again in a minute",
            Value::Null,
        );
    }
    if body.len() > MAX_BODY {
        return answer(
            plain,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
            Value::Null,
        );
    }
    let Some(secret) = presented_token(&headers, &body).filter(|t| !t.is_empty()) else {
        return answer(
            plain,
            StatusCode::BAD_REQUEST,
            "no registration token: send `Authorization: Bearer drvreg_...` or {\"token\": \"drvreg_...\"}",
            Value::Null,
        );
    };
    let checked = match crate::tokens::check(&state.db, &secret).await {
        Ok(c) => c,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let (token, refusal) = match checked {
        Ok(t) => (t.id, None),
        Err(r) => {
            let id = match &r {
                TokenRefusal::Unknown => None,
                TokenRefusal::Revoked(id)
                | TokenRefusal::Expired(id)
                | TokenRefusal::UsedUp(id) => Some(id.clone()),
            };
            (id.unwrap_or_default(), Some(r))
        }
    };
    if let Some(r) = refusal {
        let status = match r {
            TokenRefusal::Unknown | TokenRefusal::Revoked(_) => StatusCode::UNAUTHORIZED,
            TokenRefusal::Expired(_) | TokenRefusal::UsedUp(_) => StatusCode::GONE,
        };
        if !token.is_empty() {
            audit(&state, &token, &ip, &r.to_string()).await;
        }
        return answer(plain, status, &r.to_string(), Value::Null);
    }
    let creds = match std::fs::read_to_string(state.cfg.enroll_creds_path()) {
        Ok(c) => c,
        Err(e) => {
            return ApiError::internal(format!(
                "reading {}: {e}",
                state.cfg.enroll_creds_path().display()
            ))
            .into_response()
        }
    };
    audit(&state, &token, &ip, "ok").await;
    // Credentials: no cache on the way may keep them.
    let no_store = (header::CACHE_CONTROL, "no-store");
    if plain {
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                no_store,
            ],
            creds,
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [no_store],
        Json(json!({ "token_id": token, "enroll_creds": creds })),
    )
        .into_response()
}

async fn audit(state: &AppState, token_id: &str, ip: &str, result: &str) {
    let entry = crate::audit::Entry::new(
        &format!("token:{token_id}"),
        "enroll.bootstrap",
        token_id,
        ip,
        json!({ "token_id": token_id, "result": result }),
    );
    if let Err(e) = crate::audit::record(&state.db, entry).await {
        tracing::error!(error = %e, "could not record the bootstrap in the audit trail");
    }
}
