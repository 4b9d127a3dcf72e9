//! Migration m0022: alert rules, alerts and silences. Owns only the schema;
//! what the columns mean is written on the entities (`alerts::entities`).
//! Plain `CREATE TABLE`s and indexes (one partial unique index, which
//! SQLite and PostgreSQL both support), so it runs on either.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0022Alerts;

impl MigrationName for M0022Alerts {
    fn name(&self) -> &str {
        "m0022_alerts"
    }
}

#[derive(DeriveIden)]
enum AlertRules {
    Table,
    Id,
    Name,
    Kind,
    Selector,
    Params,
    Severity,
    ForSecs,
    Labels,
    Enabled,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Id,
    RuleId,
    Target,
    AgentId,
    State,
    Severity,
    Summary,
    Labels,
    Value,
    FirstAt,
    FiredAt,
    LastAt,
    ResolvedAt,
    AckedBy,
    AckedAt,
}

#[derive(DeriveIden)]
enum Silences {
    Table,
    Id,
    RuleId,
    Selector,
    StartsAt,
    EndsAt,
    Comment,
    CreatedBy,
    CreatedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0022Alerts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AlertRules::Table)
                .if_not_exists()
                .col(string(AlertRules::Id).primary_key())
                .col(string_uniq(AlertRules::Name))
                .col(string(AlertRules::Kind))
                .col(text(AlertRules::Selector))
                .col(text(AlertRules::Params))
                .col(string(AlertRules::Severity))
                .col(big_integer(AlertRules::ForSecs))
                .col(text(AlertRules::Labels))
                .col(boolean(AlertRules::Enabled))
                .col(string(AlertRules::CreatedBy))
                .col(big_integer(AlertRules::CreatedAt))
                .col(big_integer(AlertRules::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Alerts::Table)
                .if_not_exists()
                .col(string(Alerts::Id).primary_key())
                .col(string(Alerts::RuleId))
                .col(string(Alerts::Target))
                .col(string_null(Alerts::AgentId))
                .col(string(Alerts::State))
                .col(string(Alerts::Severity))
                .col(text(Alerts::Summary))
                .col(text(Alerts::Labels))
                .col(double_null(Alerts::Value))
                .col(big_integer(Alerts::FirstAt))
                .col(big_integer_null(Alerts::FiredAt))
                .col(big_integer(Alerts::LastAt))
                .col(big_integer_null(Alerts::ResolvedAt))
                .col(string_null(Alerts::AckedBy))
                .col(big_integer_null(Alerts::AckedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("alerts_state_rule")
                .table(Alerts::Table)
                .col(Alerts::State)
                .col(Alerts::RuleId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // At most one open alert per (rule, target).
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_rule_target \
                 ON alerts (rule_id, target) WHERE state <> 'resolved'",
            )
            .await?;
        m.create_table(
            Table::create()
                .table(Silences::Table)
                .if_not_exists()
                .col(string(Silences::Id).primary_key())
                .col(string_null(Silences::RuleId))
                .col(text_null(Silences::Selector))
                .col(big_integer(Silences::StartsAt))
                .col(big_integer(Silences::EndsAt))
                .col(text(Silences::Comment))
                .col(string(Silences::CreatedBy))
                .col(big_integer(Silences::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("silences_ends")
                .table(Silences::Table)
                .col(Silences::EndsAt)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
