//! A database outage is a failure to decide (UNAVAILABLE), never a denial; health reports it.

use std::net::SocketAddr;

use keygate::proto::keygate_v1 as pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::proxy::CuttableProxy;
use crate::support::{Backend, TestDb, TestServer, as_admin, bearer, expect_code, test_config};

/// `host:port` of a `postgres://user@host:port/db` URL.
pub fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_unavailable_not_a_denial() {
    let db = TestDb::create(Backend::Postgres).await;
    let target_text = host_port(&db.url).replace("localhost", "127.0.0.1");
    let target: SocketAddr = target_text.parse().expect("TEST_POSTGRES_URL names an IP:port");
    let proxy = CuttableProxy::start(target).await;
    let proxied = db.url.replacen(host_port(&db.url), &proxy.addr.to_string(), 1);
    let config = test_config(&proxied, &[("database.timeout_secs", "1")]);
    let mut server = TestServer::start_on(db, config).await;
    let (cached, _) = server.create_key(&server.admin_key, "cached", &["graph:read"]).await;
    let (cold, _) = server.create_key(&server.admin_key, "cold", &["graph:read"]).await;
    assert!(server.authorize(&cached, &["graph:read"]).await.decision.expect("decision").allowed);

    let proxy_addr = proxy.addr;
    proxy.cut().await;
    // A cached credential is decided without the database ...
    assert!(server.authorize(&cached, &["graph:read"]).await.decision.expect("decision").allowed);
    assert_eq!(server.reason(&cached, &["incidents:read"]).await, pb::DecisionReason::InsufficientScope);
    // ... an uncached one cannot be: UNAVAILABLE, so that the caller's failure mode applies.
    let request = pb::AuthorizeRequest {
        cost: None,
        credentials: Some(bearer(&cold)),
        required_scopes: vec!["graph:read".into()],
        organization: String::new(),
    };
    let status = expect_code(server.auth().await.authorize(request).await, Code::Unavailable);
    assert!(status.message().contains("database"), "{status:?}");
    let list = as_admin(pb::ListApiKeysRequest::default(), &server.admin_key);
    expect_code(server.admin().await.list_api_keys(list).await, Code::Unavailable);

    // Health follows within a few probe intervals (1 s in tests): the admin service stops
    // serving; the decision services and the server as a whole (liveness) go on, since cached
    // credentials are still decided. Readiness probes name the decision service, so a database
    // blip takes no replica out of the load balancer.
    let channel = server.channel().await;
    admin_becomes(&channel, ServingStatus::NotServing).await;
    for service in ["", "keygate.v1.AuthService", "envoy.service.auth.v3.Authorization"] {
        assert_eq!(health_of(&channel, service).await, ServingStatus::Serving, "{service:?} during the outage");
    }
    let metrics = scrape(&server).await;
    assert!(metrics.lines().any(|line| line == "keygate_database_up 0"), "{metrics}");
    assert!(server.authorize(&cached, &["graph:read"]).await.decision.expect("decision").allowed);

    // Back: the admin service serves again, by itself.
    let _restored = CuttableProxy::start_at(proxy_addr, target).await;
    admin_becomes(&channel, ServingStatus::Serving).await;
    let metrics = scrape(&server).await;
    assert!(metrics.lines().any(|line| line == "keygate_database_up 1"), "{metrics}");
    server.shutdown_only().await;
    server.db.drop_database().await;
}

async fn health_of(channel: &tonic::transport::Channel, service: &str) -> ServingStatus {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let request = tonic_health::pb::HealthCheckRequest { service: service.into() };
    health.check(request).await.expect("health answers").into_inner().status()
}

/// Waits for the admin service's health to become `wanted`, within a few probe intervals (1 s
/// in tests).
async fn admin_becomes(channel: &tonic::transport::Channel, wanted: ServingStatus) {
    for _ in 0..100 {
        if health_of(channel, "keygate.v1.AdminService").await == wanted {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the admin service never became {wanted:?}");
}

async fn scrape(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics")).await.expect("scrape").text().await.expect("metrics text")
}

#[test]
fn host_port_is_found() {
    assert_eq!(host_port("postgres://postgres@127.0.0.1:5432/x?sslmode=disable"), "127.0.0.1:5432");
    assert_eq!(host_port("postgres://127.0.0.1:5432/x"), "127.0.0.1:5432");
}

/// The change listener's connection dies silently (no byte moves, nothing closes, as when a NAT
/// forgets it): the listener's own heartbeat notices within seconds, reconnects and clears the
/// cache, so a key disabled meanwhile on another replica stops being allowed here long before the
/// cache TTL (an hour in this test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_change_listener_is_noticed_and_revocations_still_land() {
    use crate::support::process::{Served, bootstrap};
    let db = TestDb::create(Backend::Postgres).await;
    let target: SocketAddr = host_port(&db.url).replace("localhost", "127.0.0.1").parse().expect("IP:port");
    let proxy = CuttableProxy::start(target).await;
    let proxied = db.url.replacen(host_port(&db.url), &proxy.addr.to_string(), 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let env = |url| {
        vec![
            ("KEYGATE_DATABASE_URL", url),
            ("KEYGATE_CACHE_TTL_SECS", "3600"),
            ("KEYGATE_DATABASE_TIMEOUT_SECS", "1"),
            ("KEYGATE_HASHING_MEMORY_KIB", "1024"),
            ("KEYGATE_HASHING_ITERATIONS", "1"),
            ("KEYGATE_OAUTH_ISSUER", "http://keygate.test"),
        ]
    };
    let (direct, behind_refs) = (env(db.url.as_str()), env(proxied.as_str()));
    let admin_key = bootstrap(dir.path(), &direct);
    let writer = Served::start(dir.path(), &direct);
    let reader = Served::start(dir.path(), &behind_refs);
    for _ in 0..100 {
        if reader.log_text().contains("listening for key changes") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    async fn connect(addr: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        tonic::transport::Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await
    }
    let mut admin = pb::admin_service_client::AdminServiceClient::new(connect(&writer.addr).await.expect("connect"));
    let mut auth = pb::auth_service_client::AuthServiceClient::new(connect(&reader.addr).await.expect("connect"));
    let create =
        pb::CreateApiKeyRequest { name: "watched".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let created = admin.create_api_key(as_admin(create, &admin_key)).await.expect("create").into_inner();
    let request = || pb::AuthorizeRequest {
        credentials: Some(bearer(&created.api_key)),
        required_scopes: vec!["graph:read".into()],
        ..Default::default()
    };
    let allowed = auth.authorize(request()).await.expect("decision").into_inner().decision.expect("d").allowed;
    assert!(allowed, "cached on the reader");

    proxy.freeze_open();
    let disable = pb::DisableApiKeyRequest { key_id: created.key.expect("view").key_id };
    admin.disable_api_key(as_admin(disable, &admin_key)).await.expect("disable");
    let disabled = std::time::Instant::now();
    let mut still_allowed = true;
    while disabled.elapsed() < std::time::Duration::from_secs(20) {
        // A failure to decide (the pool's own frozen connections) is not an allow.
        still_allowed = match auth.authorize(request()).await {
            Ok(response) => response.into_inner().decision.expect("decision").allowed,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                false
            }
        };
        if !still_allowed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let took = disabled.elapsed();
    assert!(!still_allowed, "the disabled key was still allowed {took:?} after the change:\n{}", reader.log_text());
    assert!(reader.log_text().contains("stopped delivering") || reader.log_text().contains("does not answer"));
    println!("a silently dead listener: the revocation landed after {took:?}");
    drop((writer, reader));
    proxy.cut().await;
    db.drop_database().await;
}
