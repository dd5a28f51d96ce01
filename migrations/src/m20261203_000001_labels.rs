//! Free-form labels on keys and clients (an owner, an environment, an external id): one JSON
//! object per row, written by keygate with sorted names and no spaces, `{}` for none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Labels,
}

#[derive(DeriveIden)]
enum ApiClients {
    Table,
    Labels,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let keys = Table::alter().table(ApiKeys::Table).add_column(text(ApiKeys::Labels).default("{}")).to_owned();
        manager.alter_table(keys).await?;
        let clients =
            Table::alter().table(ApiClients::Table).add_column(text(ApiClients::Labels).default("{}")).to_owned();
        manager.alter_table(clients).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(ApiClients::Table).drop_column(ApiClients::Labels).to_owned()).await?;
        manager.alter_table(Table::alter().table(ApiKeys::Table).drop_column(ApiKeys::Labels).to_owned()).await
    }
}
