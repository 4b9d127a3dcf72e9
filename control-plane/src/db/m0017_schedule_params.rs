//! Migration m0017: `schedules.params`, the params of a schedule's jobs
//! (JSON; `NULL` on rows made before it: the action's defaults of
//! `crate::schedules::default_params`). Owns only the column; checking the
//! params is `crate::schedules`'s job. A nullable `ADD COLUMN` runs on
//! SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0017ScheduleParams;

impl MigrationName for M0017ScheduleParams {
    fn name(&self) -> &str {
        "m0017_schedule_params"
    }
}

#[derive(DeriveIden)]
enum Schedules {
    Table,
    Params,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0017ScheduleParams {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Schedules::Table)
                .add_column(text_null(Schedules::Params))
                .to_owned(),
        )
        .await
    }
}
