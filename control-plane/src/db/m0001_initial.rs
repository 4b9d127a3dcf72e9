//! Migration m0001: the initial schema (`agents`, `metric_samples`,
//! `commands`, `automation_keys`, `jobs`, `api_tokens`,
//! `registration_tokens`, `binding_conflicts`, `refusals`). Owns only these
//! tables as first created; later changes are migrations of their own, and
//! the row types live with the entities.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[derive(DeriveIden)]
pub(super) enum Agents {
    Table,
    Id,
    Hostname,
    Status,
    MachineId,
    Facts,
    TokenId,
    ApprovedBy,
    RevokedAt,
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
pub(super) enum Commands {
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
    StreamSeq,
}

#[derive(DeriveIden)]
enum AutomationKeys {
    Table,
    Id,
    Name,
    Role,
    PublicKey,
    Fingerprint,
    Revoked,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    IdempotencyKey,
    Action,
    Params,
    Selector,
    TargetCount,
    RequestedBy,
    Source,
    CreatedAt,
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

#[derive(DeriveIden)]
enum RegistrationTokens {
    Table,
    Id,
    TokenHash,
    UsesAllowed,
    Uses,
    ExpiresAt,
    Labels,
    AutoApprove,
    Revoked,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum BindingConflicts {
    Table,
    Id,
    At,
    Kind,
    PublicKey,
    MachineId,
    Hostname,
    ExistingAgentId,
}

#[derive(DeriveIden)]
enum Refusals {
    Table,
    Id,
    At,
    AgentId,
    Source,
    Reason,
    Detail,
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
                .col(string(Agents::MachineId))
                .col(text(Agents::Facts))
                .col(string_null(Agents::TokenId))
                .col(string_null(Agents::ApprovedBy))
                .col(big_integer_null(Agents::RevokedAt))
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
                .col(big_integer_null(Commands::StreamSeq))
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
        m.create_table(
            Table::create()
                .table(AutomationKeys::Table)
                .if_not_exists()
                .col(string(AutomationKeys::Id).primary_key())
                .col(string_uniq(AutomationKeys::Name))
                .col(string(AutomationKeys::Role))
                .col(string(AutomationKeys::PublicKey))
                .col(string_uniq(AutomationKeys::Fingerprint))
                .col(boolean(AutomationKeys::Revoked))
                .col(big_integer(AutomationKeys::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .if_not_exists()
                .col(string(Jobs::Id).primary_key())
                .col(string_null(Jobs::IdempotencyKey).unique_key())
                .col(string(Jobs::Action))
                .col(text(Jobs::Params))
                .col(text(Jobs::Selector))
                .col(integer(Jobs::TargetCount))
                .col(string(Jobs::RequestedBy))
                .col(string(Jobs::Source))
                .col(big_integer(Jobs::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_agents_machine_id")
                .table(Agents::Table)
                .col(Agents::MachineId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RegistrationTokens::Table)
                .if_not_exists()
                .col(string(RegistrationTokens::Id).primary_key())
                .col(string_uniq(RegistrationTokens::TokenHash))
                .col(integer(RegistrationTokens::UsesAllowed))
                .col(integer(RegistrationTokens::Uses))
                .col(big_integer(RegistrationTokens::ExpiresAt))
                .col(text(RegistrationTokens::Labels))
                .col(boolean(RegistrationTokens::AutoApprove))
                .col(boolean(RegistrationTokens::Revoked))
                .col(big_integer(RegistrationTokens::CreatedAt))
                .col(string(RegistrationTokens::CreatedBy))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BindingConflicts::Table)
                .if_not_exists()
                .col(big_pk_auto(BindingConflicts::Id))
                .col(big_integer(BindingConflicts::At))
                .col(string(BindingConflicts::Kind))
                .col(string(BindingConflicts::PublicKey))
                .col(string(BindingConflicts::MachineId))
                .col(string(BindingConflicts::Hostname))
                .col(string(BindingConflicts::ExistingAgentId))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Refusals::Table)
                .if_not_exists()
                .col(big_pk_auto(Refusals::Id))
                .col(big_integer(Refusals::At))
                .col(string(Refusals::AgentId))
                .col(string(Refusals::Source))
                .col(string(Refusals::Reason))
                .col(text(Refusals::Detail))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
