//! Redis (a server of the test's own, without persistence) killed under load and started again
//! empty, in both failure modes. `open`: every request is still decided, from local counters,
//! and health stays SERVING; `closed`: requests that need a counter get UNAVAILABLE (never a
//! denial), the others are still decided, and health is NOT_SERVING. Either way keygate goes
//! back to Redis by itself within seconds, and the month's quota usage, gone from Redis, is
//! seeded again from the database instead of starting from zero.
//!
//! `limits_redis.rs` holds the same modes for a proxy cut with Redis's counters intact (exact
//! counts of local decisions, the log lines, TLS); this is the restart that loses them.

use std::time::{Duration, Instant};

use keygate::proto::keygate_v1 as pb;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::load::{self, Load, Outcome};
use crate::support::own::OwnRedis;
use crate::support::{Backend, TestServer, as_admin, bearer};

const SCOPE: &str = "graph:read";
const MAX_QUOTA: u64 = 1_000_000;
/// The most recovery may take once Redis is back: it is pinged once a second.
const RECOVERY: Duration = Duration::from_secs(10);

/// A key with `limits` through `server`.
async fn key_with(server: &TestServer, name: &str, limits: Option<pb::Limits>) -> String {
    let request =
        pb::CreateApiKeyRequest { name: name.into(), scopes: vec![SCOPE.into()], limits, ..Default::default() };
    let created = server.admin().await.create_api_key(as_admin(request, &server.admin_key)).await.expect("create");
    created.into_inner().api_key
}

/// The month's quota usage of `key` that `server` reports.
async fn used(server: &TestServer, key: &str) -> u64 {
    let request = pb::GetQuotaRequest { credentials: Some(bearer(key)) };
    MAX_QUOTA - server.auth().await.get_quota(request).await.expect("get quota").into_inner().quota
}

async fn health(server: &TestServer) -> ServingStatus {
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let request = tonic_health::pb::HealthCheckRequest { service: "keygate.v1.AuthService".into() };
    health.check(request).await.expect("health answers").into_inner().status()
}

