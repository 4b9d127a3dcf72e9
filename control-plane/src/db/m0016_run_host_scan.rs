//! Migration m0016: `patch_run_hosts.scan_command_id`, the `pkg.scan` a
//! window's runner issued after a host's install, whose result decides
//! whether the host is rebooted. Owns only the column; its meaning is on the
//! entity (`updates::entities::run_host`), its use in `windows::runner`.
//! Adding a nullable column runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0016RunHostScan;

impl MigrationName for M0016RunHostScan {
    fn name(&self) -> &str {
        "m0016_run_host_scan"
    }
}

#[derive(DeriveIden)]
enum PatchRunHosts {
    Table,
    ScanCommandId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0016RunHostScan {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.has_column("patch_run_hosts", "scan_command_id").await? {
            return Ok(());
        }
        m.alter_table(
            Table::alter()
                .table(PatchRunHosts::Table)
                .add_column(string_null(PatchRunHosts::ScanCommandId))
                .to_owned(),
        )
        .await
    }
}
