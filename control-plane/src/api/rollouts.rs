//! Routes for staged agent rollouts: `GET/POST /rollouts`,
//! `GET /rollouts/{id}`, `POST /rollouts/{id}/pause|resume|abort`.
//! Translates HTTP to `crate::rollouts`; the gate checks roles (starting
//! and the actions need operator) and audits every change.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Extension, Json, Router,
};
use serde_json::Value;

use super::{ApiError, JsonBody};
use crate::auth::Principal;
use crate::rollouts::{self, Action, RolloutError, StartInput};
use crate::state::AppState;

impl From<RolloutError> for ApiError {
    fn from(e: RolloutError) -> Self {
        let status = match &e {
            RolloutError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RolloutError::NotFound(_) => StatusCode::NOT_FOUND,
            RolloutError::Conflict(_) => StatusCode::CONFLICT,
            RolloutError::Db(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rollouts", get(list).post(start))
        .route("/rollouts/{id}", get(detail))
        .route("/rollouts/{id}/pause", post(pause))
        .route("/rollouts/{id}/resume", post(resume))
        .route("/rollouts/{id}/abort", post(abort))
}

/// `{"rollouts": [...]}`, newest first (see `rollouts::summary`).
async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        rollouts::list(&state).await.map_err(ApiError::internal)?,
    ))
}

/// 201 with the rollout's detail; 422 with what to write instead.
async fn start(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(body): JsonBody<StartInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let r = rollouts::start(&state, body, &who.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(rollouts::detail(&state, &r.id).await?),
    ))
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(rollouts::detail(&state, &id).await?))
}

async fn act(
    state: AppState,
    who: Principal,
    id: String,
    a: Action,
) -> Result<Json<Value>, ApiError> {
    let r = rollouts::act(&state, &id, a, &who.name).await?;
    Ok(Json(rollouts::detail(&state, &r.id).await?))
}

async fn pause(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(state, who, id, Action::Pause).await
}

async fn resume(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(state, who, id, Action::Resume).await
}

async fn abort(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(state, who, id, Action::Abort).await
}
