//! The rollout tables (migration m0018): `rollouts` (one staged rollout of
//! an agent release) and `rollout_hosts` (each targeted host's wave and
//! state). Times are milliseconds since the epoch. Owns the rows' shapes
//! only; the rules for writing them are in the `rollouts` module.

/// One rollout.
pub mod rollout {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rollouts")]
    pub struct Model {
        /// UUIDv7, hyphen-free.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The `agent_releases` row rolled out.
        pub release_id: String,
        pub version: String,
        /// The JSON of `selector::Selector`: the hosts targeted.
        pub selector: String,
        /// As given: `5%` or a host count `3`; "" = no canary.
        pub canary: String,
        /// As given: comma-separated cumulative percentages, `10%,50%,100%`.
        pub waves: String,
        /// Seconds to wait after a wave is healthy before the next.
        pub pause_secs: i64,
        /// As given: `2%` or a host count; failures beyond it halt.
        pub max_failures: String,
        pub allow_downgrade: bool,
        /// `running`, `paused`, `halted`, `aborted`, `done`.
        pub state: String,
        /// The wave being rolled out: 0 is the canary, 1.. the waves.
        pub current_wave: i32,
        /// When the current wave became healthy (its pause runs from here).
        pub wave_done_at: Option<i64>,
        /// Why it halted (failure threshold, yank, operator abort).
        pub halted_reason: Option<String>,
        pub created_by: String,
        pub created_at: i64,
        pub updated_at: i64,
        pub finished_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One host of a rollout.
pub mod host {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rollout_hosts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub rollout_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// 0: canary; 1..: the waves in order.
        pub wave: i32,
        /// `pending`, `downloading`, `installed`, `healthy`, `rolled_back`,
        /// `failed`, `offline`, `skipped` (already at the version).
        pub state: String,
        /// The version the host ran when the rollout took it.
        pub from_version: String,
        /// The `agent.update` command sent to it.
        pub command_id: Option<String>,
        /// The `agent.selftest` command sent once it heartbeat the new version.
        pub selftest_command_id: Option<String>,
        /// Why it failed or was rolled back, as the host said.
        pub reason: Option<String>,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
