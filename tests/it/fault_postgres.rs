//! PostgreSQL going away under load, two ways: stopped and started again (a restart, a
//! failover: connections are closed), and a network that silently drops everything, leaving
//! half-open connections. Either way cached credentials are decided throughout, uncached ones
//! get UNAVAILABLE (never an allow, never a denial) and admin calls UNAVAILABLE saying why;
//! once the database is back keygate recovers by itself within seconds, and a key disabled
//! while it could not hear of it stops being allowed.
//!
//! `outage.rs` holds the single-request view of a cut (closed) connection and the change
//! listener's heartbeat on a frozen one; these add load, a real stop and a full blackhole.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keygate::proto::keygate_v1 as pb;
use tonic::Code;

use crate::outage::host_port;
use crate::support::load::{self, Load, Outcome};
use crate::support::own::OwnPostgres;
use crate::support::proxy::CuttableProxy;
use crate::support::{Backend, TestDb, TestServer, as_admin, test_config};

const SCOPE: &str = "graph:read";
/// Pause between the calls of each load loop.
const PAUSE: Duration = Duration::from_millis(5);
/// How long recovery may take once the database is reachable again: the change listener retries
/// every second, so a few seconds; generous for a busy 2-core machine.
const RECOVERY: Duration = Duration::from_secs(15);

/// The settings of these tests: a one-second database timeout, verdicts that would live an hour.
fn settings() -> Vec<(&'static str, &'static str)> {
    vec![("database.timeout_secs", "1"), ("cache.ttl_secs", "3600")]
}

/// The keys of a test: `cached` and `victim` have been decided once, `cold` never.
struct Keys {
    cached: String,
    victim: String,
    victim_id: String,
    cold: String,
}

async fn keys(server: &TestServer) -> Keys {
    let (cached, _) = server.create_key(&server.admin_key, "cached", &[SCOPE]).await;
    let (victim, victim_id) = server.create_key(&server.admin_key, "victim", &[SCOPE]).await;
    let (cold, _) = server.create_key(&server.admin_key, "cold", &[SCOPE]).await;
    let mut auth = server.auth().await;
    for key in [&cached, &victim] {
        assert_eq!(load::call(&mut auth, key, SCOPE).await, Outcome::Allowed, "warm");
    }
    Keys { cached, victim, victim_id, cold }
}

/// An admin call during the outage: UNAVAILABLE, naming the database. Returns its message.
async fn admin_is_unavailable(server: &TestServer) -> String {
    let mut request = as_admin(pb::ListApiKeysRequest::default(), &server.admin_key);
    request.set_timeout(load::CALL_DEADLINE);
    let started = Instant::now();
    let status = server.admin().await.list_api_keys(request).await.expect_err("no admin call without the database");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("database"), "the message says why: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "bounded by database.timeout_secs: {:?}", started.elapsed());
    status.message().to_owned()
}

