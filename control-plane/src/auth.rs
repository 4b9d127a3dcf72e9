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

use crate::api::ApiError;
use crate::audit;
use crate::db::entities::{api_token, session, user};
use crate::state::AppState;

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
        "/healthz" | "/login" => return Access::Public,
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
            || path.starts_with("/api/v1/tokens/")
            || (path.starts_with("/api/v1/agents/")
                && ["/approve", "/reject", "/revoke", "/conflict/resolve"]
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

/// Stores a new API token bound to a role; returns its id.
pub async fn store_token(
    db: &sea_orm::DatabaseConnection,
    name: &str,
    role: &str,
    token: &str,
) -> Result<String, sea_orm::DbErr> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    api_token::Entity::insert(api_token::ActiveModel {
        id: Set(id.clone()),
        name: Set(name.into()),
        role: Set(role.into()),
        token_hash: Set(hash_token(token)),
        created_at: Set(bus_schema::now_ms()),
    })
    .exec(db)
    .await?;
    Ok(id)
}

// ---------------------------------------------------------------- passwords

pub fn hash_password(pw: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .expect("argon2 hashing with default parameters")
        .to_string()
}

pub fn verify_password(hash: &str, pw: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Checked where passwords are set (CLI, API).
pub fn check_new_password(pw: &str) -> Result<(), String> {
    if pw.chars().count() < 12 {
        return Err("passwords must have at least 12 characters".into());
    }
    if pw.len() > 1024 {
        return Err("passwords must be at most 1024 bytes".into());
    }
    Ok(())
}

pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?}: 1..=64 of letters, digits and - _ . @"
        ))
    }
}

/// Generates a password for `drover init` (shown once).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    Unknown(String),
    #[error("the last admin cannot be removed or demoted")]
    LastAdmin,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

