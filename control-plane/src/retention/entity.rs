//! The tables of retention (m0024): `metric_rollups` (downsampled metric
//! history) and `audit_archives` (which audit rows left the database, and
//! the head hash the remaining chain continues from). Owns the shapes;
//! not who writes them (`retention::rollup`, `retention::archive`).

pub mod metric_rollup {
    use sea_orm::entity::prelude::*;

    /// One agent's metrics over one bucket of `resolution_secs` (300: five
    /// minutes, rolled up from raw `metric_samples`; 3600: one hour, rolled
    /// up from the five-minute rows). Bytes for memory and disk, percent
    /// for CPU, the 1-minute load average for load.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "metric_rollups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// 300 or 3600.
        #[sea_orm(primary_key, auto_increment = false)]
        pub resolution_secs: i32,
        /// The bucket's start, milliseconds since the epoch (a multiple of
        /// `resolution_secs * 1000`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub bucket_at: i64,
        /// Raw samples the bucket covers.
        pub samples: i64,
        pub cpu_avg: f64,
        pub cpu_max: f64,
        pub mem_used_avg: i64,
        /// The largest total seen in the bucket.
        pub mem_total: i64,
        pub disk_used_max: i64,
        pub disk_total: i64,
        pub load1_avg: f64,
        pub load1_max: f64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_archive {
    use sea_orm::entity::prelude::*;

    /// One exported and deleted segment of the audit trail: rows
    /// `from_id..=to_id`, whose last hash is `head_hash` (the `prev_hash`
    /// the first remaining row must carry).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_archives")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub from_id: i64,
        pub to_id: i64,
        pub head_hash: String,
        pub rows: i64,
        /// Milliseconds since the epoch.
        pub exported_at: i64,
        /// The file's name as given to `drover audit archive --out`.
        pub file_name: String,
        /// The `prev_hash` of row `from_id`: the previous archive's
        /// `head_hash`, or the genesis value (64 zeros) for row 1.
        pub first_prev_hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
