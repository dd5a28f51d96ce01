//! SeaORM entities for the tables the migrations create.

/// `organizations`: tenants, keyed by slug.
pub mod organization {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "organizations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub slug: String,
        pub name: String,
        pub plan: String,
        pub max_active_keys: i32,
        pub platform: bool,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `api_keys`: keys with argon2id hashes (and fingerprints) of their current and previous secrets.
pub mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key_id: String,
        pub key_prefix: String,
        pub organization: String,
        pub name: String,
        pub description: String,
        pub search_text: String,
        pub scopes: String,
        pub secret_hash: String,
        pub previous_secret_hash: Option<String>,
        pub secret_fingerprint: Option<String>,
        pub previous_secret_fingerprint: Option<String>,
        pub previous_key_expires_at: Option<DateTimeUtc>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub disabled_at: Option<DateTimeUtc>,
        pub last_used_at: Option<DateTimeUtc>,
        pub last_rotated_at: Option<DateTimeUtc>,
        pub rate_limit_per_minute: Option<i32>,
        pub rate_limit_burst: Option<i32>,
        pub max_quota: Option<i64>,
        pub max_concurrency: Option<i32>,
        /// A JSON object; see `plumbing::labels_column`.
        pub labels: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `api_clients`: OAuth2 clients with the argon2id hash of their secret.
pub mod api_client {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_clients")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub client_id: String,
        pub organization: String,
        pub name: String,
        pub description: String,
        pub search_text: String,
        pub scopes: String,
        pub secret_hash: String,
        pub secret_fingerprint: Option<String>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub disabled_at: Option<DateTimeUtc>,
        pub tokens_revoked_at: Option<DateTimeUtc>,
        pub last_used_at: Option<DateTimeUtc>,
        pub secret_regenerated_at: Option<DateTimeUtc>,
        pub rate_limit_per_minute: Option<i32>,
        pub rate_limit_burst: Option<i32>,
        pub max_quota: Option<i64>,
        pub max_concurrency: Option<i32>,
        pub token_generation: i64,
        /// A JSON object; see `plumbing::labels_column`.
        pub labels: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `signing_keys`: the keys access tokens are signed with; `private_key_pem` is sealed with the
/// key-encryption key when one is configured (see `keygate_core::tokens::sealing`).
pub mod signing_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        pub algorithm: String,
        pub private_key_pem: String,
        pub public_jwk: String,
        pub created_at: DateTimeUtc,
        pub retired_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `audit_events`: the append-only audit log of admin changes.
pub mod audit_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: DateTimeUtc,
        pub actor: String,
        pub actor_kind: String,
        pub organization: String,
        pub action: String,
        pub target: String,
        pub outcome: String,
        pub request_id: String,
        pub peer: String,
        pub client_request_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `quota_usage`: each replica's total quota usage per subject and month.
pub mod quota_usage {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "quota_usage")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub window_start: DateTimeUtc,
        #[sea_orm(primary_key, auto_increment = false)]
        pub replica: String,
        pub used: i64,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `daily_uses`: how often each credential was used per day.
pub mod daily_uses {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "daily_uses")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub credential: String,
        /// `YYYY-MM-DD`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: String,
        pub uses: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
