//! Routes for notification channels and their deliveries:
//! `GET/POST /notify/channels`, `PUT/DELETE /notify/channels/{id}`,
//! `POST /notify/channels/{id}/test`, `GET /notify/channels/{id}/deliveries`.
//! Translates HTTP to `crate::notify`; the gate checks roles and audits
//! changes (never the secret: `notify::views::describe`).

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post, put},
    Extension, Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, JsonBody};
use crate::auth::Principal;
use crate::notify::channels::{self, ChannelError, ChannelInput};
use crate::notify::{deliveries, views};
use crate::state::AppState;

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        let status = match &e {
            ChannelError::Invalid(_) => StatusCode::BAD_REQUEST,
            ChannelError::NotFound(_) => StatusCode::NOT_FOUND,
            ChannelError::NameTaken(_) => StatusCode::CONFLICT,
            ChannelError::Seal(_) | ChannelError::Db(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/notify/channels", get(list).post(create))
        .route("/notify/channels/{id}", put(update).delete(remove))
        .route("/notify/channels/{id}/test", post(test))
        .route("/notify/channels/{id}/deliveries", get(deliveries_of))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let cs = channels::list(&state.db).await?;
    let names = channels::rule_names(&state.db).await?;
    Ok(Json(
        json!({ "channels": cs.iter().map(|c| views::view_named(c, &names)).collect::<Vec<_>>() }),
    ))
}

async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(body): JsonBody<ChannelInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = channels::create(&state.db, &state.cfg, body, &who.name).await?;
    tracing::info!(channel = %c.name, kind = %c.kind, by = %who.name, "notification channel created");
    let names = channels::rule_names(&state.db).await?;
    Ok((StatusCode::CREATED, Json(views::view_named(&c, &names))))
}

async fn update(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChannelInput>,
) -> Result<Json<Value>, ApiError> {
    let c = channels::update(&state.db, &state.cfg, &id, body).await?;
    tracing::info!(channel = %c.name, by = %who.name, "notification channel changed");
    let names = channels::rule_names(&state.db).await?;
    Ok(Json(views::view_named(&c, &names)))
}

async fn remove(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = channels::delete(&state.db, &id).await?;
    tracing::info!(channel = %c.name, by = %who.name, "notification channel removed");
    Ok(Json(json!({ "deleted": c.id, "name": c.name })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestInput {
    /// `info` (default), `warning` or `critical`.
    #[serde(default)]
    severity: Option<String>,
}

/// A test notification through the whole path: a transition in the outbox
/// routed to this channel only, dispatched, grouped, held and delivered
/// like any other. `{"transition_id", "channel"}`; 202.
async fn test(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The body is optional: none is `{}`.
    let input: TestInput = if body.iter().all(u8::is_ascii_whitespace) {
        TestInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            )
        })?
    };
    let t = deliveries::enqueue_test(&state, &id, input.severity.as_deref(), &who.name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "transition_id": t.0, "channel": t.1 })),
    ))
}

#[derive(Debug, Deserialize)]
struct DeliveriesQuery {
    limit: Option<u64>,
}

async fn deliveries_of(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = channels::get(&state.db, &id).await?;
    let ds = deliveries::recent(&state.db, &c.id, q.limit.unwrap_or(50).clamp(1, 500)).await?;
    Ok(Json(json!({
        "channel": views::view_named(&c, &channels::rule_names(&state.db).await?),
        "deliveries": ds.iter().map(deliveries::view).collect::<Vec<_>>(),
    })))
}
