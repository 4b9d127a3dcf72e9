//! Routes for scheduled jobs (`/api/v1/schedules`) and the periodic duties'
//! state (`GET /api/v1/duties`). The rules live in `crate::schedules` and
//! `crate::duties`; the gate (`auth::guard`) checks roles and audits.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Extension, Json, Router,
};
use serde_json::{json, Value};

use super::{ApiError, JsonBody};
use crate::auth::Principal;
use crate::schedules::{self, NewSchedule, ScheduleError, SchedulePatch};
use crate::state::AppState;

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Db(d) => ApiError::internal(d),
            e @ ScheduleError::NotFound(_) => ApiError::not_found(e.to_string()),
            e @ ScheduleError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            e => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/schedules", get(list).post(create))
        .route("/schedules/{id}", get(get_one).put(update).delete(remove))
        .route("/schedules/{id}/enable", post(enable))
        .route("/schedules/{id}/disable", post(disable))
        .route("/duties", get(duties))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = schedules::list(&state).await.map_err(ApiError::internal)?;
    Ok(Json(json!({
        "schedules": all.iter().map(schedules::to_json).collect::<Vec<_>>()
    })))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(schedules::to_json(
        &schedules::find(&state, &id).await?,
    )))
}

async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<NewSchedule>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let m = schedules::create(&state, req, &who.name).await?;
    Ok((StatusCode::CREATED, Json(schedules::to_json(&m))))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<SchedulePatch>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(schedules::to_json(
        &schedules::update(&state, &id, p).await?,
    )))
}

async fn set_enabled(state: &AppState, id: &str, on: bool) -> Result<Json<Value>, ApiError> {
    let p = SchedulePatch {
        enabled: Some(on),
        ..Default::default()
    };
    Ok(Json(schedules::to_json(
        &schedules::update(state, id, p).await?,
    )))
}

async fn enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &id, true).await
}

async fn disable(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &id, false).await
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = schedules::delete(&state, &id).await?;
    Ok(Json(json!({"deleted": m.id, "name": m.name})))
}

/// Whether this replica holds the duties lease, since when, and each
/// duty's last run and error here.
async fn duties(State(state): State<AppState>) -> Json<Value> {
    Json(crate::duties::status(&state))
}
