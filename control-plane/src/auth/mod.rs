//! Who is calling and what they may do — for every page and API route, in
//! one place ([`guard`], a middleware around the whole router).
//!
//! - API tokens (`Authorization: Bearer drv_…`), stored as SHA-256 hashes and
//!   bound to a role. `drover init` creates the bootstrap admin token (for
//!   set-up; day-to-day automation gets its own token with the least role).
//! - Browser sessions: a random token in the `drover_session` cookie
//!   (`HttpOnly; Secure; SameSite=Strict`), stored hashed, with an absolute
//!   expiry and an idle timeout. Every state-changing request made with a
//!   session must carry the session's CSRF token (`X-CSRF-Token` header or
//!   `csrf` form field), compared in constant time.
//! - Roles: [`required`] maps method + route to the least role; a unit test
//!   walks every route registered in the sources so none is forgotten.
//! - Audit: every successful state-changing request is recorded by [`guard`]
//!   (who, what, target, masked detail, client IP) — see [`crate::audit`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::{
    body::{to_bytes, Body},
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit;
use crate::db::entities::{api_token, user};
use crate::http::error::ApiError;
use crate::state::AppState;

mod describe;
mod login_csrf;
mod second_factor;
mod session;
mod totp;
mod users;

pub use describe::*;
pub use login_csrf::*;
pub use second_factor::*;
pub use session::*;
pub use totp::*;
pub use users::*;

pub const SESSION_COOKIE: &str = "drover_session";
/// A session ends this long after login, whatever happens.
pub const SESSION_MAX_MS: i64 = 12 * 3600 * 1000;
/// ... or after this long without a request.
pub const SESSION_IDLE_MS: i64 = 3600 * 1000;
/// Failed logins allowed per user and client address within [`LIMIT_WINDOW_MS`].
pub const LOGIN_FAILURES_ALLOWED: u32 = 5;
pub const LIMIT_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Largest request body the audit layer reads (larger ones are refused).
const MAX_AUDITED_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Via {
    Token {
        /// The API token's row id (names need not be unique).
        token_id: String,
    },
    Session {
        /// SHA-256 of the cookie token (the session row's id).
        session_id: String,
        user_id: String,
        csrf: String,
    },
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: String,
    pub via: Via,
    /// The client's address, for the audit trail.
    pub ip: String,
}

impl Principal {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }
    pub fn can(&self, r: Role) -> bool {
        self.role() >= r
    }
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf, .. } => csrf,
            Via::Token { .. } => "",
        }
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Least(Role),
}

/// The least role for `method` on the route `path` (the route's template,
/// e.g. `/api/v1/agents/{id}/approve`). The rule: reading needs viewer,
/// changing needs operator, and these need admin: registration tokens, API
/// tokens, automation keys, users, approving / rejecting / revoking agents.
pub fn required(method: &Method, path: &str) -> Access {
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    match path {
        "/healthz" | "/readyz" | "/login" => return Access::Public,
        // One-line host onboarding: the script, the signed packages and the
        // token check that hands out the enrolment credentials (each
        // rate-limited per address by its handler).
        "/install.sh" | "/releases/index" | "/releases/{name}" | "/api/v1/enroll/bootstrap" => {
            return Access::Public
        }
        p if p.starts_with("/ui/") => return Access::Public,
        // Your own session and account.
        "/logout" | "/account" => return Access::Least(Role::Viewer),
        p if p.starts_with("/api/v1/account") => return Access::Least(Role::Viewer),
        // Counting the hosts a selector matches changes nothing.
        "/api/v1/jobs/preview" => return Access::Least(Role::Viewer),
        _ => {}
    }
    let admin_always = [
        "/api/v1/api-tokens",
        "/api/v1/users",
        "/api/v1/automation-keys",
        "/users",
    ];
    if admin_always
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return Access::Least(Role::Admin);
    }
    if !read {
        let admin_writes = path == "/api/v1/tokens"
            // Agent releases: publishing and yanking decide what every
            // host may run.
            || path == "/api/v1/releases"
            || path == "/api/v1/releases/{version}/yank"
            // Key rotation changes what every host trusts.
            || path == "/api/v1/keys/rotate"
            || path.starts_with("/api/v1/tokens/")
            || (path.starts_with("/api/v1/agents/")
                && [
                    "/approve",
                    "/reject",
                    "/revoke",
                    // Decommissioning revokes too (`inventory`).
                    "/decommission",
                    "/conflict/resolve",
                    // Trusting a host's new rootd key, which its secrets
                    // are then sealed to.
                    "/box-key/accept",
                ]
                    .iter()
                    .any(|s| path.ends_with(s)));
        if admin_writes {
            return Access::Least(Role::Admin);
        }
        return Access::Least(Role::Operator);
    }
    Access::Least(Role::Viewer)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: `drv_` + 32 random bytes in hex.
pub fn new_token() -> String {
    format!("drv_{}", random_hex(32))
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Stores a new API token bound to a role that never expires; returns its
/// id.
pub async fn store_token(
    db: &sea_orm::DatabaseConnection,
    name: &str,
    role: &str,
    token: &str,
) -> Result<String, sea_orm::DbErr> {
    store_token_expiring(db, name, role, token, None).await
}

/// Stores a new API token bound to a role, expiring at `expires_at` (ms
/// since the epoch; `None`: never); returns its id.
pub async fn store_token_expiring(
    db: &sea_orm::DatabaseConnection,
    name: &str,
    role: &str,
    token: &str,
    expires_at: Option<i64>,
) -> Result<String, sea_orm::DbErr> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    api_token::Entity::insert(api_token::ActiveModel {
        id: Set(id.clone()),
        name: Set(name.into()),
        role: Set(role.into()),
        token_hash: Set(hash_token(token)),
        created_at: Set(bus_schema::now_ms()),
        expires_at: Set(expires_at),
        last_used_at: Set(None),
    })
    .exec(db)
    .await?;
    Ok(id)
}

