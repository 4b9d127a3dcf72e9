//! Migration m0013: the tables of patch management — the update inventory
//! and each host's patch state, approvals and auto-approval rules,
//! maintenance windows, their runs and each host's part in a run, and the
//! install history — plus `agents.boot_id` / `agents.booted_at`, which tell a
//! reboot's return. Owns only the schema; what the columns mean is written
//! on the entities in `crate::updates::entities`, and the rules for writing
//! them live in `crate::updates` and `crate::windows`. Plain `CREATE TABLE`s
//! and nullable `ADD COLUMN`s, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0013Patch;

impl MigrationName for M0013Patch {
    fn name(&self) -> &str {
        "m0013_patch"
    }
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    BootId,
    BootedAt,
}

#[derive(DeriveIden)]
enum UpdateInventory {
    Table,
    AgentId,
    Package,
    Arch,
    CurrentVersion,
    CandidateVersion,
    Origin,
    Security,
    Severity,
    Advisories,
    Held,
    FirstSeen,
    LastSeen,
    ScanCommandId,
}

#[derive(DeriveIden)]
enum HostPatchState {
    Table,
    AgentId,
    Manager,
    LastScanAt,
    LastScanCommand,
    LastScanStatus,
    LastScanError,
    Upgradable,
    Security,
    RebootRequired,
    RebootPackages,
    RebootSince,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Approvals {
    Table,
    Id,
    Decision,
    Scope,
    Package,
    Version,
    Selector,
    Note,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    RevokedBy,
}

#[derive(DeriveIden)]
enum ApprovalRules {
    Table,
    Id,
    Name,
    Scope,
    Selector,
    DelayDays,
    Enabled,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MaintenanceWindows {
    Table,
    Id,
    Name,
    Selector,
    Days,
    StartTime,
    DurationMinutes,
    Timezone,
    MaxHosts,
    MaxPercent,
    MaxFailures,
    Reboot,
    RebootDeadlineMinutes,
    Enabled,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PatchRuns {
    Table,
    Id,
    WindowId,
    OccurrenceStart,
    OccurrenceEnd,
    Status,
    StartedAt,
    FinishedAt,
    HostsTotal,
    HostsSucceeded,
    HostsFailed,
    HostsDeferred,
    HaltedReason,
}

#[derive(DeriveIden)]
enum PatchRunHosts {
    Table,
    RunId,
    AgentId,
    Batch,
    Status,
    InstallCommandId,
    RebootCommandId,
    BootIdBefore,
    RebootStartedAt,
    ReturnedAt,
    Message,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PatchHistory {
    Table,
    Id,
    AgentId,
    Hostname,
    Package,
    VersionBefore,
    VersionAfter,
    Candidate,
    Status,
    ExitCode,
    Output,
    ApprovedBy,
    ApprovalId,
    RuleId,
    WindowId,
    RunId,
    CommandId,
    At,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0013Patch {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            string_null(Agents::BootId),
            big_integer_null(Agents::BootedAt),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(UpdateInventory::Table)
                .if_not_exists()
                .col(string(UpdateInventory::AgentId))
                .col(string(UpdateInventory::Package))
                .col(string(UpdateInventory::Arch))
                .col(string(UpdateInventory::CurrentVersion))
                .col(string(UpdateInventory::CandidateVersion))
                .col(string(UpdateInventory::Origin))
                .col(boolean(UpdateInventory::Security))
                .col(string_null(UpdateInventory::Severity))
                .col(text(UpdateInventory::Advisories))
                .col(boolean(UpdateInventory::Held))
                .col(big_integer(UpdateInventory::FirstSeen))
                .col(big_integer(UpdateInventory::LastSeen))
                .col(string(UpdateInventory::ScanCommandId))
                .primary_key(
                    Index::create()
                        .col(UpdateInventory::AgentId)
                        .col(UpdateInventory::Package),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_update_inventory_package")
                .table(UpdateInventory::Table)
                .col(UpdateInventory::Package)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(HostPatchState::Table)
                .if_not_exists()
                .col(string(HostPatchState::AgentId).primary_key())
                .col(string(HostPatchState::Manager))
                .col(big_integer_null(HostPatchState::LastScanAt))
                .col(string_null(HostPatchState::LastScanCommand))
                .col(string_null(HostPatchState::LastScanStatus))
                .col(text_null(HostPatchState::LastScanError))
                .col(integer(HostPatchState::Upgradable))
                .col(integer(HostPatchState::Security))
                .col(boolean(HostPatchState::RebootRequired))
                .col(text(HostPatchState::RebootPackages))
                .col(big_integer_null(HostPatchState::RebootSince))
                .col(big_integer(HostPatchState::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Approvals::Table)
                .if_not_exists()
                .col(string(Approvals::Id).primary_key())
                .col(string(Approvals::Decision))
                .col(string(Approvals::Scope))
                .col(string_null(Approvals::Package))
                .col(string_null(Approvals::Version))
                .col(text(Approvals::Selector))
                .col(text(Approvals::Note))
                .col(string(Approvals::CreatedBy))
                .col(big_integer(Approvals::CreatedAt))
                .col(big_integer_null(Approvals::ExpiresAt))
                .col(big_integer_null(Approvals::RevokedAt))
                .col(string_null(Approvals::RevokedBy))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ApprovalRules::Table)
                .if_not_exists()
                .col(string(ApprovalRules::Id).primary_key())
                .col(string_uniq(ApprovalRules::Name))
                .col(string(ApprovalRules::Scope))
                .col(text(ApprovalRules::Selector))
                .col(integer(ApprovalRules::DelayDays))
                .col(boolean(ApprovalRules::Enabled))
                .col(string(ApprovalRules::CreatedBy))
                .col(big_integer(ApprovalRules::CreatedAt))
                .col(big_integer(ApprovalRules::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MaintenanceWindows::Table)
                .if_not_exists()
                .col(string(MaintenanceWindows::Id).primary_key())
                .col(string_uniq(MaintenanceWindows::Name))
                .col(text(MaintenanceWindows::Selector))
                .col(string(MaintenanceWindows::Days))
                .col(string(MaintenanceWindows::StartTime))
                .col(integer(MaintenanceWindows::DurationMinutes))
                .col(string(MaintenanceWindows::Timezone))
                .col(integer_null(MaintenanceWindows::MaxHosts))
                .col(integer_null(MaintenanceWindows::MaxPercent))
                .col(integer_null(MaintenanceWindows::MaxFailures))
                .col(string(MaintenanceWindows::Reboot))
                .col(integer(MaintenanceWindows::RebootDeadlineMinutes))
                .col(boolean(MaintenanceWindows::Enabled))
                .col(string(MaintenanceWindows::CreatedBy))
                .col(big_integer(MaintenanceWindows::CreatedAt))
                .col(big_integer(MaintenanceWindows::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PatchRuns::Table)
                .if_not_exists()
                .col(string(PatchRuns::Id).primary_key())
                .col(string(PatchRuns::WindowId))
                .col(big_integer(PatchRuns::OccurrenceStart))
                .col(big_integer(PatchRuns::OccurrenceEnd))
                .col(string(PatchRuns::Status))
                .col(big_integer(PatchRuns::StartedAt))
                .col(big_integer_null(PatchRuns::FinishedAt))
                .col(integer(PatchRuns::HostsTotal))
                .col(integer(PatchRuns::HostsSucceeded))
                .col(integer(PatchRuns::HostsFailed))
                .col(integer(PatchRuns::HostsDeferred))
                .col(text_null(PatchRuns::HaltedReason))
                .to_owned(),
        )
        .await?;
        // One run per occurrence of a window, however many replicas try.
        m.create_index(
            Index::create()
                .if_not_exists()
                .unique()
                .name("idx_patch_runs_occurrence")
                .table(PatchRuns::Table)
                .col(PatchRuns::WindowId)
                .col(PatchRuns::OccurrenceStart)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PatchRunHosts::Table)
                .if_not_exists()
                .col(string(PatchRunHosts::RunId))
                .col(string(PatchRunHosts::AgentId))
                .col(integer(PatchRunHosts::Batch))
                .col(string(PatchRunHosts::Status))
                .col(string_null(PatchRunHosts::InstallCommandId))
                .col(string_null(PatchRunHosts::RebootCommandId))
                .col(string_null(PatchRunHosts::BootIdBefore))
                .col(big_integer_null(PatchRunHosts::RebootStartedAt))
                .col(big_integer_null(PatchRunHosts::ReturnedAt))
                .col(text(PatchRunHosts::Message))
                .col(big_integer(PatchRunHosts::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(PatchRunHosts::RunId)
                        .col(PatchRunHosts::AgentId),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PatchHistory::Table)
                .if_not_exists()
                .col(string(PatchHistory::Id).primary_key())
                .col(string(PatchHistory::AgentId))
                .col(string(PatchHistory::Hostname))
                .col(string(PatchHistory::Package))
                .col(string(PatchHistory::VersionBefore))
                .col(string_null(PatchHistory::VersionAfter))
                .col(string(PatchHistory::Candidate))
                .col(string(PatchHistory::Status))
                .col(integer_null(PatchHistory::ExitCode))
                .col(text(PatchHistory::Output))
                .col(string(PatchHistory::ApprovedBy))
                .col(string_null(PatchHistory::ApprovalId))
                .col(string_null(PatchHistory::RuleId))
                .col(string_null(PatchHistory::WindowId))
                .col(string_null(PatchHistory::RunId))
                .col(string_null(PatchHistory::CommandId))
                .col(big_integer(PatchHistory::At))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_patch_history_agent", PatchHistory::AgentId),
            ("idx_patch_history_at", PatchHistory::At),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(PatchHistory::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
