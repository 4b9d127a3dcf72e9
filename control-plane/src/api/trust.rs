//! Routes for enrolment and trust: registration tokens, approve / reject /
//! revoke agents, the security overview.

use super::JsonBody;
use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Extension, Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::auth::Principal;
use crate::state::AppState;
use crate::tokens::{self, NewToken};
use crate::trust::{self, TrustError};

impl From<TrustError> for ApiError {
    fn from(e: TrustError) -> Self {
        let status = match &e {
            TrustError::UnknownAgent(_) => StatusCode::NOT_FOUND,
            TrustError::WrongState { .. } => StatusCode::CONFLICT,
            TrustError::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
            TrustError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// How many agents may enrol with it.
    #[serde(default = "one")]
    uses: i32,
    /// `24h`, `90m`, `7d` or seconds.
    #[serde(default = "day")]
    expires: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    auto_approve: bool,
}

fn one() -> i32 {
    1
}
fn day() -> String {
    "24h".into()
}

pub async fn create_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(body) = body;
    if !(1..=100_000).contains(&body.uses) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "uses must be between 1 and 100000",
        ));
    }
    let secs = tokens::parse_duration_secs(&body.expires)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    for (k, v) in &body.labels {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        };
        if !ok(k) || !ok(v) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("label {k}={v}: keys and values are 1..=64 of [A-Za-z0-9-_./]"),
            ));
        }
    }
    let (model, secret) = tokens::create(
        &state.db,
        NewToken {
            uses: body.uses,
            expires_in_secs: secs,
            labels: body.labels,
            auto_approve: body.auto_approve,
            created_by: who.name,
        },
    )
    .await
    .map_err(ApiError::internal)?;
    let mut v = tokens::token_json(&model);
    // The only time the secret is ever shown, with the line that installs
    // and enrols a host with it.
    v["install_line"] = Value::String(crate::install::install_line(&state.cfg, &secret));
    v["token"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

pub async fn list_tokens(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = tokens::list(&state.db).await.map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "tokens": list.iter().map(tokens::token_json).collect::<Vec<_>>() }),
    ))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if tokens::revoke(&state.db, &id)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(Json(json!({ "id": id, "state": "revoked" })))
    } else {
        Err(ApiError::not_found(format!(
            "no registration token {id}; list them with `drover tokens list`"
        )))
    }
}

pub async fn approve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    trust::approve(&state, &id, &who.name).await?;
    Ok(Json(json!({ "id": id, "status": "approved" })))
}

pub async fn reject(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    trust::reject(&state, &id, &who.name).await?;
    Ok(Json(json!({ "id": id, "status": "rejected" })))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    trust::revoke(&state, &id, &who.name).await?;
    Ok(Json(json!({ "id": id, "status": "revoked" })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveConflict {
    /// The machine-id or instance id of the machine to keep.
    keep: String,
}

/// An operator decides an identity conflict (two machines on one agent id):
/// the kept machine is served, the other is ignored and takes no commands.
pub async fn resolve_conflict(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ResolveConflict>,
) -> Result<Json<Value>, ApiError> {
    use crate::clones::ResolveError;
    match crate::clones::resolve(&state, &id, &body.keep, &who.name).await {
        Ok(c) => Ok(Json(c.json())),
        Err(e) => {
            let status = match &e {
                ResolveError::NoConflict(_) => StatusCode::NOT_FOUND,
                ResolveError::AlreadyDecided { .. } => StatusCode::CONFLICT,
                ResolveError::BadKeep(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ResolveError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Err(ApiError::new(status, e.to_string()))
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    name: String,
    role: String,
    public_key: String,
}

pub async fn add_automation_key(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<AddKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use crate::automation::{self, KeyError};
    match automation::add(&state, &body.name, &body.role, &body.public_key).await {
        Ok(k) => Ok((StatusCode::CREATED, Json(automation::key_json(&k)))),
        Err(KeyError::Db(e)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("could not add the key (name or key already registered?): {e}"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
    }
}

pub async fn list_automation_keys(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let keys = crate::automation::list(&state)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "keys": keys.iter().map(crate::automation::key_json).collect::<Vec<_>>() }),
    ))
}

pub async fn revoke_automation_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if crate::automation::revoke(&state, &id)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(Json(json!({ "id": id, "revoked": true })))
    } else {
        Err(ApiError::not_found(format!("no automation key {id}")))
    }
}

pub async fn security(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(trust::overview(&state).await?))
}
