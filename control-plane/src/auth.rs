//! API authentication: bearer tokens, stored as SHA-256 hashes. `drover init`
//! creates the bootstrap admin token.

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use rand::RngCore;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::api::ApiError;
use crate::db::entities::api_token;
use crate::state::AppState;

/// Who is calling, as the token says.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: String,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: `drv_` + 32 random bytes in hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("drv_{}", hex::encode(b))
}

pub async fn store_token(
    db: &sea_orm::DatabaseConnection,
    name: &str,
    role: &str,
    token: &str,
) -> Result<(), sea_orm::DbErr> {
    api_token::Entity::insert(api_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        name: Set(name.into()),
        role: Set(role.into()),
        token_hash: Set(hash_token(token)),
        created_at: Set(bus_schema::now_ms()),
    })
    .exec(db)
    .await?;
    Ok(())
}

pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("missing bearer token: send `Authorization: Bearer <token>` (the admin token is printed by `drover init` and kept in <data_dir>/admin.token)"))?;
    let found = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(hash_token(token)))
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    req.extensions_mut().insert(Principal {
        name: found.name,
        role: found.role,
    });
    Ok(next.run(req).await)
}
