//! OAuth2 API clients (client-credentials grant) and the keys keygate signs access tokens with.
//! Clients keep only an argon2id hash of their secret.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Slug,
}

#[derive(DeriveIden)]
enum ApiClients {
    Table,
    ClientId,
    Organization,
    Name,
    Description,
    /// Lowercased client id, name and description, for case-insensitive search on every backend.
    SearchText,
    /// Space-separated.
    Scopes,
    SecretHash,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    DisabledAt,
    /// Set when disabling also revoked the client's outstanding tokens.
    TokensRevokedAt,
    LastUsedAt,
    SecretRegeneratedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Algorithm,
    /// PKCS#8 PEM. Every replica signs with the same keys, so they live with the data.
    PrivateKeyPem,
    /// The public key as a JWK (JSON), as published.
    PublicJwk,
    CreatedAt,
    /// When a newer key took over signing; the key stays published until tokens it signed expire.
    RetiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiClients::Table)
                    .if_not_exists()
                    .col(string_len(ApiClients::ClientId, 100).primary_key())
                    .col(string_len(ApiClients::Organization, 63))
                    .col(string(ApiClients::Name))
                    .col(text(ApiClients::Description))
                    .col(text(ApiClients::SearchText))
                    .col(text(ApiClients::Scopes))
                    .col(string(ApiClients::SecretHash))
                    .col(string(ApiClients::CreatedBy))
                    .col(timestamp_with_time_zone(ApiClients::CreatedAt))
                    .col(timestamp_with_time_zone(ApiClients::UpdatedAt))
                    .col(timestamp_with_time_zone_null(ApiClients::DisabledAt))
                    .col(timestamp_with_time_zone_null(ApiClients::TokensRevokedAt))
                    .col(timestamp_with_time_zone_null(ApiClients::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiClients::SecretRegeneratedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_clients_organization")
                            .from(ApiClients::Table, ApiClients::Organization)
                            .to(Organizations::Table, Organizations::Slug),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_clients_organization_created_at")
                    .table(ApiClients::Table)
                    .col(ApiClients::Organization)
                    .col(ApiClients::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(string_len(SigningKeys::Kid, 100).primary_key())
                    .col(string_len(SigningKeys::Algorithm, 16))
                    .col(text(SigningKeys::PrivateKeyPem))
                    .col(text(SigningKeys::PublicJwk))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::RetiredAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SigningKeys::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ApiClients::Table).to_owned()).await
    }
}
