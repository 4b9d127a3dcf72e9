//! Idempotency keys of job submissions: who may reuse a key, for how long,
//! and what counts as "the same request".
//!
//! A key belongs to its requester's scope ([`Requester::scope`]: one user
//! account, one API token, or one automation key); the same text from
//! another requester is another key. A key is remembered for [`KEY_TTL`]
//! after the job it created; after that it may name a new job. Within that
//! time the same key with the same request ([`fingerprint`]) is a replay of
//! the first job, and with a different request it is refused, naming the
//! first job.
//!
//! The fingerprint is an HMAC-SHA256 over the canonical JSON of the request
//! (action, params with their secrets, selector, timeout, lifetime), keyed
//! with a key derived from the control plane's signing seed: the database
//! holds no plain hash of a password that someone could guess offline.
//!
//! This module does not create jobs (`jobs::submit` does) and does
//! not decide who is authenticated (`auth` does).

use hmac::{Hmac, Mac};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use sha2::Sha256;

use crate::auth::{Principal, Via};
use crate::state::AppState;

/// How long a key stays bound to its job: 24 hours, in milliseconds.
pub const KEY_TTL_MS: i64 = 24 * 3600 * 1000;
/// [`KEY_TTL_MS`] as a duration, for documentation and messages.
pub const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Who submits a job: the name shown in the trail, and the scope its
/// idempotency keys live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// As recorded in `requested_by` and the audit trail.
    pub name: String,
    /// `user:<account id>`, `token:<API token id>` or `automation:<key id>`.
    pub scope: String,
}

impl Requester {
    /// An operator of the API or web UI.
    pub fn of(p: &Principal) -> Self {
        let scope = match &p.via {
            Via::Session { user_id, .. } => format!("user:{user_id}"),
            Via::Token { token_id } => format!("token:{token_id}"),
        };
        Self {
            name: p.name.clone(),
            scope,
        }
    }

    /// An automation key submitting on the bus.
    pub fn automation(key_id: &str, key_name: &str) -> Self {
        Self {
            name: format!("automation:{key_name}"),
            scope: format!("automation:{key_id}"),
        }
    }
}

/// One remembered key (table `idempotency_keys`).
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        /// [`super::Requester::scope`].
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub job_id: String,
        /// Hex HMAC-SHA256 of the request ([`super::fingerprint`]).
        pub fingerprint: String,
        /// Milliseconds since the epoch.
        pub created_at: i64,
        /// Milliseconds since the epoch; past it the key is free again.
        pub expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The keyed fingerprint of a request; equal requests give equal text.
/// `request` is hashed as serde_json writes it (object keys sorted).
pub fn fingerprint(state: &AppState, request: &Value) -> String {
    let key = state.signer.derive_key("drover idempotency fingerprint v1");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(request.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The live binding of `key` in `scope`, if any (an expired one is none).
pub async fn find(
    db: &impl ConnectionTrait,
    scope: &str,
    key: &str,
    now: i64,
) -> Result<Option<entity::Model>, sea_orm::DbErr> {
    entity::Entity::find()
        .filter(entity::Column::Scope.eq(scope))
        .filter(entity::Column::Key.eq(key))
        .filter(entity::Column::ExpiresAt.gt(now))
        .one(db)
        .await
}

/// Forgets every key past its time (run inside the transaction that binds
/// a new key, so an expired key can be bound again).
pub async fn sweep(db: &impl ConnectionTrait, now: i64) -> Result<(), sea_orm::DbErr> {
    entity::Entity::delete_many()
        .filter(entity::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    Ok(())
}

/// The key a job was created with, if it had one.
pub async fn key_of(
    db: &impl ConnectionTrait,
    job_id: &str,
) -> Result<Option<String>, sea_orm::DbErr> {
    Ok(entity::Entity::find()
        .filter(entity::Column::JobId.eq(job_id))
        .one(db)
        .await?
        .map(|k| k.key))
}

/// Checks the text of a key: 1 to 128 characters, none of them control
/// characters.
pub fn check_key(k: &str) -> bool {
    !k.is_empty() && k.chars().count() <= 128 && !k.chars().any(char::is_control)
}
