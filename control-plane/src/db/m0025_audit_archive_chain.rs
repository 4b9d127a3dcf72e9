//! Migration m0025: each audit archive record keeps the `prev_hash` of its
//! first row (`audit_archives.first_prev_hash`), so the archives chain to
//! each other by hash, not only by ids. Records made before it are filled
//! from the archive before them (the export always started from that head,
//! or from the genesis value for row 1).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0025AuditArchiveChain;

impl MigrationName for M0025AuditArchiveChain {
    fn name(&self) -> &str {
        "m0025_audit_archive_chain"
    }
}

#[derive(DeriveIden)]
enum AuditArchives {
    Table,
    FirstPrevHash,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0025AuditArchiveChain {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AuditArchives::Table)
                .add_column(string(AuditArchives::FirstPrevHash).default(""))
                .to_owned(),
        )
        .await?;
        let c = m.get_connection();
        c.execute_unprepared(&format!(
            "UPDATE audit_archives SET first_prev_hash = '{}' WHERE from_id = 1",
            crate::audit::GENESIS
        ))
        .await?;
        c.execute_unprepared(
            "UPDATE audit_archives SET first_prev_hash = COALESCE((SELECT b.head_hash \
             FROM audit_archives b WHERE b.to_id = audit_archives.from_id - 1), '') \
             WHERE from_id <> 1",
        )
        .await?;
        Ok(())
    }
}
