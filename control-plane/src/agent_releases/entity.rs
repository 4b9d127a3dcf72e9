//! The `agent_releases` table (migration m0018): one signed agent binary
//! each, the binary itself in the releases bucket under `object_name`.
//! Times are milliseconds since the epoch. Owns the row's shape only.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_releases")]
pub struct Model {
    /// UUIDv7, hyphen-free.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Semantic version; unique with `platform`.
    pub version: String,
    /// `linux-x86_64`, `linux-aarch64`.
    pub platform: String,
    /// `stable` or `beta`.
    pub channel: String,
    /// Lower-case hex SHA-256 of the binary.
    pub sha256: String,
    /// Bytes.
    pub size: i64,
    /// The manifest's JSON text exactly as the release key signed it.
    pub manifest: String,
    /// Base64 Ed25519 signature by the release key over the manifest.
    pub signature: String,
    /// Oldest control-plane version the release works with ("" = any).
    pub min_control_plane: String,
    pub notes: String,
    /// The binary's object name in the releases bucket.
    pub object_name: String,
    pub published_at: i64,
    pub published_by: String,
    /// Set once yanked; a yanked release is never offered again.
    pub yanked_at: Option<i64>,
    pub yanked_by: Option<String>,
    pub yank_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
