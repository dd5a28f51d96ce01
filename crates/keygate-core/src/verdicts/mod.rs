//! The verdict cache: what verifying a presented key, client secret or token established, keyed
//! by a digest of the credential (never the credential itself): 128 bits of SipHash-2-4 under a
//! key drawn for the process, a pseudorandom function, so no one who lacks the key can make two
//! credentials share a digest, for a fraction of a SHA-256's work on the hot path. A hit costs
//! no database round trip and no argon2; concurrent misses for one key verify it once. Entries
//! hold no secret and no hash, and carry no decision that depends on time: expiry and grace
//! periods are judged against the clock on every use. A change to a key leaves its verdicts
//! stale rather than dropped: each keeps a proof of which stored hash its secret matched, so
//! that the next use re-reads the record and judges it again with no argon2 while that hash is
//! still stored. An entry costs about 75 bytes in quick_cache's CLOCK-Pro, digest and verdict
//! included (moka's bookkeeping alone took about 370), plus what a key's verdict points at, with
//! organizations and scope lists shared.

mod cached;
mod flight;
mod shared;

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::UnitWeighter;
use quick_cache::sync::Cache;
use siphasher::sip128::{Hasher128, SipHasher24};

pub use self::cached::{CachedClient, CachedKey, CachedToken, Proof, StaleKey, Verified, proof_of};
use self::flight::Flights;
use self::shared::Shared;
use super::instruments::CacheInstruments;
use super::known_ids::KnownIds;
use super::model::{ApiKeyRecord, StoredSecret};

/// Cache sizes and lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct VerdictSettings {
    pub max_entries: u64,
    /// The hard bound on staleness should every invalidation be lost.
    pub ttl: Duration,
    /// How long a rejection is remembered, so floods of bad keys do not become argon2 work.
    pub negative_ttl: Duration,
}

impl VerdictSettings {
    /// How long `verdict` may be kept.
    fn lifetime(&self, verdict: &Verified) -> Duration {
        match verdict {
            Verified::Key { .. } | Verified::Client(_) | Verified::Stale(_) => self.ttl,
            Verified::Token(token) => self.ttl.min(token.cache_for),
            Verified::Invalid { .. } => self.negative_ttl,
        }
    }
}

/// A verdict and the end of its lifetime, in milliseconds of the cache's own monotonic clock: a
/// verdict is kept for a while, whatever the wall clock does meanwhile.
#[derive(Debug, Clone)]
struct Entry {
    verdict: Verified,
    until: u64,
}

/// Verified keys by digest.
pub struct VerdictCache {
    /// Keyed by digests, already uniform: a fast seeded hasher instead of SipHash again.
    cache: Cache<Digest, Entry, UnitWeighter, foldhash::fast::RandomState>,
    settings: VerdictSettings,
    /// Where the entries' lifetimes are counted from.
    started: Instant,
    /// Verifications under way, so that callers missing together verify once.
    flights: Flights,
    /// The organization names and scope lists cached keys share.
    shared: Shared,
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
        f.debug_struct("VerdictCache").field("entries", &self.cache.len()).finish()
    }
}

/// What a verdict is cached under (see [`VerdictCache::digest`]).
pub type Digest = u128;

