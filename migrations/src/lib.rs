//! keygate's database schema as SeaORM migrations, shared by SQLite and PostgreSQL.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_organizations_and_api_keys;
mod m20261123_000002_api_clients_and_signing_keys;
mod m20261123_000003_audit_events;
mod m20261123_000004_limits_and_quota_usage;
mod m20261125_000001_request_ids_and_token_generations;
mod m20261202_000001_secret_fingerprints;
mod m20261203_000001_labels;
mod m20261203_000002_daily_uses;

/// Applies keygate's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_organizations_and_api_keys::Migration),
            Box::new(m20261123_000002_api_clients_and_signing_keys::Migration),
            Box::new(m20261123_000003_audit_events::Migration),
            Box::new(m20261123_000004_limits_and_quota_usage::Migration),
            Box::new(m20261125_000001_request_ids_and_token_generations::Migration),
            Box::new(m20261202_000001_secret_fingerprints::Migration),
            Box::new(m20261203_000001_labels::Migration),
            Box::new(m20261203_000002_daily_uses::Migration),
        ]
    }
}
