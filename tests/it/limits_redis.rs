//! Rate limits shared through Redis by real `keygate serve` processes: two replicas offered three
//! times a key's rate admit what one would (plus the burst), and a Redis outage is decided with
//! local limits or refused (UNAVAILABLE, NOT_SERVING) as configured, until Redis is back.
//!
//! Redis must be running, as PostgreSQL must: at `TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keygate::proto::keygate_v1 as pb;
use pb::DecisionReason;
use pb::admin_service_client::AdminServiceClient;
use pb::auth_service_client::AuthServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::process::{Served, bootstrap};
use crate::support::proxy::CuttableProxy;
use crate::support::{Backend, TestDb, as_admin, bearer, redis_url};

/// The key's limit in the load test: 600 a minute (10 a second), burst 10.
const PER_MINUTE: u32 = 600;
const BURST: u32 = 10;
/// How long the replicas are driven, at three times the rate in all.
const DRIVE: Duration = Duration::from_secs(4);

/// The Redis server's address, which must answer (as PostgreSQL must for its tests).
fn redis_addr() -> SocketAddr {
    let url = redis_url();
    let host_port = url.trim_start_matches("redis://").split(['/', '?']).next().unwrap_or_default();
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, rest)| rest).replace("localhost", "127.0.0.1");
    let addr: SocketAddr = host_port.parse().expect("TEST_REDIS_URL names an IP:port");
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        panic!(
            "Redis is needed for the Redis limit tests and {url} cannot be reached: start Redis or set TEST_REDIS_URL"
        );
    }
    addr
}

/// The environment of a replica: cheap argon2id, the given database, Redis counters.
fn replica_env<'a>(database_url: &'a str, redis: &'a str, failure: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("KEYGATE_DATABASE_URL", database_url),
        ("KEYGATE_HASHING_MEMORY_KIB", "1024"),
        ("KEYGATE_HASHING_ITERATIONS", "1"),
        ("KEYGATE_OAUTH_ISSUER", "http://keygate.test"),
        ("KEYGATE_LIMITS_BACKEND", "redis"),
        ("KEYGATE_LIMITS_REDIS_URL", redis),
        ("KEYGATE_LIMITS_REDIS_FAILURE", failure),
        ("KEYGATE_LIMITS_REDIS_TIMEOUT_MS", "200"),
    ]
}

async fn channel(replica: &Served) -> Channel {
    Channel::from_shared(format!("http://{}", replica.addr)).expect("uri").connect().await.expect("connect")
}

/// Creates a key limited to `per_minute` with `burst` through `replica`.
async fn limited_key(replica: &Served, admin_key: &str, per_minute: u32, burst: u32) -> String {
    let request = pb::CreateApiKeyRequest {
        name: "shared limit".into(),
        scopes: vec!["graph:read".into()],
        limits: Some(pb::Limits {
            rate_limit_per_minute: Some(per_minute),
            rate_limit_burst: Some(burst),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut admin = AdminServiceClient::new(channel(replica).await);
    admin.create_api_key(as_admin(request, admin_key)).await.expect("create key").into_inner().api_key
}

fn authorize_request(key: &str) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        credentials: Some(bearer(key)),
        required_scopes: vec!["graph:read".into()],
        ..Default::default()
    }
}

/// Sends `per_second` requests a second through `client` for [`DRIVE`]; returns (admitted,
/// rate-limited).
async fn drive(mut client: AuthServiceClient<Channel>, key: String, per_second: u32) -> (u32, u32) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_second);
    let (mut admitted, mut limited) = (0, 0);
    for _ in 0..per_second * DRIVE.as_secs() as u32 {
        ticks.tick().await;
        let response = client.authorize(authorize_request(&key)).await.expect("decision").into_inner();
        match response.decision.expect("decision").reason() {
            DecisionReason::Allowed => admitted += 1,
            DecisionReason::RateLimited => limited += 1,
            other => panic!("unexpected decision {other:?}"),
        }
    }
    (admitted, limited)
}

