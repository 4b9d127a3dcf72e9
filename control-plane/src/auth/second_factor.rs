//! The option `auth_require_2fa_admins`: an admin account without a
//! confirmed TOTP secret may log in, but is sent to its account page and
//! refused every admin-only route (403, saying how to set TOTP up) until it
//! confirms a code. It owns only that decision; TOTP itself is in
//! [`super::totp`], the gate that asks is [`super::guard`]. API tokens are
//! not accounts (no user behind them) and are not affected.

use sea_orm::EntityTrait;

use super::{Principal, Role, Via};
use crate::config::Config;
use crate::db::entities::user;
use crate::http::error::ApiError;
use crate::state::AppState;

/// What an admin without TOTP is told when the option is on.
pub const TOTP_REQUIRED: &str = "two-factor authentication is required for admins: open your account page (/account), set up an authenticator app and confirm a code (or POST /api/v1/account/totp, then /api/v1/account/totp/confirm with {\"code\": \"123456\"}), then try again";

/// True when `u` is an admin who must set up TOTP before using admin powers.
pub fn must_enrol_totp(cfg: &Config, u: &user::Model) -> bool {
    cfg.auth_require_2fa_admins
        && Role::parse(&u.role) == Some(Role::Admin)
        && u.totp_secret.is_none()
}

/// For a route that needs `need`: `Ok(true)` when `who` (a session) must
/// set up TOTP first. Reads the user only when it matters (option on, admin
/// route, session of an admin).
pub async fn blocked_by_totp(
    state: &AppState,
    who: &Principal,
    need: Role,
) -> Result<bool, ApiError> {
    if !state.cfg.auth_require_2fa_admins || need != Role::Admin || who.role() != Role::Admin {
        return Ok(false);
    }
    let Via::Session { user_id, .. } = &who.via else {
        return Ok(false);
    };
    let u = user::Entity::find_by_id(user_id.clone())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?;
    Ok(u.map(|u| must_enrol_totp(&state.cfg, &u)).unwrap_or(true))
}
