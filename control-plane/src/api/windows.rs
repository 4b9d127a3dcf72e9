//! Routes for maintenance windows, their runs and the install history:
//! `GET/POST /windows`, `GET/PUT/DELETE /windows/{id}`,
//! `GET /windows/{id}/runs`, `GET /windows/runs/{run_id}`,
//! `POST /windows/runs/{run_id}/abort`, `GET /updates/history`. Translates
//! HTTP to `crate::windows`; the gate checks roles and audits changes.

use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use bus_schema::now_ms;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, JsonBody};
use crate::auth::Principal;
use crate::state::AppState;
use crate::windows::{self, history, runs, WindowError, WindowInput};

impl From<WindowError> for ApiError {
    fn from(e: WindowError) -> Self {
        let status = match &e {
            WindowError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WindowError::NotFound(_) => StatusCode::NOT_FOUND,
            WindowError::NameTaken(_) => StatusCode::CONFLICT,
            WindowError::Db(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<runs::RunError> for ApiError {
    fn from(e: runs::RunError) -> Self {
        let status = match &e {
            runs::RunError::NotFound(_) => StatusCode::NOT_FOUND,
            runs::RunError::NotRunning(..) => StatusCode::CONFLICT,
            runs::RunError::Db(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/windows", get(list).post(create))
        .route("/windows/{id}", get(get_one).put(update).delete(remove))
        .route("/windows/{id}/runs", get(window_runs))
        .route("/windows/runs/{run_id}", get(run_detail))
        .route("/windows/runs/{run_id}/abort", post(abort))
        .route("/updates/history", get(history_list))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let ws = windows::list(&state.db).await.map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "windows": ws.iter().map(|w| windows::view(w, now)).collect::<Vec<_>>() }),
    ))
}

async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(body): JsonBody<WindowInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let w = windows::create(&state.db, body, &who.name).await?;
    tracing::info!(window = %w.name, by = %who.name, "maintenance window created");
    Ok((StatusCode::CREATED, Json(windows::view(&w, now_ms()))))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let w = windows::get(&state.db, &id).await?;
    Ok(Json(windows::view(&w, now_ms())))
}

async fn update(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WindowInput>,
) -> Result<Json<Value>, ApiError> {
    let w = windows::update(&state.db, &id, body).await?;
    tracing::info!(window = %w.name, by = %who.name, "maintenance window changed");
    Ok(Json(windows::view(&w, now_ms())))
}

async fn remove(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let w = windows::delete(&state.db, &id).await?;
    tracing::info!(window = %w.name, by = %who.name, "maintenance window removed");
    Ok(Json(json!({ "deleted": w.id, "name": w.name })))
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    limit: Option<u64>,
}

async fn window_runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let w = windows::get(&state.db, &id).await?;
    let rs = runs::of_window(&state.db, &w.id, q.limit.unwrap_or(20).clamp(1, 500))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "runs": rs.iter().map(runs::run_json).collect::<Vec<_>>() }),
    ))
}

async fn run_detail(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(runs::detail(&state.db, &run_id).await?))
}

async fn abort(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = runs::abort(&state.db, &run_id, &who.name).await?;
    tracing::info!(run = %r.id, by = %who.name, "window run aborted");
    Ok(Json(runs::detail(&state.db, &r.id).await?))
}

/// `GET /api/v1/updates/history?agent=&package=&since=&page=&per_page=&format=json|csv`:
/// newest first. JSON: `{"history": [...], "total", "page", "per_page"}`;
/// CSV: a header row and up to 100,000 rows, as a download.
async fn history_list(
    State(state): State<AppState>,
    Query(f): Query<history::Filter>,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let csv = match f.format.as_deref() {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(bad("`format` must be json or csv".into())),
    };
    let per_page = match (csv, f.per_page) {
        (true, _) => history::EXPORT_MAX,
        (false, None) => history::PER_PAGE,
        (false, Some(n)) if (1..=history::MAX_PER_PAGE).contains(&n) => n,
        (false, Some(_)) => {
            return Err(bad(format!(
                "`per_page` must be from 1 to {}",
                history::MAX_PER_PAGE
            )))
        }
    };
    let (rows, total) = history::list(&state.db, &f, now_ms(), per_page)
        .await
        .map_err(ApiError::internal)?
        .map_err(bad)?;
    if csv {
        let body = history::to_csv(&rows).map_err(ApiError::internal)?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"drover-update-history.csv\"",
                ),
            ],
            body,
        )
            .into_response());
    }
    Ok(Json(json!({
        "history": rows.iter().map(history::row_json).collect::<Vec<_>>(),
        "total": total,
        "page": f.page.unwrap_or(1).max(1),
        "per_page": per_page,
    }))
    .into_response())
}
