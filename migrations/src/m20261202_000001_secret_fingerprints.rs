//! A short keyed fingerprint beside every stored secret's argon2id hash (a key's current and
//! replaced secret, a client's secret), checked before argon2 so that made-up secrets for a known
//! id cost no argon2 work. Existing rows get none here (their secrets are unknown to the database):
//! each gets one at its first successful verification.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    SecretFingerprint,
    PreviousSecretFingerprint,
}

#[derive(DeriveIden)]
enum ApiClients {
    Table,
    SecretFingerprint,
}

/// `v1:{key}:{value}` (8 hex digits each); NULL for a secret stored before fingerprints.
const WIDTH: u32 = 32;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [ApiKeys::SecretFingerprint, ApiKeys::PreviousSecretFingerprint] {
            let alter = Table::alter().table(ApiKeys::Table).add_column(string_len_null(column, WIDTH)).to_owned();
            manager.alter_table(alter).await?;
        }
        let alter = Table::alter()
            .table(ApiClients::Table)
            .add_column(string_len_null(ApiClients::SecretFingerprint, WIDTH))
            .to_owned();
        manager.alter_table(alter).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let alter = Table::alter().table(ApiClients::Table).drop_column(ApiClients::SecretFingerprint).to_owned();
        manager.alter_table(alter).await?;
        for column in [ApiKeys::PreviousSecretFingerprint, ApiKeys::SecretFingerprint] {
            manager.alter_table(Table::alter().table(ApiKeys::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