/// Drives `replicas` together at three times the key's rate; asserts and returns what they
/// admitted in all.
async fn offer_three_times_the_rate(replicas: &[Served], key: &str, label: &str) -> u32 {
    let rate = f64::from(PER_MINUTE) / 60.0;
    let per_replica = (3 * PER_MINUTE / 60) / u32::try_from(replicas.len()).expect("few");
    let started = Instant::now();
    let mut drivers = tokio::task::JoinSet::new();
    for replica in replicas {
        drivers.spawn(drive(AuthServiceClient::new(channel(replica).await), key.to_owned(), per_replica));
    }
    let (mut admitted, mut limited) = (0, 0);
    while let Some(joined) = drivers.join_next().await {
        let (a, l) = joined.expect("driver");
        admitted += a;
        limited += l;
    }
    let seconds = started.elapsed().as_secs_f64();
    // GCRA admits the burst at once and then one request per interval: rate * elapsed + burst.
    // Replicas share the TAT and read one clock here, so the only slack is rounding: one request.
    let bound = rate * seconds + f64::from(BURST) + 1.0;
    let ideal = rate * seconds + f64::from(BURST);
    println!(
        "{label}: offered {} over {seconds:.2} s at {:.0}/s, admitted {admitted}, rate limited {limited}; \
         rate*duration+burst = {ideal:.1}, overshoot {:+.1}",
        admitted + limited,
        3.0 * rate,
        f64::from(admitted) - ideal,
    );
    assert!(f64::from(admitted) <= bound, "{label}: admitted {admitted} > {bound:.1}");
    // And the limit is not stricter than it says: at least the burst and most of the rate.
    assert!(f64::from(admitted) >= rate * (seconds - 0.5) + f64::from(BURST) - 2.0, "{label}: admitted {admitted}");
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_admit_what_one_would() {
    let redis = redis_url();
    redis_addr();
    let db = TestDb::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = replica_env(&db.url, &redis, "closed");
    let admin_key = bootstrap(dir.path(), &env);
    let replicas: Vec<Served> = (0..2).map(|_| Served::start(dir.path(), &env)).collect();
    let key = limited_key(&replicas[0], &admin_key, PER_MINUTE, BURST).await;
    offer_three_times_the_rate(&replicas, &key, "two replicas, redis").await;
    for replica in &replicas {
        assert!(!replica.log_text().contains("redis unreachable"), "{}", replica.log_text());
    }
    drop(replicas);

    // For comparison: one replica with its counters in memory.
    let mut env = env.clone();
    env.retain(|(name, _)| *name != "KEYGATE_LIMITS_BACKEND");
    env.push(("KEYGATE_LIMITS_BACKEND", "memory"));
    let single = Served::start(dir.path(), &env);
    let key = limited_key(&single, &admin_key, PER_MINUTE, BURST).await;
    offer_three_times_the_rate(std::slice::from_ref(&single), &key, "one replica, memory").await;
    drop(single);
    db.drop_database().await;
}

/// The value of the metric sample `series` on `replica`'s `/metrics`.
async fn metric(replica: &Served, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", replica.http_addr))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

async fn health(replica: &Served) -> ServingStatus {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(replica).await);
    let request = tonic_health::pb::HealthCheckRequest { service: "keygate.v1.AuthService".into() };
    health.check(request).await.expect("health answers").into_inner().status()
}

/// Polls `check` every 100 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// One replica behind a proxy to Redis that the test cuts and restores; returns the replica, its
/// admin key and the proxy.
async fn behind_a_proxy(dir: &std::path::Path, failure: &str) -> (Served, String, CuttableProxy) {
    let proxy = CuttableProxy::start(redis_addr()).await;
    let database = format!("sqlite://{}/keygate.db?mode=rwc", dir.display());
    let redis = format!("redis://{}", proxy.addr);
    let env = replica_env(&database, &redis, failure);
    let admin_key = bootstrap(dir, &env);
    (Served::start(dir, &env), admin_key, proxy)
}

async fn reason(auth: &mut AuthServiceClient<Channel>, key: &str) -> DecisionReason {
    let response = auth.authorize(authorize_request(key)).await.expect("a decision").into_inner();
    response.decision.expect("decision").reason()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_falls_back_to_local_limits_when_open_and_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (replica, admin_key, proxy) = behind_a_proxy(dir.path(), "open").await;
    let key = limited_key(&replica, &admin_key, 60, 3).await;
    let mut auth = AuthServiceClient::new(channel(&replica).await);
    assert_eq!(reason(&mut auth, &key).await, DecisionReason::Allowed);
    assert_eq!(metric(&replica, "keygate_limits_backend_up").await, Some(1.0));

    let addr = proxy.addr;
    proxy.cut().await;
    // Decisions still come, from this replica's own counters: a fresh burst of 3, then refusals.
    let mut reasons = Vec::new();
    for _ in 0..6 {
        reasons.push(reason(&mut auth, &key).await);
    }
    assert_eq!(reasons.iter().filter(|r| **r == DecisionReason::Allowed).count(), 3, "{reasons:?}");
    assert_eq!(reasons.last(), Some(&DecisionReason::RateLimited));
    assert_eq!(metric(&replica, "keygate_limits_backend_up").await, Some(0.0));
    assert_eq!(metric(&replica, "keygate_limits_fallback_decisions_total").await, Some(6.0));
    // Health stays SERVING (local limits decide), over several failed pings; the outage is
    // logged once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(health(&replica).await, ServingStatus::Serving);
    assert_eq!(replica.log_text().matches("redis unreachable").count(), 1, "{}", replica.log_text());

    let proxy = CuttableProxy::start_at(addr, redis_addr()).await;
    eventually("recovery", || async { metric(&replica, "keygate_limits_backend_up").await == Some(1.0) }).await;
    assert!(replica.log_text().contains("redis reachable again"));
    // Redis decides again: its TAT (one request over 3 s ago) has refilled; nothing falls back.
    let response = auth.authorize(authorize_request(&key)).await.expect("decision").into_inner();
    assert_eq!(response.decision.expect("decision").reason(), DecisionReason::Allowed);
    assert_eq!(response.rate_limit.map(|r| r.remaining), Some(2));
    assert_eq!(metric(&replica, "keygate_limits_fallback_decisions_total").await, Some(6.0));
    proxy.cut().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_unavailable_and_not_serving_when_closed_until_it_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (replica, admin_key, proxy) = behind_a_proxy(dir.path(), "closed").await;
    let key = limited_key(&replica, &admin_key, 60, 3).await;
    let mut admin = AdminServiceClient::new(channel(&replica).await);
    let unlimited =
        pb::CreateApiKeyRequest { name: "unlimited".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let unlimited = admin.create_api_key(as_admin(unlimited, &admin_key)).await.expect("create").into_inner().api_key;
    let mut auth = AuthServiceClient::new(channel(&replica).await);
    assert!(auth.authorize(authorize_request(&key)).await.expect("decision").into_inner().decision.expect("d").allowed);

    let addr = proxy.addr;
    proxy.cut().await;
    for _ in 0..3 {
        let status = auth.authorize(authorize_request(&key)).await.expect_err("no decision without redis");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    // A key without limits needs no counters: still decided.
    let response = auth.authorize(authorize_request(&unlimited)).await.expect("decision").into_inner();
    assert!(response.decision.expect("decision").allowed);
    eventually("NOT_SERVING", || async { health(&replica).await == ServingStatus::NotServing }).await;
    assert_eq!(metric(&replica, "keygate_limits_backend_up").await, Some(0.0));
    assert_eq!(replica.log_text().matches("redis unreachable").count(), 1, "{}", replica.log_text());

    let proxy = CuttableProxy::start_at(addr, redis_addr()).await;
    eventually("SERVING again", || async { health(&replica).await == ServingStatus::Serving }).await;
    let response = auth.authorize(authorize_request(&key)).await.expect("decision again").into_inner();
    assert!(response.decision.expect("decision").allowed);
    proxy.cut().await;
}

/// A Redis of the test's own that speaks TLS only, with a certificate from a CA made here;
/// stopped when dropped.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    ca_file: std::path::PathBuf,
}

impl TlsRedis {
    fn start(dir: &std::path::Path) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("signed");
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write pem");
            path
        };
        let ca_file = write("redis-ca.pem", ca.pem());
        let (cert_file, key_file) = (write("redis.pem", cert.pem()), write("redis-key.pem", key.serialize_pem()));
        let port = crate::support::free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&cert_file)
            .arg("--tls-key-file")
            .arg(&key_file)
            .arg("--tls-ca-cert-file")
            .arg(&ca_file)
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test and .ci/run install it)");
        crate::support::own::wait_port(port, true, "the TLS Redis");
        Self { child, port, ca_file }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rediss://` with the operator's CA: the counters live in that Redis, over TLS. The same
