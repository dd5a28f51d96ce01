//! One body of tests that every [`Counters`] backend must pass, with an injected clock: the
//! in-memory backend runs it here, the Redis backend in its own module.
// A test suite, compiled outside `cfg(test)` only for the adapters' tests (feature `testing`):
// its failures are assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::model::{Admission, Charge, QuotaCharge, QuotaWindow, RateLimit, SlotCharge};
use crate::ports::Counters;

const SECOND: i64 = 1_000_000;

fn start() -> DateTime<Utc> {
    // 2026-11-30T23:59:00Z: a minute before a month ends.
    Utc.timestamp_opt(1_796_083_140, 0).single().unwrap_or_default()
}

fn subject(name: &str) -> String {
    format!("test:{name}:{}", uuid::Uuid::new_v4().simple())
}

fn charge<'a>(subject: &'a str, now: i64) -> Charge<'a> {
    Charge { subject, now_micros: now, rate: None, quota: None, slot: None }
}

fn quota(max: u64, cost: u64, now: i64, seed: Option<u64>) -> QuotaCharge {
    let window = QuotaWindow::containing(Utc.timestamp_micros(now).single().unwrap_or_default());
    QuotaCharge { max, cost, window, seed }
}

fn admitted(admission: &Admission) -> bool {
    matches!(admission, Admission::Admitted { .. })
}

/// Runs every check against `counters`.
pub async fn run_all(counters: &dyn Counters) {
    rate_bursts_refill_and_retry_after(counters).await;
    a_clock_gone_back_holds_no_rate_limit_for_long(counters).await;
    quota_seeds_counts_and_refuses(counters).await;
    quota_starts_again_at_the_month_boundary(counters).await;
    nothing_is_charged_unless_everything_fits(counters).await;
    slots_are_limited_released_and_expire(counters).await;
}

// A failed check panics, as in any test; behind `testing` this is no test code to clippy.
async fn rate_bursts_refill_and_retry_after(counters: &dyn Counters) {
    let who = subject("rate");
    let now = start().timestamp_micros();
    let mut request = charge(&who, now);
    request.rate = Some(RateLimit { per_minute: 60, burst: 3 });
    for remaining in [2, 1, 0] {
        match counters.admit(&request).await {
            Ok(Admission::Admitted { rate: Some(state), quota_used: None }) => {
                assert_eq!(state.remaining, remaining);
                assert_eq!(state.limit, 60);
            }
            other => panic!("burst request: {other:?}"),
        }
    }
    assert_eq!(
        counters.admit(&request).await,
        Ok(Admission::RateLimited { retry_after: Duration::from_secs(1), limit: 60 })
    );
    request.now_micros = now + SECOND / 4;
    assert_eq!(
        counters.admit(&request).await,
        Ok(Admission::RateLimited { retry_after: Duration::from_millis(750), limit: 60 })
    );
    request.now_micros = now + SECOND;
    assert!(admitted(&counters.admit(&request).await.unwrap_or(Admission::NeedsSeed)));
    assert!(matches!(counters.admit(&request).await, Ok(Admission::RateLimited { .. })));
}

/// The caller's clock steps back an hour with the burst used up: one request is admitted at
/// once and then one per interval, never an hour of refusals.
async fn a_clock_gone_back_holds_no_rate_limit_for_long(counters: &dyn Counters) {
    let who = subject("clock");
    let now = start().timestamp_micros();
    let mut request = charge(&who, now);
    request.rate = Some(RateLimit { per_minute: 60, burst: 3 });
    for _ in 0..3 {
        assert!(admitted(&counters.admit(&request).await.unwrap_or(Admission::NeedsSeed)));
    }
    request.now_micros = now - 3600 * SECOND;
    match counters.admit(&request).await {
        Ok(Admission::Admitted { rate: Some(state), .. }) => assert_eq!(state.remaining, 0),
        other => panic!("an hour back: {other:?}"),
    }
    assert_eq!(
        counters.admit(&request).await,
        Ok(Admission::RateLimited { retry_after: Duration::from_secs(1), limit: 60 })
    );
    request.now_micros += SECOND;
    assert!(admitted(&counters.admit(&request).await.unwrap_or(Admission::NeedsSeed)));
}

async fn quota_seeds_counts_and_refuses(counters: &dyn Counters) {
    let who = subject("quota");
    let now = start().timestamp_micros();
    let window = quota(10, 4, now, None).window;
    assert_eq!(counters.quota_used(&who, window).await, Ok(None));
    let mut request = charge(&who, now);
    request.quota = Some(quota(10, 4, now, None));
    assert_eq!(counters.admit(&request).await, Ok(Admission::NeedsSeed));
    request.quota = Some(quota(10, 4, now, Some(3)));
    assert_eq!(counters.admit(&request).await, Ok(Admission::Admitted { rate: None, quota_used: Some(7) }));
    // A seed is only a starting point: the counter that exists wins.
    assert_eq!(counters.admit(&request).await, Ok(Admission::QuotaExceeded { used: 7 }));
    request.quota = Some(quota(10, 3, now, None));
    assert_eq!(counters.admit(&request).await, Ok(Admission::Admitted { rate: None, quota_used: Some(10) }));
    request.quota = Some(quota(10, 0, now, None));
    assert_eq!(counters.admit(&request).await, Ok(Admission::Admitted { rate: None, quota_used: Some(10) }));
    assert_eq!(counters.quota_used(&who, window).await, Ok(Some(10)));
}