async fn metric(server: &TestServer, series: &str) -> Option<f64> {
    let text = reqwest::get(server.url("/metrics")).await.expect("scrape").text().await.expect("text");
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// Waits (up to `within`) until `check` holds; how long it took.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

async fn redis_restarted_under_load(failure: &str) {
    let mut redis = OwnRedis::start();
    let settings = [
        ("limits.backend", "redis"),
        ("limits.redis_url", redis.url.as_str()),
        ("limits.redis_failure", failure),
        ("limits.redis_timeout_ms", "200"),
        ("limits.flush_interval_ms", "200"),
    ];
    let server = TestServer::start_with(Backend::Sqlite, &settings).await;
    // Rate-limited (but never refused at this load), metered, and without any limit.
    let rate =
        pb::Limits { rate_limit_per_minute: Some(600_000), rate_limit_burst: Some(10_000), ..Default::default() };
    let limited = key_with(&server, "limited", Some(rate)).await;
    let metered =
        key_with(&server, "metered", Some(pb::Limits { max_quota: Some(MAX_QUOTA), ..Default::default() })).await;
    let plain = key_with(&server, "plain", None).await;
    let channel = server.channel().await;
    let run = Load::start(
        &channel,
        &[("limited", &limited), ("metered", &metered), ("plain", &plain)],
        SCOPE,
        Duration::from_millis(5),
    );
    // Let a flush write the usage so far, then note it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let used_before = used(&server, &metered).await;
    assert_eq!(metric(&server, "keygate_limits_backend_up").await, Some(1.0));

    let lost = Instant::now();
    redis.stop();
    let label = format!("redis killed, failure = {failure}");
    let noticed = until("keygate_limits_backend_up 0", RECOVERY, || async {
        metric(&server, "keygate_limits_backend_up").await == Some(0.0)
    })
    .await;
    let expected_health = if failure == "open" { ServingStatus::Serving } else { ServingStatus::NotServing };
    until(&format!("health {expected_health:?}"), RECOVERY, || async { health(&server).await == expected_health })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Over several failed pings, still as documented.
    assert_eq!(health(&server).await, expected_health, "{label}");
    let fallback_during = metric(&server, "keygate_limits_fallback_decisions_total").await.unwrap_or(0.0);

    redis.start_again();
    let back = Instant::now();
    let recovered = until("keygate_limits_backend_up 1", RECOVERY, || async {
        metric(&server, "keygate_limits_backend_up").await == Some(1.0)
    })
    .await;
    until("health SERVING", RECOVERY, || async { health(&server).await == ServingStatus::Serving }).await;
    let limited_again = run.first("limited", back, RECOVERY, |o| o == Outcome::Allowed).await.expect("decided again");
    // Past the recovery, nothing more falls back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fallback_after = metric(&server, "keygate_limits_fallback_decisions_total").await.unwrap_or(0.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        metric(&server, "keygate_limits_fallback_decisions_total").await.unwrap_or(0.0),
        fallback_after,
        "{label}: still falling back after the recovery"
    );
    let end = Instant::now();
    let runs = run.stop().await;
    // The usage gone from Redis came back from the database: the month did not start again.
    let used_after = used(&server, &metered).await;
    let admitted = runs["metered"].iter().filter(|s| s.outcome == Outcome::Allowed).count() as u64;

    for (name, samples) in &runs {
        println!(
            "{label}: {name:7} before [{}] during [{}] (slowest {:?}) after [{}]",
            load::show(&load::tally(samples, samples[0].at, lost)),
            load::show(&load::tally(samples, lost, back)),
            load::slowest(samples, lost, back),
            load::show(&load::tally(samples, back, end)),
        );
        // Never a denial, never another error: an outage is not a refusal.
        assert!(
            samples.iter().all(|s| matches!(s.outcome, Outcome::Allowed | Outcome::Unavailable)),
            "{label}: {name}: {}",
            load::show(&load::tally(samples, samples[0].at, end))
        );
        // No call waits on a dead Redis for long (timeout 200 ms).
        let slowest = load::slowest(samples, lost, back);
        assert!(slowest < Duration::from_secs(2), "{label}: {name} waited {slowest:?}");
    }
    let during = |name: &str| load::tally(&runs[name], lost + noticed, back);
    // A key without limits needs no counter: decided throughout.
    assert!(runs["plain"].iter().all(|s| s.outcome == Outcome::Allowed), "{label}: plain");
    if failure == "open" {
        for name in ["limited", "metered"] {
            assert!(runs[name].iter().all(|s| s.outcome == Outcome::Allowed), "{label}: {name} refused while open");
        }
        assert!(fallback_during > 0.0, "{label}: local counters decided nothing");
    } else {
        for name in ["limited", "metered"] {
            assert!(
                !during(name).contains_key(&Outcome::Allowed),
                "{label}: {name} allowed without Redis while closed"
            );
            assert!(during(name).contains_key(&Outcome::Unavailable), "{label}: {name}");
        }
    }
    println!(
        "{label}: noticed in {noticed:?}; Redis down {:?}; back: backend up in {recovered:?}, limited key \
         allowed in {:?}; fallback decisions {fallback_during}; quota used {used_before} before the kill, \
         {used_after} at the end of {admitted} admitted ({} short)",
        back - lost,
        limited_again.at - back,
        admitted - used_after.min(admitted),
    );
    assert!(used_after >= used_before, "{label}: quota usage went back from {used_before} to {used_after}");
    assert!(used_after <= admitted, "{label}: counted twice: {used_after} used of {admitted} admitted");
    // What was admitted but not yet written when Redis was seeded (a flush interval of 200 ms,
    // plus a busy machine's delay) is all that may be missing.
    let window = runs["metered"]
        .iter()
        .filter(|s| {
            s.outcome == Outcome::Allowed
                && s.at >= back - Duration::from_secs(1)
                && s.at <= back + recovered + Duration::from_secs(1)
        })
        .count() as u64;
    assert!(
        admitted - used_after <= window,
        "{label}: {} of {admitted} missing, more than {window} around the seeding",
        admitted - used_after
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_failing_open() {
    redis_restarted_under_load("open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_failing_closed() {
    redis_restarted_under_load("closed").await;
}
