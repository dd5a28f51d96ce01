//! Organizations and their API keys. Keys keep only argon2id hashes of their secrets.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Slug,
    Name,
    Plan,
    MaxActiveKeys,
    Platform,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    KeyId,
    KeyPrefix,
    Organization,
    Name,
    Description,
    /// Lowercased name and description, so that search is case-insensitive on every backend.
    SearchText,
    /// Space-separated.
    Scopes,
    SecretHash,
    PreviousSecretHash,
    PreviousKeyExpiresAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    ExpiresAt,
    DisabledAt,
    LastUsedAt,
    LastRotatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .if_not_exists()
                    .col(string_len(Organizations::Slug, 63).primary_key())
                    .col(string(Organizations::Name))
                    .col(string(Organizations::Plan))
                    .col(integer(Organizations::MaxActiveKeys))
                    .col(boolean(Organizations::Platform))
                    .col(timestamp_with_time_zone(Organizations::CreatedAt))
                    .col(timestamp_with_time_zone(Organizations::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(string_len(ApiKeys::KeyId, 32).primary_key())
                    .col(string(ApiKeys::KeyPrefix))
                    .col(string_len(ApiKeys::Organization, 63))
                    .col(string(ApiKeys::Name))
                    .col(text(ApiKeys::Description))
                    .col(text(ApiKeys::SearchText))
                    .col(text(ApiKeys::Scopes))
                    .col(string(ApiKeys::SecretHash))
                    .col(string_null(ApiKeys::PreviousSecretHash))
                    .col(timestamp_with_time_zone_null(ApiKeys::PreviousKeyExpiresAt))
                    .col(string(ApiKeys::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone(ApiKeys::UpdatedAt))
                    .col(timestamp_with_time_zone(ApiKeys::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::DisabledAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastRotatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_organization")
                            .from(ApiKeys::Table, ApiKeys::Organization)
                            .to(Organizations::Table, Organizations::Slug),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_organization_created_at")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::Organization)
                    .col(ApiKeys::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ApiKeys::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Organizations::Table).to_owned()).await
    }
}
