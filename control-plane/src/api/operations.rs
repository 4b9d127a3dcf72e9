//! `GET /api/v1/operations`: the live operations view (commands not final
//! yet, counted by action, source, origin and status, and the newest of
//! them listed). Owns the HTTP shape only; the query and its checks are
//! `crate::operations`.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    Json,
};

use super::ApiError;
use crate::operations::{self, Filter, OpsError, View};
use crate::state::AppState;

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::Bad(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            OpsError::Db(e) => ApiError::internal(e),
        }
    }
}

/// `GET /api/v1/operations?action=&source=user|system&status=queued|accepted|running&agent=&limit=`:
/// `{"counts": {"total", "by_action", "by_source", "by_origin",
/// "by_status"}, "operations": [{"command_id", "agent_id", "hostname",
/// "display_name", "action", "source", "origin", "requested_by", "status",
/// "job_id", "created_at", "age_ms"}], "truncated", "at", "filter"}`.
/// Times are ms since the epoch. A bad value is a 400 naming it.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<View>, ApiError> {
    let f = Filter::from_query(&q)?;
    Ok(Json(operations::view(&state.db, &f).await?))
}
