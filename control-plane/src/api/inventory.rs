//! HTTP handlers of the inventory operators edit (issue 17 item 1):
//! `PATCH`/`POST /api/v1/agents/{id}` (display name, labels, notes) and
//! `POST /api/v1/agents/{id}/decommission`. The rules and storage are
//! `inventory`'s; the audit row is written by the gate (`auth::describe`).
//! Nothing here reads pages or the bus.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Extension, Json,
};
use serde_json::{json, Value};

use super::{agent_json, ApiError, JsonBody};
use crate::auth::Principal;
use crate::inventory::{self, store, Edit, InventoryError};
use crate::state::AppState;

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::Trust(t) => t.into(),
            InventoryError::Db(e) => ApiError::internal(e),
            e => {
                let status = match &e {
                    InventoryError::Invalid(_) => StatusCode::BAD_REQUEST,
                    InventoryError::UnknownAgent(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::CONFLICT,
                };
                ApiError::new(status, e.to_string())
            }
        }
    }
}

/// `PATCH` (or `POST`) `/api/v1/agents/{id}`: body [`Edit`], e.g.
/// `{"display_name": "db primary", "labels": {"env": "prod"},
/// "remove_labels": ["tmp"], "notes": "rack 4"}`. Answers the agent as
/// `GET /api/v1/agents/{id}` would (with `label_sources` etc.). 400 for a
/// bad field (nothing changed), 404 for an unknown agent, 409 for a
/// decommissioned one.
pub async fn edit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Edit>,
) -> Result<Json<Value>, ApiError> {
    let a = store::edit(&state, &id, &body, &who.name).await?;
    let inv = store::get(&state.db, &id)
        .await
        .map_err(ApiError::internal)?;
    let mut v = agent_json(&a);
    inventory::decorate(&mut v, &a.labels, inv.as_ref());
    Ok(Json(v))
}

/// `POST /api/v1/agents/{id}/decommission` (no body): revokes the host if
/// still trusted and removes it from the fleet; its history stays. Answers
/// `{"id", "status": "decommissioned", "decommissioned_at",
/// "decommissioned_by"}`; 404 unknown, 409 already decommissioned.
pub async fn decommission(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inv = store::decommission(&state, &id, &who.name).await?;
    Ok(Json(json!({
        "id": id,
        "status": "decommissioned",
        "decommissioned_at": inv.decommissioned_at,
        "decommissioned_by": inv.decommissioned_by,
    })))
}
