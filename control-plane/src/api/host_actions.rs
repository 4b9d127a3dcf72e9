//! `GET /api/v1/agents/{id}/actions`: the catalogue as one host can use it
//! (`{"agent_id", "actions": [catalogue views], "hidden": [{"name",
//! "reason"}]}`); the split itself is `crate::runnable`.

use axum::{
    extract::{Path, State},
    Json,
};
use sea_orm::EntityTrait;
use serde_json::Value;

use super::ApiError;
use crate::db::entities::agent;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = agent::Entity::find_by_id(id.clone())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    Ok(Json(crate::runnable::split(&a)))
}
