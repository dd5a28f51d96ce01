//! The generic cell rate algorithm (GCRA): a rate limit as one number per subject, the
//! theoretical arrival time (TAT). It admits exactly what a token bucket of `burst` tokens refilled
//! at `per_minute` tokens a minute would, without a timer or a refill step. Times are microseconds
//! since the Unix epoch, so that the Redis script and this code compute the same thing.

use crate::model::RateLimit;

const MICROS_PER_MINUTE: i64 = 60_000_000;

/// What one request does to a subject's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateOutcome {
    /// Admitted: the subject's new TAT and what remains.
    Admitted { tat: i64, remaining: u32, reset_after_micros: i64 },
    /// Refused; nothing changes.
    Limited { retry_after_micros: i64 },
}

/// Microseconds between two requests at the steady rate (at least one).
pub fn emission_interval(limit: RateLimit) -> i64 {
    (MICROS_PER_MINUTE / i64::from(limit.per_minute.max(1))).max(1)
}

/// How far ahead of now the TAT may run: a whole burst of intervals.
pub fn tolerance(limit: RateLimit) -> i64 {
    emission_interval(limit).saturating_mul(i64::from(limit.burst.max(1)))
}

/// Requests that still fit right after an admission that left the TAT `ahead` of now.
pub fn remaining(limit: RateLimit, ahead: i64) -> u32 {
    let spare = tolerance(limit).saturating_sub(ahead).max(0);
    u32::try_from(spare / emission_interval(limit)).unwrap_or(u32::MAX)
}

/// Decides one request at `now` for a subject whose TAT is `tat` (0 for a subject never seen).
pub fn decide(limit: RateLimit, tat: i64, now: i64) -> RateOutcome {
    let interval = emission_interval(limit);
    let tolerance = tolerance(limit);
    // Admissions never leave the TAT more than a burst ahead of their own time, so one further
    // ahead than that means the clock went back. Taken as it is, it would refuse the subject for
    // as long as the clock went back (an hour's step, an hour of refusals); it counts instead as
    // a burst used up an interval ago: one request now, then the steady rate.
    let tat = if tat > now.saturating_add(tolerance) { now.saturating_add(tolerance - interval) } else { tat };
    let new_tat = tat.max(now).saturating_add(interval);
    let ahead = new_tat - now;
    if ahead > tolerance {
        return RateOutcome::Limited { retry_after_micros: ahead - tolerance };
    }
    RateOutcome::Admitted { tat: new_tat, remaining: remaining(limit, ahead), reset_after_micros: ahead }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    fn limit(per_minute: u32, burst: u32) -> RateLimit {
        RateLimit { per_minute, burst }
    }

    /// Runs `count` requests at `now`, returning how many were admitted and the final TAT.
    fn burst_at(limit: RateLimit, mut tat: i64, now: i64, count: u32) -> (u32, i64) {
        let mut admitted = 0;
        for _ in 0..count {
            if let RateOutcome::Admitted { tat: next, .. } = decide(limit, tat, now) {
                tat = next;
                admitted += 1;
            }
        }
        (admitted, tat)
    }

    #[test]
    fn a_fresh_subject_gets_its_whole_burst_then_waits_one_interval() {
        let now = 1_700_000_000 * SECOND;
        let rate = limit(60, 5);
        assert_eq!(
            decide(rate, 0, now),
            RateOutcome::Admitted { tat: now + SECOND, remaining: 4, reset_after_micros: SECOND }
        );
        let (admitted, tat) = burst_at(rate, 0, now, 10);
        assert_eq!(admitted, 5);
        assert_eq!(decide(rate, tat, now), RateOutcome::Limited { retry_after_micros: SECOND });
        // Half a second later, half an interval is still to wait.
        assert_eq!(decide(rate, tat, now + SECOND / 2), RateOutcome::Limited { retry_after_micros: SECOND / 2 });
        // After one interval exactly one more request fits, with nothing left over.
        assert!(matches!(decide(rate, tat, now + SECOND), RateOutcome::Admitted { remaining: 0, .. }));
    }

    #[test]
    fn refills_at_the_steady_rate_and_never_beyond_the_burst() {
        let now = 1_700_000_000 * SECOND;
        let rate = limit(120, 10);
        let (_, tat) = burst_at(rate, 0, now, 10);
        // 120 a minute is one every half second: 3 s later, 6 requests fit.
        assert_eq!(burst_at(rate, tat, now + 3 * SECOND, 100).0, 6);
        // An hour idle refills the burst, not an hour's worth.
        assert_eq!(burst_at(rate, tat, now + 3600 * SECOND, 100).0, 10);
    }

    #[test]
    fn over_a_long_run_admits_the_rate_plus_the_burst() {
        let rate = limit(600, 20);
        let start = 1_700_000_000 * SECOND;
        let (mut tat, mut admitted) = (0, 0u32);
        // Offered 3 times the rate for 10 s, one request every 1/30 s.
        for step in 0..300 {
            let now = start + step * SECOND / 30;
            if let RateOutcome::Admitted { tat: next, .. } = decide(rate, tat, now) {
                tat = next;
                admitted += 1;
            }
        }
        // 10 s at 10/s plus the burst of 20, within one request of rounding.
        assert!((119..=120).contains(&admitted), "admitted {admitted}");
    }

    #[test]
    fn a_clock_gone_back_costs_at_most_one_interval() {
        let rate = limit(60, 5);
        let now = 1_000 * 3600 * SECOND;
        let (_, tat) = burst_at(rate, 0, now, 5);
        // An hour back: one request at once, then one a second, as after a used-up burst.
        let back = now - 3600 * SECOND;
        let RateOutcome::Admitted { tat, remaining: 0, .. } = decide(rate, tat, back) else { panic!("refused") };
        assert_eq!(decide(rate, tat, back), RateOutcome::Limited { retry_after_micros: SECOND });
        assert!(matches!(decide(rate, tat, back + SECOND), RateOutcome::Admitted { .. }));
        // A TAT within a burst of now is no clock step: decided as before.
        let (_, tat) = burst_at(rate, 0, now, 5);
        assert_eq!(decide(rate, tat, now), RateOutcome::Limited { retry_after_micros: SECOND });
    }

    #[test]
    fn absurd_inputs_do_not_overflow() {
        let rate = limit(u32::MAX, u32::MAX);
        assert!(matches!(decide(rate, i64::MAX, 0), RateOutcome::Admitted { .. } | RateOutcome::Limited { .. }));
        assert!(matches!(
            decide(limit(0, 0), 0, i64::MAX - 1),
            RateOutcome::Admitted { .. } | RateOutcome::Limited { .. }
        ));
    }
}
