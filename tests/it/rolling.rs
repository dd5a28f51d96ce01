//! A rolling update behind a real Envoy: two replicas of the built binary on one PostgreSQL are
//! the two endpoints of the shipped config's keygate cluster; under steady traffic through Envoy
//! one of them gets SIGTERM, as a pod does when a Deployment rolls. No request fails and none is
//! denied: with a drain delay, because Envoy's health checks take the replica out of the
//! balancing before its listeners close; without one, because Envoy retries the Checks its closed
//! listener refuses on the other replica.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::envoy::{POLICY, admin_call};
use crate::metrics::sample;
use crate::support::envoy::{Envoy, test_config_with_replicas};
use crate::support::http::{KeepAlive, echo_upstream};
use crate::support::process::{Served, bootstrap};
use crate::support::{Backend, TestDb};

/// The grace period in-flight calls get once the listeners have closed.
const GRACE_SECS: u64 = 10;
/// Clients sending one request at a time each, a few milliseconds apart: below the key's
/// concurrency limit, and steady rather than a flood on a small shared machine.
const CLIENTS: usize = 4;
const PAUSE: Duration = Duration::from_millis(5);
/// Bounds on each client, whatever happens to the rest of the test.
const MAX_REQUESTS: usize = 20_000;
const MAX_RUN: Duration = Duration::from_secs(90);
/// Traffic before the signal (both replicas must have served some) and after the exit.
const BEFORE_SIGNAL: Duration = Duration::from_secs(2);
const AFTER_EXIT: Duration = Duration::from_secs(3);
const PATH: &str = "/api/v1/sessions/42";
const CHECKS_OK: &str =
    r#"keygate_requests_total{transport="grpc",rpc="/envoy.service.auth.v3.Authorization/Check",code="Ok"}"#;

/// One request through Envoy: when it was sent and its status and body, or how it failed.
struct Sent {
    at: Instant,
    outcome: Result<(u16, String), String>,
}

/// Sends `GET PATH` with `key` until `stop`, one request at a time on a kept-alive connection.
fn traffic(envoy: SocketAddr, key: Arc<String>, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let deadline = Instant::now() + MAX_RUN;
    let mut client = KeepAlive::new(envoy);
    let mut sent = Vec::new();
    while !stop.load(Ordering::Relaxed) && sent.len() < MAX_REQUESTS && Instant::now() < deadline {
        let at = Instant::now();
        let reply = client.get(PATH, &[("x-api-key", key.as_str())]);
        sent.push(Sent { at, outcome: reply.map(|r| (r.status, r.body)).map_err(|err| err.to_string()) });
        std::thread::sleep(PAUSE);
    }
    sent
}

/// How many `Check`s `replica` has answered OK, from its `/metrics`; `None` once it stopped
/// answering.
fn checks_answered(replica: &Served) -> Option<f64> {
    let addr = replica.http_addr.parse().expect("http addr");
    let reply = KeepAlive::new(addr).get("/metrics", &[("connection", "close")]).ok()?;
    sample(&reply.body, CHECKS_OK)
}