impl VerdictCache {
    pub fn new(settings: VerdictSettings) -> Self {
        // Capacity grows with use: a large `max_entries` reserves nothing up front.
        let capacity = usize::try_from(settings.max_entries).unwrap_or(usize::MAX);
        let estimated = capacity.min(ESTIMATED_ENTRIES);
        let cache = Cache::with(estimated, settings.max_entries, UnitWeighter, Default::default(), Default::default());
        let instruments = CacheInstruments::default();
        let known = KnownIds::new(instruments.known_ids.clone());
        Self {
            cache,
            settings,
            started: Instant::now(),
            flights: Flights::default(),
            shared: Shared::default(),
            digest_key: rand::random(),
            generation: AtomicU64::new(0),
            known,
            instruments,
        }
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

    /// What a verdict keeps of `record`, for a secret proven to match `matched`.
    pub fn cached_key(&self, record: &ApiKeyRecord, matched: &StoredSecret) -> CachedKey {
        CachedKey::from_record(record, matched, &self.shared)
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
        if let Some(verdict) = self.get(digest) {
            return Ok(verdict);
        }
        if !may_exist(&self.known) {
            self.instruments.unknown_refused.inc();
            return Ok(Verified::Invalid { key_id: None });
        }
        // The verification's future is far larger (database and argon2 calls) than a hit's
        // state; boxed, it is built only on a miss rather than copied with every request.
        Box::pin(self.verify_once(digest, verify)).await
    }

    /// The live verdict for `digest`, if any.
    fn get(&self, digest: Digest) -> Option<Verified> {
        let entry = self.cache.get(&digest)?;
        (entry.until > self.elapsed_ms()).then_some(entry.verdict)
    }

    /// Keeps `verdict` for its lifetime.
    fn keep(&self, digest: Digest, verdict: Verified) {
        let lifetime = u64::try_from(self.settings.lifetime(&verdict).as_millis()).unwrap_or(u64::MAX);
        let until = self.elapsed_ms().saturating_add(lifetime);
        self.cache.insert(digest, Entry { verdict, until });
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The miss path of [`Self::get_or_try_verify`]: one verification per digest in flight, its
    /// verdict kept before its waiters are told, so a caller that comes after them finds it.
    async fn verify_once<E, F, Fut>(&self, digest: Digest, mut verify: F) -> Result<Verified, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Verified, E>>,
    {
        let seat = self.flights.join::<Verified, E>(digest);
        let fly = async {
            // Another flight may have landed between this caller's miss and its seat.
            if let Some(verdict) = self.get(digest) {
                return Ok(verdict);
            }
            self.instruments.misses.inc();
            let mut attempts = 0;
            let verdict = loop {
                let before = self.generation.load(Ordering::Acquire);
                let verdict = verify().await?;
                if matches!(verdict, Verified::Invalid { key_id: None }) {
                    // An id the known ids let through that no credential has (see `KnownIds`).
                    self.instruments.unknown_reads.inc();
                }
                attempts += 1;
                if self.generation.load(Ordering::Acquire) == before || attempts == MAX_VERIFY_ATTEMPTS {
                    break verdict;
                }
            };
            self.keep(digest, verdict.clone());
            Ok(verdict)
        };
        seat.outcome.get_or_init(|| fly).await.clone()
    }

    /// Makes every verdict about `key_id` (a key, or a client and its tokens) count no more:
    /// a key's verified secrets become [`Verified::Stale`], to be judged again from the record
    /// with no argon2 (see [`Self::rejudge`]); every other verdict is dropped.
    pub async fn invalidate_key(&self, key_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        // One pass: what a digest proved becomes stale, every other verdict about the key goes.
        let about: Vec<(Digest, Option<Proof>)> = self
            .cache
            .iter()
            .filter(|(_, entry)| entry.verdict.key_id() == Some(key_id) && !matches!(entry.verdict, Verified::Stale(_)))
            .map(|(digest, entry)| match entry.verdict {
                Verified::Key { key, .. } => (digest, Some(key.proof)),
                _ => (digest, None),
            })
            .collect();
        for (digest, proof) in about {
            match proof {
                Some(proof) => {
                    let stale = StaleKey { key_id: key_id.to_owned(), proof };
                    self.keep(digest, Verified::Stale(stale.into()));
                }
                None => {
                    self.cache.remove(&digest);
                }
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
        self.cache.remove_if(&digest, |entry| matches!(entry.verdict, Verified::Stale(_)));
        Box::pin(self.verify_once(digest, verify)).await
    }

    /// The ids of the credentials that exist, kept in step by creations.
    pub fn known(&self) -> &KnownIds {
        &self.known
    }

    /// Drops every verdict, e.g. after notifications may have been lost.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    /// Notes how long a change took to reach this replica.
    pub fn record_propagation(&self, delay: Duration) {
        self.instruments.propagation.observe(delay.as_secs_f64());
    }

    /// The cache's instruments, for registration.
    pub fn instruments(&self) -> CacheInstruments {
        self.instruments.clone()
    }

    /// Entries held, expired ones included until they are evicted or replaced (for metrics and
    /// benchmarks).
    pub fn entry_count(&self) -> u64 {
        self.cache.len() as u64
    }

    /// Verifications under way, and the callers waiting on the one for `digest` (for tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn in_flight(&self, digest: Digest) -> (usize, usize) {
        self.flights.in_air(digest)
    }

    /// The distinct organization names and scope lists cached keys share (for tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn shared_held(&self) -> (usize, usize) {
        self.shared.held()
    }
}

/// What the cache expects to hold at first, which only tunes how many evicted keys it
/// remembers (to admit them again as hot); its tables grow with use up to `max_entries`.
const ESTIMATED_ENTRIES: usize = 100_000;
