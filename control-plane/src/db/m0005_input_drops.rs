//! Migration `m0005_input_drops`: one counter row per kind of dropped input,
//! subject class and sender (malformed bus messages terminated on the
//! broker, refusal reports beyond an agent's rate). Owns only the table; the
//! counting is `crate::poison`'s.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0005InputDrops;

impl MigrationName for M0005InputDrops {
    fn name(&self) -> &str {
        "m0005_input_drops"
    }
}

#[derive(DeriveIden)]
enum InputDrops {
    Table,
    Kind,
    Subject,
    AgentId,
    Count,
    FirstAt,
    LastAt,
    LastDetail,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0005InputDrops {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(InputDrops::Table)
                .if_not_exists()
                .col(string(InputDrops::Kind))
                .col(string(InputDrops::Subject))
                .col(string(InputDrops::AgentId))
                .col(big_integer(InputDrops::Count))
                .col(big_integer(InputDrops::FirstAt))
                .col(big_integer(InputDrops::LastAt))
                .col(text(InputDrops::LastDetail))
                .primary_key(
                    Index::create()
                        .col(InputDrops::Kind)
                        .col(InputDrops::Subject)
                        .col(InputDrops::AgentId),
                )
                .to_owned(),
        )
        .await
    }
}
