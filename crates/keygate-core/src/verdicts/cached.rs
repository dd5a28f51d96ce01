//! What a verdict holds: the slice of a key or client record a decision needs, with what many
//! keys have in common (their organization, their scope list) shared rather than copied.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use super::shared::Shared;
use crate::model::{ApiClientRecord, ApiKeyRecord, LimitOverrides, StoredSecret};
use crate::tokens::VerifiedToken;

/// The slice of a key record a decision needs, packed: a million of them are what the cache
/// holds (see `docs/performance.md#verdict-cache` for the bytes each costs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKey {
    /// The key's id then its name, in one allocation (see [`Self::key_id`], [`Self::name`]).
    id_and_name: Box<str>,
    /// Where the id ends: key ids are 14 bytes (`k_` and 12 characters), as the parser insists.
    id_len: u16,
    /// Shared by every cached key of the organization.
    pub organization: Arc<str>,
    /// Shared by every cached key with the same scopes.
    pub scopes: Arc<[String]>,
    pub expires_at: DateTime<Utc>,
    pub disabled: bool,
    /// Until when the replaced secret works; only meaningful when the previous secret matched.
    pub previous_key_expires_at: Option<DateTime<Utc>>,
    pub limits: LimitOverrides,
    /// Which stored hash argon2 matched the presented secret against (see [`proof_of`]).
    pub proof: Proof,
}

/// What a verdict keeps of the stored hash its secret matched: half a SHA-256 of the hash
/// string, which tells it apart from the few hashes one key ever has (each with its own random
/// salt) and reveals nothing of the secret.
pub type Proof = [u8; 16];

pub fn proof_of(stored: &StoredSecret) -> Proof {
    let full: [u8; 32] = Sha256::digest(stored.phc.as_bytes()).into();
    let mut proof = [0; 16];
    proof.copy_from_slice(&full[..16]);
    proof
}

/// A key verdict a change made stale: the key, and the proof the presented secret matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleKey {
    pub key_id: String,
    pub proof: Proof,
}

impl CachedKey {
    /// The slice of `record` a decision needs, for a secret proven to match `matched`, sharing
    /// the organization and scopes through `shared`.
    pub(super) fn from_record(record: &ApiKeyRecord, matched: &StoredSecret, shared: &Shared) -> Self {
        let id_and_name = [record.key_id.as_str(), record.name.as_str()].concat().into_boxed_str();
        // An id too long to say where it ends is not one the parser accepts: it never comes here.
        let id_len = u16::try_from(record.key_id.len()).unwrap_or(u16::MAX);
        Self {
            id_and_name,
            id_len,
            organization: shared.organization(&record.organization),
            scopes: shared.scopes(&record.scopes),
            expires_at: record.expires_at,
            disabled: record.disabled_at.is_some(),
            previous_key_expires_at: record.previous_key_expires_at,
            limits: record.limits,
            proof: proof_of(matched),
        }
    }
}

impl CachedKey {
    pub fn key_id(&self) -> &str {
        self.id_and_name.split_at_checked(usize::from(self.id_len)).map_or(&self.id_and_name, |(id, _)| id)
    }

    pub fn name(&self) -> &str {
        self.id_and_name.split_at_checked(usize::from(self.id_len)).map_or("", |(_, name)| name)
    }
}

/// The slice of a client record the token endpoint needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedClient {
    pub client_id: String,
    pub organization: String,
    pub scopes: Vec<String>,
    pub disabled: bool,
    /// The generation the client's tokens are signed for, as read with its secret: a replica that
    /// has yet to hear of a revoking regeneration signs for the old one, revoked everywhere.
    pub token_generation: i64,
}

impl CachedClient {
    pub fn from_record(record: &ApiClientRecord) -> Self {
        Self {
            client_id: record.client_id.clone(),
            organization: record.organization.clone(),
            scopes: record.scopes.clone(),
            disabled: record.disabled_at.is_some(),
            token_generation: record.token_generation,
        }
    }
}

/// A verified bearer token, kept no longer than it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedToken {
    pub token: VerifiedToken,
    /// How long the entry may live: the token's remaining lifetime when it was verified.
    pub cache_for: Duration,
}

/// What verification established about a presented credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The key's current secret (or, with `previous`, the one the last rotation replaced).
    Key { key: Arc<CachedKey>, previous: bool },
    /// A client's current secret.
    Client(Arc<CachedClient>),
    /// A bearer token whose signature and claims checked out.
    Token(Arc<CachedToken>),
    /// No key or client has this secret; `key_id` is the key or client it named, when that exists
    /// (behind a thin pointer, so that every verdict is 16 bytes: see [`Verified::refused`]).
    Invalid { key_id: Option<Arc<String>> },
    /// A key verdict since changed: to be judged again against the re-read record.
    Stale(Arc<StaleKey>),
}

impl Verified {
    /// A refusal of a secret presented for the existing key or client `key_id`.
    pub fn refused(key_id: String) -> Self {
        Verified::Invalid { key_id: Some(Arc::new(key_id)) }
    }

    /// The key or client whose changes make this verdict stale.
    pub(super) fn key_id(&self) -> Option<&str> {
        match self {
            Verified::Key { key, .. } => Some(key.key_id()),
            Verified::Client(client) => Some(&client.client_id),
            Verified::Token(token) => token.token.client_id.as_deref(),
            Verified::Invalid { key_id } => key_id.as_deref().map(String::as_str),
            Verified::Stale(stale) => Some(&stale.key_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a million verdicts cost rests on these sizes (`docs/performance.md#verdict-cache`):
    /// a verdict the width of one pointer and a tag, and a key whose shared allocation, with its
    /// two counts, stays within 152 bytes (one 160-byte block of the system allocator).
    #[test]
    fn verdicts_stay_packed() {
        assert_eq!(size_of::<Verified>(), 16);
        assert!(size_of::<CachedKey>() + 2 * size_of::<usize>() <= 152, "{}", size_of::<CachedKey>());
    }

    #[test]
    fn a_key_keeps_its_id_and_name_apart() {
        let now = Utc::now();
        let record = ApiKeyRecord {
            key_id: "k_0123456789ab".into(),
            key_prefix: "sk_test_k_0123456789ab".into(),
            organization: "platform".into(),
            name: "billing – nightly".into(),
            description: String::new(),
            scopes: vec!["graph:read".into()],
            secret_hash: StoredSecret { phc: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into(), fingerprint: None },
            previous_secret_hash: None,
            previous_key_expires_at: None,
            created_by: "k_000000000000".into(),
            created_at: now,
            updated_at: now,
            expires_at: now,
            disabled_at: None,
            last_used_at: None,
            last_rotated_at: None,
            limits: LimitOverrides::default(),
            labels: Default::default(),
        };
        let key = CachedKey::from_record(&record, &record.secret_hash, &Shared::default());
        assert_eq!((key.key_id(), key.name()), ("k_0123456789ab", "billing – nightly"));
    }
}
