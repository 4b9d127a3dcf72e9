//! Migration m0019: `agents.agent_channel` (the release channel the agent
//! reports, "" for a build not installed from a release) and
//! `agents.protocol_version` (the wire protocol version it speaks, 1 for
//! agents from before the field). Owns only the columns; heartbeats and
//! enrolment fill them (`ingest::heartbeats`, `enroll`), and
//! `version_policy` decides what they mean. Adding columns with a default
//! runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0019AgentChannel;

impl MigrationName for M0019AgentChannel {
    fn name(&self) -> &str {
        "m0019_agent_channel"
    }
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    AgentChannel,
    ProtocolVersion,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0019AgentChannel {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if !m.has_column("agents", "agent_channel").await? {
            m.alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .add_column(string(Agents::AgentChannel).default(""))
                    .to_owned(),
            )
            .await?;
        }
        if !m.has_column("agents", "protocol_version").await? {
            m.alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .add_column(integer(Agents::ProtocolVersion).default(1))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
