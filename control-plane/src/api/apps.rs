//! Routes for the app catalogue (from the manifests), installing an app on
//! a selection of hosts (a job of `app.install`), and the live output of a
//! command.

use super::JsonBody;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Extension, Json, Router,
};
use bus_schema::manifest::{self, Manifest, ManifestError};
use bus_schema::Source;
use sea_orm::EntityTrait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::auth::Principal;
use crate::db::entities::command;
use crate::idempotency::Requester;
use crate::jobs::{self, NewJob, Selector};
use crate::output;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/apps", get(list))
        .route("/apps/{id}", get(get_one))
        .route("/apps/{id}/install", post(install))
        .route("/commands/{id}/output", get(command_output))
}

/// A manifest as the API shows it: everything the form needs. Sensitive
/// inputs never carry a default (the validator refuses one).
fn view(m: &Manifest) -> Value {
    json!({
        "id": m.id,
        "name": m.name,
        "version": m.version,
        "description": m.description,
        "category": m.category,
        "os": m.os,
        "resources": m.resources,
        "timeout_secs": m.timeout_secs,
        "idempotent": m.idempotent,
        "tags": m.tags,
        "uninstallable": m.scripts.uninstall.is_some(),
        "inputs": m.inputs.iter().map(|i| {
            let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
            v["sensitive"] = json!(i.is_sensitive());
            v["env"] = json!(i.env_name());
            v
        }).collect::<Vec<_>>(),
    })
}

/// Every manifest problem is the caller's to see: 404 for an unknown app,
/// 400 for an id that cannot be one, 422 naming the file and the reason for
/// a manifest that does not load. Never a 500.
fn manifest_error(e: ManifestError) -> ApiError {
    match e {
        ManifestError::NotFound(_) => {
            ApiError::not_found(format!("{e}; list apps with GET /api/v1/apps"))
        }
        ManifestError::BadId(_) | ManifestError::Escapes(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
        }
        ManifestError::Invalid { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the app's manifest cannot be used: {e}; fix the manifest file"),
        ),
        ManifestError::Io { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the app's manifest cannot be read: {e}; check the manifest directory of the control plane"
            ),
        ),
    }
}

async fn list(State(state): State<AppState>) -> Json<Value> {
    let (good, bad) = manifest::load_all(&state.cfg.manifests_dir);
    for e in &bad {
        tracing::warn!(error = %e, "manifest skipped");
    }
    Json(json!({
        "apps": good.iter().map(view).collect::<Vec<_>>(),
        "invalid": bad.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
    }))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (m, _) = manifest::load(&state.cfg.manifests_dir, &id).map_err(manifest_error)?;
    Ok(Json(view(&m)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    pub selector: Selector,
    #[serde(default)]
    pub inputs: serde_json::Map<String, Value>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub timeout_secs: Option<u32>,
}

/// Checks the inputs against the manifest (field by field, so a form can
/// show each error beside its field), then creates an `app.install` job.
async fn install(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: JsonBody<InstallRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(req) = body;
    let (m, _) = manifest::load(&state.cfg.manifests_dir, &id).map_err(manifest_error)?;
    let resolved = match m.resolve_inputs(&req.inputs) {
        Ok(r) => r,
        Err(errs) => {
            let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(
                    json!({ "error": format!("invalid inputs: {}", text.join("; ")), "fields": errs }),
                ),
            ));
        }
    };
    // Only the values of shown inputs travel and are recorded.
    let job = NewJob {
        selector: req.selector,
        action: "app.install".into(),
        params: json!({ "app": m.id, "inputs": resolved.kept }),
        timeout_secs: req.timeout_secs,
        ttl_secs: None,
        idempotency_key: req.idempotency_key,
    };
    let r = jobs::submit(&state, job, &Requester::of(&who), Source::User).await;
    let (code, Json(mut v)) = super::jobs::answer(&state, r).await?;
    if code.is_success() {
        v["ignored_inputs"] = json!(resolved.ignored);
    }
    Ok((code, Json(v)))
}

#[derive(Debug, Deserialize)]
pub struct OutputQuery {
    /// Only lines after this sequence number (for following).
    #[serde(default)]
    pub after: u64,
}

/// The output lines of a command so far, in order, and whether the command
/// has ended (then no more lines will come).
async fn command_output(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<OutputQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = command::Entity::find_by_id(id.clone())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no command {id}")))?;
    let lines = output::read(&state.js, &c.agent_id, &c.id, q.after)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")))?;
    let status = bus_schema::CommandStatus::parse(&c.status);
    Ok(Json(json!({
        "command_id": c.id,
        "status": c.status,
        "final": status.is_some_and(|s| s.is_final()),
        "lines": lines,
    })))
}
