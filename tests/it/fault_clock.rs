//! The wall clock stepped forward and back under a running keygate (NTP correcting a drifted
//! host, a VM resumed): expiry, rotation grace and quota windows follow the clock at once (a
//! cached verdict does not outlive an expiry the clock stepped past), a month's quota is neither
//! forgotten nor counted twice when the clock goes back into it, and a rate limit does not hold a
//! key refused for as long as the clock went back.
//!
//! The built binary reads the system clock (`SystemClock` in `main.rs`) and has no way to inject
//! another, so these run the server in-process on the `ManualClock` that `app::serve` takes, as
//! every in-process test does; the clock is the one thing that differs from the binary.

use chrono::{Duration, TimeZone, Utc};
use keygate::proto::keygate_v1 as pb;
use pb::DecisionReason as R;

use crate::support::load::{self, Outcome};
use crate::support::{Backend, TestServer, as_admin, bearer, start_time};

const SCOPE: &str = "graph:read";

async fn outcome(server: &TestServer, key: &str) -> Outcome {
    load::call(&mut server.auth().await, key, SCOPE).await
}

async fn key(server: &TestServer, name: &str, expires_in_days: i32, limits: Option<pb::Limits>) -> (String, String) {
    let request = pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: vec![SCOPE.into()],
        expires_in_days: Some(expires_in_days),
        limits,
        ..Default::default()
    };
    let created = server.admin().await.create_api_key(as_admin(request, &server.admin_key)).await.expect("create");
    let created = created.into_inner();
    (created.api_key, created.key.expect("view").key_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_grace_follow_a_clock_stepped_forward_and_back() {
    let server = TestServer::start_with(Backend::Sqlite, &[("cache.ttl_secs", "3600")]).await;
    let (short, _) = key(&server, "short", 2, None).await;
    let (rotated, rotated_id) = key(&server, "rotated", 30, None).await;
    let rotate = pb::RotateApiKeyRequest { key_id: rotated_id, grace_period_days: Some(3), expires_in_days: None };
    let rotation = server.admin().await.rotate_api_key(as_admin(rotate, &server.admin_key)).await.expect("rotate");
    let new_secret = rotation.into_inner().api_key;
    for key in [&short, &rotated, &new_secret] {
        assert_eq!(outcome(&server, key).await, Outcome::Allowed, "cached before the step");
    }

    // Forward four days: past the short key's expiry and the old secret's grace, with their
    // allowing verdicts in a cache that would keep them an hour.
    server.clock.advance(Duration::days(4));
    let forward =
        [outcome(&server, &short).await, outcome(&server, &rotated).await, outcome(&server, &new_secret).await];
    // Back five days: a day before the keys were made. Their expiry and the grace are ahead.
    server.clock.advance(Duration::days(-5));
    let back = [outcome(&server, &short).await, outcome(&server, &rotated).await, outcome(&server, &new_secret).await];
    // And forward to where it should be.
    server.clock.advance(Duration::days(1));
    let now = [outcome(&server, &short).await, outcome(&server, &rotated).await, outcome(&server, &new_secret).await];
    let show = |o: &[Outcome; 3]| o.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ");
    println!(
        "clock step: [short-lived key, old secret in grace, new secret]: +4 d [{}]; then -5 d [{}]; then +1 d [{}]",
        show(&forward),
        show(&back),
        show(&now)
    );
    assert_eq!(forward, [Outcome::Denied(R::ExpiredApiKey), Outcome::Denied(R::ExpiredApiKey), Outcome::Allowed]);
    // By the replica's clock they are valid again: expiry is a wall-clock instant, and keygate
    // has no other clock to know better by.
    assert_eq!(back, [Outcome::Allowed; 3]);
    assert_eq!(now, [Outcome::Allowed; 3]);
    server.stop().await;
}

async fn remaining(server: &TestServer, key: &str) -> u64 {
    let request = pb::GetQuotaRequest { credentials: Some(bearer(key)) };
    server.auth().await.get_quota(request).await.expect("quota").into_inner().quota
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_windows_and_rate_limits_survive_a_clock_stepped_forward_and_back() {
    let server = TestServer::start_with(Backend::Sqlite, &[("limits.flush_interval_ms", "100")]).await;
    // 2026-03-27: the March window.
    assert_eq!(start_time().format("%Y-%m").to_string(), "2026-03");
    let quota = pb::Limits { max_quota: Some(3), ..Default::default() };
    let (metered, _) = key(&server, "metered", 365, Some(quota)).await;
    let rate = pb::Limits { rate_limit_per_minute: Some(60), rate_limit_burst: Some(2), ..Default::default() };
    let (limited, _) = key(&server, "limited", 365, Some(rate)).await;
    for _ in 0..3 {
        assert_eq!(outcome(&server, &metered).await, Outcome::Allowed);
    }
    assert_eq!(outcome(&server, &metered).await, Outcome::Denied(R::QuotaExceeded), "March used up");
    // Let the usage reach the database.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    // Forward into April: a new window.
    server.clock.set(Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 1).single().expect("time"));
    let april = outcome(&server, &metered).await;
    let april_left = remaining(&server, &metered).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // Back into March: still used up, not a fresh March and not April's count.
    server.clock.set(start_time() + Duration::hours(1));
    let march_again = outcome(&server, &metered).await;
    let march_left = remaining(&server, &metered).await;
    // Forward into April again: one used there, two left.
    server.clock.set(Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 2).single().expect("time"));
    let april_again = remaining(&server, &metered).await;
    println!(
        "clock step, quota 3 a month: March used up; +April: {april} ({april_left} left); back to March: \
         {march_again} ({march_left} left); April again: {april_again} left"
    );
    assert_eq!(april, Outcome::Allowed);
    assert_eq!(april_left, 2);
    assert_eq!(march_again, Outcome::Denied(R::QuotaExceeded));
    assert_eq!(march_left, 0);
    assert_eq!(april_again, 2);

    // A rate limit of one a second, burst 2: the burst used, then the clock goes back an hour.
    for _ in 0..2 {
        assert_eq!(outcome(&server, &limited).await, Outcome::Allowed);
    }
    assert_eq!(outcome(&server, &limited).await, Outcome::Denied(R::RateLimited));
    server.clock.advance(Duration::hours(-1));
    // At most the key's own interval of refusal (one second of clock), never an hour of it.
    let right_after = outcome(&server, &limited).await;
    server.clock.advance(Duration::seconds(2));
    let two_seconds_later = outcome(&server, &limited).await;
    println!("clock step back 1 h with the burst used: at once {right_after}; 2 s later {two_seconds_later}");
    assert_eq!(two_seconds_later, Outcome::Allowed, "a clock step back held the key refused");
    server.stop().await;
}
