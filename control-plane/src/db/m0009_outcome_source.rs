//! Migration m0009: who decided a command's final state. Owns the columns
//! `commands.outcome_source`, `inferred_status`, `inferred_summary` and
//! `inferred_at`; the rules for writing them live in `crate::ledger`, not
//! here. One column per ALTER (SQLite's backend adds no more at once).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0009OutcomeSource;

impl MigrationName for M0009OutcomeSource {
    fn name(&self) -> &str {
        "m0009_outcome_source"
    }
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    OutcomeSource,
    InferredStatus,
    InferredSummary,
    InferredAt,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0009OutcomeSource {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            string_null(Commands::OutcomeSource),
            string_null(Commands::InferredStatus),
            text_null(Commands::InferredSummary),
            big_integer_null(Commands::InferredAt),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Commands::Table)
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
