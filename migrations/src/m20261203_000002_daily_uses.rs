//! How often each key and client was used per day (UTC), for the console's usage charts:
//! every replica adds its own counts with each last-use flush; days older than 90 are deleted.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DailyUses {
    Table,
    /// `api_key:ID` or `client:ID`.
    Credential,
    /// `YYYY-MM-DD`: text, so that both databases order and compare days alike.
    Day,
    Uses,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table(DailyUses::Table)
            .if_not_exists()
            .col(text(DailyUses::Credential))
            .col(string_len(DailyUses::Day, 10))
            .col(big_integer(DailyUses::Uses))
            .primary_key(Index::create().col(DailyUses::Credential).col(DailyUses::Day))
            .to_owned();
        manager.create_table(table).await?;
        // Forgetting old days deletes by day alone.
        let by_day = Index::create().name("daily_uses_day").table(DailyUses::Table).col(DailyUses::Day).to_owned();
        manager.create_index(by_day).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DailyUses::Table).to_owned()).await
    }
}
