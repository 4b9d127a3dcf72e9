//! Migration m0018: the tables of agent self-update — `agent_releases`
//! (signed agent binaries), `rollouts` and `rollout_hosts`. Owns only the
//! schema; what the columns mean is written on the entities
//! (`agent_releases::entity`, `rollouts::entity`). Plain `CREATE TABLE`s
//! and indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0018SelfUpdate;

impl MigrationName for M0018SelfUpdate {
    fn name(&self) -> &str {
        "m0018_self_update"
    }
}

#[derive(DeriveIden)]
enum AgentReleases {
    Table,
    Id,
    Version,
    Platform,
    Channel,
    Sha256,
    Size,
    Manifest,
    Signature,
    MinControlPlane,
    Notes,
    ObjectName,
    PublishedAt,
    PublishedBy,
    YankedAt,
    YankedBy,
    YankReason,
}

#[derive(DeriveIden)]
enum Rollouts {
    Table,
    Id,
    ReleaseId,
    Version,
    Selector,
    Canary,
    Waves,
    PauseSecs,
    MaxFailures,
    AllowDowngrade,
    State,
    CurrentWave,
    WaveDoneAt,
    HaltedReason,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum RolloutHosts {
    Table,
    RolloutId,
    AgentId,
    Wave,
    State,
    FromVersion,
    CommandId,
    SelftestCommandId,
    Reason,
    UpdatedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0018SelfUpdate {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AgentReleases::Table)
                .if_not_exists()
                .col(string(AgentReleases::Id).primary_key())
                .col(string(AgentReleases::Version))
                .col(string(AgentReleases::Platform))
                .col(string(AgentReleases::Channel))
                .col(string(AgentReleases::Sha256))
                .col(big_integer(AgentReleases::Size))
                .col(text(AgentReleases::Manifest))
                .col(string(AgentReleases::Signature))
                .col(string(AgentReleases::MinControlPlane))
                .col(text(AgentReleases::Notes))
                .col(string(AgentReleases::ObjectName))
                .col(big_integer(AgentReleases::PublishedAt))
                .col(string(AgentReleases::PublishedBy))
                .col(big_integer_null(AgentReleases::YankedAt))
                .col(string_null(AgentReleases::YankedBy))
                .col(text_null(AgentReleases::YankReason))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("agent_releases_version_platform")
                .table(AgentReleases::Table)
                .col(AgentReleases::Version)
                .col(AgentReleases::Platform)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Rollouts::Table)
                .if_not_exists()
                .col(string(Rollouts::Id).primary_key())
                .col(string(Rollouts::ReleaseId))
                .col(string(Rollouts::Version))
                .col(text(Rollouts::Selector))
                .col(string(Rollouts::Canary))
                .col(string(Rollouts::Waves))
                .col(big_integer(Rollouts::PauseSecs))
                .col(string(Rollouts::MaxFailures))
                .col(boolean(Rollouts::AllowDowngrade))
                .col(string(Rollouts::State))
                .col(integer(Rollouts::CurrentWave))
                .col(big_integer_null(Rollouts::WaveDoneAt))
                .col(text_null(Rollouts::HaltedReason))
                .col(string(Rollouts::CreatedBy))
                .col(big_integer(Rollouts::CreatedAt))
                .col(big_integer(Rollouts::UpdatedAt))
                .col(big_integer_null(Rollouts::FinishedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("rollouts_state")
                .table(Rollouts::Table)
                .col(Rollouts::State)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RolloutHosts::Table)
                .if_not_exists()
                .col(string(RolloutHosts::RolloutId))
                .col(string(RolloutHosts::AgentId))
                .col(integer(RolloutHosts::Wave))
                .col(string(RolloutHosts::State))
                .col(string(RolloutHosts::FromVersion))
                .col(string_null(RolloutHosts::CommandId))
                .col(string_null(RolloutHosts::SelftestCommandId))
                .col(text_null(RolloutHosts::Reason))
                .col(big_integer(RolloutHosts::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(RolloutHosts::RolloutId)
                        .col(RolloutHosts::AgentId),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("rollout_hosts_command")
                .table(RolloutHosts::Table)
                .col(RolloutHosts::CommandId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            RolloutHosts::Table.into_iden(),
            Rollouts::Table.into_iden(),
            AgentReleases::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
