//! Routes for patch management's inventory and approvals under
//! `/api/v1/updates` (and `/api/v1/agents/{id}/updates`): listings by
//! package and by host, approvals and declines with revocation, and
//! auto-approval rules. Reads are for every signed-in role, writes for
//! operators and admins (the gate's rule for any non-GET route); the gate
//! audits every successful write (`crate::updates::audit` describes them).
//! Does not own maintenance windows or history (`api::windows`, Part C).
//!
//! Errors: 400 for a malformed body or query (unknown field, bad selector
//! text in `?selector=`), 422 for a request that asks for something invalid
//! (unknown scope, bad package name, empty selector, expiry in the past),
//! 404 for an unknown id, 409 for a conflict (already revoked, rule name in
//! use). Nothing is stored when a request is refused.

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
use crate::auth::Principal;
use crate::selector::Selector;
use crate::state::AppState;
use crate::updates::store::{self, NewApproval, NewRule, RuleChange, UpdatesError};
use crate::updates::views::{self, Filter};

/// At most this many approvals are listed (newest first).
const APPROVALS_LISTED: u64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/updates", get(by_package))
        .route("/updates/hosts", get(by_host))
        .route("/agents/{id}/updates", get(for_host))
        .route(
            "/updates/approvals",
            post(create_approval).get(list_approvals),
        )
        .route("/updates/approvals/{id}/revoke", post(revoke_approval))
        .route("/updates/rules", get(list_rules).post(create_rule))
        .route("/updates/rules/{id}", put(update_rule).delete(delete_rule))
}

impl From<UpdatesError> for ApiError {
    fn from(e: UpdatesError) -> Self {
        match e {
            UpdatesError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            UpdatesError::NotFound(m) => ApiError::not_found(m),
            UpdatesError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            UpdatesError::Db(e) => ApiError::internal(e),
        }
    }
}

/// `?security=true&selector=<CLI form>`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    security: Option<String>,
    #[serde(default)]
    selector: Option<String>,
}

fn filter(q: &ListQuery) -> Result<Filter, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let security = match q.security.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad("`security` must be true or false".into())),
    };
    let selector = match q.selector.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(Selector::parse(t).map_err(|e| bad(format!("selector: {e}")))?),
    };
    Ok(Filter { security, selector })
}

fn query(
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ListQuery, ApiError> {
    q.map(|Query(q)| q).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{e}; the parameters are security=true and selector=<selector>"),
        )
    })
}

/// `GET /api/v1/updates`: `{"updates": [by package], "total": n}`.
async fn by_package(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let f = filter(&query(q)?)?;
    let v = views::by_package(&state.db, &f, now_ms())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "total": v.len(), "updates": v })))
}

/// `GET /api/v1/updates/hosts`: `{"hosts": [by host], "total": n}`.
async fn by_host(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let f = filter(&query(q)?)?;
    let v = views::by_host(&state.db, &f, now_ms())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "total": v.len(), "hosts": v })))
}

/// `GET /api/v1/agents/{id}/updates`: the host's rows and patch state.
async fn for_host(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    views::for_host(&state.db, &id, now_ms())
        .await
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))
}

/// Runs `f` in one write transaction under the writer's turn.
async fn write<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    F: for<'c> FnOnce(
        &'c sea_orm::DatabaseTransaction,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<T, UpdatesError>> + Send + 'c>,
    >,
{
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db)
        .await
        .map_err(ApiError::internal)?;
    let out = f(&txn).await?;
    txn.commit().await.map_err(ApiError::internal)?;
    Ok(out)
}

/// `POST /api/v1/updates/approvals` → 201 with the approval.
async fn create_approval(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<NewApproval>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = now_ms();
    let by = who.name.clone();
    let a = write(&state, move |t| {
        Box::pin(async move { store::create_approval(t, &req, &by, now).await })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(store::approval_json(&a, now))))
}

/// `GET /api/v1/updates/approvals`: `{"approvals": [...]}`, newest first.
async fn list_approvals(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let v = store::list_approvals(&state.db, APPROVALS_LISTED)
        .await
        .map_err(ApiError::internal)?;
    let v: Vec<Value> = v.iter().map(|a| store::approval_json(a, now)).collect();
    Ok(Json(json!({ "approvals": v })))
}

/// `POST /api/v1/updates/approvals/{id}/revoke` → the revoked approval.
async fn revoke_approval(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let by = who.name.clone();
    let a = write(&state, move |t| {
        Box::pin(async move { store::revoke_approval(t, &id, &by, now).await })
    })
    .await?;
    Ok(Json(store::approval_json(&a, now)))
}

/// `GET /api/v1/updates/rules`: `{"rules": [...]}` by name.
async fn list_rules(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let v = store::list_rules(&state.db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "rules": v.iter().map(store::rule_json).collect::<Vec<_>>() }),
    ))
}

/// `POST /api/v1/updates/rules` → 201 with the rule.
async fn create_rule(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(req): JsonBody<NewRule>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = now_ms();
    let by = who.name.clone();
    let r = write(&state, move |t| {
        Box::pin(async move { store::create_rule(t, &req, &by, now).await })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(store::rule_json(&r))))
}

/// `PUT /api/v1/updates/rules/{id}` with the fields to change.
async fn update_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(ch): JsonBody<RuleChange>,
) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let r = write(&state, move |t| {
        Box::pin(async move { store::update_rule(t, &id, &ch, now).await })
    })
    .await?;
    Ok(Json(store::rule_json(&r)))
}

/// `DELETE /api/v1/updates/rules/{id}` → `{"deleted": id, "rule": ...}`.
async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = write(&state, move |t| {
        Box::pin(async move { store::delete_rule(t, &id).await })
    })
    .await?;
    Ok(Json(
        json!({ "deleted": r.id, "rule": store::rule_json(&r) }),
    ))
}
