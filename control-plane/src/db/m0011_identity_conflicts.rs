//! Migration m0011: identity conflicts (two machines using one agent id)
//! in the existing `binding_conflicts` table. Owns the columns `detail`,
//! `resolved_at`, `resolved_by` and `kept`; the rules for writing them live
//! in `crate::clones`, not here. One column per ALTER (SQLite's backend adds
//! no more at once).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0011IdentityConflicts;

impl MigrationName for M0011IdentityConflicts {
    fn name(&self) -> &str {
        "m0011_identity_conflicts"
    }
}

#[derive(DeriveIden)]
enum BindingConflicts {
    Table,
    Detail,
    ResolvedAt,
    ResolvedBy,
    Kept,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0011IdentityConflicts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            text_null(BindingConflicts::Detail),
            big_integer_null(BindingConflicts::ResolvedAt),
            string_null(BindingConflicts::ResolvedBy),
            string_null(BindingConflicts::Kept),
        ] {
            m.alter_table(
                Table::alter()
                    .table(BindingConflicts::Table)
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
