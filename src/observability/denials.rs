//! How many denials a second get a log line of their own. Every denial is counted
//! (`keygate_decisions_total` by reason); a line each is what an operator reads, but a flood of
//! made-up keys would make one per request, and writing them cost a tenth of the valid traffic's
//! throughput in the benchmark. So the first [`LINES_PER_SECOND`] denials of each second are
//! logged, and the rest are summed into one line when the next second starts.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Denial lines written per second at most.
pub const LINES_PER_SECOND: u64 = 50;

/// The second (since the first denial) whose lines are being counted, and the count.
struct Budget {
    start: Instant,
    second: AtomicU64,
    lines: AtomicU64,
}

static BUDGET: LazyLock<Budget> =
    LazyLock::new(|| Budget { start: Instant::now(), second: AtomicU64::new(0), lines: AtomicU64::new(0) });

/// Whether this denial gets a line. The first call of a new second first logs how many
/// denials the previous one left unlogged. Approximate under contention (two threads starting
/// a second may both reset it), which only moves the bound by a few lines.
pub fn may_log() -> bool {
    let budget = &*BUDGET;
    let now = budget.start.elapsed().as_secs();
    let second = budget.second.load(Ordering::Acquire);
    if now != second && budget.second.compare_exchange(second, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        let lines = budget.lines.swap(0, Ordering::AcqRel);
        if lines > LINES_PER_SECOND {
            tracing::info!(
                unlogged = lines - LINES_PER_SECOND,
                "more denials than the log takes a second; counted only"
            );
        }
    }
    budget.lines.fetch_add(1, Ordering::AcqRel) < LINES_PER_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_denials_gets_a_second_s_lines() {
        let logged = (0..10 * LINES_PER_SECOND).filter(|_| may_log()).count() as u64;
        // Within one second, or across one boundary when the loop straddles it.
        assert!((LINES_PER_SECOND..=2 * LINES_PER_SECOND).contains(&logged), "{logged} lines");
    }
}
