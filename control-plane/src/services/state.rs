//! The `service_states` table (migration m0020): the latest state of each
//! watched systemd unit on each host, as the host's heartbeats report it.
//! Written only by heartbeat ingest; read by the services pages and by
//! alert evaluation (rule kind `service_not_active`). Owns the row's shape.

pub mod service_state {
    use sea_orm::entity::prelude::*;

    /// One unit on one host. A host's full report replaces its rows (units
    /// no longer watched are deleted); a change report updates the units it
    /// names.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_states")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// The full unit name, `nginx.service`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub unit: String,
        /// systemd's `LoadState`: `loaded`, `not-found`, `masked`, ...
        pub load_state: String,
        /// systemd's `ActiveState`: `active`, `inactive`, `failed`,
        /// `activating`, `deactivating`, `reloading`.
        pub active_state: String,
        /// systemd's `SubState`: `running`, `dead`, `exited`, ...
        pub sub_state: String,
        /// When `active_state` last changed as the control plane saw it, ms.
        pub since: i64,
        /// When a heartbeat last reported this unit, ms.
        pub seen_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
