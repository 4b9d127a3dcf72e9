//! Migration m0028: signing-key rotation (issue 16 item 3): key generations and which key each host holds. Owns only the schema; what the columns
//! mean is written on the entities (`keys::entity`). Plain `CREATE TABLE`s, `ALTER TABLE … ADD COLUMN`s and
//! indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0028Keys;

impl MigrationName for M0028Keys {
    fn name(&self) -> &str {
        "m0028_keys"
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Id,
    Kind,
    Generation,
    PublicKey,
    Fingerprint,
    CreatedAt,
    CreatedBy,
    OverlapEnd,
    Rotation,
    Signature,
}

#[derive(DeriveIden)]
enum HostKeys {
    Table,
    AgentId,
    Fingerprints,
    ReportedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0028Keys {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .if_not_exists()
                .col(big_pk_auto(SigningKeys::Id))
                .col(string(SigningKeys::Kind))
                .col(integer(SigningKeys::Generation))
                .col(string(SigningKeys::PublicKey))
                .col(string(SigningKeys::Fingerprint))
                .col(big_integer(SigningKeys::CreatedAt))
                .col(string(SigningKeys::CreatedBy))
                .col(big_integer(SigningKeys::OverlapEnd))
                .col(text(SigningKeys::Rotation))
                .col(string(SigningKeys::Signature))
                .to_owned(),
        )
        .await?;
        // One row per kind and generation: a generation is never reused.
        m.create_index(
            Index::create()
                .name("signing_keys_kind_generation")
                .table(SigningKeys::Table)
                .col(SigningKeys::Kind)
                .col(SigningKeys::Generation)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(HostKeys::Table)
                .if_not_exists()
                .col(string(HostKeys::AgentId).primary_key())
                .col(text(HostKeys::Fingerprints))
                .col(big_integer(HostKeys::ReportedAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
