//! Migration m0023: notification channels (`notify_channels`), deliveries
//! (`notify_deliveries`) and which transition went into which delivery
//! (`notify_delivery_items`). Owns only the schema; what the columns mean
//! is written on the entities (`notify::model`). Plain `CREATE TABLE`s and
//! indexes, so it runs on SQLite and PostgreSQL alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct M0023Notify;

impl MigrationName for M0023Notify {
    fn name(&self) -> &str {
        "m0023_notify"
    }
}

#[derive(DeriveIden)]
enum NotifyChannels {
    Table,
    Id,
    Name,
    Kind,
    Config,
    SecretSealed,
    MinSeverity,
    RuleIds,
    Matchers,
    QuietStart,
    QuietEnd,
    QuietTimezone,
    QuietBypassCritical,
    GroupSecs,
    Enabled,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum NotifyDeliveries {
    Table,
    Id,
    ChannelId,
    GroupKey,
    TransitionIds,
    Leader,
    State,
    Attempts,
    LastError,
    CreatedAt,
    DueAt,
    HeldUntil,
    SentAt,
}

#[derive(DeriveIden)]
enum NotifyDeliveryItems {
    Table,
    ChannelId,
    TransitionId,
    DeliveryId,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0023Notify {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(NotifyChannels::Table)
                .if_not_exists()
                .col(string(NotifyChannels::Id).primary_key())
                .col(string_uniq(NotifyChannels::Name))
                .col(string(NotifyChannels::Kind))
                .col(text(NotifyChannels::Config))
                .col(text_null(NotifyChannels::SecretSealed))
                .col(string(NotifyChannels::MinSeverity))
                .col(text(NotifyChannels::RuleIds))
                .col(text(NotifyChannels::Matchers))
                .col(integer_null(NotifyChannels::QuietStart))
                .col(integer_null(NotifyChannels::QuietEnd))
                .col(string_null(NotifyChannels::QuietTimezone))
                .col(boolean(NotifyChannels::QuietBypassCritical))
                .col(big_integer(NotifyChannels::GroupSecs))
                .col(boolean(NotifyChannels::Enabled))
                .col(big_integer(NotifyChannels::CreatedAt))
                .col(string(NotifyChannels::CreatedBy))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NotifyDeliveries::Table)
                .if_not_exists()
                .col(string(NotifyDeliveries::Id).primary_key())
                .col(string(NotifyDeliveries::ChannelId))
                .col(string(NotifyDeliveries::GroupKey))
                .col(text(NotifyDeliveries::TransitionIds))
                .col(big_integer(NotifyDeliveries::Leader))
                .col(string(NotifyDeliveries::State))
                .col(integer(NotifyDeliveries::Attempts))
                .col(text_null(NotifyDeliveries::LastError))
                .col(big_integer(NotifyDeliveries::CreatedAt))
                .col(big_integer(NotifyDeliveries::DueAt))
                .col(big_integer_null(NotifyDeliveries::HeldUntil))
                .col(big_integer_null(NotifyDeliveries::SentAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("notify_deliveries_channel")
                .table(NotifyDeliveries::Table)
                .col(NotifyDeliveries::ChannelId)
                .col(NotifyDeliveries::CreatedAt)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NotifyDeliveryItems::Table)
                .if_not_exists()
                .col(string(NotifyDeliveryItems::ChannelId))
                .col(big_integer(NotifyDeliveryItems::TransitionId))
                .col(string(NotifyDeliveryItems::DeliveryId))
                .primary_key(
                    Index::create()
                        .col(NotifyDeliveryItems::ChannelId)
                        .col(NotifyDeliveryItems::TransitionId),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