pub async fn add_user(
    db: &DatabaseConnection,
    name: &str,
    role: &str,
    password: &str,
) -> Result<user::Model, UserError> {
    check_user_name(name).map_err(UserError::Invalid)?;
    Role::parse(role).ok_or_else(|| {
        UserError::Invalid(format!("role {role:?}: use admin, operator or viewer"))
    })?;
    check_new_password(password).map_err(UserError::Invalid)?;
    if find_user(db, name).await?.is_some() {
        return Err(UserError::Exists(name.into()));
    }
    let now = bus_schema::now_ms();
    let m = user::Model {
        id: uuid::Uuid::now_v7().simple().to_string(),
        name: name.into(),
        role: role.into(),
        password_hash: hash_password(password),
        totp_secret: None,
        totp_pending: None,
        created_at: now,
        updated_at: now,
    };
    user::Entity::insert(user::ActiveModel {
        id: Set(m.id.clone()),
        name: Set(m.name.clone()),
        role: Set(m.role.clone()),
        password_hash: Set(m.password_hash.clone()),
        totp_secret: Set(None),
        totp_pending: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec(db)
    .await?;
    Ok(m)
}

pub async fn find_user(
    db: &DatabaseConnection,
    name: &str,
) -> Result<Option<user::Model>, sea_orm::DbErr> {
    user::Entity::find()
        .filter(user::Column::Name.eq(name))
        .one(db)
        .await
}

pub async fn list_users(db: &DatabaseConnection) -> Result<Vec<user::Model>, sea_orm::DbErr> {
    user::Entity::find()
        .order_by_asc(user::Column::Name)
        .all(db)
        .await
}

async fn admins(db: &DatabaseConnection) -> Result<usize, sea_orm::DbErr> {
    Ok(user::Entity::find()
        .filter(user::Column::Role.eq("admin"))
        .all(db)
        .await?
        .len())
}

pub async fn set_role(db: &DatabaseConnection, name: &str, role: &str) -> Result<(), UserError> {
    Role::parse(role).ok_or_else(|| {
        UserError::Invalid(format!("role {role:?}: use admin, operator or viewer"))
    })?;
    let u = find_user(db, name)
        .await?
        .ok_or_else(|| UserError::Unknown(name.into()))?;
    if u.role == "admin" && role != "admin" && admins(db).await? <= 1 {
        return Err(UserError::LastAdmin);
    }
    user::Entity::update(user::ActiveModel {
        id: Set(u.id.clone()),
        role: Set(role.into()),
        updated_at: Set(bus_schema::now_ms()),
        ..Default::default()
    })
    .exec(db)
    .await?;
    // A changed role takes effect at once: end the user's sessions.
    end_sessions_of(db, &u.id).await?;
    Ok(())
}

pub async fn remove_user(db: &DatabaseConnection, name: &str) -> Result<(), UserError> {
    let u = find_user(db, name)
        .await?
        .ok_or_else(|| UserError::Unknown(name.into()))?;
    if u.role == "admin" && admins(db).await? <= 1 {
        return Err(UserError::LastAdmin);
    }
    end_sessions_of(db, &u.id).await?;
    user::Entity::delete_by_id(u.id).exec(db).await?;
    Ok(())
}

pub async fn set_password(
    db: &DatabaseConnection,
    user_id: &str,
    password: &str,
) -> Result<(), UserError> {
    check_new_password(password).map_err(UserError::Invalid)?;
    user::Entity::update(user::ActiveModel {
        id: Set(user_id.into()),
        password_hash: Set(hash_password(password)),
        updated_at: Set(bus_schema::now_ms()),
        ..Default::default()
    })
    .exec(db)
    .await?;
    Ok(())
}

pub async fn end_sessions_of(db: &DatabaseConnection, user_id: &str) -> Result<(), sea_orm::DbErr> {
    session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

// -------------------------------------------------------------------- TOTP

pub fn totp_for(secret_b32: &str, account: &str) -> Option<totp_rs::TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .ok()?;
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some("Drover".into()),
        account.to_string(),
    )
    .ok()
}

pub fn new_totp_secret() -> String {
    match totp_rs::Secret::generate_secret().to_encoded() {
        totp_rs::Secret::Encoded(s) => s,
        totp_rs::Secret::Raw(_) => unreachable!("to_encoded gives Encoded"),
    }
}

pub fn totp_ok(secret_b32: &str, account: &str, code: &str) -> bool {
    let code = code.trim();
    code.len() == 6
        && totp_for(secret_b32, account)
            .and_then(|t| t.check_current(code).ok())
            .unwrap_or(false)
}

// ------------------------------------------------------------ login limits

/// (user, address) -> (failures, window start).
type Failures = HashMap<(String, String), (u32, i64)>;
static FAILURES: LazyLock<std::sync::Mutex<Failures>> = LazyLock::new(Default::default);

/// True when `user` from `ip` has failed too often lately.
pub fn login_limited(user: &str, ip: &str) -> bool {
    let now = bus_schema::now_ms();
    let map = FAILURES.lock().expect("failures lock");
    map.get(&(user.to_string(), ip.to_string()))
        .map(|(n, since)| *n >= LOGIN_FAILURES_ALLOWED && now - since < LIMIT_WINDOW_MS)
        .unwrap_or(false)
}

pub fn login_failed(user: &str, ip: &str) {
    let now = bus_schema::now_ms();
    let mut map = FAILURES.lock().expect("failures lock");
    if map.len() > 100_000 {
        map.retain(|_, (_, since)| now - *since < LIMIT_WINDOW_MS);
    }
    let e = map
        .entry((user.to_string(), ip.to_string()))
        .or_insert((0, now));
    if now - e.1 >= LIMIT_WINDOW_MS {
        *e = (0, now);
    }
    e.0 += 1;
}

pub fn login_succeeded(user: &str, ip: &str) {
    FAILURES
        .lock()
        .expect("failures lock")
        .remove(&(user.to_string(), ip.to_string()));
}

// ----------------------------------------------------------------- sessions

/// Creates a session; returns the cookie token (never stored) and the
/// `Set-Cookie` value.
pub async fn create_session(
    db: &DatabaseConnection,
    user_id: &str,
    ip: &str,
) -> Result<String, sea_orm::DbErr> {
    let token = random_hex(32);
    let now = bus_schema::now_ms();
    session::Entity::insert(session::ActiveModel {
        id: Set(hash_token(&token)),
        user_id: Set(user_id.into()),
        csrf_token: Set(random_hex(32)),
        ip: Set(ip.into()),
        created_at: Set(now),
        last_seen: Set(now),
        expires_at: Set(now + SESSION_MAX_MS),
    })
    .exec(db)
    .await?;
    // Sweep expired sessions now and then.
    session::Entity::delete_many()
        .filter(session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    Ok(format!(
        "{SESSION_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_MAX_MS / 1000
    ))
}

pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn client_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

async fn from_token(state: &AppState, token: &str, ip: &str) -> Result<Principal, ApiError> {
    let found = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(hash_token(token)))
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    Ok(Principal {
        name: found.name,
        role: found.role,
        via: Via::Token { token_id: found.id },
        ip: ip.into(),
    })
}

async fn from_session(
    state: &AppState,
    token: &str,
    ip: &str,
) -> Result<Option<Principal>, ApiError> {
    let now = bus_schema::now_ms();
    let id = hash_token(token);
    let Some(s) = session::Entity::find_by_id(id.clone())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(None);
    };
    if s.expires_at <= now || s.last_seen + SESSION_IDLE_MS <= now {
        session::Entity::delete_by_id(id)
            .exec(&state.db)
            .await
            .map_err(ApiError::internal)?;
        return Ok(None);
    }
    let Some(u) = user::Entity::find_by_id(s.user_id.clone())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(None);
    };
    if now - s.last_seen > 30_000 {
        let _ = session::Entity::update(session::ActiveModel {
            id: Set(s.id.clone()),
            last_seen: Set(now),
            ..Default::default()
        })
        .exec(&state.db)
        .await;
    }
    Ok(Some(Principal {
        name: u.name,
        role: u.role,
        via: Via::Session {
            session_id: s.id,
            user_id: u.id,
            csrf: s.csrf_token,
        },
        ip: ip.into(),
    }))
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

