//! Migration m0014: the `schedules` table of scheduled jobs (for now only
//! `pkg.scan`). Owns only the schema; what the columns mean is written on
//! the entity in `crate::schedules::entity`, and the rules for writing them
//! live in `crate::schedules`. A plain `CREATE TABLE` with a unique index
//! on the name, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0014Schedules;

impl MigrationName for M0014Schedules {
    fn name(&self) -> &str {
        "m0014_schedules"
    }
}

#[derive(DeriveIden)]
enum Schedules {
    Table,
    Id,
    Name,
    Action,
    Selector,
    Cron,
    Timezone,
    Enabled,
    LastRunAt,
    NextRunAt,
    LastJobId,
    LastError,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0014Schedules {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Schedules::Table)
                .if_not_exists()
                .col(string(Schedules::Id).primary_key())
                .col(string(Schedules::Name))
                .col(string(Schedules::Action))
                .col(text(Schedules::Selector))
                .col(string(Schedules::Cron))
                .col(string(Schedules::Timezone))
                .col(boolean(Schedules::Enabled))
                .col(big_integer_null(Schedules::LastRunAt))
                .col(big_integer_null(Schedules::NextRunAt))
                .col(string_null(Schedules::LastJobId))
                .col(text_null(Schedules::LastError))
                .col(string(Schedules::CreatedBy))
                .col(big_integer(Schedules::CreatedAt))
                .col(big_integer(Schedules::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("schedules_name")
                .table(Schedules::Table)
                .col(Schedules::Name)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // The scheduler's query: enabled schedules that are due.
        m.create_index(
            Index::create()
                .name("schedules_due")
                .table(Schedules::Table)
                .col(Schedules::Enabled)
                .col(Schedules::NextRunAt)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Schedules::Table).to_owned())
            .await
    }
}
