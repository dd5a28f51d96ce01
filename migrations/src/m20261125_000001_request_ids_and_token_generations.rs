//! The caller's own request id beside keygate's in the audit log, and each API client's token
//! generation: tokens signed for an older generation than the client's are revoked (a secret
//! regenerated with `revoke_tokens` raises it). Existing rows get an empty id and generation 0,
//! which every token already issued carries.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    ClientRequestId,
}

#[derive(DeriveIden)]
enum ApiClients {
    Table,
    TokenGeneration,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let audit = Table::alter()
            .table(AuditEvents::Table)
            .add_column(string_len(AuditEvents::ClientRequestId, 128).default(""))
            .to_owned();
        manager.alter_table(audit).await?;
        let clients = Table::alter()
            .table(ApiClients::Table)
            .add_column(big_integer(ApiClients::TokenGeneration).default(0))
            .to_owned();
        manager.alter_table(clients).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let clients = Table::alter().table(ApiClients::Table).drop_column(ApiClients::TokenGeneration).to_owned();
        manager.alter_table(clients).await?;
        let audit = Table::alter().table(AuditEvents::Table).drop_column(AuditEvents::ClientRequestId).to_owned();
        manager.alter_table(audit).await
    }
}
