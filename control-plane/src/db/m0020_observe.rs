//! Migration m0020: the two tables that join watching, alerting and
//! notifying — `service_states` (each watched systemd unit's state on each
//! host, written by heartbeat ingest) and `alert_transitions` (the outbox of
//! alert state changes, written by alert evaluation and read by the
//! notification dispatcher). Owns only the schema; what the columns mean is
//! written on the entities (`services::state`, `alerts::transition`).
//! Plain `CREATE TABLE`s and indexes, so it runs on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0020Observe;

impl MigrationName for M0020Observe {
    fn name(&self) -> &str {
        "m0020_observe"
    }
}

#[derive(DeriveIden)]
enum ServiceStates {
    Table,
    AgentId,
    Unit,
    LoadState,
    ActiveState,
    SubState,
    Since,
    SeenAt,
}

#[derive(DeriveIden)]
enum AlertTransitions {
    Table,
    Id,
    AlertId,
    RuleId,
    RuleName,
    AgentId,
    Hostname,
    Target,
    State,
    Severity,
    Summary,
    Labels,
    At,
    Suppressed,
    DispatchedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0020Observe {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ServiceStates::Table)
                .if_not_exists()
                .col(string(ServiceStates::AgentId))
                .col(string(ServiceStates::Unit))
                .col(string(ServiceStates::LoadState))
                .col(string(ServiceStates::ActiveState))
                .col(string(ServiceStates::SubState))
                .col(big_integer(ServiceStates::Since))
                .col(big_integer(ServiceStates::SeenAt))
                .primary_key(
                    Index::create()
                        .col(ServiceStates::AgentId)
                        .col(ServiceStates::Unit),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("service_states_unit_active")
                .table(ServiceStates::Table)
                .col(ServiceStates::Unit)
                .col(ServiceStates::ActiveState)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AlertTransitions::Table)
                .if_not_exists()
                .col(big_pk_auto(AlertTransitions::Id))
                .col(string(AlertTransitions::AlertId))
                .col(string(AlertTransitions::RuleId))
                .col(string(AlertTransitions::RuleName))
                .col(string_null(AlertTransitions::AgentId))
                .col(string_null(AlertTransitions::Hostname))
                .col(string(AlertTransitions::Target))
                .col(string(AlertTransitions::State))
                .col(string(AlertTransitions::Severity))
                .col(text(AlertTransitions::Summary))
                .col(text(AlertTransitions::Labels))
                .col(big_integer(AlertTransitions::At))
                .col(string_null(AlertTransitions::Suppressed))
                .col(big_integer_null(AlertTransitions::DispatchedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("alert_transitions_undispatched")
                .table(AlertTransitions::Table)
                .col(AlertTransitions::DispatchedAt)
                .col(AlertTransitions::Id)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("alert_transitions_alert")
                .table(AlertTransitions::Table)
                .col(AlertTransitions::AlertId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