/// Redis is refused in plain text, and a replica that does not trust its CA cannot use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_reach_redis_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = TlsRedis::start(dir.path());
    let database = format!("sqlite://{}/keygate.db?mode=rwc", dir.path().display());
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let ca = redis.ca_file.display().to_string();
    let mut env = replica_env(&database, &url, "closed");
    env.push(("KEYGATE_LIMITS_REDIS_CA_FILE", &ca));
    let admin_key = bootstrap(dir.path(), &env);
    let replica = Served::start(dir.path(), &env);
    let key = limited_key(&replica, &admin_key, 60, 2).await;
    let mut auth = AuthServiceClient::new(channel(&replica).await);
    let reasons = [reason(&mut auth, &key).await, reason(&mut auth, &key).await, reason(&mut auth, &key).await];
    assert_eq!(reasons, [DecisionReason::Allowed, DecisionReason::Allowed, DecisionReason::RateLimited]);
    assert_eq!(metric(&replica, "keygate_redis_up").await, Some(1.0));
    assert_eq!(health(&replica).await, ServingStatus::Serving);
    drop(replica);

    // Plain text to the TLS port, and TLS without the CA: Redis is down for such a replica
    // (failing closed, its limited key is UNAVAILABLE).
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    for (redis_url, ca_file) in [(plain.as_str(), None), (url.as_str(), Some(()))] {
        let mut env = replica_env(&database, redis_url, "closed");
        if ca_file.is_some() {
            // No CA file: the system's roots do not know the test's CA.
            env.retain(|(name, _)| *name != "KEYGATE_LIMITS_REDIS_CA_FILE");
        }
        let replica = Served::start(dir.path(), &env);
        let mut auth = AuthServiceClient::new(channel(&replica).await);
        let status = auth.authorize(authorize_request(&key)).await.expect_err("no counters");
        assert_eq!(status.code(), Code::Unavailable, "{redis_url}: {status:?}");
        assert_eq!(metric(&replica, "keygate_redis_up").await, Some(0.0));
    }
}
