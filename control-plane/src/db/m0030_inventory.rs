//! Migration m0030: the inventory operators edit (issue 17 item 1): display
//! names, operator labels, notes, decommissioned hosts, in one table
//! `agent_inventory` (one row per agent an operator touched). Owns only the
//! schema; what the columns mean is written on the entity
//! (`entities::agent_inventory`), the rules are `inventory.rs`'s. A plain
//! `CREATE TABLE` and an index, so it runs on SQLite and PostgreSQL alike;
//! the `agents` table is left as it was, so old rows and every reader of
//! `agents.labels` / `agents.display_name` keep working.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0030Inventory;

impl MigrationName for M0030Inventory {
    fn name(&self) -> &str {
        "m0030_inventory"
    }
}

#[derive(DeriveIden)]
enum AgentInventory {
    Table,
    AgentId,
    OperatorName,
    EnrolledName,
    OperatorLabels,
    AgentLabels,
    Notes,
    DecommissionedAt,
    DecommissionedBy,
    UpdatedAt,
    UpdatedBy,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0030Inventory {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AgentInventory::Table)
                .if_not_exists()
                .col(string(AgentInventory::AgentId).primary_key())
                .col(text_null(AgentInventory::OperatorName))
                .col(text_null(AgentInventory::EnrolledName))
                .col(text(AgentInventory::OperatorLabels).default("{}"))
                .col(text_null(AgentInventory::AgentLabels))
                .col(text(AgentInventory::Notes).default(""))
                .col(big_integer_null(AgentInventory::DecommissionedAt))
                .col(text_null(AgentInventory::DecommissionedBy))
                .col(big_integer(AgentInventory::UpdatedAt).default(0))
                .col(text(AgentInventory::UpdatedBy).default(""))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_agent_inventory_decommissioned")
                .table(AgentInventory::Table)
                .col(AgentInventory::DecommissionedAt)
                .to_owned(),
        )
        .await
    }
}
