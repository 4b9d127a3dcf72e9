//! The key-rotation tables (migration m0028): `signing_keys`, one row per
//! rotated-in key generation (generation 0, the key made by `drover init` or
//! the pinned release key, has no row), and `host_keys`, the fingerprints
//! each host last reported accepting. Times are ms since the epoch. Owns the
//! rows' shapes only; private key halves are never stored here (they are
//! 0600 files in the data directory).

pub mod signing_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        /// `command` or `release`.
        pub kind: String,
        /// 1, 2, ...: unique per kind, only ever growing.
        pub generation: i32,
        /// Base64 of the 32 raw public-key bytes.
        pub public_key: String,
        /// `SHA256:<base64>` of the public key.
        pub fingerprint: String,
        pub created_at: i64,
        pub created_by: String,
        /// Until when hosts still accept the key this one replaced.
        pub overlap_end: i64,
        /// The rotation message's JSON text, exactly as the old key signed it.
        pub rotation: String,
        /// Base64 Ed25519 signature by the old key over `rotation`.
        pub signature: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod host_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "host_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// JSON array of `SHA256:<base64>` fingerprints the host accepts.
        pub fingerprints: String,
        pub reported_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
