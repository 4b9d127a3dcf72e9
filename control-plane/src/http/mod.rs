//! The HTTP shell: the one router the server runs, `/healthz`, `/readyz`
//! (`ready.rs`), and the order
//! of the middleware. Arrows run one way: this shell → the gate
//! ([`crate::auth::guard`]) → pages ([`crate::ui`]) and the API
//! ([`crate::api`]) → the domain → the database. Nothing below imports it
//! back; it checks no roles and renders no pages itself.

use axum::{
    extract::State, http::StatusCode, middleware, response::IntoResponse, routing::get, Json,
    Router,
};
use serde_json::json;

use crate::state::AppState;

pub mod error;
pub mod headers;
pub mod install;
pub mod nul;
pub mod rate;
pub mod ready;

/// The whole server: the web UI's pages, `/healthz`, the host-install
/// downloads (`/install.sh`, `/releases/...`), and the REST API under
/// `/api/v1`, all behind one gate (authentication, the role each route
/// needs, CSRF for browser sessions, the audit trail). In front of the gate
/// the NUL refusal ([`nul`]) and before it the rate limits ([`rate`]); outermost the security headers ([`headers`]),
/// so refusals carry them too.
pub fn router(state: AppState) -> Router {
    let tls = headers::Tls(matches!(state.cfg.http_tls_files(), Ok(Some(_))));
    let limits = rate::Limits::from_config(&state.cfg);
    Router::new()
        .merge(crate::ui::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready::readyz))
        .route("/metrics", get(crate::prometheus::handler))
        .merge(install::routes())
        // Every API refusal is JSON, axum's own rejections too.
        .nest(
            "/api/v1",
            crate::api::routes().layer(middleware::map_response(error::json_errors)),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard,
        ))
        .layer(middleware::from_fn(nul::refuse))
        .layer(middleware::from_fn_with_state(limits, rate::limit))
        .layer(middleware::from_fn_with_state(
            tls,
            headers::security_headers,
        ))
        .with_state(state)
}

/// `GET /healthz`: the process is alive and answering; always 200 with
/// `{"ok": true, "nats": "connected"|"disconnected"}` (the broker state is
/// informational: whether this replica can serve is `/readyz`'s answer,
/// see [`ready::readyz`]; a liveness probe must not restart a process for
/// a broker outage).
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let nats = matches!(
        state.nats.connection_state(),
        async_nats::connection::State::Connected
    );
    (
        StatusCode::OK,
        Json(json!({ "ok": true, "nats": if nats { "connected" } else { "disconnected" } })),
    )
}
