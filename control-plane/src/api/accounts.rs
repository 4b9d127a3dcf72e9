//! Routes for accounts: users (admin), API tokens bound to a role (admin),
//! your own password and TOTP, and the audit trail.
//!
//! Roles are not checked here: [`crate::auth::guard`] does it for every
//! route, and records every successful change in the audit trail.

use super::JsonBody;
use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use sea_orm::{EntityTrait, QueryOrder};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::audit;
use crate::auth::{self, Principal, Role, UserError, Via};
use crate::db::entities::{api_token, user};
use crate::state::AppState;

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        let status = match &e {
            UserError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            UserError::Exists(_) | UserError::LastAdmin => StatusCode::CONFLICT,
            UserError::Unknown(_) => StatusCode::NOT_FOUND,
            UserError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

pub fn user_json(u: &user::Model) -> Value {
    json!({
        "id": u.id, "name": u.name, "role": u.role,
        "totp": u.totp_secret.is_some(),
        "created_at": u.created_at, "updated_at": u.updated_at,
    })
}

pub async fn list_users(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = auth::list_users(&state.db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "users": list.iter().map(user_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The login name.
    name: String,
    /// `viewer`, `operator` or `admin`.
    role: String,
    /// The initial password (never stored in clear).
    password: String,
}

pub async fn add_user(
    State(state): State<AppState>,
    body: JsonBody<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(b) = body;
    let u = auth::add_user(&state.db, &b.name, &b.role, &b.password).await?;
    Ok((StatusCode::CREATED, Json(user_json(&u))))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// `viewer`, `operator` or `admin`.
    role: String,
}

/// `{id}` is the user's name.
pub async fn set_role(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: JsonBody<SetRole>,
) -> Result<Json<Value>, ApiError> {
    let JsonBody(b) = body;
    auth::set_role(&state.db, &name, &b.role).await?;
    Ok(Json(json!({ "name": name, "role": b.role })))
}

pub async fn remove_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth::remove_user(&state.db, &name).await?;
    Ok(Json(json!({ "name": name, "removed": true })))
}

// ---------------------------------------------------------------- API tokens

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    /// A name to recognise the token by.
    name: String,
    /// `viewer`, `operator` or `admin`: what the token may do.
    role: String,
    /// Seconds from now until the token stops working (at most
    /// [`MAX_API_TOKEN_LIFE_SECS`]). Give this or `expires_at`, or neither
    /// for a token that never expires.
    #[serde(default)]
    expires_in_secs: Option<i64>,
    /// When the token stops working, ms since the epoch (in the future).
    #[serde(default)]
    expires_at: Option<i64>,
}

/// The longest life an API token may be given: ten years, in seconds.
pub const MAX_API_TOKEN_LIFE_SECS: i64 = 10 * 365 * 86_400;

/// The expiry (ms since the epoch) a creation request asks for, or why it
/// is refused: both fields given, not positive, in the past, or too far.
pub fn api_token_expiry(
    expires_in_secs: Option<i64>,
    expires_at: Option<i64>,
    now: i64,
) -> Result<Option<i64>, String> {
    let at = match (expires_in_secs, expires_at) {
        (Some(_), Some(_)) => {
            return Err("give expires_in_secs or expires_at, not both".into());
        }
        (Some(s), None) => {
            if s <= 0 || s > MAX_API_TOKEN_LIFE_SECS {
                return Err(format!(
                    "expires_in_secs must be 1..={MAX_API_TOKEN_LIFE_SECS} (e.g. 2592000 for 30 days)"
                ));
            }
            now + s * 1000
        }
        (None, Some(at)) => at,
        (None, None) => return Ok(None),
    };
    if at <= now {
        return Err(
            "expires_at is in the past; give a time in the future (ms since the epoch)".into(),
        );
    }
    if at - now > MAX_API_TOKEN_LIFE_SECS * 1000 {
        return Err("expires_at is more than ten years away".into());
    }
    Ok(Some(at))
}

pub fn api_token_json(t: &api_token::Model) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "expired": t.expires_at.is_some_and(|e| e <= bus_schema::now_ms()),
        "last_used_at": t.last_used_at,
    })
}

pub async fn create_api_token(
    State(state): State<AppState>,
    body: JsonBody<NewApiToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(b) = body;
    auth::check_user_name(&b.name)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    if Role::parse(&b.role).is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("role {:?}: use admin, operator or viewer", b.role),
        ));
    }
    let expires_at = api_token_expiry(b.expires_in_secs, b.expires_at, bus_schema::now_ms())
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let token = auth::new_token();
    let id = auth::store_token_expiring(&state.db, &b.name, &b.role, &token, expires_at)
        .await
        .map_err(ApiError::internal)?;
    // The only time the token is ever shown.
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": id, "name": b.name, "role": b.role, "token": token, "expires_at": expires_at }),
        ),
    ))
}

pub async fn list_api_tokens(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = api_token::Entity::find()
        .order_by_asc(api_token::Column::CreatedAt)
        .all(&state.db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "tokens": list.iter().map(api_token_json).collect::<Vec<_>>() }),
    ))
}