async fn quota_starts_again_at_the_month_boundary(counters: &dyn Counters) {
    let who = subject("month");
    let now = start().timestamp_micros();
    let mut request = charge(&who, now);
    request.quota = Some(quota(5, 5, now, Some(0)));
    assert!(admitted(&counters.admit(&request).await.unwrap_or(Admission::NeedsSeed)));
    request.quota = Some(quota(5, 1, now, None));
    assert_eq!(counters.admit(&request).await, Ok(Admission::QuotaExceeded { used: 5 }));
    // One microsecond before the month ends it is still exhausted; at the boundary it is new.
    let last = now + 60 * SECOND - 1;
    request.now_micros = last;
    request.quota = Some(quota(5, 1, last, None));
    assert_eq!(counters.admit(&request).await, Ok(Admission::QuotaExceeded { used: 5 }));
    let next = now + 60 * SECOND;
    request.now_micros = next;
    request.quota = Some(quota(5, 1, next, None));
    assert_eq!(counters.admit(&request).await, Ok(Admission::NeedsSeed));
    request.quota = Some(quota(5, 1, next, Some(0)));
    assert_eq!(counters.admit(&request).await, Ok(Admission::Admitted { rate: None, quota_used: Some(1) }));
}

async fn nothing_is_charged_unless_everything_fits(counters: &dyn Counters) {
    let who = subject("all-or-nothing");
    let now = start().timestamp_micros();
    let rate = Some(RateLimit { per_minute: 60, burst: 2 });
    // The quota refuses: the rate limit must not be charged either.
    let mut request = charge(&who, now);
    request.rate = rate;
    request.quota = Some(quota(1, 5, now, Some(0)));
    assert_eq!(counters.admit(&request).await, Ok(Admission::QuotaExceeded { used: 0 }));
    // The slots are full: neither rate nor quota is charged.
    let mut hold = charge(&who, now);
    hold.slot = Some(SlotCharge { max: 1, id: "a", expires_micros: now + 60 * SECOND });
    assert!(admitted(&counters.admit(&hold).await.unwrap_or(Admission::NeedsSeed)));
    let mut full = charge(&who, now);
    full.rate = rate;
    full.quota = Some(quota(10, 2, now, Some(0)));
    full.slot = Some(SlotCharge { max: 1, id: "b", expires_micros: now + 60 * SECOND });
    assert!(matches!(counters.admit(&full).await, Ok(Admission::ConcurrencyLimit { .. })));
    // A refusal changes nothing, not even the seed.
    let window = quota(10, 0, now, None).window;
    assert_eq!(counters.quota_used(&who, window).await, Ok(None));
    // The whole burst of 2 is still there, and the quota was never charged.
    request.quota = Some(quota(10, 2, now, Some(0)));
    for used in [2, 4] {
        assert_eq!(
            counters.admit(&request).await.map(|a| match a {
                Admission::Admitted { quota_used, .. } => quota_used,
                _ => None,
            }),
            Ok(Some(used))
        );
    }
    // The rate refuses: the quota is not charged.
    assert!(matches!(counters.admit(&request).await, Ok(Admission::RateLimited { .. })));
    assert_eq!(counters.quota_used(&who, window).await, Ok(Some(4)));
}

async fn slots_are_limited_released_and_expire(counters: &dyn Counters) {
    let who = subject("slots");
    let now = start().timestamp_micros();
    let take = |id: &'static str, at: i64, lease: i64| {
        let mut request = charge(&who, at);
        request.slot = Some(SlotCharge { max: 2, id, expires_micros: at + lease });
        request
    };
    assert!(admitted(&counters.admit(&take("one", now, 10 * SECOND)).await.unwrap_or(Admission::NeedsSeed)));
    assert!(admitted(&counters.admit(&take("two", now, 30 * SECOND)).await.unwrap_or(Admission::NeedsSeed)));
    assert_eq!(
        counters.admit(&take("three", now + 4 * SECOND, 10 * SECOND)).await,
        Ok(Admission::ConcurrencyLimit { retry_after: Duration::from_secs(6) })
    );
    // Released: room for one more.
    assert_eq!(counters.release_slot(&who, "two").await, Ok(true));
    assert_eq!(counters.release_slot(&who, "two").await, Ok(false));
    assert!(admitted(&counters.admit(&take("three", now, 60 * SECOND)).await.unwrap_or(Admission::NeedsSeed)));
    assert!(matches!(counters.admit(&take("four", now, 60 * SECOND)).await, Ok(Admission::ConcurrencyLimit { .. })));
    // "one" leased 10 s: a crashed holder's slot comes back when the lease ends.
    assert!(admitted(
        &counters.admit(&take("four", now + 10 * SECOND, 60 * SECOND)).await.unwrap_or(Admission::NeedsSeed)
    ));
    assert_eq!(counters.release_slot(&who, "one").await, Ok(false));
}

#[cfg(test)]
mod tests {
    use super::super::memory::MemoryCounters;

    #[tokio::test]
    async fn memory_counters_pass_the_conformance_tests() {
        super::run_all(&MemoryCounters::default()).await;
    }
}