/// Answered with JSON errors (401/403), not a redirect to the login page:
/// the API, and `/metrics` (a scraper cannot log in).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

fn denied(api: bool, status: StatusCode, msg: &str) -> Response {
    if api {
        ApiError::new(status, msg).into_response()
    } else {
        (status, crate::ui::html::message_page("Not allowed", msg)).into_response()
    }
}

/// A request or response body as JSON for the audit trail (Null when it is
/// not JSON), decoded within the codec's depth and length limits.
fn audited_json(bytes: &[u8]) -> Value {
    let limits = bus_schema::codec::Limits::MESSAGE.with_max_bytes(MAX_AUDITED_BODY);
    bus_schema::codec::decode_with(bytes, Some(bus_schema::CONTENT_TYPE_JSON), limits)
        .unwrap_or(Value::Null)
}

/// The one gate in front of every route: authenticates, checks the role the
/// route needs, checks CSRF for session writes, and records successful
/// changes in the audit trail.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| raw_path.clone());
    let need = match required(&method, &template) {
        Access::Public => return next.run(req).await,
        Access::Least(r) => r,
    };
    let api = is_api(&raw_path);
    let ip = client_ip(&req);

    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_string());
    let who = if let Some(t) = bearer {
        match from_token(&state, &t, &ip).await {
            Ok(p) => Some(p),
            Err(e) => return e.into_response(),
        }
    } else if let Some(c) = cookie_value(req.headers(), SESSION_COOKIE).map(str::to_string) {
        match from_session(&state, &c, &ip).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    let Some(who) = who else {
        if api {
            return ApiError::unauthorized("not logged in: log in to the web UI, or send `Authorization: Bearer <token>` (`drover api-tokens create` makes one; the bootstrap admin token is in <data_dir>/admin.token)").into_response();
        }
        let next_url = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        return Redirect::to(&format!("/login?next={}", urlencode(next_url))).into_response();
    };
    if !who.can(need) {
        return denied(
            api,
            StatusCode::FORBIDDEN,
            &format!(
                "{} {} needs the {} role; {} is {}",
                method,
                raw_path,
                need.as_str(),
                who.name,
                who.role
            ),
        );
    }
    match blocked_by_totp(&state, &who, need).await {
        Ok(false) => {}
        Ok(true) => return denied(api, StatusCode::FORBIDDEN, TOTP_REQUIRED),
        Err(e) => return e.into_response(),
    }
    let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !writes {
        req.extensions_mut().insert(who);
        return next.run(req).await;
    }

    // A change: read the body (for CSRF form fields and the audit detail).
    let (parts, body) = req.into_parts();
    // An agent binary is the one body larger than 4 MiB (raw bytes, never
    // audited as they are: the release's description comes from the answer).
    let binary = template == "/api/v1/releases";
    let limit = if binary {
        crate::agent_releases::store::MAX_BINARY_BYTES
    } else {
        MAX_AUDITED_BODY
    };
    let bytes = match to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return denied(
                api,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body too large (at most {} MiB)", limit >> 20),
            )
        }
    };
    if let Via::Session { csrf, .. } = &who.via {
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| form_field(&parts.headers, &bytes, "csrf"));
        let ok = sent
            .map(|s| bool::from(s.as_bytes().ct_eq(csrf.as_bytes())))
            .unwrap_or(false);
        if !ok {
            return denied(
                api,
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and try again",
            );
        }
    }
    let req_json: Value = if binary {
        Value::Null
    } else {
        audited_json(&bytes)
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(who.clone());
    let resp = next.run(req).await;
    if !resp.status().is_success() || template == "/api/v1/jobs/preview" {
        return resp;
    }
    // Successful change: record it. Responses of changes are small JSON.
    let (rparts, rbody) = resp.into_parts();
    let rbytes = to_bytes(rbody, MAX_AUDITED_BODY).await.unwrap_or_default();
    let resp_json: Value = audited_json(&rbytes);
    let (action, target, detail) = describe(&method, &template, &raw_path, &req_json, &resp_json);
    if let Err(e) = audit::record(
        &state.db,
        audit::Entry::new(&who.name, &action, &target, &who.ip, detail),
    )
    .await
    {
        tracing::error!(error = %e, %action, "could not record the audit entry");
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

fn form_field(headers: &HeaderMap, body: &[u8], name: &str) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return None;
    }
    form_urlencoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Minimal `application/x-www-form-urlencoded` parsing. A NUL (`%00` or a
/// raw byte) decodes as U+FFFD: no stored name or secret can hold one
/// (`http::nul` refuses them in URLs and JSON), and PostgreSQL cannot
/// compare one, so the sign-in form's `name=a%00` is an unknown name like
/// any other (a counted failed attempt), not a database error.
pub fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    let dec = |s: &str| -> String {
        let s = s.replace('+', " ");
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).replace('\0', "\u{FFFD}")
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(kv), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests;
