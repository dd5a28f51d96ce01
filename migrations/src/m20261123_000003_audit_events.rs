//! The audit log of admin changes: appended in the same transaction as each change, never
//! updated or deleted by keygate.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    /// Increasing: orders entries written in the same instant.
    Id,
    At,
    Actor,
    ActorKind,
    Organization,
    Action,
    Target,
    Outcome,
    RequestId,
    Peer,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    // Text: a user id comes from another issuer's token and may be long.
                    .col(text(AuditEvents::Actor))
                    .col(string_len(AuditEvents::ActorKind, 16))
                    // No foreign key: an entry outlives whatever it is about, and refusals may
                    // name organizations that do not exist.
                    .col(string_len(AuditEvents::Organization, 63))
                    .col(string_len(AuditEvents::Action, 64))
                    .col(text(AuditEvents::Target))
                    .col(string_len(AuditEvents::Outcome, 32))
                    .col(string_len(AuditEvents::RequestId, 128))
                    .col(string_len(AuditEvents::Peer, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_organization_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::Organization)
                    .col(AuditEvents::At)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditEvents::Table).to_owned()).await
    }
}
