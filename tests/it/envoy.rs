//! keygate as Envoy's external authorizer: end to end through a real Envoy (the shipped config)
//! with the built binary and an upstream that echoes what it got; and `Check` called directly
//! for what needs a manual clock or a database outage.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use keygate::proto::envoy_auth as envoy;
use keygate::proto::envoy_auth::authorization_client::AuthorizationClient;
use keygate_core::credentials::api_key as credential;
use serde_json::Value;
use tonic::Code;

use crate::e2e_grpcurl::call;
use crate::support::envoy::{Envoy, test_config};
use crate::support::http::{Reply, echo_upstream, request};
use crate::support::process::{Served, keygate};
use crate::support::proxy::CuttableProxy;
use crate::support::{Backend, TestDb, TestServer, expect_code};

pub(crate) const POLICY: &str = r#"
[[routes]]
name = "health"
path = "/healthz"
public = true

[[routes]]
name = "sessions"
methods = ["GET"]
path = "/api/v1/sessions/*"
scopes = ["investigations:read"]

[[routes]]
name = "graph"
methods = ["GET"]
path = "/api/v1/graph/**"
scopes = ["graph:read"]

[[routes]]
name = "search"
path = "/api/v1/search"
scopes = ["search:read", "graph:read"]
scope_match = "any"
cost = 5
"#;

/// The same policy, but sessions now need `graph:read`.
const CHANGED_POLICY: &str = r#"
[[routes]]
name = "sessions"
methods = ["GET"]
path = "/api/v1/sessions/*"
scopes = ["graph:read"]
"#;

/// The error body's code, after checking the body's shape and content type.
#[track_caller]
pub(crate) fn error_code(reply: &Reply, status: u16, request_id: &str) -> String {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"), "{reply:?}");
    let body = reply.json();
    assert_eq!(body["error"]["request_id"], request_id, "{reply:?}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{reply:?}");
    body["error"]["code"].as_str().expect("code").to_owned()
}

/// The request headers the upstream received.
pub(crate) fn upstream_saw(reply: &Reply) -> HashMap<String, String> {
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    let headers = body["headers"].as_object().unwrap_or_else(|| panic!("echoed headers: {body}"));
    headers.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
}

/// Waits until `done` holds, for up to a minute (a slow, shared machine).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn admin_call(addr: &str, admin: &str, method: &str, body: Value) -> Value {
    call(addr, admin, &format!("keygate.v1.AdminService/{method}"), &body.to_string())
}

pub(crate) fn create_key(addr: &str, admin: &str, name: &str, scopes: &[&str]) -> (String, String) {
    let created = admin_call(addr, admin, "CreateApiKey", serde_json::json!({"name": name, "scopes": scopes}));
    (created["apiKey"].as_str().expect("apiKey").to_owned(), created["key"]["keyId"].as_str().expect("id").to_owned())
}

fn rotate(addr: &str, admin: &str, key_id: &str) -> String {
    let body = serde_json::json!({"key_id": key_id, "grace_period_days": 0});
    admin_call(addr, admin, "RotateApiKey", body)["apiKey"].as_str().expect("apiKey").to_owned()
}

fn start_keygate(dir: &Path) -> Served {
    let policy = dir.join("policy.toml");
    let policy = policy.to_str().expect("utf-8 path");
    Served::start(
        dir,
        &[
            ("KEYGATE_ENVOY_POLICY_FILE", policy),
            ("KEYGATE_ENVOY_POLICY_POLL_SECS", "1"),
            ("KEYGATE_HASHING_MEMORY_KIB", "1024"),
            ("KEYGATE_HASHING_ITERATIONS", "1"),
        ],
    )
}

