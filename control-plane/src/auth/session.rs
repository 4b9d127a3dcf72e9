//! Browser sessions and logins: failed-login limits per user and address,
//! creating a session (cookie + CSRF token), and turning a bearer token or a
//! session cookie into a [`Principal`]. Role checks happen in the gate.

use super::*;
use crate::db::entities::session;
use sea_orm::sea_query::Expr;
use sea_orm::Condition;

/// (user, address) -> (failures, window start).
type Failures = HashMap<(String, String), (u32, i64)>;
pub(super) static FAILURES: LazyLock<std::sync::Mutex<Failures>> = LazyLock::new(Default::default);

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

pub(super) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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

/// How often at most an API token's `last_used_at` is written, ms.
pub const LAST_USED_EVERY_MS: i64 = 60_000;

/// True when a token last used at `last` (ms) should have `now` recorded.
pub fn last_used_due(last: Option<i64>, now: i64) -> bool {
    last.is_none_or(|l| now - l >= LAST_USED_EVERY_MS)
}

pub(super) async fn from_token(
    state: &AppState,
    token: &str,
    ip: &str,
) -> Result<Principal, ApiError> {
    let found = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(hash_token(token)))
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    let now = bus_schema::now_ms();
    if let Some(exp) = found.expires_at.filter(|e| *e <= now) {
        return Err(ApiError::unauthorized(format!(
            "API token {} ({}) expired at {} (ms since the epoch); create a new one with \
             `drover api-tokens create {} --role {} --expires 30d` and revoke this one",
            found.id, found.name, exp, found.name, found.role
        )));
    }
    if last_used_due(found.last_used_at, now) {
        // Conditional, so concurrent requests write it once; a failure here
        // must not refuse the request.
        let _ = api_token::Entity::update_many()
            .col_expr(api_token::Column::LastUsedAt, Expr::value(now))
            .filter(api_token::Column::Id.eq(found.id.clone()))
            .filter(
                Condition::any()
                    .add(api_token::Column::LastUsedAt.is_null())
                    .add(api_token::Column::LastUsedAt.lte(now - LAST_USED_EVERY_MS)),
            )
            .exec(&state.db)
            .await;
    }
    Ok(Principal {
        name: found.name,
        role: found.role,
        via: Via::Token { token_id: found.id },
        ip: ip.into(),
    })
}

pub(super) async fn from_session(
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
