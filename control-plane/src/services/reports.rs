//! The watch revision each host last reported in its heartbeat (table
//! `service_watch_reports`, migration m0021): what the `service_watch` duty
//! compares with the desired one. Written by heartbeat ingest
//! (`services::ingest`) only when it changes. Owns the row's shape.

pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One host's reported watch revision.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_watch_reports")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// `catalogue::agent::watch_revision` of the host's units; "" for
        /// none.
        pub revision: String,
        /// When the revision was first reported, ms since the epoch.
        pub reported_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
