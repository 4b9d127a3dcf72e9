//! The account page (`/account`: password, TOTP) and the admin's users and
//! API tokens page (`/users`). Changes go through the API.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, PreEscaped};
use sea_orm::{EntityTrait, QueryOrder};

use crate::auth::{self, Principal};
use crate::db::entities::{api_token, user};
use crate::state::AppState;

use super::frame::{page, pill, time, unavailable};

/// Turning two-factor authentication off (fixed markup).
const TOTP_ON: &str = "<p>Two-factor authentication is <b>on</b>: logins ask for a code from your authenticator app.</p>\
<form data-api=\"/api/v1/account/totp\" data-method=\"DELETE\" data-reload=\"1\" class=\"inline-form\"><label>Current code<input name=\"code\" inputmode=\"numeric\" required></label><button class=\"danger\">Turn off</button><span class=\"form-error\"></span></form>";

/// Setting two-factor authentication up (fixed markup; `app.js` fills in
/// the secret once).
const TOTP_OFF: &str = "<p>Two-factor authentication is <b>off</b>. Turn it on to require a code from an authenticator app at every login.</p>\
<button class=\"primary\" id=\"totp-start\">Set up two-factor authentication</button>\
<div id=\"totp-setup\" hidden><p>Add this secret to your authenticator app (it is shown only now):</p><code class=\"value\" id=\"totp-secret\"></code>\
<p class=\"mut small\">or open: <code id=\"totp-url\"></code></p>\
<form data-api=\"/api/v1/account/totp/confirm\" data-reload=\"1\" class=\"inline-form\"><label>Code from the app<input name=\"code\" inputmode=\"numeric\" required></label><button class=\"primary\">Confirm</button><span class=\"form-error\"></span></form></div>";

/// Changing one's password (fixed markup).
const PASSWORD_FORM: &str = "<h2>Change password</h2><form data-api=\"/api/v1/account/password\" class=\"stack-form\" data-done=\"Password changed.\">\
<label>Current password<input type=\"password\" name=\"current\" required autocomplete=\"current-password\"></label>\
<label>New password (12 characters or more)<input type=\"password\" name=\"new\" required minlength=\"12\" autocomplete=\"new-password\"></label>\
<button class=\"primary\">Change password</button><span class=\"form-error\"></span></form>";

/// Adding a user (fixed markup).
const USER_FORM: &str = "<h2>Add a user</h2><form data-api=\"/api/v1/users\" class=\"inline-form\" id=\"user-form\">\
<label>Name<input name=\"name\" required></label><label>Role<select name=\"role\"><option>viewer</option><option>operator</option><option>admin</option></select></label>\
<label>Password<input type=\"password\" name=\"password\" minlength=\"12\" required autocomplete=\"new-password\"></label>\
<button class=\"primary\">Add user</button><span class=\"form-error\"></span></form>";

/// Creating an API token (fixed markup; `app.js` shows the secret once).
const API_TOKEN_FORM: &str = "<form data-api=\"/api/v1/api-tokens\" data-secret=\"token\" class=\"inline-form\" id=\"api-token-form\"><label>Name<input name=\"name\" required placeholder=\"ci-deploy\"></label>\
<label>Role<select name=\"role\"><option>viewer</option><option selected>operator</option><option>admin</option></select></label>\
<label>Expires in (days)<input name=\"expires_at\" data-type=\"days\" type=\"number\" min=\"1\" max=\"3650\" step=\"1\" placeholder=\"never\"></label><button class=\"primary\">Create token</button><span class=\"form-error\"></span>\
<div class=\"secret\" hidden><b>API token — shown once.</b> Send it as <code>Authorization: Bearer …</code>.<code class=\"value\"></code></div></form>";

pub(super) async fn account(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let u = match &who.via {
        auth::Via::Session { user_id, .. } => user::Entity::find_by_id(user_id.clone())
            .one(&state.db)
            .await
            .ok()
            .flatten(),
        auth::Via::Token { .. } => None,
    };
    let Some(u) = u else {
        let body = html! {
            div.empty { "You are using an API token; accounts are for people logged in to the web UI." }
        };
        return page(&who, "account", "Account", body).into_response();
    };
    let body = html! {
        div.cols {
            section.card {
                h2 { (u.name) }
                p { "Role: " (pill(&u.role)) }
                (PreEscaped(PASSWORD_FORM))
            }
            section.card {
                h2 { "Two-factor authentication" }
                (PreEscaped(if u.totp_secret.is_some() { TOTP_ON } else { TOTP_OFF }))
            }
        }
    };
    page(&who, "account", "Account", body).into_response()
}

pub(super) async fn users(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let (us, toks) = match (
        auth::list_users(&state.db).await,
        api_token::Entity::find()
            .order_by_asc(api_token::Column::CreatedAt)
            .all(&state.db)
            .await,
    ) {
        (Ok(u), Ok(t)) => (u, t),
        (Err(e), _) | (_, Err(e)) => return unavailable(e),
    };
    let now = bus_schema::now_ms();
    let body = html! {
        section.card {
            h2 { "Users" }
            div data-live="users" #users-wrap {
                table.grid #users {
                    thead { tr { th { "User" } th { "Role" } th { "2FA" } th { "Created" } th {} } }
                    tbody {
                        @for u in &us {
                            tr {
                                td { (u.name) }
                                td {
                                    form data-api=(format!("/api/v1/users/{}/role", u.name)) class="inline-form auto" {
                                        select name="role" {
                                            @for r in ["viewer", "operator", "admin"] {
                                                option selected[r == u.role] { (r) }
                                            }
                                        }
                                        button.small { "Set" }
                                        span.form-error {}
                                    }
                                }
                                td { (if u.totp_secret.is_some() { "on" } else { "off" }) }
                                td { (time(u.created_at)) }
                                td {
                                    button.danger.small data-api=(format!("/api/v1/users/{}", u.name)) data-method="DELETE"
                                        data-confirm=(format!("Remove user {}?", u.name)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
            (PreEscaped(USER_FORM))
        }
        section.card {
            h2 { "API tokens" }
            p class="mut" {
                "For automation, each bound to a role. The bootstrap token from " code { "drover init" }
                " is meant for set-up only: create a token with the least role each tool needs, then revoke the bootstrap one."
            }
            div data-live="api-tokens" #api-tokens-wrap {
                table.grid #api-tokens {
                    thead { tr { th { "Name" } th { "Role" } th { "Created" } th { "Expires" } th { "Last used" } th {} } }
                    tbody {
                        @for t in &toks {
                            tr {
                                td { (t.name) }
                                td { (pill(&t.role)) }
                                td { (time(t.created_at)) }
                                td.expires {
                                    @match t.expires_at {
                                        None => "never",
                                        Some(e) if e <= now => { span.bad { "expired " } (time(e)) },
                                        Some(e) => (time(e)),
                                    }
                                }
                                td.last-used {
                                    @match t.last_used_at {
                                        None => "never",
                                        Some(u) => (time(u)),
                                    }
                                }
                                td {
                                    button.danger.small data-api=(format!("/api/v1/api-tokens/{}", t.id)) data-method="DELETE"
                                        data-confirm=(format!("Revoke API token {}?", t.name)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
            (PreEscaped(API_TOKEN_FORM))
        }
    };
    page(&who, "users", "Users & API tokens", body).into_response()
}