#[test]
fn envoy_asks_keygate_for_every_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    std::fs::write(dir.join("policy.toml"), POLICY).expect("write policy");
    let bootstrapped = keygate(dir, &["bootstrap"], &[]);
    assert!(bootstrapped.status.success(), "{}", String::from_utf8_lossy(&bootstrapped.stderr));
    let admin = String::from_utf8(bootstrapped.stdout).expect("utf-8").trim().to_owned();
    let mut served = start_keygate(dir);
    let addr = served.addr.clone();

    let (good, good_id) = create_key(&addr, &admin, "sessions reader", &["investigations:read", "incidents:read"]);
    let (graph_only, _) = create_key(&addr, &admin, "graph reader", &["graph:read"]);
    let (disabled, disabled_id) = create_key(&addr, &admin, "disabled", &["investigations:read"]);
    admin_call(&addr, &admin, "DisableApiKey", serde_json::json!({"key_id": disabled_id}));
    let (rotated_out, rotated_id) = create_key(&addr, &admin, "rotated", &["investigations:read"]);
    let _replacement = rotate(&addr, &admin, &rotated_id);
    let unknown = credential::generate("sk_live_").full;

    let upstream = echo_upstream();
    let envoy = Envoy::start(dir, &test_config(&addr, upstream));
    let get = |path: &str, headers: &[(&str, &str)]| request(envoy.addr, "GET", path, headers);
    let sessions = "/api/v1/sessions/42";

    // No credential: 401 missing_api_key, a bare challenge, Envoy's request id echoed.
    let reply = get(sessions, &[("x-request-id", "req-missing")]);
    assert_eq!(error_code(&reply, 401, "req-missing"), "missing_api_key");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"keygate\""));

    // A credential that is there but bad: 401 with the reference's codes and invalid_token.
    let bearer = |key: &str| format!("Bearer {key}");
    let bad_keys = [
        ("sk_live_not_a_key", "invalid_api_key"),
        (unknown.as_str(), "invalid_api_key"),
        (disabled.as_str(), "expired_api_key"),
        (rotated_out.as_str(), "expired_api_key"),
    ];
    for (i, (key, code)) in bad_keys.iter().enumerate() {
        let id = format!("req-bad-{i}");
        let value = bearer(key);
        let reply = get(sessions, &[("authorization", &value), ("x-request-id", &id)]);
        assert_eq!(error_code(&reply, 401, &id), *code, "bad key #{i}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"keygate\", error=\"invalid_token\""));
        let reply = get(sessions, &[("x-api-key", key), ("x-request-id", &id)]);
        assert_eq!(error_code(&reply, 401, &id), *code, "bad key #{i} in X-API-Key");
    }

    // A good key without the route's scope: 403; a route no one listed: 403.
    let reply = get("/api/v1/graph/nodes", &[("x-api-key", &good), ("x-request-id", "req-scope")]);
    assert_eq!(error_code(&reply, 403, "req-scope"), "insufficient_scope");
    assert!(reply.json()["error"]["message"].as_str().unwrap_or_default().contains("graph:read"), "{reply:?}");
    let reply = get("/admin", &[("x-api-key", &good), ("x-request-id", "req-route")]);
    assert_eq!(error_code(&reply, 403, "req-route"), "route_not_allowed");

    // A public route needs nothing, and a principal the client made up does not get through.
    let saw = upstream_saw(&get("/healthz", &[("x-keygate-principal-id", "k_forged"), ("x-keygate-scopes", "*")]));
    assert!(!saw.contains_key("x-keygate-principal-id") && !saw.contains_key("x-keygate-scopes"), "{saw:?}");

    // A good key, either header: the upstream sees the principal and not the credential.
    for header in ["authorization", "x-api-key"] {
        let value = if header == "authorization" { bearer(&good) } else { good.clone() };
        let saw = upstream_saw(&get(sessions, &[(header, &value), ("x-keygate-principal-id", "k_forged")]));
        assert_eq!(saw.get("x-keygate-principal-type").map(String::as_str), Some("api_key"), "{saw:?}");
        assert_eq!(saw.get("x-keygate-principal-id"), Some(&good_id), "{saw:?}");
        assert_eq!(saw.get("x-keygate-organization").map(String::as_str), Some("platform"), "{saw:?}");
        assert_eq!(saw.get("x-keygate-scopes").map(String::as_str), Some("investigations:read incidents:read"));
        assert!(!saw.contains_key(header), "the credential reached the upstream: {saw:?}");
        assert!(!saw.values().any(|v| v.contains(&good)), "the key reached the upstream");
    }
    // "any of": one of the route's scopes is enough.
    upstream_saw(&get("/api/v1/search?q=x", &[("x-api-key", &graph_only)]));

    // A client's JWT works like a key; a tampered one is 401 invalid_token.
    let client = admin_call(
        &addr,
        &admin,
        "CreateApiClient",
        serde_json::json!({"name": "svc", "scopes": ["investigations:read"]}),
    );
    let grant = serde_json::json!({
        "grant_type": "client_credentials",
        "client_id": client["clientId"],
        "client_secret": client["clientSecret"],
    });
    let issued = call(&addr, &admin, "keygate.v1.AuthService/IssueToken", &grant.to_string());
    let jwt = issued["accessToken"].as_str().expect("accessToken").to_owned();
    let saw = upstream_saw(&get(sessions, &[("authorization", &bearer(&jwt))]));
    assert_eq!(saw.get("x-keygate-principal-type").map(String::as_str), Some("client"), "{saw:?}");
    assert_eq!(saw.get("x-keygate-principal-id").map(String::as_str), client["clientId"].as_str(), "{saw:?}");
    assert!(!saw.values().any(|v| v.contains(&jwt)), "the token reached the upstream");
    // A character well inside the signature (the last one may carry only padding bits).
    let at = jwt.len() - 10;
    let swapped = if &jwt[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &jwt[..at], &jwt[at + 1..]);
    let reply = get(sessions, &[("authorization", &bearer(&tampered)), ("x-request-id", "req-jwt")]);
    assert_eq!(error_code(&reply, 401, "req-jwt"), "invalid_token");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"keygate\", error=\"invalid_token\""));

    // Limits: allowed responses carry the rate limit's state to the client; over it, 429 with
    // Retry-After; a spent monthly quota is 429 too, and a route costing more than the whole
    // quota is 403 (search costs 5).
    let limited = admin_call(
        &addr,
        &admin,
        "CreateApiKey",
        serde_json::json!({"name": "limited", "scopes": ["investigations:read", "graph:read"],
            "limits": {"rate_limit_per_minute": 1, "rate_limit_burst": 2, "max_quota": 7}}),
    );
    let limited = limited["apiKey"].as_str().expect("apiKey").to_owned();
    let reply = get(sessions, &[("x-api-key", &limited)]);
    upstream_saw(&reply);
    assert_eq!(reply.header("x-ratelimit-limit"), Some("1"), "{reply:?}");
    assert_eq!(reply.header("x-ratelimit-remaining"), Some("1"), "{reply:?}");
    assert!(reply.header("x-ratelimit-reset").is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s <= 60)), "{reply:?}");
    upstream_saw(&get("/api/v1/search", &[("x-api-key", &limited)]));
    let reply = get(sessions, &[("x-api-key", &limited), ("x-request-id", "req-rate")]);
    assert_eq!(error_code(&reply, 429, "req-rate"), "rate_limited");
    let retry_after: u32 = reply.header("retry-after").and_then(|s| s.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{reply:?}");
    assert_eq!(reply.header("x-ratelimit-remaining"), Some("0"), "{reply:?}");
    let (spender, spender_id) = create_key(&addr, &admin, "spender", &["graph:read"]);
    let small = admin_call(
        &addr,
        &admin,
        "CreateApiKey",
        serde_json::json!({"name": "small", "scopes": ["graph:read"], "limits": {"max_quota": 4}}),
    );
    let small = small["apiKey"].as_str().expect("apiKey").to_owned();
    let reply = get("/api/v1/search", &[("x-api-key", &small), ("x-request-id", "req-max")]);
    assert_eq!(error_code(&reply, 403, "req-max"), "insufficient_max_quota");
    admin_call(&addr, &admin, "UpdateApiKey", serde_json::json!({"key_id": spender_id, "limits": {"max_quota": 6}}));
    upstream_saw(&get("/api/v1/search", &[("x-api-key", &spender)]));
    let reply = get("/api/v1/search", &[("x-api-key", &spender), ("x-request-id", "req-quota")]);
    assert_eq!(error_code(&reply, 429, "req-quota"), "quota_exceeded");
    assert!(reply.header("retry-after").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > 0), "{reply:?}");

    // A new valid policy takes effect without a restart ...
    std::fs::write(dir.join("policy.toml"), CHANGED_POLICY).expect("write policy");
    eventually("the changed policy", || get(sessions, &[("x-api-key", &good)]).status == 403);
    upstream_saw(&get(sessions, &[("x-api-key", &graph_only)]));
    assert!(served.log_text().contains("route policy reloaded"));
    // ... a bad one is rejected, logged, and the policy in force stays (on change and on SIGHUP).
    std::fs::write(dir.join("policy.toml"), "[[routes]]\npath = \"nope\"\nscopes = [\"no:such\"]\n").expect("write");
    eventually("the bad policy rejected", || served.log_text().contains("route policy rejected"));
    let rejected = |served: &Served| served.log_text().matches("route policy rejected").count();
    assert_eq!(rejected(&served), 1, "a bad file is reported once, not on every poll");
    let logs = served.log_text();
    assert!(logs.contains("must start with '/'") && logs.contains("unknown scopes: no:such"), "every problem: {logs}");
    let pid = served.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
    eventually("SIGHUP re-reads the file", || rejected(&served) == 2);
    upstream_saw(&get(sessions, &[("x-api-key", &graph_only)]));
    assert_eq!(get(sessions, &[("x-api-key", &good)]).status, 403);

    // keygate gone: Envoy's configured failure status, never the upstream.
    assert!(served.terminate(), "keygate exits 0");
    let reply = get(sessions, &[("x-api-key", &graph_only)]);
    assert_eq!(reply.status, 503, "status_on_error: {reply:?}");
    assert!(!reply.body.contains("headers"), "the upstream was not reached: {reply:?}");

    let logs = served.log_text();
    assert!(!logs.contains(&jwt), "a token reached the logs");
    for key in [&admin, &good, &graph_only, &disabled, &rotated_out, &limited, &small, &spender] {
        for part in crate::secrets::secret_parts(key) {
            assert!(!logs.contains(&part), "a secret reached the logs");
        }
    }
}

