//! Routes for signing-key rotation: `GET /keys` (the overview: generations,
//! overlap end, which hosts hold the current key) and `POST /keys/rotate`
//! (admin). The steps are `keys::rotate`'s.

use axum::{extract::State, http::StatusCode, Extension, Json};
use bus_schema::signing::rotation::KeyKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, JsonBody};
use crate::auth::Principal;
use crate::keys::rotate::{self, RotateError};
use crate::state::AppState;

impl From<RotateError> for ApiError {
    fn from(e: RotateError) -> Self {
        let status = match &e {
            RotateError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RotateError::Conflict(_) => StatusCode::CONFLICT,
            RotateError::Db(_) | RotateError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// `POST /keys/rotate`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// `command` or `release`.
    which: String,
    /// Command keys: how long hosts still accept the old key (`24h`, `90m`,
    /// `7d`, seconds). Default 24h.
    #[serde(default)]
    overlap: Option<String>,
    /// Release keys: the rotation's JSON text, signed by the old release
    /// key on the operator's machine (`drover keys rotate --which release`).
    #[serde(default)]
    rotation: Option<String>,
    /// Release keys: base64 signature over `rotation`.
    #[serde(default)]
    signature: Option<String>,
}

pub async fn overview(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        crate::keys::view::overview(&state)
            .await
            .map_err(ApiError::internal)?,
    ))
}

pub async fn rotate(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: JsonBody<RotateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(body) = body;
    let which = KeyKind::parse(&body.which)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let done = match which {
        KeyKind::Command => {
            if body.rotation.is_some() || body.signature.is_some() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "a command-key rotation is made and signed by the control plane: send only which and overlap",
                ));
            }
            let overlap = rotate::parse_overlap(body.overlap.as_deref().unwrap_or("24h"))?;
            rotate::rotate_command(&state, overlap, &who.name).await?
        }
        KeyKind::Release => {
            let (Some(text), Some(sig)) = (body.rotation, body.signature) else {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "a release-key rotation must be signed by the old release key: run `drover keys rotate --which release --old-key OLD.key --new-key NEW.key` on the machine that holds the keys",
                ));
            };
            rotate::rotate_release(&state, &text, &sig, &who.name).await?
        }
    };
    Ok((StatusCode::CREATED, Json(json!(done))))
}
