//! The public download routes of one-line host onboarding, outside
//! `/api/v1` and without login (the gate lets exactly these through,
//! `auth::required`), each rate-limited per client address:
//! `GET /install.sh` (the script rendered for this control plane),
//! `GET /releases/index` (one line per artifact) and
//! `GET /releases/<name>` / `GET /releases/<name>.sig` (an artifact or its
//! raw 64-byte signature, streamed from the object store).
//!
//! Owns only the HTTP side; rendering is `install.rs`'s, the artifacts
//! `releases.rs`'s. Names are checked by `releases::parse_name` before the
//! bucket is asked, so no path reaches anything but an object name.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use crate::install::{self, DOWNLOAD_RATE};
use crate::releases::{self, ReleaseError};
use crate::state::AppState;

/// The download routes (merged into the router by `http::router`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/install.sh", get(script))
        .route("/releases/index", get(index))
        .route("/releases/{name}", get(artifact))
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn limited(ip: &SocketAddr) -> Option<Response> {
    (!install::allow("download", DOWNLOAD_RATE, &ip.ip().to_string())).then(|| {
        let mut r = text(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this address; try again in a minute\n".into(),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        r
    })
}

fn release_error(e: ReleaseError) -> Response {
    match e {
        ReleaseError::BadName(_) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        ReleaseError::NotFound(_) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
        other => {
            tracing::warn!(error = %other, "release download failed");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the release bucket is not reachable; try again later\n".into(),
            )
        }
    }
}

/// `GET /install.sh`: `text/plain`, the script for this control plane; 500
/// with the reason when its configuration cannot be baked in safely.
async fn script(
    State(state): State<AppState>,
    ConnectInfo(ip): ConnectInfo<SocketAddr>,
) -> Response {
    if let Some(r) = limited(&ip) {
        return r;
    }
    // New hosts pin the keys that sign now (`keys`): the current command-key
    // generation, and the release key a recorded rotation moved to, if any.
    let release = crate::keys::release_ring(&state)
        .await
        .ok()
        .flatten()
        .and_then(|r| bus_schema::signing::release::ReleaseKey::parse(&r.current).ok());
    let rendered = install::baked(&state.cfg, state.keys.current().1)
        .map(|mut b| {
            if release.is_some() {
                b.release_key = release;
            }
            b
        })
        .map_err(|e| format!("reading the broker CA: {e}"))
        .and_then(|b| install::render(&b).map_err(|e| e.to_string()));
    match rendered {
        Ok(s) => text(StatusCode::OK, s),
        Err(e) => {
            tracing::error!(error = %e, "install.sh cannot be rendered");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("echo 'drover install: the control plane is misconfigured, see its log' >&2; exit 1\n# {}\n", e.replace('\n', " ")),
            )
        }
    }
}

/// `GET /releases/index`: `name format arch version sha256` per line.
async fn index(
    State(state): State<AppState>,
    ConnectInfo(ip): ConnectInfo<SocketAddr>,
) -> Response {
    if let Some(r) = limited(&ip) {
        return r;
    }
    match releases::list(&state.js).await {
        Ok(list) => text(StatusCode::OK, releases::index_text(&list)),
        Err(e) => release_error(e),
    }
}

/// `GET /releases/<name>` (the package, `application/octet-stream`) and
/// `GET /releases/<name>.sig` (its 64-byte signature).
async fn artifact(
    State(state): State<AppState>,
    ConnectInfo(ip): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = limited(&ip) {
        return r;
    }
    if let Some(pkg) = name.strip_suffix(".sig") {
        return match releases::info(&state.js, pkg).await {
            Ok(a) => (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                a.signature_bytes(),
            )
                .into_response(),
            Err(e) => release_error(e),
        };
    }
    let info = match releases::info(&state.js, &name).await {
        Ok(a) => a,
        Err(e) => return release_error(e),
    };
    match releases::open(&state.js, &name).await {
        Ok(stream) => {
            let mut r = Body::from_stream(stream).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = header::HeaderValue::from_str(&info.size.to_string()) {
                h.insert(header::CONTENT_LENGTH, v);
            }
            r
        }
        Err(e) => release_error(e),
    }
}
