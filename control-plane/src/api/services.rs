//! Routes for watched services: `GET /services` (the fleet view: every
//! watched unit on every host, filtered by `unit`, `state`, `agent`),
//! `GET/POST /services/watches` and `PUT/DELETE /services/watches/{id}`
//! (the watched-service lists). Translates HTTP to `crate::services`; the
//! gate checks roles (changes need operator) and audits changes.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, put},
    Extension, Json, Router,
};
use serde_json::{json, Value};

use super::{ApiError, JsonBody};
use crate::auth::Principal;
use crate::services::lists::{self, WatchError, WatchInput};
use crate::services::view::{self, Filter};
use crate::state::AppState;

impl From<WatchError> for ApiError {
    fn from(e: WatchError) -> Self {
        let status = match &e {
            WatchError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WatchError::NotFound(_) => StatusCode::NOT_FOUND,
            WatchError::NameTaken(_) => StatusCode::CONFLICT,
            WatchError::Db(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(fleet_view))
        .route("/services/watches", get(list).post(create))
        .route("/services/watches/{id}", put(update).delete(remove))
}

/// `GET /api/v1/services?unit=&state=&agent=`: see [`view::answer`].
async fn fleet_view(
    State(state): State<AppState>,
    Query(f): Query<Filter>,
) -> Result<Json<Value>, ApiError> {
    let f = f
        .checked()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let (rows, truncated) = view::rows(&state.db, &f)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(view::answer(&rows, truncated)))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let ws = lists::list(&state.db).await.map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "watches": ws.iter().map(lists::view).collect::<Vec<_>>() }),
    ))
}

async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(body): JsonBody<WatchInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let w = lists::create(&state.db, body, &who.name).await?;
    tracing::info!(watch = %w.name, by = %who.name, "watched-service list created");
    Ok((StatusCode::CREATED, Json(lists::view(&w))))
}

async fn update(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WatchInput>,
) -> Result<Json<Value>, ApiError> {
    let w = lists::update(&state.db, &id, body).await?;
    tracing::info!(watch = %w.name, by = %who.name, "watched-service list changed");
    Ok(Json(lists::view(&w)))
}

async fn remove(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let w = lists::delete(&state.db, &id).await?;
    tracing::info!(watch = %w.name, by = %who.name, "watched-service list removed");
    Ok(Json(json!({ "deleted": w.id, "name": w.name })))
}