fn denied(api: bool, status: StatusCode, msg: &str) -> Response {
    if api {
        ApiError::new(status, msg).into_response()
    } else {
        (status, crate::ui::message_page("Not allowed", msg)).into_response()
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
    let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !writes {
        req.extensions_mut().insert(who);
        return next.run(req).await;
    }

    // A change: read the body (for CSRF form fields and the audit detail).
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_AUDITED_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return denied(
                api,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large (at most 4 MiB)",
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
    let req_json: Value = audited_json(&bytes);
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

/// Minimal `application/x-www-form-urlencoded` parsing.
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
        String::from_utf8_lossy(&out).into_owned()
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

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of `{param}` in `template` as it appears in `path`.
fn path_param(template: &str, path: &str) -> String {
    template
        .split('/')
        .zip(path.split('/'))
        .find(|(t, _)| t.starts_with('{'))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default()
}

fn masked_params(action: &Value, params: &Value) -> Value {
    match action.as_str().and_then(bus_schema::catalogue::lookup) {
        Some(spec) => spec.mask(params),
        // Unknown actions were refused; keep nothing that could be secret.
        None => Value::String("***".into()),
    }
}

/// What an audit row says about a successful change: action, target and an
/// allow-list of request fields (secrets masked).
pub fn describe(
    method: &Method,
    template: &str,
    path: &str,
    req: &Value,
    resp: &Value,
) -> (String, String, Value) {
    let id = path_param(template, path);
    let m = method.as_str();
    match (m, template) {
        ("POST", "/api/v1/agents/{id}/commands") => (
            "command.create".into(),
            id,
            json!({
                "command_id": resp["id"],
                "action": req["action"],
                "params": masked_params(&req["action"], &req["params"]),
                "timeout_secs": req["timeout_secs"],
                "ttl_secs": req["ttl_secs"],
            }),
        ),
        ("POST", "/api/v1/commands/{id}/cancel") => ("command.cancel".into(), id, json!({})),
        // An idempotency key that named an earlier job created nothing.
        ("POST", "/api/v1/jobs") => (
            if resp["replayed"] == true {
                "job.replay"
            } else {
                "job.create"
            }
            .into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            json!({
                "action": req["action"],
                "selector": req["selector"],
                "params": masked_params(&req["action"], &req["params"]),
                "target_count": resp["target_count"],
                "idempotency_key": req["idempotency_key"],
            }),
        ),
        ("POST", "/api/v1/apps/{id}/install") => {
            // Input values may be secrets the manifest marks sensitive; the
            // trail keeps which inputs were given, never their values.
            let names: Vec<&String> = req["inputs"]
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            (
                if resp["replayed"] == true {
                    "app.install.replay"
                } else {
                    "app.install"
                }
                .into(),
                id,
                json!({ "selector": req["selector"], "inputs_given": names, "job_id": resp["job_id"], "ignored_inputs": resp["ignored_inputs"] }),
            )
        }
        ("POST", "/api/v1/tokens") => (
            "enroll_token.create".into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            json!({"uses": req["uses"], "expires": req["expires"], "labels": req["labels"], "auto_approve": req["auto_approve"]}),
        ),
        ("DELETE", "/api/v1/tokens/{id}") => ("enroll_token.revoke".into(), id, json!({})),
        ("POST", "/api/v1/agents/{id}/approve") => ("agent.approve".into(), id, json!({})),
        ("POST", "/api/v1/agents/{id}/reject") => ("agent.reject".into(), id, json!({})),
        ("POST", "/api/v1/agents/{id}/revoke") => ("agent.revoke".into(), id, json!({})),
        ("POST", "/api/v1/agents/{id}/conflict/resolve") => (
            "agent.conflict_resolve".into(),
            id,
            json!({"keep": req["keep"], "kept": resp["kept"]}),
        ),
        ("POST", "/api/v1/automation-keys") => (
            "automation_key.add".into(),
            req["name"].as_str().unwrap_or_default().to_string(),
            json!({"role": req["role"], "fingerprint": resp["fingerprint"]}),
        ),
        ("DELETE", "/api/v1/automation-keys/{id}") => {
            ("automation_key.revoke".into(), id, json!({}))
        }
        ("POST", "/api/v1/api-tokens") => (
            "api_token.create".into(),
            req["name"].as_str().unwrap_or_default().to_string(),
            json!({"role": req["role"], "id": resp["id"]}),
        ),
        ("DELETE", "/api/v1/api-tokens/{id}") => ("api_token.revoke".into(), id, json!({})),
        ("POST", "/api/v1/users") => (
            "user.add".into(),
            req["name"].as_str().unwrap_or_default().to_string(),
            json!({"role": req["role"]}),
        ),
        ("POST", "/api/v1/users/{id}/role") => {
            ("user.role".into(), id, json!({"role": req["role"]}))
        }
        ("DELETE", "/api/v1/users/{id}") => ("user.remove".into(), id, json!({})),
        ("POST", "/api/v1/account/password") => {
            ("account.password".into(), String::new(), json!({}))
        }
        ("POST", "/api/v1/account/totp") => ("account.totp_start".into(), String::new(), json!({})),
        ("POST", "/api/v1/account/totp/confirm") => {
            ("account.totp_enable".into(), String::new(), json!({}))
        }
        ("DELETE", "/api/v1/account/totp") => {
            ("account.totp_disable".into(), String::new(), json!({}))
        }
        ("POST", "/logout") => ("logout".into(), String::new(), json!({})),
        // Anything else (new routes): the route itself, no body.
        _ => (format!("{m} {template}"), id, json!({})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route registered anywhere in the sources (`.route(PATH,
    /// get(..).post(..))`), with the role each method needs. A new route that
    /// is not listed here fails the test, so its access is decided on purpose.
    #[test]
    fn every_route_has_a_decided_role() {
        use Role::*;
        let expected: &[(&str, &str, Access)] = &[
            ("GET", "/healthz", Access::Public),
            ("GET", "/login", Access::Public),
            ("POST", "/login", Access::Public),
            ("GET", "/ui/{file}", Access::Public),
            ("POST", "/logout", Access::Least(Viewer)),
            ("GET", "/", Access::Least(Viewer)),
            ("GET", "/fleet", Access::Least(Viewer)),
            ("GET", "/agents/{id}", Access::Least(Viewer)),
            ("GET", "/jobs", Access::Least(Viewer)),
            ("GET", "/jobs/{id}", Access::Least(Viewer)),
            ("GET", "/apps", Access::Least(Viewer)),
            ("GET", "/enrolment", Access::Least(Viewer)),
            ("GET", "/security", Access::Least(Viewer)),
            ("GET", "/audit", Access::Least(Viewer)),
            ("GET", "/account", Access::Least(Viewer)),
            ("GET", "/users", Access::Least(Admin)),
            ("GET", "/api/v1/agents", Access::Least(Viewer)),
            ("GET", "/api/v1/agents/{id}", Access::Least(Viewer)),
            ("GET", "/api/v1/agents/{id}/commands", Access::Least(Viewer)),
            (
                "POST",
                "/api/v1/agents/{id}/commands",
                Access::Least(Operator),
            ),
            ("GET", "/api/v1/commands/{id}", Access::Least(Viewer)),
            ("GET", "/api/v1/commands/{id}/output", Access::Least(Viewer)),
            (
                "POST",
                "/api/v1/commands/{id}/cancel",
                Access::Least(Operator),
            ),
            ("GET", "/api/v1/actions", Access::Least(Viewer)),
            ("GET", "/api/v1/tokens", Access::Least(Viewer)),
            ("POST", "/api/v1/tokens", Access::Least(Admin)),
            ("DELETE", "/api/v1/tokens/{id}", Access::Least(Admin)),
            ("POST", "/api/v1/agents/{id}/approve", Access::Least(Admin)),
            ("POST", "/api/v1/agents/{id}/reject", Access::Least(Admin)),
            ("POST", "/api/v1/agents/{id}/revoke", Access::Least(Admin)),
            (
                "POST",
                "/api/v1/agents/{id}/conflict/resolve",
                Access::Least(Admin),
            ),
            ("GET", "/api/v1/security", Access::Least(Viewer)),
            ("GET", "/api/v1/automation-keys", Access::Least(Admin)),
            ("POST", "/api/v1/automation-keys", Access::Least(Admin)),
            (
                "DELETE",
                "/api/v1/automation-keys/{id}",
                Access::Least(Admin),
            ),
            ("GET", "/api/v1/jobs", Access::Least(Viewer)),
            ("POST", "/api/v1/jobs", Access::Least(Operator)),
            ("POST", "/api/v1/jobs/preview", Access::Least(Viewer)),
            ("GET", "/api/v1/jobs/{id}", Access::Least(Viewer)),
            ("GET", "/api/v1/jobs/{id}/hosts", Access::Least(Viewer)),
            ("GET", "/api/v1/events", Access::Least(Viewer)),
            ("GET", "/api/v1/apps", Access::Least(Viewer)),
            ("GET", "/api/v1/apps/{id}", Access::Least(Viewer)),
            ("POST", "/api/v1/apps/{id}/install", Access::Least(Operator)),
            ("GET", "/api/v1/audit", Access::Least(Viewer)),
            ("GET", "/api/v1/users", Access::Least(Admin)),
            ("POST", "/api/v1/users", Access::Least(Admin)),
            ("DELETE", "/api/v1/users/{id}", Access::Least(Admin)),
            ("POST", "/api/v1/users/{id}/role", Access::Least(Admin)),
            ("GET", "/api/v1/api-tokens", Access::Least(Admin)),
            ("POST", "/api/v1/api-tokens", Access::Least(Admin)),
            ("DELETE", "/api/v1/api-tokens/{id}", Access::Least(Admin)),
            ("POST", "/api/v1/account/password", Access::Least(Viewer)),
            ("POST", "/api/v1/account/totp", Access::Least(Viewer)),
            ("DELETE", "/api/v1/account/totp", Access::Least(Viewer)),
            (
                "POST",
                "/api/v1/account/totp/confirm",
                Access::Least(Viewer),
            ),
        ];
        let found = routes_in_sources();
        assert!(found.len() > 40, "found only {} routes", found.len());
        for (method, path) in &found {
            let want = expected
                .iter()
                .find(|(m, p, _)| m == method && p == path)
                .unwrap_or_else(|| {
                    panic!("route {method} {path} has no decided role: add it to this test's table")
                });
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(required(&m, path), want.2, "{method} {path}");
        }
        // And the table's entries hold, present or not (routes landing later).
        for (method, path, want) in expected {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(required(&m, path), *want, "{method} {path}");
        }
    }

    /// (method, full path) of every `.route(...)` in `src/`, following
    /// `.nest("/api/v1", ...)` by file: files under `src/api/` are nested.
    fn routes_in_sources() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![];
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
        let verbs = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
        let mut out = vec![];
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let nested = f.starts_with(root.join("api"));
            for c in route.captures_iter(&text) {
                let path = c[1].to_string();
                // The handler expression: up to the `)` closing `.route(`.
                let start = c.get(0).unwrap().start() + ".route(".len();
                let mut depth = 1;
                let mut end = start;
                for (i, ch) in text[start..].char_indices() {
                    match ch {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        end = start + i;
                        break;
                    }
                }
                let full = if nested && !path.starts_with("/api/") {
                    format!("/api/v1{path}")
                } else {
                    path
                };
                for v in verbs.captures_iter(&text[start..end]) {
                    out.push((v[1].to_uppercase(), full.clone()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn roles_order_and_csrf_compare() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_eq!(
            form_urlencoded_pairs(b"a=1&csrf=x%2By&b=hello+world"),
            vec![
                ("a".into(), "1".into()),
                ("csrf".into(), "x+y".into()),
                ("b".into(), "hello world".into())
            ]
        );
    }

    #[test]
    fn command_params_are_masked_in_the_trail() {
        let spec = bus_schema::catalogue::all()
            .iter()
            .find(|a| !a.sensitive.is_empty())
            .expect("an action with a sensitive field");
        let field = spec.sensitive[0];
        let req = json!({"action": spec.name, "params": {field: "hunter2-secret"}});
        let (_, _, d) = describe(
            &Method::POST,
            "/api/v1/agents/{id}/commands",
            "/api/v1/agents/a1/commands",
            &req,
            &json!({"id": "c1"}),
        );
        assert!(!d.to_string().contains("hunter2-secret"), "{d}");
        assert_eq!(d["command_id"], "c1");
        let (_, _, d) = describe(
            &Method::POST,
            "/api/v1/apps/{id}/install",
            "/api/v1/apps/wp/install",
            &json!({"inputs": {"db_password": "hunter2-secret"}, "selector": {"all": true}}),
            &json!({"job_id": "j1"}),
        );
        assert!(!d.to_string().contains("hunter2-secret"), "{d}");
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterY"));
    }
}