/// Waits until an admin call succeeds again; how long after `since`, and what the failed
/// attempts got.
async fn admin_recovers(server: &TestServer, since: Instant) -> (Duration, String) {
    let mut failed = Vec::new();
    loop {
        let mut request = as_admin(pb::ListApiKeysRequest::default(), &server.admin_key);
        request.set_timeout(load::CALL_DEADLINE);
        let sent = Instant::now();
        match server.admin().await.list_api_keys(request).await {
            Ok(_) => return (since.elapsed(), failed.join(", ")),
            Err(status) => failed.push(format!("{:?} in {:?}", status.code(), sent.elapsed())),
        }
        assert!(since.elapsed() < RECOVERY, "admin calls did not recover within {RECOVERY:?}: {failed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What must hold of the whole run, and the figures: `outage` is `[lost, back)`.
fn check_and_print(
    label: &str,
    runs: &std::collections::BTreeMap<String, Vec<load::Sample>>,
    lost: Instant,
    back: Instant,
    end: Instant,
) {
    let start = runs["cached"].first().map_or(lost, |s| s.at);
    for (name, samples) in runs {
        let (before, during, after) =
            (load::tally(samples, start, lost), load::tally(samples, lost, back), load::tally(samples, back, end));
        println!(
            "{label}: {name:6} before [{}] during [{}] (slowest {:?}) after [{}]",
            load::show(&before),
            load::show(&during),
            load::slowest(samples, lost, back),
            load::show(&after)
        );
        for sample in samples {
            assert!(!matches!(sample.outcome, Outcome::Error(_)), "{label}: {name} got {} ", sample.outcome);
        }
    }
    // The cached key is decided, and allowed, from start to end.
    let cached = &runs["cached"];
    assert!(cached.iter().all(|s| s.outcome == Outcome::Allowed), "{label}: the cached key was not always allowed");
    assert!(load::tally(cached, lost, back).values().sum::<usize>() > 10, "{label}: too little load during the outage");
    // The cold key is never denied, and never allowed while the database is away.
    let cold = &runs["cold"];
    assert!(cold.iter().all(|s| !matches!(s.outcome, Outcome::Denied(_))), "{label}: the cold key was denied");
    let during = load::tally(cold, lost, back);
    assert!(!during.contains_key(&Outcome::Allowed), "{label}: the cold key was allowed without the database");
    assert!(during.get(&Outcome::Unavailable).is_some_and(|n| *n > 0), "{label}: no UNAVAILABLE during the outage");
}

/// PostgreSQL (a cluster of the test's own) stopped under load, started again while keygate
/// cannot reach it yet, a key disabled there with no one listening, then the way opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_under_load() {
    let mut pg = OwnPostgres::start();
    let target = SocketAddr::from(([127, 0, 0, 1], pg.port));
    let proxy = CuttableProxy::start(target).await;
    let proxied = pg.url.replacen(host_port(&pg.url), &proxy.addr.to_string(), 1);
    let config = test_config(&proxied, &settings());
    let mut server = TestServer::start_on(TestDb::existing(Backend::Postgres, pg.url.clone()), config).await;
    let keys = keys(&server).await;
    let channel = server.channel().await;
    let run = Load::start(&channel, &[("cached", &keys.cached), ("victim", &keys.victim)], SCOPE, PAUSE);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lost = Instant::now();
    tokio::task::block_in_place(|| pg.stop());
    let stopped = lost.elapsed();
    // Only now the cold key: decided once, it would be cached.
    let cold_run = Load::start(&channel, &[("cold", &keys.cold)], SCOPE, PAUSE);
    // The cold key gets UNAVAILABLE at once (connections are refused), and so do admin calls.
    let unavailable = cold_run.first("cold", lost, Duration::from_secs(5), |o| o == Outcome::Unavailable).await;
    assert!(unavailable.is_some(), "the cold key never got UNAVAILABLE");
    let message = admin_is_unavailable(&server).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Back up, but not yet reachable by keygate: the change made now is one it cannot hear of.
    let proxy_addr = proxy.addr;
    proxy.cut().await;
    tokio::task::block_in_place(|| pg.start_again());
    let disabled =
        pg.psql("postgres", &format!("UPDATE api_keys SET disabled_at = now() WHERE key_id = '{}'", keys.victim_id));
    assert_eq!(disabled, "", "psql -q prints nothing");
    let back = Instant::now();
    let _restored = CuttableProxy::start_at(proxy_addr, target).await;

    let cold =
        cold_run.first("cold", back, RECOVERY, |o| o == Outcome::Allowed).await.expect("the cold key is decided again");
    let revoked = run
        .first("victim", back, RECOVERY, |o| o != Outcome::Allowed)
        .await
        .expect("the disabled key stops being allowed");
    let admin = admin_recovers(&server, back).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let end = Instant::now();
    let mut runs = run.stop().await;
    runs.extend(cold_run.stop().await);
    assert_eq!(
        revoked.outcome,
        Outcome::Denied(pb::DecisionReason::ExpiredApiKey),
        "the disabled key is denied as disabled"
    );
    check_and_print("postgres stopped", &runs, lost, back, end);
    // After it was denied the victim stays denied.
    assert!(runs["victim"].iter().filter(|s| s.at > revoked.at).all(|s| s.outcome == revoked.outcome));
    println!(
        "postgres stopped: pg_ctl stop took {stopped:?}; outage {:?}; admin said {message:?}; \
         after the way back: cold key allowed in {:?}, disabled key denied in {:?}, admin calls in {:?} (failed before: [{}])",
        back - lost,
        cold.at - back,
        revoked.at - back,
        admin.0,
        admin.1,
    );
    server.shutdown_only().await;
}

/// Every packet to PostgreSQL dropped, nothing reset: the pool's connections and the change
/// listener's go half-open, new connections hang. Decisions must still come within the database
/// timeout, and once packets flow again (the dead connections still dead) keygate recovers and
/// learns of a key disabled meanwhile by another writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_behind_a_blackhole_under_load() {
    let db = TestDb::create(Backend::Postgres).await;
    let target: SocketAddr = host_port(&db.url).replace("localhost", "127.0.0.1").parse().expect("IP:port");
    let proxy = CuttableProxy::start(target).await;
    let proxied = db.url.replacen(host_port(&db.url), &proxy.addr.to_string(), 1);
    let direct_url = db.url.clone();
    let mut server = TestServer::start_on(db, test_config(&proxied, &settings())).await;
    let keys = keys(&server).await;
    let channel = server.channel().await;
    let run = Load::start(&channel, &[("cached", &keys.cached), ("victim", &keys.victim)], SCOPE, PAUSE);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lost = Instant::now();
    proxy.blackhole();
    let cold_run = Load::start(&channel, &[("cold", &keys.cold)], SCOPE, PAUSE);
    let unavailable = cold_run.first("cold", lost, Duration::from_secs(5), |o| o == Outcome::Unavailable).await;
    let unavailable = unavailable.expect("the cold key never got UNAVAILABLE");
    let message = admin_is_unavailable(&server).await;
    // Disabled by someone else, straight in the database: no notification reaches keygate.
    let direct = sea_orm::Database::connect(&direct_url).await.expect("direct connection");
    let sql = format!("UPDATE api_keys SET disabled_at = now() WHERE key_id = '{}'", keys.victim_id);
    sea_orm::ConnectionTrait::execute_unprepared(&direct, &sql).await.expect("disable directly");
    let _ = direct.close().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let back = Instant::now();
    proxy.restore();
    let cold =
        cold_run.first("cold", back, RECOVERY, |o| o == Outcome::Allowed).await.expect("the cold key is decided again");
    let revoked = run.first("victim", back, RECOVERY, |o| o != Outcome::Allowed).await;
    let revoked =
        revoked.unwrap_or_else(|| panic!("the disabled key was still allowed {RECOVERY:?} after the way back"));
    let admin = admin_recovers(&server, back).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let end = Instant::now();
    let mut runs = run.stop().await;
    runs.extend(cold_run.stop().await);
    assert_eq!(revoked.outcome, Outcome::Denied(pb::DecisionReason::ExpiredApiKey));
    check_and_print("blackhole", &runs, lost, back, end);
    let slowest = load::slowest(&runs["cold"], lost, back);
    assert!(slowest < Duration::from_secs(4), "an uncached decision waited {slowest:?} with database.timeout_secs = 1");
    println!(
        "blackhole: first UNAVAILABLE {:?} after the cut; admin said {message:?}; after the way back: \
         cold key allowed in {:?}, disabled key denied in {:?}, admin calls in {:?} (failed before: [{}])",
        unavailable.at + unavailable.took - lost,
        cold.at - back,
        revoked.at - back,
        admin.0,
        admin.1,
    );
    server.shutdown_only().await;
    server.db.drop_database().await;
    proxy.cut().await;
}
