//! Migration m0021: watched-service lists (issue 15 item 1) —
//! `service_watches` (operators' lists of units per selector) and
//! `service_watch_reports` (the watch revision each host last reported).
//! Owns only the schema; what the columns mean is written on the entities
//! (`services::lists`, `services::reports`). Plain `CREATE TABLE`s and
//! indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0021Watch;

impl MigrationName for M0021Watch {
    fn name(&self) -> &str {
        "m0021_watch"
    }
}

#[derive(DeriveIden)]
enum ServiceWatches {
    Table,
    Id,
    Name,
    Selector,
    Units,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ServiceWatchReports {
    Table,
    AgentId,
    Revision,
    ReportedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0021Watch {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ServiceWatches::Table)
                .if_not_exists()
                .col(string(ServiceWatches::Id).primary_key())
                .col(string(ServiceWatches::Name))
                .col(text(ServiceWatches::Selector))
                .col(text(ServiceWatches::Units))
                .col(string(ServiceWatches::CreatedBy))
                .col(big_integer(ServiceWatches::CreatedAt))
                .col(big_integer(ServiceWatches::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("service_watches_name")
                .table(ServiceWatches::Table)
                .col(ServiceWatches::Name)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ServiceWatchReports::Table)
                .if_not_exists()
                .col(string(ServiceWatchReports::AgentId).primary_key())
                .col(string(ServiceWatchReports::Revision))
                .col(big_integer(ServiceWatchReports::ReportedAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