pub async fn revoke_api_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = api_token::Entity::delete_by_id(id.clone())
        .exec(&state.db)
        .await
        .map_err(ApiError::internal)?;
    if r.rows_affected == 0 {
        return Err(ApiError::not_found(format!(
            "no API token {id}; list them with `drover api-tokens list`"
        )));
    }
    Ok(Json(json!({ "id": id, "revoked": true })))
}

// ------------------------------------------------------------- own account

/// After a password or TOTP change: every other session of the user ends;
/// the caller's own stays. Returns how many ended.
async fn end_others(state: &AppState, who: &Principal, user_id: &str) -> Result<u64, ApiError> {
    let keep = match &who.via {
        Via::Session { session_id, .. } => Some(session_id.as_str()),
        Via::Token { .. } => None,
    };
    auth::end_other_sessions(&state.db, user_id, keep)
        .await
        .map_err(ApiError::internal)
}

fn session_user(who: &Principal) -> Result<&str, ApiError> {
    match &who.via {
        Via::Session { user_id, .. } => Ok(user_id),
        Via::Token { .. } => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "this is about a web UI account: log in to the web UI",
        )),
    }
}

async fn me(state: &AppState, who: &Principal) -> Result<user::Model, ApiError> {
    let id = session_user(who)?;
    user::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unauthorized("your account no longer exists"))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current: String,
    new: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: JsonBody<ChangePassword>,
) -> Result<Json<Value>, ApiError> {
    let JsonBody(b) = body;
    let u = me(&state, &who).await?;
    if !auth::verify_password(&u.password_hash, &b.current) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the current password is not right",
        ));
    }
    auth::set_password(&state.db, &u.id, &b.new).await?;
    let ended = end_others(&state, &who, &u.id).await?;
    Ok(Json(json!({ "changed": true, "sessions_ended": ended })))
}

/// Starts enabling TOTP: a new secret, shown once, confirmed with a code.
pub async fn totp_start(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    use sea_orm::ActiveValue::Set;
    let u = me(&state, &who).await?;
    let secret = auth::new_totp_secret();
    let url = auth::totp_for(&secret, &u.name)
        .map(|t| t.get_url())
        .unwrap_or_default();
    user::Entity::update(user::ActiveModel {
        id: Set(u.id),
        totp_pending: Set(Some(secret.clone())),
        ..Default::default()
    })
    .exec(&state.db)
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(json!({ "secret": secret, "otpauth_url": url })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// The 6-digit code from the authenticator app.
    code: String,
}

pub async fn totp_confirm(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: JsonBody<TotpCode>,
) -> Result<Json<Value>, ApiError> {
    use sea_orm::ActiveValue::Set;
    let JsonBody(b) = body;
    let u = me(&state, &who).await?;
    let pending = u.totp_pending.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "start enabling two-factor authentication first",
        )
    })?;
    if !auth::totp_ok(&pending, &u.name, &b.code) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "that code is not right: check the time on your device and try the current code",
        ));
    }
    user::Entity::update(user::ActiveModel {
        id: Set(u.id.clone()),
        totp_secret: Set(Some(pending)),
        totp_pending: Set(None),
        ..Default::default()
    })
    .exec(&state.db)
    .await
    .map_err(ApiError::internal)?;
    let ended = end_others(&state, &who, &u.id).await?;
    Ok(Json(json!({ "totp": true, "sessions_ended": ended })))
}

pub async fn totp_disable(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: JsonBody<TotpCode>,
) -> Result<Json<Value>, ApiError> {
    use sea_orm::ActiveValue::Set;
    let JsonBody(b) = body;
    let u = me(&state, &who).await?;
    let Some(secret) = u.totp_secret.clone() else {
        return Ok(Json(json!({ "totp": false })));
    };
    if !auth::totp_ok(&secret, &u.name, &b.code) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "that code is not right",
        ));
    }
    user::Entity::update(user::ActiveModel {
        id: Set(u.id.clone()),
        totp_secret: Set(None),
        totp_pending: Set(None),
        ..Default::default()
    })
    .exec(&state.db)
    .await
    .map_err(ApiError::internal)?;
    let ended = end_others(&state, &who, &u.id).await?;
    Ok(Json(json!({ "totp": false, "sessions_ended": ended })))
}

// ------------------------------------------------------------------- audit

/// `GET /api/v1/audit?actor=&action=&since=&until=&limit=&format=csv|json`.
pub async fn audit_list(
    State(state): State<AppState>,
    Query(f): Query<audit::Filter>,
) -> Result<Response, ApiError> {
    let rows = audit::list(&state.db, &f)
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    match f.format.as_deref().unwrap_or("json") {
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"drover-audit.csv\"",
                ),
            ],
            audit::to_csv(&rows),
        )
            .into_response()),
        "json" => Ok(Json(
            json!({ "entries": rows.iter().map(audit::row_json).collect::<Vec<_>>() }),
        )
        .into_response()),
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("format {other:?}: use json or csv"),
        )),
    }
}
