//! A cap on events per second: how many unknown ids are still read (`known_ids`), how many
//! denials get a log line (keygate's `observability::denials`). The second is given, so that
//! each user keeps its own clock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// At most `limit` events in each second.
#[derive(Debug)]
pub struct PerSecond {
    limit: u64,
    /// The second being counted, and its count so far.
    second: AtomicI64,
    count: AtomicU64,
}

impl PerSecond {
    pub const fn new(limit: u64) -> Self {
        Self { limit, second: AtomicI64::new(i64::MIN), count: AtomicU64::new(0) }
    }

    /// Whether one more event fits in `second`; and, for the call that starts a new second, how
    /// many events the one before had beyond the limit (else 0). Approximate under contention
    /// (two threads starting a second may both reset it), which moves the bound by a few events.
    pub fn take(&self, second: i64) -> (bool, u64) {
        let current = self.second.load(Ordering::Acquire);
        let mut over = 0;
        if current != second
            && self.second.compare_exchange(current, second, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            over = self.count.swap(0, Ordering::AcqRel).saturating_sub(self.limit);
        }
        (self.count.fetch_add(1, Ordering::AcqRel) < self.limit, over)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_second_takes_its_limit_and_says_what_the_last_one_had_beyond_it() {
        let cap = PerSecond::new(3);
        let taken: Vec<(bool, u64)> = (0..5).map(|_| cap.take(7)).collect();
        assert_eq!(taken, [(true, 0), (true, 0), (true, 0), (false, 0), (false, 0)]);
        assert_eq!(cap.take(8), (true, 2), "the new second starts with the last one's excess");
        assert_eq!(cap.take(8), (true, 0));
    }
}
