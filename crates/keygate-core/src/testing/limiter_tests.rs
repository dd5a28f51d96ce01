//! The limiter over the in-memory counters and the usage store: replicas share a monthly quota
//! through the usage rows each writes, a restarted replica starts from all of them, and each
//! month starts again. The clock is a parameter: nothing sleeps.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;

use crate::limits::memory::MemoryCounters;
use crate::limits::{AdmitRequest, LeaseSettings, LimitDefaults, LimitVerdict, Limiter};
use crate::model::{LimitOverrides, Principal, PrincipalKind};
use crate::testing::MemoryStore;
use crate::testing::harness::start;

/// A replica named `name`: counters of its own, the usage rows of all.
fn replica(store: &Arc<MemoryStore>, name: &str) -> Limiter {
    let leases = LeaseSettings { default: StdDuration::from_secs(300), max: StdDuration::from_secs(3600) };
    let counters = Arc::new(MemoryCounters::default());
    Limiter::new(LimitDefaults::default(), leases, counters, store.clone(), name.to_owned())
}

fn principal(max_quota: u64) -> Principal {
    Principal {
        kind: PrincipalKind::ApiKey,
        id: "k_quota0000001".to_owned(),
        organization: "acme".to_owned(),
        scopes: Vec::new(),
        name: "metered".to_owned(),
        expires_at: start() + Duration::days(365),
        limits: LimitOverrides { max_quota: Some(max_quota), ..LimitOverrides::default() },
        creations_may_outlive: false,
    }
}

fn cost(units: u64) -> AdmitRequest {
    AdmitRequest { cost: units, lease: None }
}

/// What is left of the quota after an admitted request; `None` when it was refused.
fn remaining(verdict: &LimitVerdict) -> Option<u64> {
    match verdict {
        LimitVerdict::Admitted { state, .. } => state.quota.map(|quota| quota.remaining),
        _ => None,
    }
}

#[tokio::test]
async fn replicas_share_a_quota_through_their_usage_rows() {
    let store = Arc::new(MemoryStore::new());
    let (a, b) = (replica(&store, "replica-a"), replica(&store, "replica-b"));
    let key = principal(10);
    let now = start();
    assert_eq!(remaining(&a.admit(&key, cost(4), now).await.expect("admit")), Some(6));
    assert_eq!(a.flush(now).await.expect("flush"), 1);
    assert_eq!(a.flush(now).await.expect("flush"), 0, "nothing new to write");
    // B has no counter yet: it starts from what the others wrote.
    assert_eq!(remaining(&b.admit(&key, cost(1), now).await.expect("admit")), Some(5));
    b.flush(now).await.expect("flush");
    assert!(matches!(b.admit(&key, cost(6), now).await, Ok(LimitVerdict::QuotaExceeded { .. })));
    assert!(matches!(b.admit(&key, cost(11), now).await, Ok(LimitVerdict::InsufficientMaxQuota { cost: 11, .. })));

    // A restarted replica has a new name: it counts every row, its earlier life's included.
    let restarted = replica(&store, "replica-a2");
    let quota = restarted.quota(&key, now).await.expect("quota").expect("a quota");
    assert_eq!(quota.remaining, 5);
    // The next month starts again.
    let next = restarted.quota(&key, quota.refresh_at).await.expect("quota").expect("a quota");
    assert_eq!((next.remaining, next.refresh_at > quota.refresh_at), (10, true));
    assert_eq!(remaining(&restarted.admit(&key, cost(10), quota.refresh_at).await.expect("admit")), Some(0));
}

#[tokio::test]
async fn an_outage_of_the_usage_store_is_unavailable() {
    let store = Arc::new(MemoryStore::new());
    let limiter = replica(&store, "replica-a");
    store.set_available(false);
    let seeded = limiter.admit(&principal(10), cost(1), start()).await;
    assert_eq!(seeded.map_err(|err| err.code().as_str()), Err("UNAVAILABLE"), "no seed, no decision");
}
