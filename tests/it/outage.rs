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
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let mut check = async |service: &str| {
        let request = tonic_health::pb::HealthCheckRequest { service: service.into() };
        health.check(request).await.expect("health answers").into_inner().status()
    };
    let mut admin = ServingStatus::Serving;
    for _ in 0..100 {
        admin = check("keygate.v1.AdminService").await;
        if admin == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(admin, ServingStatus::NotServing);
    for service in ["", "keygate.v1.AuthService", "envoy.service.auth.v3.Authorization"] {
        assert_eq!(check(service).await, ServingStatus::Serving, "{service:?} during the outage");
    }
    let metrics = scrape(&server).await;
    assert!(metrics.lines().any(|line| line == "keygate_database_up 0"), "{metrics}");
    assert!(server.authorize(&cached, &["graph:read"]).await.decision.expect("decision").allowed);

    // Back: the admin service serves again, by itself.
    let _restored = CuttableProxy::start_at(proxy_addr, target).await;
    let mut admin = ServingStatus::NotServing;
    for _ in 0..100 {
        admin = check("keygate.v1.AdminService").await;
        if admin == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(admin, ServingStatus::Serving);
    let metrics = scrape(&server).await;
    assert!(metrics.lines().any(|line| line == "keygate_database_up 1"), "{metrics}");
    server.shutdown_only().await;
    server.db.drop_database().await;
}

async fn scrape(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics")).await.expect("scrape").text().await.expect("metrics text")
}

#[test]
fn host_port_is_found() {
    assert_eq!(host_port("postgres://postgres@127.0.0.1:5432/x?sslmode=disable"), "127.0.0.1:5432");
    assert_eq!(host_port("postgres://127.0.0.1:5432/x"), "127.0.0.1:5432");
}
