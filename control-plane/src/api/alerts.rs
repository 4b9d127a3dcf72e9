//! Routes for alerting: `GET/POST /alerts/rules`, `PUT/DELETE
//! /alerts/rules/{id}`, `GET /alerts?state=&limit=`, `GET /alerts/{id}`
//! (with its transitions), `POST /alerts/{id}/ack`, `GET/POST /silences`,
//! `DELETE /silences/{id}`. Translates HTTP to `crate::alerts`; the gate
//! checks roles and audits changes.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post, put},
    Extension, Json, Router,
};
use bus_schema::now_ms;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, JsonBody};
use crate::alerts::rules::{self, RuleError, RuleInput};
use crate::alerts::silences::{self, SilenceInput};
use crate::alerts::{evaluate, store};
use crate::auth::Principal;
use crate::state::AppState;

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        let status = match &e {
            RuleError::Invalid(_) => StatusCode::BAD_REQUEST,
            RuleError::NotFound(_) | RuleError::NoSilence(_) | RuleError::NoAlert(_) => {
                StatusCode::NOT_FOUND
            }
            RuleError::NameTaken(_) | RuleError::Resolved(_) => StatusCode::CONFLICT,
            RuleError::Db(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/rules", get(list_rules).post(create_rule))
        .route("/alerts/rules/{id}", put(update_rule).delete(remove_rule))
        .route("/alerts/rules/{id}/enable", post(enable_rule))
        .route("/alerts/rules/{id}/disable", post(disable_rule))
        .route("/alerts/{id}", get(detail))
        .route("/alerts/{id}/ack", post(ack))
        .route("/silences", get(list_silences).post(create_silence))
        .route("/silences/{id}", axum::routing::delete(remove_silence))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<u64>,
}

/// `GET /alerts?state=open|pending|firing|resolved|all&limit=`: newest
/// first; default `open`, limit 200 (at most 5000). `{"alerts": [...],
/// "firing": <how many fire now, whatever the filter>}`.
async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let s = q.state.unwrap_or_else(|| "open".into());
    if !store::STATE_FILTERS.contains(&s.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("state must be one of {}", store::STATE_FILTERS.join(", ")),
        ));
    }
    let alerts = store::list(&state.db, &s, q.limit.unwrap_or(200).clamp(1, 5000))
        .await
        .map_err(ApiError::internal)?;
    let views = store::views(&state.db, &alerts)
        .await
        .map_err(ApiError::internal)?;
    let firing = store::firing_count(&state.db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "alerts": views, "firing": firing })))
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(store::detail(&state.db, &id).await?))
}

async fn ack(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = store::ack(&state.db, &id, &who.name).await?;
    tracing::info!(alert = %a.id, by = %who.name, "alert acknowledged");
    crate::events::publish(&state, &evaluate::event(&a, None, &a.state, now_ms())).await;
    Ok(Json(store::detail(&state.db, &a.id).await?))
}

async fn list_rules(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rs = rules::list(&state.db).await.map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "rules": rs.iter().map(rules::view).collect::<Vec<_>>() }),
    ))
}

async fn create_rule(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(body): JsonBody<RuleInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let r = rules::create(&state.db, body, &who.name).await?;
    tracing::info!(rule = %r.name, by = %who.name, "alert rule created");
    Ok((StatusCode::CREATED, Json(rules::view(&r))))
}

async fn update_rule(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RuleInput>,
) -> Result<Json<Value>, ApiError> {
    let r = rules::update(&state.db, &id, body).await?;
    tracing::info!(rule = %r.name, by = %who.name, "alert rule changed");
    Ok(Json(rules::view(&r)))
}

async fn enable_rule(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = rules::set_enabled(&state.db, &id, true).await?;
    tracing::info!(rule = %r.name, by = %who.name, "alert rule enabled");
    Ok(Json(rules::view(&r)))
}

async fn disable_rule(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = rules::set_enabled(&state.db, &id, false).await?;
    tracing::info!(rule = %r.name, by = %who.name, "alert rule disabled");
    Ok(Json(rules::view(&r)))
}

async fn remove_rule(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = store::delete_rule(&state.db, &id).await?;
    tracing::info!(rule = %r.name, by = %who.name, "alert rule removed");
    Ok(Json(json!({ "deleted": r.id, "name": r.name })))
}

async fn list_silences(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let ss = silences::list(&state.db, now)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "silences": ss.iter().map(|s| silences::view(s, now)).collect::<Vec<_>>() }),
    ))
}

async fn create_silence(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(body): JsonBody<SilenceInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = silences::create(&state.db, body, &who.name).await?;
    tracing::info!(silence = %s.id, by = %who.name, "silence created");
    Ok((StatusCode::CREATED, Json(silences::view(&s, now_ms()))))
}

async fn remove_silence(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = silences::delete(&state.db, &id).await?;
    tracing::info!(silence = %s.id, by = %who.name, "silence removed");
    Ok(Json(json!({ "deleted": s.id })))
}