#[test]
fn a_bad_policy_stops_start_up_with_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[[routes]]\npath = \"x\"\n[[routes]]\npath = \"/y\"\nscopes = [\"nope:read\"]\n")
        .expect("write policy");
    let out = keygate(
        dir.path(),
        // Free ports for both listeners: a fixed default may be taken on a shared machine.
        &["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
        &[("KEYGATE_ENVOY_POLICY_FILE", policy.to_str().expect("utf-8"))],
    );
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    for needle in ["routes[0].path: must start with '/'", "routes[0].scopes: is required", "unknown scopes: nope:read"]
    {
        assert!(why.contains(needle), "{needle:?} missing from: {why}");
    }
}

/// A `CheckRequest` for `GET path` with `headers`.
pub(crate) fn check_request(path: &str, headers: &[(&str, &str)]) -> envoy::CheckRequest {
    let http = envoy::attribute_context::HttpRequest {
        method: "GET".to_owned(),
        path: path.to_owned(),
        host: "api.example.com".to_owned(),
        headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    };
    let request = envoy::attribute_context::Request { http: Some(http), ..Default::default() };
    envoy::CheckRequest { attributes: Some(envoy::AttributeContext { request: Some(request), ..Default::default() }) }
}

async fn start_with_policy(db: TestDb, url: &str, dir: &Path) -> TestServer {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let path = policy.to_str().expect("utf-8 path");
    let config = crate::support::test_config(url, &[("envoy.policy_file", path), ("database.timeout_secs", "1")]);
    TestServer::start_on(db, config).await
}

