//! The verdict cache: what verifying a presented key established, keyed by a SHA-256 digest of
//! the key (never the key itself). A hit costs no database round trip and no argon2; concurrent
//! misses for one key verify it once. Entries hold no secret and no hash, and carry no decision
//! that depends on time: expiry and grace periods are judged against the clock on every use.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use super::error::CoreError;
use super::model::ApiKeyRecord;

/// The slice of a key record a decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKey {
    pub key_id: String,
    pub organization: String,
    pub scopes: Vec<String>,
    pub name: String,
    pub expires_at: DateTime<Utc>,
    pub disabled: bool,
    /// Until when the replaced secret works; only meaningful when the previous secret matched.
    pub previous_key_expires_at: Option<DateTime<Utc>>,
}

impl CachedKey {
    pub fn from_record(record: &ApiKeyRecord) -> Self {
        Self {
            key_id: record.key_id.clone(),
            organization: record.organization.clone(),
            scopes: record.scopes.clone(),
            name: record.name.clone(),
            expires_at: record.expires_at,
            disabled: record.disabled_at.is_some(),
            previous_key_expires_at: record.previous_key_expires_at,
        }
    }
}

/// What verification established about a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The key's current secret (or, with `previous`, the one the last rotation replaced).
    Key { key: Arc<CachedKey>, previous: bool },
    /// No key has this secret; `key_id` is the id it named, when that key exists.
    Invalid { key_id: Option<String> },
}

impl Verified {
    fn key_id(&self) -> Option<&str> {
        match self {
            Verified::Key { key, .. } => Some(&key.key_id),
            Verified::Invalid { key_id } => key_id.as_deref(),
        }
    }
}

/// Cache sizes and lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct VerdictSettings {
    pub max_entries: u64,
    /// The hard bound on staleness should every invalidation be lost.
    pub ttl: Duration,
    /// How long a rejection is remembered, so floods of bad keys do not become argon2 work.
    pub negative_ttl: Duration,
}

struct Lifetimes(VerdictSettings);

impl Expiry<[u8; 32], Verified> for Lifetimes {
    fn expire_after_create(&self, _key: &[u8; 32], value: &Verified, _created_at: Instant) -> Option<Duration> {
        match value {
            Verified::Key { .. } => Some(self.0.ttl),
            Verified::Invalid { .. } => Some(self.0.negative_ttl),
        }
    }
}

/// Verified keys by digest.
pub struct VerdictCache {
    cache: Cache<[u8; 32], Verified>,
    /// Bumped by every invalidation, so that a verification which overlapped one is redone
    /// instead of caching what it read before the change.
    generation: AtomicU64,
}

/// How often a verification that overlapped invalidations is redone before its result is kept.
const MAX_VERIFY_ATTEMPTS: usize = 3;

impl std::fmt::Debug for VerdictCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache").field("entries", &self.cache.entry_count()).finish()
    }
}

/// The digest a presented key is cached under.
pub fn digest(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

impl VerdictCache {
    pub fn new(settings: VerdictSettings) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.max_entries)
            .expire_after(Lifetimes(settings))
            .support_invalidation_closures()
            .build();
        Self { cache, generation: AtomicU64::new(0) }
    }

    /// The cached verdict for `digest`, or the result of `verify`, run once however many callers
    /// miss at the same time. Errors (the database down) are not cached.
    pub async fn get_or_verify<F, Fut>(&self, digest: [u8; 32], mut verify: F) -> Result<Verified, CoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Verified, CoreError>>,
    {
        let generation = &self.generation;
        let init = async move {
            let mut attempts = 0;
            loop {
                let before = generation.load(Ordering::Acquire);
                let verified = verify().await?;
                attempts += 1;
                if generation.load(Ordering::Acquire) == before || attempts == MAX_VERIFY_ATTEMPTS {
                    return Ok(verified);
                }
            }
        };
        self.cache.try_get_with(digest, init).await.map_err(|err: Arc<CoreError>| (*err).clone())
    }

    /// Drops every verdict about `key_id`.
    pub fn invalidate_key(&self, key_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let key_id = key_id.to_owned();
        if let Err(err) = self.cache.invalidate_entries_if(move |_, verdict| verdict.key_id() == Some(&key_id)) {
            tracing::warn!(error = %err, "selective invalidation failed; clearing the verdict cache");
            self.cache.invalidate_all();
        }
    }

    /// Drops every verdict, e.g. after notifications may have been lost.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }

    /// Entries held (approximate; for metrics and benchmarks).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}
