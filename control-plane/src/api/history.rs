//! `GET /api/v1/agents/{id}/metrics?range=1h|24h|7d|30d`: a host's metric
//! history as the charts show it, from raw samples or rollups
//! (`retention::history` decides). Owns the shape of the answer only.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use sea_orm::EntityTrait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::db::entities::agent;
use crate::retention::history::{self, Range};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    range: Option<String>,
}

/// `{"agent_id", "range", "source": "raw"|"rollup_5m"|"rollup_1h",
/// "bucket_secs", "points": [{"at" (ms, bucket start), "cpu", "mem",
/// "disk" (percent)}]}`; 404 for an unknown agent, 422 for another range.
pub async fn metrics(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let raw = q.range.as_deref().unwrap_or("24h");
    let Some(range) = Range::parse(raw) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("range {raw:?}: use 1h, 24h, 7d or 30d"),
        ));
    };
    if agent::Entity::find_by_id(id.clone())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no agent {id}")));
    }
    let now = bus_schema::now_ms();
    let (source, points) = history::series(&state, &id, range, now)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "agent_id": id,
        "range": range.as_str(),
        "source": source,
        "bucket_secs": range.bucket_ms() / 1000,
        "points": points,
    })))
}
