//! The ids of every key and client this replica knows to exist, so that a well-formed key or
//! client id that no credential has is refused with no database read: its checksum is public, so
//! an attacker makes up such ids at will. Kept in step with the store by local creations, by the
//! creations other replicas announce, and by a full read whenever announcements may have been
//! missed. Ids are never removed (keys and clients are disabled, not deleted).
//!
//! It holds 64-bit fingerprints of the ids under a per-process random seed, not the ids: about
//! 16 bytes per credential. Two ids sharing a fingerprint only cost the second one a database
//! read, as every id did before, and the seed keeps an attacker from choosing such ids.
//!
//! A key created on another replica is unknown here until its announcement arrives, a few
//! milliseconds after the creation returned, and its first use may come sooner (a client that
//! creates a key and uses it at once, through a load balancer). So a few unknown ids a second
//! are still read ([`UNKNOWN_READS_PER_SECOND`]): enough for those, while a flood of made-up ids
//! is refused with no read beyond them.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use chrono::{DateTime, Utc};

use super::error::StoreError;
use super::instruments::Gauge;
use super::per_second::PerSecond;
use super::ports::{ClientStore, Store};

/// How many ids not known here are still read from the database each second, for keys and
/// clients created on another replica whose announcement has yet to arrive.
pub const UNKNOWN_READS_PER_SECOND: u64 = 10;

/// The ids known to exist.
#[derive(Debug)]
pub struct KnownIds {
    fingerprints: RwLock<HashSet<u64, foldhash::fast::RandomState>>,
    /// The fingerprint's seed, fixed for the process.
    seed: foldhash::fast::RandomState,
    /// Until the first full read, nothing is refused: an empty set would refuse every key.
    complete: AtomicBool,
    /// The unknown ids still read each second.
    unknown_reads: PerSecond,
    /// How many fingerprints are held, for metrics.
    held: Gauge,
}

impl KnownIds {
    /// An empty set, refusing nothing until [`Self::learn_all`]; `held` shows its size.
    pub fn new(held: Gauge) -> Self {
        Self {
            fingerprints: RwLock::default(),
            seed: foldhash::fast::RandomState::default(),
            complete: AtomicBool::new(false),
            unknown_reads: PerSecond::new(UNKNOWN_READS_PER_SECOND),
            held,
        }
    }

    /// Whether the credential naming this key or client id is to be looked up at `now`: when
    /// the id is known, before the first full read, and for the first
    /// [`UNKNOWN_READS_PER_SECOND`] unknown ids of each second. `false` refuses it unread.
    pub fn may_exist(&self, id: &str, now: DateTime<Utc>) -> bool {
        if !self.complete.load(Ordering::Acquire) {
            return true;
        }
        let fingerprint = self.seed.hash_one(id);
        let known = self.fingerprints.read().unwrap_or_else(PoisonError::into_inner).contains(&fingerprint);
        known || self.unknown_reads.take(now.timestamp()).0
    }

    /// Notes a credential created here, or announced by another replica.
    pub fn add(&self, id: &str) {
        let fingerprint = self.seed.hash_one(id);
        let mut known = self.fingerprints.write().unwrap_or_else(PoisonError::into_inner);
        known.insert(fingerprint);
        self.held.set(i64::try_from(known.len()).unwrap_or(i64::MAX));
    }

    /// Adds every id the store holds and, from then on, refuses the ids it lacks. Nothing is
    /// removed, so an id added meanwhile by a creation is never lost.
    pub async fn learn_all(&self, store: &dyn Store, clients: &dyn ClientStore) -> Result<usize, StoreError> {
        let keys = store.key_ids().await?;
        let client_ids = clients.client_ids().await?;
        let fingerprints: Vec<u64> = keys.iter().chain(&client_ids).map(|id| self.seed.hash_one(id.as_str())).collect();
        let mut known = self.fingerprints.write().unwrap_or_else(PoisonError::into_inner);
        known.extend(fingerprints);
        let held = known.len();
        drop(known);
        self.held.set(i64::try_from(held).unwrap_or(i64::MAX));
        self.complete.store(true, Ordering::Release);
        Ok(held)
    }

    /// Fingerprints held.
    pub fn len(&self) -> usize {
        self.fingerprints.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + second, 0).single().unwrap_or_default()
    }

    #[test]
    fn nothing_is_refused_before_the_first_full_read() {
        let known = KnownIds::new(Gauge::default());
        for _ in 0..3 * UNKNOWN_READS_PER_SECOND {
            assert!(known.may_exist("k_000000000000", at(0)));
        }
        known.add("k_aaaaaaaaaaaa");
        assert!(known.may_exist("k_000000000000", at(0)), "one creation does not make the set complete");
    }

    #[test]
    fn a_few_unknown_ids_a_second_are_read_and_known_ones_always() {
        let known = KnownIds::new(Gauge::default());
        known.complete.store(true, Ordering::Release);
        known.add("k_aaaaaaaaaaaa");
        let read = |second| (0..100).filter(|n| known.may_exist(&format!("k_{n:012}"), at(second))).count();
        assert_eq!(read(0), UNKNOWN_READS_PER_SECOND as usize);
        assert_eq!(read(0), 0, "the second's reads are spent");
        assert!((0..100).all(|_| known.may_exist("k_aaaaaaaaaaaa", at(0))), "a known id is never refused");
        assert_eq!(read(1), UNKNOWN_READS_PER_SECOND as usize, "the next second reads again");
    }
}
