//! The login form, `POST /login` (password, then TOTP when the account has
//! it) and `POST /logout`. Password and TOTP checks belong to
//! [`crate::auth`]; this file only renders and routes.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    http::{header, StatusCode},
    response::{Html, IntoResponse, Response},
    Extension,
};
use maud::html;
use sea_orm::EntityTrait;
use serde::Deserialize;

use crate::audit;
use crate::auth::{self, Principal};
use crate::state::AppState;

use super::frame::unavailable;
use super::html::document;

#[derive(Deserialize, Default)]
pub(super) struct NextQuery {
    next: Option<String>,
}

fn safe_next(n: Option<&str>) -> String {
    match n {
        // Only local paths: never redirect elsewhere after login.
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            p.into()
        }
        _ => "/fleet".into(),
    }
}

/// The login page with a fresh sign-in token in its hidden field and in the
/// `drover_login` cookie (see [`auth::issue_login_token`]).
fn login_response(
    status: StatusCode,
    next: &str,
    error: Option<&str>,
    name: &str,
    need_code: bool,
) -> Response {
    let token = auth::issue_login_token(bus_schema::now_ms());
    (
        status,
        [(header::SET_COOKIE, auth::login_cookie(&token))],
        login_html(next, error, name, need_code, &token),
    )
        .into_response()
}

fn login_html(
    next: &str,
    error: Option<&str>,
    name: &str,
    need_code: bool,
    token: &str,
) -> Html<String> {
    let body = html! {
        body.center.login-bg {
            form.card.narrow.login method="post" action="/login" {
                div.brand.big { span.logo { "◆" } " Drover" }
                p class="mut" { "Sign in to the fleet console." }
                @if let Some(e) = error {
                    div.err #login-error { (e) }
                }
                input type="hidden" name="next" value=(next);
                input type="hidden" name=(auth::LOGIN_FIELD) value=(token);
                label { "User" input name="name" #name autocomplete="username" value=(name) required autofocus; }
                label { "Password" input name="password" #password type="password" autocomplete="current-password" required; }
                label class=(if need_code { "" } else { "opt" }) {
                    "Authentication code"
                    input name="code" #code inputmode="numeric" autocomplete="one-time-code" placeholder="6 digits, if enabled";
                }
                button.primary #login { "Sign in" }
            }
        }
    };
    Html(document("Sign in", body).into_string())
}

pub(super) async fn login_page(
    Query(q): Query<NextQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(token) = auth::reusable_login_token(&headers, bus_schema::now_ms()) {
        return login_html(&safe_next(q.next.as_deref()), None, "", false, token).into_response();
    }
    login_response(
        StatusCode::OK,
        &safe_next(q.next.as_deref()),
        None,
        "",
        false,
    )
}

pub(super) async fn login(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let ip = auth::client_ip(&req);
    let login_cookie = auth::login_cookie_value(req.headers()).map(str::to_string);
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response(),
    };
    let f: BTreeMap<String, String> = auth::form_urlencoded_pairs(&body).into_iter().collect();
    let name = f
        .get("name")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let code = f.get("code").cloned().unwrap_or_default();
    let next = safe_next(f.get("next").map(String::as_str));
    // A post without this site's sign-in token (a cross-site form, a stale
    // page) is refused before anything else: no attempt is counted, and the
    // form comes back with a fresh token.
    if let Err(e) = auth::check_login_token(
        login_cookie.as_deref(),
        f.get(auth::LOGIN_FIELD).map(String::as_str),
        bus_schema::now_ms(),
    ) {
        return login_response(
            StatusCode::FORBIDDEN,
            &next,
            Some(&format!(
                "Sign-in refused: {e}. Reload this page and sign in again."
            )),
            &name,
            false,
        );
    }
    // Later failures re-render the form with the token it came with (still
    // valid, and its cookie is still set).
    let token = login_cookie.unwrap_or_default();
    let fail = |status: StatusCode, msg: &str, need_code: bool| {
        (
            status,
            login_html(&next, Some(msg), &name, need_code, &token),
        )
            .into_response()
    };
    let u = match auth::find_user(&state.db, &name).await {
        Ok(u) => u,
        Err(e) => return unavailable(e),
    };
    // Only known names go into the trail: people type passwords into the
    // user field by mistake.
    let actor: String = if u.is_some() {
        name.clone()
    } else {
        "(unknown user)".into()
    };
    if auth::login_limited(&name, &ip) {
        let _ = audit::record(
            &state.db,
            audit::Entry::new(&actor, "login.limited", "", &ip, serde_json::json!({})),
        )
        .await;
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts. Wait 15 minutes and try again.",
            false,
        );
    }
    // Verify against a dummy hash for unknown names: same time either way.
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| auth::hash_password(&auth::random_hex(16)));
    let pw_ok = auth::verify_password(
        u.as_ref()
            .map(|u| u.password_hash.as_str())
            .unwrap_or(DUMMY.as_str()),
        &password,
    ) && u.is_some();
    let record_fail = |reason: &'static str| {
        let db = state.db.clone();
        let (actor, ip, name) = (actor.clone(), ip.clone(), name.clone());
        async move {
            auth::login_failed(&name, &ip);
            let _ = audit::record(
                &db,
                audit::Entry::new(
                    &actor,
                    "login.failed",
                    "",
                    &ip,
                    serde_json::json!({ "reason": reason }),
                ),
            )
            .await;
        }
    };
    let Some(u) = u.filter(|_| pw_ok) else {
        record_fail("bad name or password").await;
        return fail(
            StatusCode::UNAUTHORIZED,
            "That user name and password do not match.",
            false,
        );
    };
    if let Some(secret) = &u.totp_secret {
        if code.trim().is_empty() {
            record_fail("code missing").await;
            return fail(
                StatusCode::UNAUTHORIZED,
                "Enter the 6-digit code from your authenticator app.",
                true,
            );
        }
        if !auth::totp_ok(secret, &u.name, &code) {
            record_fail("bad code").await;
            return fail(
                StatusCode::UNAUTHORIZED,
                "That authentication code is not right.",
                true,
            );
        }
    }
    auth::login_succeeded(&name, &ip);
    // Admins who must have TOTP and do not are sent to set it up first.
    let next = if auth::must_enrol_totp(&state.cfg, &u) {
        "/account".to_string()
    } else {
        next
    };
    let cookie = match auth::create_session(&state.db, &u.id, &ip).await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let _ = audit::record(
        &state.db,
        audit::Entry::new(&u.name, "login", "", &ip, serde_json::json!({})),
    )
    .await;
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
    )
        .into_response()
}

pub(super) async fn logout(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    if let auth::Via::Session { session_id, .. } = &who.via {
        let _ = crate::db::entities::session::Entity::delete_by_id(session_id.clone())
            .exec(&state.db)
            .await;
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, auth::clear_cookie()),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

// --------------------------------------------------------------------- fleet

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("//evil.example")), "/fleet");
        assert_eq!(safe_next(Some("https://evil.example")), "/fleet");
        assert_eq!(safe_next(Some("/agents/x")), "/agents/x");
    }
}
