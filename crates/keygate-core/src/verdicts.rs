//! The verdict cache: what verifying a presented key, client secret or token established, keyed
//! by a digest of the credential (never the credential itself): 128 bits of SipHash-2-4 under a
//! key drawn for the process, a pseudorandom function, so no one who lacks the key can make two
//! credentials share a digest, for a fraction of a SHA-256's work on the hot path. A hit costs
//! no database round trip and no argon2; concurrent misses for one key verify it once. Entries
//! hold no secret and no hash, and carry no decision that depends on time: expiry and grace
//! periods are judged against the clock on every use. A change to a key leaves its verdicts
//! stale rather than dropped: each keeps a proof of which stored hash its secret matched, so
//! that the next use re-reads the record and judges it again with no argon2 while that hash is
//! still stored.

use std::hash::Hasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::Op;
use sha2::{Digest as _, Sha256};
use siphasher::sip128::{Hasher128, SipHasher24};

use super::instruments::CacheInstruments;
use super::known_ids::KnownIds;
use super::model::{ApiClientRecord, ApiKeyRecord, LimitOverrides, StoredSecret};
use super::tokens::VerifiedToken;

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
    /// The slice of `record` a decision needs, for a secret proven to match `matched`.
    pub fn from_record(record: &ApiKeyRecord, matched: &StoredSecret) -> Self {
        Self {
            key_id: record.key_id.clone(),
            organization: record.organization.clone(),
            scopes: record.scopes.clone(),
            name: record.name.clone(),
            expires_at: record.expires_at,
            disabled: record.disabled_at.is_some(),
            previous_key_expires_at: record.previous_key_expires_at,
            limits: record.limits,
            proof: proof_of(matched),
        }
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
    /// No key or client has this secret; `key_id` is the key or client it named, when that exists.
    Invalid { key_id: Option<String> },
    /// A key verdict since changed: to be judged again against the re-read record.
    Stale(Arc<StaleKey>),
}

