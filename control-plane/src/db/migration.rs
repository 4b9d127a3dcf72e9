//! Migrations in code, written to run on SQLite and PostgreSQL alike (no
//! ALTER of columns or foreign keys: sea-query's SQLite backend cannot).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }
}

struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    Hostname,
    Status,
    FirstSeen,
    LastSeen,
    LastSeq,
    HeartbeatSecs,
    Os,
    Kernel,
    AgentVersion,
    Metrics,
    Modules,
    Operations,
    Labels,
}

#[derive(DeriveIden)]
enum MetricSamples {
    Table,
    Id,
    AgentId,
    At,
    CpuPercent,
    MemUsed,
    MemTotal,
    DiskUsed,
    DiskTotal,
    Load1,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    Id,
    AgentId,
    JobId,
    Action,
    Params,
    Status,
    RequestedBy,
    Source,
    CreatedAt,
    UpdatedAt,
    ExpiresAt,
    TimeoutSecs,
    ExitCode,
    Summary,
    Result,
    Attempts,
    FinishedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    Name,
    Role,
    TokenHash,
    CreatedAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Agents::Table)
                .if_not_exists()
                .col(string(Agents::Id).primary_key())
                .col(string(Agents::Hostname))
                .col(string(Agents::Status))
                .col(big_integer(Agents::FirstSeen))
                .col(big_integer(Agents::LastSeen))
                .col(big_integer(Agents::LastSeq))
                .col(integer(Agents::HeartbeatSecs))
                .col(string(Agents::Os))
                .col(string(Agents::Kernel))
                .col(string(Agents::AgentVersion))
                .col(text(Agents::Metrics))
                .col(text(Agents::Modules))
                .col(text(Agents::Operations))
                .col(text(Agents::Labels))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_agents_status")
                .table(Agents::Table)
                .col(Agents::Status)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MetricSamples::Table)
                .if_not_exists()
                .col(big_pk_auto(MetricSamples::Id))
                .col(string(MetricSamples::AgentId))
                .col(big_integer(MetricSamples::At))
                .col(double(MetricSamples::CpuPercent))
                .col(big_integer(MetricSamples::MemUsed))
                .col(big_integer(MetricSamples::MemTotal))
                .col(big_integer(MetricSamples::DiskUsed))
                .col(big_integer(MetricSamples::DiskTotal))
                .col(double(MetricSamples::Load1))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_metric_samples_agent_at")
                .table(MetricSamples::Table)
                .col(MetricSamples::AgentId)
                .col(MetricSamples::At)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Commands::Table)
                .if_not_exists()
                .col(string(Commands::Id).primary_key())
                .col(string(Commands::AgentId))
                .col(string_null(Commands::JobId))
                .col(string(Commands::Action))
                .col(text(Commands::Params))
                .col(string(Commands::Status))
                .col(string(Commands::RequestedBy))
                .col(string(Commands::Source))
                .col(big_integer(Commands::CreatedAt))
                .col(big_integer(Commands::UpdatedAt))
                .col(big_integer(Commands::ExpiresAt))
                .col(integer(Commands::TimeoutSecs))
                .col(integer_null(Commands::ExitCode))
                .col(text(Commands::Summary))
                .col(text_null(Commands::Result))
                .col(integer(Commands::Attempts))
                .col(big_integer_null(Commands::FinishedAt))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            (
                "idx_commands_agent_created",
                vec![Commands::AgentId, Commands::CreatedAt],
            ),
            (
                "idx_commands_status_expires",
                vec![Commands::Status, Commands::ExpiresAt],
            ),
            ("idx_commands_job", vec![Commands::JobId]),
        ] {
            let mut idx = Index::create();
            idx.if_not_exists().name(name).table(Commands::Table);
            for c in cols {
                idx.col(c);
            }
            m.create_index(idx.to_owned()).await?;
        }
        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .if_not_exists()
                .col(string(ApiTokens::Id).primary_key())
                .col(string(ApiTokens::Name))
                .col(string(ApiTokens::Role))
                .col(string_uniq(ApiTokens::TokenHash))
                .col(big_integer(ApiTokens::CreatedAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
