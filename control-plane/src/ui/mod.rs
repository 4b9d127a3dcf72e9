//! The operator's web UI: server-rendered pages, live over the SSE stream
//! (`/api/v1/events`): `app.js` re-fetches the page and swaps the
//! `data-live` regions when something changes. CSS and JS are embedded in
//! the binary; there is no front-end build.
//!
//! This file only routes: one file per page (named like the `api/` files),
//! the shared frame and widgets in `frame.rs`, escaping in `html.rs`.
//! Access is not checked here: the gate (`auth::guard`) does it for every
//! route. Pages only hide the buttons a role cannot use.

use axum::{
    extract::Path,
    http::{header, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};

use crate::state::AppState;

mod accounts;
mod agents;
mod alerts;
mod api_docs;
mod apps;
mod audit;
mod clock;
mod fleet;
mod frame;
mod history;
pub mod html;
mod identity;
mod inventory;
mod jobs;
mod keys;
mod login;
mod notify;
mod operations;
mod releases;
mod rollouts;
mod schedules;
mod services;
mod trust;
mod updates;
mod version;
mod windows;

pub use html::message_page;

const CSS: &str = include_str!("app.css");
/// The page scripts, in the order every page loads them (classic scripts
/// sharing one global scope: `app.js` first with the helpers the others use,
/// `init.js` last, which wires the page and starts its own script). A new
/// page's script goes in its own file in `js/`, listed before `init.js`.
pub(super) const SCRIPTS: &[(&str, &str)] = &[
    ("app.js", include_str!("js/app.js")),
    ("schema_forms.js", include_str!("js/schema_forms.js")),
    ("jobs.js", include_str!("js/jobs.js")),
    ("apps.js", include_str!("js/apps.js")),
    ("inventory.js", include_str!("js/inventory.js")),
    ("init.js", include_str!("js/init.js")),
];

/// The pages and the embedded assets (the shell adds `/healthz` and the API).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/fleet") }))
        .route("/ui/{file}", get(asset))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/fleet", get(fleet::fleet))
        .route("/agents/{id}", get(agents::agent_page))
        .route("/jobs", get(jobs::jobs_page))
        .route("/jobs/{id}", get(jobs::job_page))
        .route("/operations", get(operations::operations_page))
        .route("/apps", get(apps::apps_page))
        .route("/schedules", get(schedules::schedules_page))
        .route("/updates", get(updates::updates_page))
        .route("/enrolment", get(trust::enrolment))
        .route("/security", get(trust::security))
        .route("/audit", get(audit::audit_page))
        .route("/windows", get(windows::windows_page))
        .route("/services", get(services::services_page))
        .route("/notifications", get(notify::notifications_page))
        .route("/alerts", get(alerts::alerts_page))
        .route("/rollouts", get(rollouts::rollouts_page))
        .route("/rollouts/{id}", get(rollouts::rollout_page))
        .route("/updates/history", get(history::history_page))
        .route("/releases", get(releases::releases_page))
        .route("/account", get(accounts::account))
        .route("/users", get(accounts::users))
        .route("/api/docs", get(api_docs::api_docs_page))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (ct, body) = if file == "app.css" {
        ("text/css; charset=utf-8", CSS)
    } else if let Some((_, js)) = SCRIPTS.iter().find(|(name, _)| *name == file) {
        ("text/javascript; charset=utf-8", *js)
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
