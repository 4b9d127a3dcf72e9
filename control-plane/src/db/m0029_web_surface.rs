//! Migration m0029: the hardened web surface (issue 16 item 5); its schema needs nothing (sessions, rate limits and two-factor state live in existing tables and memory). Owns only the schema;
//! mean is written on the entities. Plain `CREATE TABLE`s, `ALTER TABLE … ADD COLUMN`s and
//! indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;

pub struct M0029WebSurface;

impl MigrationName for M0029WebSurface {
    fn name(&self) -> &str {
        "m0029_web_surface"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0029WebSurface {
    async fn up(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
