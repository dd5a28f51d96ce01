//! The core's own instruments: counters, gauges and latency histograms that components own and
//! update with one atomic operation or two, so nothing is threaded through them. The core knows
//! no metrics library: keygate's `observability::metrics` registers these and renders them for
//! Prometheus.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::model::Reason;

/// A count that only goes up. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The upper bounds of a latency histogram's buckets, in seconds: 50 µs doubling to about 1.6 s.
pub const LATENCY_BUCKETS: [f64; 16] = {
    let mut bounds = [0.000_05; 16];
    let mut i = 1;
    while i < bounds.len() {
        bounds[i] = bounds[i - 1] * 2.0;
        i += 1;
    }
    bounds
};

/// A histogram of durations in seconds over [`LATENCY_BUCKETS`] and one last bucket for the rest.
/// Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<Cells>);

#[derive(Debug, Default)]
struct Cells {
    /// Observations per bucket, not cumulative; the last one has no upper bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

/// What a histogram holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sum: f64,
    pub count: u64,
    /// Upper bound and observations in that bucket (not cumulative), the last bound `f64::MAX`.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// Adds one observation, in seconds.
    pub fn observe(&self, seconds: f64) {
        let bucket = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BUCKETS.len());
        if let Some(cell) = self.0.buckets.get(bucket) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        // No lost update: the closure always returns Some, so this never fails.
        let _ = self.0.sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + seconds).to_bits())
        });
    }

    /// The buckets, their total and the sum.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let bounds = LATENCY_BUCKETS.iter().copied().chain(std::iter::once(f64::MAX));
        let buckets: Vec<(f64, u64)> =
            bounds.zip(self.0.buckets.iter()).map(|(bound, cell)| (bound, cell.load(Ordering::Relaxed))).collect();
        // The count is the buckets' total, so that a scrape during an observation stays consistent.
        let count = buckets.iter().map(|(_, n)| n).sum();
        HistogramSnapshot { sum: f64::from_bits(self.0.sum.load(Ordering::Relaxed)), count, buckets }
    }
}

/// Decisions by reason, one counter per [`Reason`]: counting is an index and an atomic add.
#[derive(Debug, Default)]
pub struct ReasonCounters {
    by_reason: [Counter; Reason::ALL.len()],
}

impl ReasonCounters {
    /// Counts one decision.
    pub fn inc(&self, reason: Reason) {
        if let Some(counter) = self.by_reason.get(reason as usize) {
            counter.inc();
        }
    }

    /// Each reason counted so far, with its count.
    pub fn counted(&self) -> Vec<(&'static str, u64)> {
        let counts = Reason::ALL.iter().zip(&self.by_reason).map(|(reason, counter)| (reason.as_str(), counter.get()));
        counts.filter(|(_, count)| *count > 0).collect()
    }
}

/// Counts under a few fixed labels, created on first use (e.g. why an admin call was refused).
#[derive(Debug, Default)]
pub struct LabeledCounters {
    counters: RwLock<Vec<(&'static str, Counter)>>,
}

impl LabeledCounters {
    /// Counts one under `label`.
    pub fn inc(&self, label: &'static str) {
        let known = self.counters.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = known.iter().find(|(seen, _)| *seen == label) {
            counter.inc();
            return;
        }
        drop(known);
        let mut known = self.counters.write().unwrap_or_else(PoisonError::into_inner);
        match known.iter().find(|(seen, _)| *seen == label) {
            Some((_, counter)) => counter.inc(),
            None => {
                let counter = Counter::default();
                counter.inc();
                known.push((label, counter));
            }
        }
    }

    /// Each label counted so far, with its count.
    pub fn counted(&self) -> Vec<(&'static str, u64)> {
        let known = self.counters.read().unwrap_or_else(PoisonError::into_inner);
        known.iter().map(|(label, counter)| (*label, counter.get())).collect()
    }
}

/// What the verdict cache counts.
#[derive(Debug, Clone, Default)]
pub struct CacheInstruments {
    pub lookups: Counter,
    pub misses: Counter,
    /// Stale key verdicts judged again from the record, with no argon2.
    pub rejudged: Counter,
    /// Credentials refused with no database read: their key or client id is known not to exist.
    pub unknown_refused: Counter,
    /// Database reads that found no key or client with the id presented (0 once the known ids
    /// are loaded, unless two ids share a fingerprint or a creation is still travelling).
    pub unknown_reads: Counter,
    /// Key and client ids known to exist (see `KnownIds`).
    pub known_ids: Gauge,
    /// Seconds from a change's commit on one replica to its invalidation on this one.
    pub propagation: Histogram,
}

/// What the argon2 hasher counts.
#[derive(Debug, Clone, Default)]
pub struct HashingInstruments {
    pub verifications: Counter,
    pub refused: Counter,
    pub seconds: Histogram,
}

/// What the rate-limit counters report: whether their backend answers, and how many decisions
/// were made with local limits because it did not.
#[derive(Debug, Clone, Default)]
pub struct LimitsInstruments {
    /// 1 while the counters' backend answers (always 1 in memory), 0 during an outage.
    pub backend_up: Gauge,
    /// Admissions decided by this replica's own counters while the shared backend was down.
    pub fallback_decisions: Counter,
    /// Whether the backend is Redis: then `backend_up` is also reported as `keygate_redis_up`.
    pub redis: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_puts_each_observation_in_its_first_bucket() {
        let histogram = Histogram::default();
        for seconds in [0.000_01, 0.000_05, 0.000_06, 0.5, 100.0] {
            histogram.observe(seconds);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 5);
        assert!((snapshot.sum - 100.500_12).abs() < 1e-9, "{}", snapshot.sum);
        assert_eq!(snapshot.buckets.len(), 17);
        assert_eq!(snapshot.buckets[0], (0.000_05, 2), "50 µs is inside the first bucket");
        assert_eq!(snapshot.buckets[1], (0.000_1, 1));
        let half = LATENCY_BUCKETS.iter().position(|b| 0.5 <= *b).expect("a bucket holds 0.5 s");
        assert_eq!(snapshot.buckets[half].1, 1);
        assert_eq!(snapshot.buckets[16], (f64::MAX, 1), "beyond the last bound");
        assert!((LATENCY_BUCKETS[15] - 1.638_4).abs() < 1e-9);
    }

    #[test]
    fn counters_show_only_what_was_counted() {
        let reasons = ReasonCounters::default();
        assert!(reasons.counted().is_empty());
        reasons.inc(Reason::Allowed);
        reasons.inc(Reason::Allowed);
        reasons.inc(Reason::InvalidPath);
        assert_eq!(reasons.counted(), vec![(Reason::Allowed.as_str(), 2), (Reason::InvalidPath.as_str(), 1)]);

        let labeled = LabeledCounters::default();
        labeled.inc("unauthenticated");
        labeled.inc("no_admin_scope");
        labeled.inc("unauthenticated");
        assert_eq!(labeled.counted(), vec![("unauthenticated", 2), ("no_admin_scope", 1)]);
    }
}
