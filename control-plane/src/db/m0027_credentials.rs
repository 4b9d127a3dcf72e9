//! Migration m0027: credentials that expire (issue 16 item 2): agent JWT
//! expiry and renewal (`agent_credentials`, one row per agent), API token
//! expiry and last use (`api_tokens.expires_at`, `api_tokens.last_used_at`).
//! Owns only the schema; what the columns mean is written on the entities.
//! Plain `CREATE TABLE`s and `ALTER TABLE … ADD COLUMN`s (nullable), so it
//! runs on SQLite and PostgreSQL alike and old rows keep working.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0027Credentials;

impl MigrationName for M0027Credentials {
    fn name(&self) -> &str {
        "m0027_credentials"
    }
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    ExpiresAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum AgentCredentials {
    Table,
    AgentId,
    JwtExpiresAt,
    IssuedAt,
    IssuedVia,
    Renewals,
    Reauths,
    LastRequestAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0027Credentials {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(ApiTokens::Table)
                .add_column(big_integer_null(ApiTokens::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ApiTokens::Table)
                .add_column(big_integer_null(ApiTokens::LastUsedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AgentCredentials::Table)
                .if_not_exists()
                .col(string(AgentCredentials::AgentId).primary_key())
                .col(big_integer_null(AgentCredentials::JwtExpiresAt))
                .col(big_integer(AgentCredentials::IssuedAt))
                .col(string(AgentCredentials::IssuedVia))
                .col(big_integer(AgentCredentials::Renewals).default(0))
                .col(big_integer(AgentCredentials::Reauths).default(0))
                .col(big_integer_null(AgentCredentials::LastRequestAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
