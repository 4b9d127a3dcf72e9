//! `/agents/{id}/box-key`: the rootd box key pinned for a host (what its
//! secrets are sealed to) and a changed key it reported, and an admin's
//! acceptance of that changed key. The pinning rules are `sealing`'s.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Extension, Json,
};
use serde_json::{json, Value};

use super::ApiError;
use crate::auth::Principal;
use crate::db::entities::rootd_box_key;
use crate::sealing::{self, Accepted};
use crate::state::AppState;

/// The JSON shape: `agent_id`, `public_key` (base64), `pinned_at` (ms),
/// `pinned_by`, `offered_key` and `offered_at` (`null` unless the host
/// reported a different key since).
pub fn view(m: &rootd_box_key::Model) -> Value {
    json!({
        "agent_id": m.agent_id,
        "public_key": m.public_key,
        "pinned_at": m.pinned_at,
        "pinned_by": m.pinned_by,
        "offered_key": m.offered_key,
        "offered_at": m.offered_at,
    })
}

/// `GET /agents/{id}/box-key`: 404 when the host never reported one.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pins = sealing::pins(&state, std::slice::from_ref(&id))
        .await
        .map_err(ApiError::internal)?;
    match pins.get(&id) {
        Some(m) => Ok(Json(view(m))),
        None => Err(ApiError::not_found(format!(
            "agent {id} has no pinned rootd box key; it is pinned from the host's enrolment or \
             heartbeat once drover-rootd runs there"
        ))),
    }
}

/// `POST /agents/{id}/box-key/accept`: pins the key the host offered in
/// place of the pinned one. 404 without a pin, 409 when nothing is offered.
pub async fn accept(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match sealing::accept(&state, &id, &who.name)
        .await
        .map_err(ApiError::internal)?
    {
        None => Err(ApiError::not_found(format!(
            "agent {id} has no pinned rootd box key to replace"
        ))),
        Some(Accepted::NothingOffered) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("agent {id} reported no different rootd box key; the pinned one stays"),
        )),
        Some(Accepted::Pinned { public_key }) => Ok(Json(json!({
            "agent_id": id,
            "public_key": public_key,
            "pinned_by": who.name,
        }))),
    }
}
