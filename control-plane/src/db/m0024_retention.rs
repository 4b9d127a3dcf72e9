//! Migration m0024: metric rollups and audit archives. Owns only the schema; what the columns
//! mean is written on the entities (`retention::entity`). Plain `CREATE TABLE`s and indexes,
//! so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0024Retention;

impl MigrationName for M0024Retention {
    fn name(&self) -> &str {
        "m0024_retention"
    }
}

#[derive(DeriveIden)]
enum MetricRollups {
    Table,
    AgentId,
    ResolutionSecs,
    BucketAt,
    Samples,
    CpuAvg,
    CpuMax,
    MemUsedAvg,
    MemTotal,
    DiskUsedMax,
    DiskTotal,
    Load1Avg,
    Load1Max,
}

#[derive(DeriveIden)]
enum AuditArchives {
    Table,
    Id,
    FromId,
    ToId,
    HeadHash,
    Rows,
    ExportedAt,
    FileName,
}

#[derive(DeriveIden)]
enum MetricSamples {
    Table,
    At,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0024Retention {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MetricRollups::Table)
                .if_not_exists()
                .col(string(MetricRollups::AgentId))
                .col(integer(MetricRollups::ResolutionSecs))
                .col(big_integer(MetricRollups::BucketAt))
                .col(big_integer(MetricRollups::Samples))
                .col(double(MetricRollups::CpuAvg))
                .col(double(MetricRollups::CpuMax))
                .col(big_integer(MetricRollups::MemUsedAvg))
                .col(big_integer(MetricRollups::MemTotal))
                .col(big_integer(MetricRollups::DiskUsedMax))
                .col(big_integer(MetricRollups::DiskTotal))
                .col(double(MetricRollups::Load1Avg))
                .col(double(MetricRollups::Load1Max))
                .primary_key(
                    Index::create()
                        .col(MetricRollups::AgentId)
                        .col(MetricRollups::ResolutionSecs)
                        .col(MetricRollups::BucketAt),
                )
                .to_owned(),
        )
        .await?;
        // Pruning finds a resolution's oldest buckets across all agents.
        m.create_index(
            Index::create()
                .name("metric_rollups_resolution_bucket")
                .table(MetricRollups::Table)
                .col(MetricRollups::ResolutionSecs)
                .col(MetricRollups::BucketAt)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // Rollups and pruning find the oldest raw samples across all agents.
        m.create_index(
            Index::create()
                .name("idx_metric_samples_at")
                .table(MetricSamples::Table)
                .col(MetricSamples::At)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuditArchives::Table)
                .if_not_exists()
                .col(big_pk_auto(AuditArchives::Id))
                .col(big_integer(AuditArchives::FromId))
                .col(big_integer(AuditArchives::ToId))
                .col(string(AuditArchives::HeadHash))
                .col(big_integer(AuditArchives::Rows))
                .col(big_integer(AuditArchives::ExportedAt))
                .col(string(AuditArchives::FileName))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
