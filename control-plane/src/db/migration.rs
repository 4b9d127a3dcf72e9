//! The list of migrations, in order, and the ones small enough to live
//! here; larger ones have a file each next to this one. Migrations in code, written to run on SQLite and PostgreSQL alike (no
//! ALTER of columns or foreign keys: sea-query's SQLite backend cannot).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use super::m0001_initial::{Agents, Commands};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let list: Vec<Box<dyn MigrationTrait>> = vec![
            Box::new(super::m0001_initial::M0001Initial),
            Box::new(M0002Accounts),
            Box::new(M0003JobStatusIndex),
            Box::new(M0004RootdError),
            Box::new(super::m0005_input_drops::M0005InputDrops),
            Box::new(M0008IdempotencyKeys),
            Box::new(super::m0009_outcome_source::M0009OutcomeSource),
            Box::new(super::m0010_clock_skew::M0010ClockSkew),
            Box::new(super::m0011_identity_conflicts::M0011IdentityConflicts),
            Box::new(super::m0012_display_name::M0012DisplayName),
            Box::new(super::m0013_patch::M0013Patch),
            Box::new(super::m0014_schedules::M0014Schedules),
            Box::new(super::m0016_patch_runs::M0016PatchRuns),
            Box::new(super::m0017_schedule_params::M0017ScheduleParams),
            Box::new(super::m0018_self_update::M0018SelfUpdate),
            Box::new(super::m0019_agent_channel::M0019AgentChannel),
            Box::new(super::m0020_observe::M0020Observe),
            Box::new(super::m0021_watch::M0021Watch),
            Box::new(super::m0022_alerts::M0022Alerts),
            Box::new(super::m0023_notify::M0023Notify),
            Box::new(super::m0024_retention::M0024Retention),
            Box::new(super::m0025_audit_archive_chain::M0025AuditArchiveChain),
            Box::new(super::m0026_sealed::M0026Sealed),
            Box::new(super::m0027_credentials::M0027Credentials),
            Box::new(super::m0028_keys::M0028Keys),
            Box::new(super::m0029_web_surface::M0029WebSurface),
            Box::new(super::m0030_inventory::M0030Inventory),
        ];
        list.into_iter()
            .map(|m| Box::new(Atomic(m)) as Box<dyn MigrationTrait>)
            .collect()
    }
}

/// Runs a migration in a transaction on SQLite too (sea-orm-migration does
/// so only on PostgreSQL): a migration of several statements (m0009 and
/// m0011 add columns one by one) interrupted half-way would otherwise stay
/// half-applied and unrecorded, and every later start would fail on the
/// column that already exists. SQLite's DDL is transactional, so the
/// schema change and its `seaql_migrations` row commit together.
struct Atomic(Box<dyn MigrationTrait>);

impl MigrationName for Atomic {
    fn name(&self) -> &str {
        self.0.name()
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Atomic {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        self.0.up(m).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        self.0.down(m).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Web UI accounts, sessions and the hash-chained audit trail.
struct M0002Accounts;

impl MigrationName for M0002Accounts {
    fn name(&self) -> &str {
        "m0002_accounts"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Role,
    PasswordHash,
    TotpSecret,
    TotpPending,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CsrfToken,
    Ip,
    CreatedAt,
    LastSeen,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Ip,
    Detail,
    PrevHash,
    Hash,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002Accounts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(string(Users::Id).primary_key())
                .col(string_uniq(Users::Name))
                .col(string(Users::Role))
                .col(string(Users::PasswordHash))
                .col(string_null(Users::TotpSecret))
                .col(string_null(Users::TotpPending))
                .col(big_integer(Users::CreatedAt))
                .col(big_integer(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(string(Sessions::Id).primary_key())
                .col(string(Sessions::UserId))
                .col(string(Sessions::CsrfToken))
                .col(string(Sessions::Ip))
                .col(big_integer(Sessions::CreatedAt))
                .col(big_integer(Sessions::LastSeen))
                .col(big_integer(Sessions::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .if_not_exists()
                // Ids are assigned by the writer (previous + 1), so a gap
                // means a deleted row.
                .col(big_integer(AuditLog::Id).primary_key())
                .col(big_integer(AuditLog::At))
                .col(string(AuditLog::Actor))
                .col(string(AuditLog::Action))
                .col(string(AuditLog::Target))
                .col(string(AuditLog::Ip))
                .col(text(AuditLog::Detail))
                // Unique: two writers can never both extend the same row.
                .col(string_uniq(AuditLog::PrevHash))
                .col(string(AuditLog::Hash))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_audit_at", AuditLog::At),
            ("idx_audit_actor", AuditLog::Actor),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(AuditLog::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_agents_hostname")
                .table(Agents::Table)
                .col(Agents::Hostname)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// A job's open commands counted from the index alone: waiting on a
/// 10,000-host job (`GET /jobs/<id>?wait=`) re-counts them after every result
/// batch.
struct M0003JobStatusIndex;

impl MigrationName for M0003JobStatusIndex {
    fn name(&self) -> &str {
        "m0003_job_status_index"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0003JobStatusIndex {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_commands_job_status")
                .table(Commands::Table)
                .col(Commands::JobId)
                .col(Commands::Status)
                .to_owned(),
        )
        .await?;
        // The new index leads with job_id, so it serves every job lookup.
        m.drop_index(
            Index::drop()
                .if_exists()
                .name("idx_commands_job")
                .table(Commands::Table)
                .to_owned(),
        )
        .await
    }
}

/// The agent's last word on rootd, when rootd did not answer it.
struct M0004RootdError;

impl MigrationName for M0004RootdError {
    fn name(&self) -> &str {
        "m0004_rootd_error"
    }
}

#[derive(DeriveIden)]
enum AgentsRootd {
    #[sea_orm(iden = "agents")]
    Table,
    RootdError,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0004RootdError {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AgentsRootd::Table)
                .add_column(text_null(AgentsRootd::RootdError))
                .to_owned(),
        )
        .await
    }
}

/// Idempotency keys scoped by requester, with an expiry, and the
/// fingerprint of the request each one created (see `crate::idempotency`).
/// `jobs.idempotency_key` stays for jobs made before; new jobs leave it null.
struct M0008IdempotencyKeys;

impl MigrationName for M0008IdempotencyKeys {
    fn name(&self) -> &str {
        "m0008_idempotency_keys"
    }
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Scope,
    Key,
    JobId,
    Fingerprint,
    CreatedAt,
    ExpiresAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0008IdempotencyKeys {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .if_not_exists()
                .col(string(IdempotencyKeys::Scope))
                .col(string(IdempotencyKeys::Key))
                .col(string(IdempotencyKeys::JobId))
                .col(string(IdempotencyKeys::Fingerprint))
                .col(big_integer(IdempotencyKeys::CreatedAt))
                .col(big_integer(IdempotencyKeys::ExpiresAt))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::Scope)
                        .col(IdempotencyKeys::Key),
                )
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_idempotency_keys_job", IdempotencyKeys::JobId),
            ("idx_idempotency_keys_expires", IdempotencyKeys::ExpiresAt),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(IdempotencyKeys::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