impl Verified {
    /// The key or client whose changes make this verdict stale.
    fn key_id(&self) -> Option<&str> {
        match self {
            Verified::Key { key, .. } => Some(&key.key_id),
            Verified::Client(client) => Some(&client.client_id),
            Verified::Token(token) => token.token.client_id.as_deref(),
            Verified::Invalid { key_id } => key_id.as_deref(),
            Verified::Stale(stale) => Some(&stale.key_id),
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

impl Expiry<Digest, Verified> for Lifetimes {
    fn expire_after_create(&self, _key: &Digest, value: &Verified, _created_at: Instant) -> Option<Duration> {
        match value {
            Verified::Key { .. } | Verified::Client(_) | Verified::Stale(_) => Some(self.0.ttl),
            Verified::Token(token) => Some(self.0.ttl.min(token.cache_for)),
            Verified::Invalid { .. } => Some(self.0.negative_ttl),
        }
    }
}

/// Verified keys by digest.
pub struct VerdictCache {
    /// Keyed by digests, already uniform: a fast seeded hasher instead of SipHash again.
    cache: Cache<Digest, Verified, foldhash::fast::RandomState>,
    /// The digests' key, drawn for the process: verdicts live in memory only.
    digest_key: [u8; 16],
    /// Bumped by every invalidation, so that a verification which overlapped one is redone
    /// instead of caching what it read before the change.
    generation: AtomicU64,
    /// The credentials that exist, so that made-up ids cost no verification.
    known: KnownIds,
    instruments: CacheInstruments,
}

/// How often a verification that overlapped invalidations is redone before its result is kept.
const MAX_VERIFY_ATTEMPTS: usize = 3;

impl std::fmt::Debug for VerdictCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache").field("entries", &self.cache.entry_count()).finish()
    }
}

/// What a verdict is cached under (see [`VerdictCache::digest`]).
pub type Digest = u128;

impl VerdictCache {
    pub fn new(settings: VerdictSettings) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.max_entries)
            .expire_after(Lifetimes(settings))
            .build_with_hasher(foldhash::fast::RandomState::default());
        let instruments = CacheInstruments::default();
        let known = KnownIds::new(instruments.known_ids.clone());
        Self { cache, digest_key: rand::random(), generation: AtomicU64::new(0), known, instruments }
    }

    /// The digest a presented key or token is cached under.
    pub fn digest(&self, presented: &str) -> Digest {
        let mut hasher = SipHasher24::new_with_key(&self.digest_key);
        hasher.write(presented.as_bytes());
        hasher.finish128().into()
    }

    /// The digest a client's id and secret are cached under; distinct from any key's digest.
    pub fn client_digest(&self, client_id: &str, secret: &str) -> Digest {
        let mut hasher = SipHasher24::new_with_key(&self.digest_key);
        for part in ["client\0", client_id, "\0", secret] {
            hasher.write(part.as_bytes());
        }
        hasher.finish128().into()
    }

    /// The cached verdict for `digest`, or the result of `verify`, run once however many callers
    /// miss at the same time. Errors (the database down, a token rejected now that may verify
    /// after a key refresh) are shared by the callers that waited for them and never cached.
    ///
    /// On a miss, `may_exist` says whether the key or client the credential names may exist
    /// (see [`KnownIds::may_exist`]); when not, it is refused with no verification, and nothing
    /// is cached (a creation announced a moment later must not find a refusal waiting).
    pub async fn get_or_try_verify<E, F, Fut>(
        &self,
        digest: Digest,
        may_exist: impl FnOnce(&KnownIds) -> bool,
        verify: F,
    ) -> Result<Verified, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Verified, E>>,
    {
        self.instruments.lookups.inc();
        // A hit (the hot path) awaits the look-up alone. The verification's future is far larger
        // (database and argon2 calls); boxed, it is built only on a miss, rather than being part
        // of every caller's state and copied with it on each request.
        if let Some(verified) = self.cache.get(&digest).await {
            return Ok(verified);
        }
        if !may_exist(&self.known) {
            self.instruments.unknown_refused.inc();
            return Ok(Verified::Invalid { key_id: None });
        }
        Box::pin(self.verify_once(digest, verify)).await
    }

    /// The miss path of [`Self::get_or_try_verify`].
    async fn verify_once<E, F, Fut>(&self, digest: Digest, mut verify: F) -> Result<Verified, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Verified, E>>,
    {
        let (generation, misses) = (&self.generation, &self.instruments.misses);
        let unknown_reads = &self.instruments.unknown_reads;
        let init = async move {
            misses.inc();
            let mut attempts = 0;
            loop {
                let before = generation.load(Ordering::Acquire);
                let verified = verify().await?;
                if matches!(verified, Verified::Invalid { key_id: None }) {
                    // An id the known ids let through that no credential has (see `KnownIds`).
                    unknown_reads.inc();
                }
                attempts += 1;
                if generation.load(Ordering::Acquire) == before || attempts == MAX_VERIFY_ATTEMPTS {
                    return Ok(verified);
                }
            }
        };
        self.cache.try_get_with(digest, init).await.map_err(|err: Arc<E>| (*err).clone())
    }

    /// Makes every verdict about `key_id` (a key, or a client and its tokens) count no more:
    /// a key's verified secrets become [`Verified::Stale`], to be judged again from the record
    /// with no argon2 (see [`Self::rejudge`]); every other verdict is dropped.
    pub async fn invalidate_key(&self, key_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        // One pass: what a digest proved becomes stale, every other verdict about the key goes.
        let about: Vec<(Arc<Digest>, Option<Proof>)> = self
            .cache
            .iter()
            .filter(|(_, verdict)| verdict.key_id() == Some(key_id) && !matches!(verdict, Verified::Stale(_)))
            .map(|(digest, verdict)| match verdict {
                Verified::Key { key, .. } => (digest, Some(key.proof)),
                _ => (digest, None),
            })
            .collect();
        for (digest, proof) in about {
            match proof {
                Some(proof) => {
                    let stale = StaleKey { key_id: key_id.to_owned(), proof };
                    self.cache.insert(*digest, Verified::Stale(Arc::new(stale))).await;
                }
                None => self.cache.invalidate(&*digest).await,
            }
        }
    }

    /// The verdict for a digest whose cached one is stale: `verify` (which judges the record
    /// again) run once however many callers found it stale at the same time.
    pub async fn rejudge<E, F, Fut>(&self, digest: Digest, verify: F) -> Result<Verified, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Verified, E>>,
    {
        self.instruments.rejudged.inc();
        // Only a stale entry is removed: one another caller judged meanwhile is kept, and the
        // callers that found it stale together share one verification.
        let stale_only = |entry: Option<moka::Entry<Digest, Verified>>| async move {
            match entry.map(|entry| entry.into_value()) {
                Some(Verified::Stale(_)) => Op::Remove,
                _ => Op::Nop,
            }
        };
        self.cache.entry(digest).and_compute_with(stale_only).await;
        Box::pin(self.verify_once(digest, verify)).await
    }

    /// The ids of the credentials that exist, kept in step by creations.
    pub fn known(&self) -> &KnownIds {
        &self.known
    }

    /// Drops every verdict, e.g. after notifications may have been lost.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }

    /// Notes how long a change took to reach this replica.
    pub fn record_propagation(&self, delay: Duration) {
        self.instruments.propagation.observe(delay.as_secs_f64());
    }

    /// The cache's instruments, for registration.
    pub fn instruments(&self) -> CacheInstruments {
        self.instruments.clone()
    }

    /// Entries held (approximate; for metrics and benchmarks).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}
