//! Migration m0010 and entity `agent_clocks`: each host's clock skew as the
//! control plane last measured it from the host's heartbeats. Owns the table
//! and its row shape; how a skew is measured and judged lives in
//! `skew.rs`, not here. A table of its own, not columns on `agents`, so
//! a heartbeat's skew write never races the agent row's other writers.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0010ClockSkew;

impl MigrationName for M0010ClockSkew {
    fn name(&self) -> &str {
        "m0010_clock_skew"
    }
}

#[derive(DeriveIden)]
enum AgentClocks {
    Table,
    AgentId,
    SkewMs,
    MeasuredAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0010ClockSkew {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AgentClocks::Table)
                .if_not_exists()
                .col(string(AgentClocks::AgentId).primary_key())
                .col(big_integer(AgentClocks::SkewMs))
                .col(big_integer(AgentClocks::MeasuredAt))
                .to_owned(),
        )
        .await
    }
}

/// One row per host that has sent a heartbeat since this table exists.
pub mod agent_clock {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "agent_clocks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// Milliseconds the host's clock is ahead of the control plane's
        /// (negative: behind), as estimated over its recent heartbeats.
        pub skew_ms: i64,
        /// When (control-plane clock, ms since the epoch) it was measured.
        pub measured_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
