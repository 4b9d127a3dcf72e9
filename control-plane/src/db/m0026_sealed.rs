//! Migration m0026: secrets sealed to rootd (issue 16 item 1): the pinned
//! rootd box key per agent, in its own table `rootd_box_keys` (one row per
//! agent that reported a key). Owns only the schema; what the columns mean
//! is written on the entity. A plain `CREATE TABLE`, so it runs on SQLite
//! and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0026Sealed;

impl MigrationName for M0026Sealed {
    fn name(&self) -> &str {
        "m0026_sealed"
    }
}

#[derive(DeriveIden)]
enum RootdBoxKeys {
    Table,
    AgentId,
    PublicKey,
    PinnedAt,
    PinnedBy,
    OfferedKey,
    OfferedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0026Sealed {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RootdBoxKeys::Table)
                .if_not_exists()
                .col(string(RootdBoxKeys::AgentId).primary_key())
                .col(string(RootdBoxKeys::PublicKey))
                .col(big_integer(RootdBoxKeys::PinnedAt))
                .col(string(RootdBoxKeys::PinnedBy).default(""))
                .col(string_null(RootdBoxKeys::OfferedKey))
                .col(big_integer_null(RootdBoxKeys::OfferedAt))
                .to_owned(),
        )
        .await
    }
}