fn start_replica(dir: &Path, env: &[(&str, &str)]) -> Served {
    let replica = Served::start(dir, env);
    // A replica is ready to decide Checks once it follows key changes (PostgreSQL).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replica.log_text().contains("listening for key changes") {
        assert!(Instant::now() < deadline, "replica never listened for key changes:\n{}", replica.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    replica
}

/// What one roll saw.
struct Rolled {
    /// Envoy's `cluster.keygate.*` counters and gauges at the end, by name.
    envoy: Vec<(&'static str, u64)>,
}

impl Rolled {
    fn stat(&self, name: &str) -> u64 {
        self.envoy.iter().find(|(n, _)| *n == name).map_or(0, |(_, value)| *value)
    }
}

const ENVOY_STATS: [&str; 7] = [
    "health_check.failure",
    "health_check.network_failure",
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_cx_connect_fail",
    "upstream_rq_per_try_timeout",
    "membership_healthy",
];

/// Two replicas behind Envoy, steady traffic, SIGTERM to one with `drain_secs` of drain delay,
/// traffic until a while after it exited. Checks what every roll must hold: both replicas served
/// before the signal; every request was answered 200 (but `allowed_failures` 5xx); the replica
/// exited 0 after the drain delay
/// and within drain + grace.
fn roll(drain_secs: u64, allowed_failures: usize) -> Rolled {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let db = runtime.block_on(TestDb::create(Backend::Postgres));
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let (drain, grace) = (drain_secs.to_string(), GRACE_SECS.to_string());
    let env = [
        ("KEYGATE_DATABASE_URL", db.url.as_str()),
        ("KEYGATE_ENVOY_POLICY_FILE", policy.to_str().expect("utf-8 path")),
        ("KEYGATE_HASHING_MEMORY_KIB", "1024"),
        ("KEYGATE_HASHING_ITERATIONS", "1"),
        // Replicas share one issuer, as they must behind one address.
        ("KEYGATE_OAUTH_ISSUER", "http://keygate.test"),
        ("KEYGATE_SHUTDOWN_DRAIN_DELAY_SECS", drain.as_str()),
        ("KEYGATE_SHUTDOWN_GRACE_SECS", grace.as_str()),
    ];
    let admin = bootstrap(dir, &env);
    let staying = start_replica(dir, &env);
    let mut leaving = start_replica(dir, &env);
    let body = json!({"name": "steady", "scopes": ["investigations:read"], "limits": {"max_concurrency": 50}});
    let key = admin_call(&staying.addr, &admin, "CreateApiKey", body)["apiKey"].as_str().expect("apiKey").to_owned();

    let config = test_config_with_replicas(&[&staying.addr, &leaving.addr], echo_upstream());
    let envoy = Envoy::start(dir, &config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while envoy.stat("cluster.keygate.membership_healthy") < 2 {
        assert!(Instant::now() < deadline, "Envoy never saw both replicas healthy");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (key, stop) = (Arc::new(key), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, key, stop) = (envoy.addr, key.clone(), stop.clone());
            std::thread::spawn(move || traffic(addr, key, stop))
        })
        .collect();
    std::thread::sleep(BEFORE_SIGNAL);

    // Both replicas decide a fair share, so the test cannot pass by sending everything to one.
    let shares = [checks_answered(&staying).unwrap_or(0.0), checks_answered(&leaving).unwrap_or(0.0)];
    let decided: f64 = shares.iter().sum();
    assert!(decided >= 20.0 && shares.iter().all(|share| *share >= decided / 5.0), "Checks per replica: {shares:?}");

    let pid = leaving.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let signalled = Instant::now();
    let drain = Duration::from_secs(drain_secs);
    let bound = drain + Duration::from_secs(GRACE_SECS);
    // What it had answered shortly before its listeners closed: more than at the signal means it
    // kept deciding while NOT_SERVING, until Envoy's health check noticed.
    let mut late_in_drain = None;
    let status = loop {
        if let Some(status) = leaving.child.try_wait().expect("wait") {
            break status;
        }
        if late_in_drain.is_none() && signalled.elapsed() + Duration::from_millis(700) >= drain {
            late_in_drain = checks_answered(&leaving);
        }
        assert!(
            signalled.elapsed() < bound + Duration::from_secs(5),
            "the replica did not exit:\n{}",
            leaving.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let exit_after = signalled.elapsed();
    let exited = Instant::now();
    std::thread::sleep(AFTER_EXIT);
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<Sent> = clients.into_iter().flat_map(|client| client.join().expect("client")).collect();

    let rolled =
        Rolled { envoy: ENVOY_STATS.map(|name| (name, envoy.stat(&format!("cluster.keygate.{name}")))).to_vec() };
    let since =
        |at: Instant| at.checked_duration_since(signalled).map_or_else(|| "before".to_owned(), |d| format!("{d:?}"));
    let (mut ok, mut failed, mut denied, mut other) = (0, Vec::new(), Vec::new(), Vec::new());
    for request in &sent {
        match &request.outcome {
            Ok((200, _)) => ok += 1,
            Ok((status @ (401 | 403), body)) => denied.push(format!("{} {status} {body}", since(request.at))),
            Ok((status, body)) if *status >= 500 => failed.push(format!("{} {status} {body}", since(request.at))),
            Ok((status, body)) => other.push(format!("{} {status} {body}", since(request.at))),
            Err(err) => failed.push(format!("{} {err}", since(request.at))),
        }
    }
    let after_signal = sent.iter().filter(|r| r.at >= signalled).count();
    let after_exit = sent.iter().filter(|r| r.at >= exited).count();
    let envoy_saw: Vec<String> = rolled.envoy.iter().map(|(name, value)| format!("{name}={value}")).collect();
    eprintln!(
        "rolling (drain {drain_secs} s): {} requests ({after_signal} after SIGTERM, {after_exit} after the exit), \
         {ok} ok, {} failed, {} denied, {} other; Checks per replica before SIGTERM {shares:?}, the leaving \
         one's late in its drain {late_in_drain:?}; {status} after {exit_after:?}; Envoy: {}",
        sent.len(),
        failed.len(),
        denied.len(),
        other.len(),
        envoy_saw.join(" "),
    );

    let log = leaving.log_text();
    assert!(status.success(), "the SIGTERMed replica exits 0: {status}\n{log}");
    assert!(exit_after >= drain, "it kept answering for the drain delay, then exited: {exit_after:?}");
    assert!(exit_after <= bound, "it exited within drain + grace: {exit_after:?}");
    assert!(log.contains("shutting down") && log.contains("stopped"), "{log}");
    let first = |list: &[String]| list[..list.len().min(20)].to_vec();
    assert!(
        failed.len() <= allowed_failures,
        "{} requests failed, {allowed_failures} allowed (time after SIGTERM, what): {:#?}",
        failed.len(),
        first(&failed)
    );
    assert!(denied.is_empty(), "{} requests with a valid key were denied: {:#?}", denied.len(), first(&denied));
    assert!(other.is_empty(), "unexpected answers: {:#?}", first(&other));
    assert!(after_exit >= 50, "traffic went on after the exit: {after_exit}");

    drop(envoy);
    drop(staying);
    runtime.block_on(db.drop_database());
    rolled
}

/// The rolling update as deployed: the replica reports NOT_SERVING and keeps answering for a
/// drain delay longer than the shipped health check's interval plus timeout.
#[test]
fn a_replica_leaving_after_its_drain_delay_fails_and_denies_nothing() {
    let rolled = roll(3, 0);
    assert!(rolled.stat("health_check.failure") >= 1, "Envoy's health check saw the replica leave: {:?}", rolled.envoy);
}

/// No drain delay (keygate's default, or a replica whose health the balancer does not check):
/// the listener closes at once, and Envoy's retry policy sends what it refuses to the other
/// replica. A `Check` already written to the closing connection can still fail: Envoy does not
/// retry a reset after the request was sent (a retry could charge a quota twice), so a handful
/// of the ~1,400 requests after SIGTERM may fail here (1 in one run of 5 so far). That race is
/// what the drain delay above removes.
#[test]
fn a_replica_leaving_at_once_costs_retries_not_failures() {
    let rolled = roll(0, 5);
    assert!(
        rolled.stat("upstream_rq_retry_success") >= 1,
        "some Checks were retried, and succeeded: {:?}",
        rolled.envoy
    );
}