fn metadata(response: &envoy::CheckResponse, field: &str) -> Option<envoy::Kind> {
    response.dynamic_metadata.as_ref()?.fields.get(field)?.kind.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_carries_the_principal_and_judges_expiry_by_the_clock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDb::create(Backend::Sqlite).await;
    let url = db.url.clone();
    let server = start_with_policy(db, &url, dir.path()).await;
    let (key, key_id) = server.create_key(&server.admin_key, "search", &["search:read"]).await;
    let mut client = AuthorizationClient::new(server.channel().await);

    let request = check_request("/api/v1/search?q=1", &[("authorization", &format!("Bearer {key}"))]);
    let response = client.check(request).await.expect("check").into_inner();
    assert_eq!(response.status.as_ref().map(|s| s.code), Some(0));
    let Some(envoy::check_response::HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("an OK response: {response:?}");
    };
    assert_eq!(ok.headers_to_remove, ["authorization", "x-api-key"]);
    assert_eq!(metadata(&response, "principal_id"), Some(envoy::Kind::StringValue(key_id)));
    assert_eq!(metadata(&response, "route"), Some(envoy::Kind::StringValue("search".into())));
    assert_eq!(metadata(&response, "cost"), Some(envoy::Kind::NumberValue(5.0)));
    // The key as the Basic user name (`curl -u KEY:`) is the same credential.
    let basic =
        format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{key}:")));
    let response = client.check(check_request("/api/v1/search", &[("authorization", &basic)])).await;
    let response = response.expect("check").into_inner();
    assert_eq!(response.status.as_ref().map(|s| s.code), Some(0), "Basic is allowed as Bearer is: {response:?}");

    // "any of" still needs one of them.
    let (sessions_only, _) = server.create_key(&server.admin_key, "sessions", &["investigations:read"]).await;
    let response = client.check(check_request("/api/v1/search", &[("x-api-key", &sessions_only)])).await;
    let response = response.expect("check").into_inner();
    let Some(envoy::check_response::HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("a denied response: {response:?}");
    };
    assert_eq!(denied.status.as_ref().map(|s| s.code), Some(403));
    assert!(denied.body.contains("any of the required scopes: search:read, graph:read"), "{denied:?}");

    // Keys expire in whole days: a day past the default expiry, the same key is expired.
    server.advance_days(366);
    let request = check_request("/api/v1/search", &[("x-api-key", &key), ("x-request-id", "req-expired")]);
    let response = client.check(request).await.expect("check").into_inner();
    assert_eq!(response.status.as_ref().map(|s| s.code), Some(Code::Unauthenticated as i32));
    let Some(envoy::check_response::HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("a denied response: {response:?}");
    };
    assert_eq!(denied.status.as_ref().map(|s| s.code), Some(401));
    let body: Value = serde_json::from_str(&denied.body).expect("json body");
    assert_eq!(body["error"]["code"], "expired_api_key");
    assert_eq!(body["error"]["request_id"], "req-expired");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dynamic_metadata_the_answer_keeps_its_headers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDb::create(Backend::Sqlite).await;
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let settings = [("envoy.policy_file", policy.to_str().expect("utf-8 path")), ("envoy.dynamic_metadata", "false")];
    let config = crate::support::test_config(&db.url.clone(), &settings);
    let server = TestServer::start_on(db, config).await;
    let (key, key_id) = server.create_key(&server.admin_key, "search", &["search:read"]).await;
    let mut client = AuthorizationClient::new(server.channel().await);

    let response = client.check(check_request("/api/v1/search", &[("x-api-key", &key)])).await;
    let response = response.expect("check").into_inner();
    assert_eq!(response.dynamic_metadata, None, "no metadata asked for");
    let Some(envoy::check_response::HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("an OK response: {response:?}");
    };
    assert_eq!(ok.headers_to_remove, ["authorization", "x-api-key"], "credentials still stripped");
    let principal_id = ok.headers.iter().filter_map(|h| h.header.as_ref()).find(|h| h.key == "x-keygate-principal-id");
    assert_eq!(principal_id.map(|h| h.value.as_str()), Some(key_id.as_str()), "the upstream still learns who called");

    let response = client.check(check_request("/api/v1/search", &[("x-api-key", "sk_live_nonsense")])).await;
    let response = response.expect("check").into_inner();
    assert_eq!(response.dynamic_metadata, None);
    assert!(matches!(response.http_response, Some(envoy::check_response::HttpResponse::DeniedResponse(_))));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_unavailable_when_keygate_cannot_decide() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDb::create(Backend::Postgres).await;
    let target = crate::outage::host_port(&db.url).replace("localhost", "127.0.0.1");
    let proxy = CuttableProxy::start(target.parse().expect("TEST_POSTGRES_URL names an IP:port")).await;
    let proxied = db.url.replacen(crate::outage::host_port(&db.url), &proxy.addr.to_string(), 1);
    let server = start_with_policy(db, &proxied, dir.path()).await;
    let (cold, _) = server.create_key(&server.admin_key, "cold", &["graph:read"]).await;
    let mut client = AuthorizationClient::new(server.channel().await);

    proxy.cut().await;
    let status =
        expect_code(client.check(check_request("/api/v1/graph/x", &[("x-api-key", &cold)])).await, Code::Unavailable);
    assert!(status.message().contains("database"), "{status:?}");
    // What needs no database is still answered.
    let response = client.check(check_request("/healthz", &[])).await.expect("public route").into_inner();
    assert_eq!(response.status.map(|s| s.code), Some(0));
    server.stop().await;
}
