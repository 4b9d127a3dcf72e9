//! Routes for releases under `/api/v1/releases`: the listing (agent
//! releases, the release key's fingerprint and the `.deb`/`.rpm`
//! packages), one agent release, publishing one (admin) and yanking one
//! (admin). The gate audits publish and yank (`auth::describe`).
//!
//! Publishing takes the binary as the raw request body
//! (`application/octet-stream`) with the signed manifest and signature in
//! headers: no base64 inflation of a tens-of-MiB body and no JSON copy of
//! it in memory; the route alone has a larger body limit
//! (`store::MAX_BINARY_BYTES`). Owns only the HTTP side; the rules are
//! `agent_releases::store`'s.
//!
//! Errors: 400 malformed request (missing header, bad base64, empty
//! reason), 409 no release key configured / same version with other bytes
//! / already yanked, 422 signature, manifest or bytes refused, 404 unknown
//! version, 503 the broker's object store.

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
    Extension, Json, Router,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, JsonBody};
use crate::agent_releases::store::{self, AgentReleaseError, MAX_BINARY_BYTES};
use crate::agent_releases::views;
use crate::auth::Principal;
use crate::state::AppState;

/// Header carrying the manifest's JSON text, base64 (standard, padded).
pub const MANIFEST_HEADER: &str = "x-drover-release-manifest";
/// Header carrying the base64 Ed25519 signature over the manifest.
pub const SIGNATURE_HEADER: &str = "x-drover-release-signature";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/releases",
            get(list)
                .post(publish)
                .layer(DefaultBodyLimit::max(MAX_BINARY_BYTES)),
        )
        .route("/releases/{version}", get(show))
        .route("/releases/{version}/yank", post(yank))
}

impl From<AgentReleaseError> for ApiError {
    fn from(e: AgentReleaseError) -> Self {
        let status = match &e {
            AgentReleaseError::NoKey | AgentReleaseError::Conflict(_) => StatusCode::CONFLICT,
            AgentReleaseError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AgentReleaseError::Invalid(_) => StatusCode::BAD_REQUEST,
            AgentReleaseError::NotFound(_) => StatusCode::NOT_FOUND,
            AgentReleaseError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            AgentReleaseError::BadKey(_) | AgentReleaseError::Db(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// `GET /api/v1/releases`: `{"agent_releases": [release...], "release_key":
/// {configured, public_key, fingerprint, error}, "releases": [package...]}`
/// (`releases` keeps its earlier meaning: the `.deb`/`.rpm` packages
/// `install.sh` fetches).
async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let packages = crate::releases::list(&state.js)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let rows = store::list(&state.db).await.map_err(ApiError::internal)?;
    Ok(Json(json!({
        "agent_releases": rows.iter().map(|r| views::release(r, false)).collect::<Vec<_>>(),
        "release_key": views::key(&state.cfg),
        "releases": packages,
    })))
}

/// `GET /api/v1/releases/{version}`: `{"version": v, "yanked": bool (every
/// platform's), "releases": [release with manifest and signature...]}`.
async fn show(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rows = store::of_version(&state.db, &version)
        .await
        .map_err(ApiError::internal)?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!(
            "no agent release {version}; see `drover releases list`"
        )));
    }
    Ok(Json(json!({
        "version": version,
        "yanked": rows.iter().all(|r| r.yanked_at.is_some()),
        "releases": rows.iter().map(|r| views::release(r, true)).collect::<Vec<_>>(),
    })))
}

fn header_text(h: &HeaderMap, name: &str) -> Result<String, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let v = h
        .get(name)
        .ok_or_else(|| {
            bad(format!(
                "header {name} is missing: publish with `drover releases publish BINARY \
                 --version X.Y.Z --key release.key`"
            ))
        })?
        .to_str()
        .map_err(|_| bad(format!("header {name}: not ASCII")))?;
    Ok(v.trim().to_string())
}

/// `POST /api/v1/releases` (admin): body = the binary; headers
/// [`MANIFEST_HEADER`] (base64 of the manifest text) and
/// [`SIGNATURE_HEADER`]. 201 `{"release": release, "created": true}`, or
/// 200 with `created: false` when the identical release was there.
async fn publish(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let manifest_b64 = header_text(&headers, MANIFEST_HEADER)?;
    let manifest = STANDARD
        .decode(manifest_b64.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("header {MANIFEST_HEADER}: not base64 of UTF-8 text"),
            )
        })?;
    let signature = header_text(&headers, SIGNATURE_HEADER)?;
    let p = store::publish(&state, &manifest, &signature, &body, &who.name).await?;
    let status = if p.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "release": views::release(&p.release, false), "created": p.created })),
    ))
}

/// `POST /api/v1/releases/{version}/yank` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct YankBody {
    /// Why (required; shown to operators and in refusals).
    reason: String,
    /// Only this platform's release (default: every platform's).
    #[serde(default)]
    platform: Option<String>,
}

/// `POST /api/v1/releases/{version}/yank` (admin): `{"reason": text,
/// "platform"?: text}` → `{"version": v, "yanked": [release...]}`.
async fn yank(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(version): Path<String>,
    body: JsonBody<YankBody>,
) -> Result<Json<Value>, ApiError> {
    let JsonBody(b) = body;
    let platform = b.platform.as_deref().filter(|p| !p.is_empty());
    let rows = store::yank(&state, &version, platform, &b.reason, &who.name).await?;
    Ok(Json(json!({
        "version": version,
        "yanked": rows.iter().map(|r| views::release(r, false)).collect::<Vec<_>>(),
    })))
}
