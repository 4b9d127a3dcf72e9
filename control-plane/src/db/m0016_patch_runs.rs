//! Migration m0016: `patch_run_hosts.scan_command_id`, the `pkg.scan` a
//! window's runner issued after a host's install, whose result decides
//! whether the host is rebooted; and the two indexes the runner reads by
//! every few seconds: run hosts by status (the ones still moving) and
//! history rows by command (completed from the install's result). Owns only
//! the schema; the column's meaning is on the entity
//! (`updates::entities::run_host`), its use in `windows::runner`. A nullable
//! column and plain indexes run on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0016PatchRuns;

impl MigrationName for M0016PatchRuns {
    fn name(&self) -> &str {
        "m0016_patch_runs"
    }
}

#[derive(DeriveIden)]
enum PatchRunHosts {
    Table,
    ScanCommandId,
    Status,
}

#[derive(DeriveIden)]
enum PatchHistory {
    Table,
    CommandId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0016PatchRuns {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if !m.has_column("patch_run_hosts", "scan_command_id").await? {
            m.alter_table(
                Table::alter()
                    .table(PatchRunHosts::Table)
                    .add_column(string_null(PatchRunHosts::ScanCommandId))
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_patch_run_hosts_status")
                .table(PatchRunHosts::Table)
                .col(PatchRunHosts::Status)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_patch_history_command")
                .table(PatchHistory::Table)
                .col(PatchHistory::CommandId)
                .to_owned(),
        )
        .await
    }
}
