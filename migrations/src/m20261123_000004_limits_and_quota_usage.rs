//! Per-credential limits (rate, monthly quota, concurrency) on keys and clients, and durable
//! quota usage: one row per subject, month and replica, holding that replica's total.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
}

#[derive(DeriveIden)]
enum ApiClients {
    Table,
}

/// The limit columns both credential tables get; NULL takes the configured default.
#[derive(DeriveIden, Clone, Copy)]
enum Limit {
    RateLimitPerMinute,
    RateLimitBurst,
    MaxQuota,
    MaxConcurrency,
}

#[derive(DeriveIden)]
enum QuotaUsage {
    Table,
    Subject,
    WindowStart,
    /// A process's name for its own rows, new at each start.
    Replica,
    Used,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [ApiKeys::Table.into_iden(), ApiClients::Table.into_iden()] {
            // SQLite adds one column per ALTER TABLE.
            for column in [Limit::RateLimitPerMinute, Limit::RateLimitBurst, Limit::MaxConcurrency] {
                let alter = Table::alter().table(table.clone()).add_column(integer_null(column)).to_owned();
                manager.alter_table(alter).await?;
            }
            let alter = Table::alter().table(table.clone()).add_column(big_integer_null(Limit::MaxQuota)).to_owned();
            manager.alter_table(alter).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(QuotaUsage::Table)
                    .if_not_exists()
                    .col(text(QuotaUsage::Subject))
                    .col(timestamp_with_time_zone(QuotaUsage::WindowStart))
                    .col(string_len(QuotaUsage::Replica, 64))
                    .col(big_integer(QuotaUsage::Used))
                    .col(timestamp_with_time_zone(QuotaUsage::UpdatedAt))
                    .primary_key(
                        Index::create().col(QuotaUsage::Subject).col(QuotaUsage::WindowStart).col(QuotaUsage::Replica),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(QuotaUsage::Table).to_owned()).await?;
        for table in [ApiKeys::Table.into_iden(), ApiClients::Table.into_iden()] {
            for column in [Limit::RateLimitPerMinute, Limit::RateLimitBurst, Limit::MaxQuota, Limit::MaxConcurrency] {
                let alter = Table::alter().table(table.clone()).drop_column(column).to_owned();
                manager.alter_table(alter).await?;
            }
        }
        Ok(())
    }
}
