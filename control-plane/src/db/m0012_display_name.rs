//! Migration m0012: `agents.display_name`, the name a host asked to be shown
//! as in its enrolment claim (`install.sh --name`, the agent's
//! `display_name`). Owns only the column; checking and storing the name is
//! `enroll.rs`'s, showing it the pages', the API's and the CLI's. Adding a
//! nullable column runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0012DisplayName;

impl MigrationName for M0012DisplayName {
    fn name(&self) -> &str {
        "m0012_display_name"
    }
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    DisplayName,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0012DisplayName {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.has_column("agents", "display_name").await? {
            return Ok(());
        }
        m.alter_table(
            Table::alter()
                .table(Agents::Table)
                .add_column(text_null(Agents::DisplayName))
                .to_owned(),
        )
        .await
    }
}
