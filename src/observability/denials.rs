//! How many denials a second get a log line of their own. Every denial is counted
//! (`keygate_decisions_total` by reason); a line each is what an operator reads, but a flood of
//! made-up keys would make one per request, and writing them cost a tenth of the valid traffic's
//! throughput in the benchmark. So the first [`LINES_PER_SECOND`] denials of each second are
//! logged, and the rest are summed into one line when the next second starts.

use std::sync::LazyLock;
use std::time::Instant;

use keygate_core::per_second::PerSecond;

/// Denial lines written per second at most.
pub const LINES_PER_SECOND: u64 = 50;

static LINES: PerSecond = PerSecond::new(LINES_PER_SECOND);
/// What the seconds are counted from.
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Whether this denial gets a line. The first call of a new second first logs how many
/// denials the previous one left unlogged.
pub fn may_log() -> bool {
    let second = i64::try_from(START.elapsed().as_secs()).unwrap_or(i64::MAX);
    let (logged, unlogged) = LINES.take(second);
    if unlogged > 0 {
        tracing::info!(unlogged, "more denials than the log takes a second; counted only");
    }
    logged
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
