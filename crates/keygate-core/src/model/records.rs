//! What the stores keep: organizations, API keys, API clients and signing keys.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::limits::LimitOverrides;
use super::secrets::StoredSecret;

/// Free-form labels of a key or a client (an owner, an environment, an external id), by name.
/// Names are lowercase letters, digits and `._/-`; values hold no quote, backslash or control
/// character (see `validate::check_labels`), so that a store can match one as plain text.
pub type Labels = BTreeMap<String, String>;

/// A tenant. Every key belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Stable, URL-safe identifier; also the primary key.
    pub slug: String,
    pub name: String,
    /// The configured plan whose limits were applied at creation.
    pub plan: String,
    /// The most keys that may be active at once.
    pub max_active_keys: u32,
    /// The platform organization's admins manage every organization.
    pub platform: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An API key as stored: only argon2id hashes of its secrets, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Stable public id, e.g. `k_abc123def456`; rotation keeps it.
    pub key_id: String,
    /// The configured prefix followed by the key id, e.g. `sk_live_k_abc123def456`.
    pub key_prefix: String,
    pub organization: String,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    /// The current secret's argon2id hash and fingerprint.
    pub secret_hash: StoredSecret,
    /// The secret the last rotation replaced, kept so that it can be told apart from an unknown
    /// secret after its grace period.
    pub previous_secret_hash: Option<StoredSecret>,
    /// Until when the replaced secret still works.
    pub previous_key_expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_rotated_at: Option<DateTime<Utc>>,
    /// Its own rate limit, monthly quota and concurrency limit.
    pub limits: LimitOverrides,
    pub labels: Labels,
}

/// A key's status, derived when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Expired,
    Disabled,
}

impl ApiKeyRecord {
    /// The status at `now`: disabled wins over expired.
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        if self.disabled_at.is_some() {
            return KeyStatus::Disabled;
        }
        if now >= self.expires_at {
            return KeyStatus::Expired;
        }
        KeyStatus::Active
    }

    /// Until when the replaced secret works, if it still does at `now`.
    pub fn grace_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.disabled_at.is_some() {
            return None;
        }
        self.previous_key_expires_at.map(|until| until.min(self.expires_at)).filter(|until| *until > now)
    }
}

/// An OAuth2 client (client-credentials grant) as stored: only the argon2id hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClientRecord {
    /// Readable and stable, e.g. `xsoar-production-3f9a2c`.
    pub client_id: String,
    pub organization: String,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    /// The secret's argon2id hash and fingerprint.
    pub secret_hash: StoredSecret,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Disabled clients get no new tokens and are never enabled again.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Tokens issued up to this time no longer work (set when disabling revokes them).
    pub tokens_revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub secret_regenerated_at: Option<DateTime<Utc>>,
    /// The generation its new tokens are signed for; tokens of an older one are revoked. Raised
    /// when a regenerated secret revokes the tokens issued with the old one.
    pub token_generation: i64,
    /// Its own rate limit, monthly quota and concurrency limit (for its tokens).
    pub limits: LimitOverrides,
    pub labels: Labels,
}

/// A client's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    Active,
    Disabled,
}

impl ApiClientRecord {
    pub fn status(&self) -> ClientStatus {
        if self.disabled_at.is_some() { ClientStatus::Disabled } else { ClientStatus::Active }
    }
}

/// A signing key as stored. The private key never leaves keygate; only `public_jwk` is published.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The RFC 7638 thumbprint of the public key.
    pub kid: String,
    pub algorithm: String,
    /// PKCS#8 PEM; in the database, sealed with the key-encryption key when one is configured
    /// (see [`sealing`]), and opened when read.
    pub private_key_pem: String,
    /// The public key as a JWK (JSON), with `kid`, `alg` and `use`.
    pub public_jwk: String,
    pub created_at: DateTime<Utc>,
    /// When a newer key took over signing.
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}
