//! Requests crafted to slip past the route policy or to pass a principal of their own (issue 15,
//! M5 and M6): paths from the known bypass classes and look-alike principal headers, through a
//! real Envoy running the shipped config in front of the built binary, and `Check` called
//! directly with what Envoy would never send.

use std::path::Path;

use keygate::proto::envoy_auth as envoy;
use keygate::proto::envoy_auth::authorization_client::AuthorizationClient;
use serde_json::Value;

use crate::envoy::{check_request, create_key, error_code, upstream_saw};
use crate::support::envoy::{Envoy, replace_once, test_config};
use crate::support::http::{echo_upstream, request};
use crate::support::process::{Served, bootstrap};
use crate::support::{Backend, TestDb, TestServer};

/// A public prefix, two protected routes, and everything else allowed (`default_action`).
const POLICY: &str = r#"
[[routes]]
name = "public"
path = "/public/**"
public = true

[[routes]]
name = "api"
path = "/api/**"
scopes = ["investigations:read"]

[[routes]]
name = "status"
methods = ["GET"]
path = "/status"
scopes = ["investigations:read"]
"#;

/// The same, with a catch-all public route instead of relying on the default action.
const CATCH_ALL: &str = r#"
[[routes]]
name = "api"
path = "/api/**"
scopes = ["investigations:read"]

[[routes]]
name = "status"
methods = ["GET"]
path = "/status"
scopes = ["investigations:read"]

[[routes]]
name = "everything else"
path = "/**"
public = true
"#;

/// How a request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Envoy refuses it itself: 400, and keygate is never asked.
    Envoy400,
    /// keygate denies it before any route: 400 invalid_path.
    InvalidPath,
    /// It reaches a protected route (after Envoy's normalization): 401 without a credential.
    Protected,
    /// It is let through, and the upstream sees this path.
    Upstream(&'static str),
}

use Fate::{Envoy400, InvalidPath, Protected, Upstream};

/// Paths from the known bypass classes, each sent without a credential. `Upstream` is only ever
/// a path that is public to begin with: no protected resource is reached without a key.
const PATHS: &[(&str, Fate)] = &[
    // Controls: what is normal works.
    ("/public/a", Upstream("/public/a")),
    ("/elsewhere", Upstream("/elsewhere")),
    ("/api/x", Protected),
    ("/status", Protected),
    ("/public/caf%C3%A9", Upstream("/public/caf%C3%A9")),
    ("/public/a?next=/../api;x=%2e%2e", Upstream("/public/a?next=/../api;x=%2e%2e")),
    // Dot segments: Envoy resolves them, so keygate and the upstream see the same target.
    ("/public/../api/x", Protected),
    ("/public/./../api/x", Protected),
    ("/./api/x", Protected),
    ("/../status", Protected),
    ("/api/x/.", Protected),
    ("/status/.", Protected),
    // Path parameters (`..;` is `..` to Tomcat; Envoy resolves it as a dot segment).
    ("/public/..;/api/x", Protected),
    ("/public/..;/status", Protected),
    ("/api;/x", InvalidPath),
    ("/status;jsessionid=0", InvalidPath),
    ("/public;x=1/../status", Protected),
    // Percent-encoded dots.
    ("/public/%2e%2e/api/x", Protected),
    ("/public/%2E%2E/status", Protected),
    ("/public/.%2e/api/x", Protected),
    ("/public/%2e./status", Protected),
    // Percent-encoded slashes and backslashes, in either case.
    ("/public/..%2fapi/x", Envoy400),
    ("/public/..%2Fstatus", Envoy400),
    ("/public%2f..%2fapi/x", Envoy400),
    ("/public/..%5capi/x", Envoy400),
    ("/public/..%5Cstatus", Envoy400),
    ("/public/%2e%2e%2fstatus", Envoy400),
    // Backslashes, which IIS takes for slashes (so does Envoy's normalization).
    ("/public/..\\api/x", Protected),
    ("/public\\..\\status", Protected),
    // Repeated slashes.
    ("//api/x", Protected),
    ("/api//x", Protected),
    ("///status", Protected),
    // Trailing slashes and dots.
    ("/status/", Protected),
    ("/status.", InvalidPath),
    ("/status..", InvalidPath),
    ("/api.", InvalidPath),
    ("/status%20", InvalidPath),
    // Case, and needlessly encoded letters (Envoy decodes those).
    ("/API/x", Protected),
    ("/Status", Protected),
    ("/STATUS/", Protected),
    ("/%61pi/x", Protected),
    ("/%53tatus", Protected),
    // Overlong UTF-8, stand-ins for dots and letters, double encoding, bad escapes.
    ("/public/%c0%ae%c0%ae/status", InvalidPath),
    ("/public/%C0%AE%C0%AE%C0%AFapi/x", InvalidPath),
    ("/public/%e0%80%ae%e0%80%ae/status", InvalidPath),
    ("/public/%ef%bc%8e%ef%bc%8e/status", InvalidPath),
    ("/%ef%bd%81pi/x", InvalidPath),
    ("/public/%252e%252e/status", InvalidPath),
    ("/public/%u002e%u002e/status", InvalidPath),
    // Raw non-ASCII and control bytes, NUL, fragments: Envoy's codec refuses them.
    ("/public/caf\u{e9}", Envoy400),
    ("/status\u{1}", Envoy400),
    ("/status%00", Envoy400),
    ("/public/x#/../../status", Envoy400),
];

/// Sends every path of [`PATHS`] through `envoy` and checks how each ends.
fn every_path_ends_as_expected(envoy: &Envoy, pass: &str) {
    for (i, (path, fate)) in PATHS.iter().enumerate() {
        let id = format!("req-{pass}-{i}");
        let reply = request(envoy.addr, "GET", path, &[("x-request-id", &id)]);
        let what = format!("{pass}: {path:?} should end as {fate:?}: {reply:?}");
        match fate {
            Envoy400 => {
                assert_eq!(reply.status, 400, "{what}");
                assert_ne!(reply.header("content-type"), Some("application/json"), "keygate was asked: {what}");
            }
            InvalidPath => {
                assert_eq!(error_code(&reply, 400, &id), "invalid_path", "{what}");
                let message = reply.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
                assert!(message.starts_with("the request path is not in normal form: it "), "{what}");
            }
            Protected => assert_eq!(error_code(&reply, 401, &id), "missing_api_key", "{what}"),
            Upstream(seen) => {
                upstream_saw(&reply);
                assert_eq!(reply.json()["path"], *seen, "{what}");
            }
        }
    }
}

fn serve(dir: &Path) -> Served {
    let policy = dir.join("policy.toml");
    Served::start(
        dir,
        &[
            ("KEYGATE_ENVOY_POLICY_FILE", policy.to_str().expect("utf-8 path")),
            ("KEYGATE_ENVOY_POLICY_POLL_SECS", "1"),
            ("KEYGATE_ENVOY_DEFAULT_ACTION", "allow"),
            ("KEYGATE_HASHING_MEMORY_KIB", "1024"),
            ("KEYGATE_HASHING_ITERATIONS", "1"),
        ],
    )
}

#[test]
fn envoy_unusual_paths_never_pass_unchecked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    std::fs::write(dir.join("policy.toml"), POLICY).expect("write policy");
    let admin = bootstrap(dir, &[]);
    let served = serve(dir);
    let (key, _) = create_key(&served.addr, &admin, "reader", &["investigations:read"]);
    let upstream = echo_upstream();
    let envoy = Envoy::start(dir, &test_config(&served.addr, upstream));

    every_path_ends_as_expected(&envoy, "allow");
    // Routed correctly, not merely refused: with the key, case and trailing-slash variants reach
    // the upstream as sent, and a resolved path as resolved.
    for (path, seen) in [("/STATUS/", "/STATUS/"), ("/public/../api/x", "/api/x"), ("/Api//X", "/Api/X")] {
        let reply = request(envoy.addr, "GET", path, &[("x-api-key", &key)]);
        upstream_saw(&reply);
        assert_eq!(reply.json()["path"], seen, "{path:?}: {reply:?}");
    }

    // The same with a public `/**` route after the protected ones.
    std::fs::write(dir.join("policy.toml"), CATCH_ALL).expect("write policy");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !served.log_text().contains("route policy reloaded") {
        assert!(std::time::Instant::now() < deadline, "the catch-all policy was not loaded");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    every_path_ends_as_expected(&envoy, "catch-all");
    let reply = request(envoy.addr, "GET", "/elsewhere", &[]);
    assert_eq!(reply.json()["path"], "/elsewhere", "the catch-all is in force: {reply:?}");
}

/// keygate's own headers and every case, `_` and `-` variant of them.
const LOOKALIKES: &[(&str, &str)] = &[
    ("x-keygate-principal_id", "k_forged0000"),
    ("x_keygate_principal_id", "k_forged0001"),
    ("X_Keygate_Principal-Type", "api_key"),
    ("x-keygate_organization", "globex"),
    ("X_KEYGATE_SCOPES", "*"),
    ("x_api_key", "sk_live_forged"),
];

/// Whether the upstream saw a header that stands for one of keygate's.
fn principal_like(name: &str) -> bool {
    let folded = name.to_ascii_lowercase().replace('_', "-");
    ["x-keygate-principal-type", "x-keygate-principal-id", "x-keygate-organization", "x-keygate-scopes", "x-api-key"]
        .contains(&folded.as_str())
}

#[test]
fn envoy_lookalike_principal_headers_never_reach_the_upstream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    std::fs::write(dir.join("policy.toml"), POLICY).expect("write policy");
    let admin = bootstrap(dir, &[]);
    let served = serve(dir);
    let (key, key_id) = create_key(&served.addr, &admin, "reader", &["investigations:read"]);
    let upstream = echo_upstream();

    // As shipped, Envoy refuses header names with underscores before keygate is asked.
    let shipped = Envoy::start(dir, &test_config(&served.addr, upstream));
    for (name, value) in LOOKALIKES.iter().filter(|(name, _)| name.contains('_')) {
        for (path, credential) in [("/public/a", None), ("/api/x", Some(key.as_str()))] {
            let mut headers = vec![(*name, *value)];
            headers.extend(credential.map(|key| ("x-api-key", key)));
            let reply = request(shipped.addr, "GET", path, &headers);
            assert_eq!(reply.status, 400, "{name} on {path}: {reply:?}");
        }
    }
    // Case alone is the same header to Envoy: overwritten with the real principal.
    let reply = request(shipped.addr, "GET", "/api/x", &[("x-api-key", &key), ("X-Keygate-Principal-ID", "k_forged")]);
    assert_eq!(upstream_saw(&reply).get("x-keygate-principal-id"), Some(&key_id), "{reply:?}");
    drop(shipped);

    // An Envoy that lets underscores through (an operator's choice): keygate removes them.
    let allowing = replace_once(
        &test_config(&served.addr, upstream),
        "headers_with_underscores_action: REJECT_REQUEST",
        "headers_with_underscores_action: ALLOW",
    );
    // Its own directory: the first one's admin address file is stale.
    let second = dir.join("allowing");
    std::fs::create_dir(&second).expect("create dir");
    let envoy = Envoy::start(&second, &allowing);
    let exact: Vec<(&str, &str)> = vec![
        ("x-keygate-principal-id", "k_forged0002"),
        ("x-keygate-principal-type", "user"),
        ("x-keygate-organization", "globex"),
        ("x-keygate-scopes", "*"),
    ];
    // A public route: nothing that looks like a principal goes on.
    let mut headers: Vec<(&str, &str)> = LOOKALIKES.to_vec();
    headers.extend(exact.iter().copied());
    let saw = upstream_saw(&request(envoy.addr, "GET", "/public/a", &headers));
    let leaked: Vec<&String> = saw.keys().filter(|name| principal_like(name)).collect();
    assert!(leaked.is_empty(), "the upstream saw {leaked:?}: {saw:?}");
    // A protected route: exactly keygate's headers with keygate's values, nothing else.
    headers.push(("x-api-key", &key));
    let saw = upstream_saw(&request(envoy.addr, "GET", "/api/x", &headers));
    let mut seen: Vec<(&str, &str)> = saw
        .iter()
        .filter(|(name, _)| principal_like(name))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    seen.sort_unstable();
    let scopes = "investigations:read";
    let wanted = [
        ("x-keygate-organization", "platform"),
        ("x-keygate-principal-id", key_id.as_str()),
        ("x-keygate-principal-type", "api_key"),
        ("x-keygate-scopes", scopes),
    ];
    assert_eq!(seen, wanted, "{saw:?}");
    assert!(!saw.values().any(|value| value.contains("forged")), "a forged value got through: {saw:?}");
}

/// `Check` called directly (no Envoy in front): paths Envoy would have normalized or refused are
/// denied, whatever `default_action` says, and look-alike headers are listed for removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_denies_paths_not_in_normal_form_and_removes_lookalikes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let db = TestDb::create(Backend::Sqlite).await;
    let config = crate::support::test_config(
        &db.url,
        &[("envoy.policy_file", policy.to_str().expect("utf-8 path")), ("envoy.default_action", "allow")],
    );
    let server = TestServer::start_on(db, config).await;
    let (key, key_id) = server.create_key(&server.admin_key, "reader", &["investigations:read"]).await;
    let mut client = AuthorizationClient::new(server.channel().await);

    for path in [
        "/public/../api/x",
        "/public/./x",
        "/public/..;/api/x",
        "/public/%2e%2e/api/x",
        "/public/.%2E/api/x",
        "/public/..%2fapi/x",
        "/public/..%5Capi/x",
        "/public\\..\\api\\x",
        "//api/x",
        "/api//x",
        "/public/x/..",
        "/status.",
        "/%61pi/x",
        "/public/%c0%ae%c0%ae/api/x",
        "/public/caf\u{e9}",
        "/public/a\u{0}b",
        "/public/a b",
        "/public/%252e%252e/api",
        "*",
        "",
    ] {
        let response = client.check(check_request(path, &[("x-request-id", "req-path")])).await;
        let response = response.expect("a decision, not an error").into_inner();
        assert_eq!(response.status.as_ref().map(|s| s.code), Some(tonic::Code::InvalidArgument as i32), "{path:?}");
        let Some(envoy::check_response::HttpResponse::DeniedResponse(denied)) = &response.http_response else {
            panic!("{path:?} was not denied: {response:?}");
        };
        assert_eq!(denied.status.as_ref().map(|s| s.code), Some(400), "{path:?}");
        let body: Value = serde_json::from_str(&denied.body).expect("json body");
        assert_eq!(body["error"]["code"], "invalid_path", "{path:?}");
        assert_eq!(body["error"]["request_id"], "req-path", "{path:?}");
    }
    // Normal paths go on as the policy says (unmatched ones are allowed here).
    for path in ["/api/x", "/elsewhere", "/status/", "/API/X"] {
        let response = client.check(check_request(path, &[("x-api-key", &key)])).await.expect("check").into_inner();
        assert_eq!(response.status.as_ref().map(|s| s.code), Some(0), "{path:?}: {response:?}");
    }

    // Look-alikes are removed from an allowed request, credential look-alikes included.
    let mut headers: Vec<(&str, &str)> = LOOKALIKES.iter().map(|(name, value)| (*name, *value)).collect();
    headers.push(("x-api-key", &key));
    let lowered: Vec<(String, &str)> =
        headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), *value)).collect();
    let lowered: Vec<(&str, &str)> = lowered.iter().map(|(name, value)| (name.as_str(), *value)).collect();
    let response = client.check(check_request("/api/x", &lowered)).await.expect("check").into_inner();
    let Some(envoy::check_response::HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("an OK response: {response:?}");
    };
    let mut removed = ok.headers_to_remove.clone();
    removed.sort();
    let mut wanted: Vec<String> = LOOKALIKES.iter().map(|(name, _)| name.to_ascii_lowercase()).collect();
    wanted.extend(["authorization".to_owned(), "x-api-key".to_owned()]);
    wanted.sort();
    assert_eq!(removed, wanted);
    let set = |name: &str| {
        ok.headers.iter().filter_map(|h| h.header.as_ref()).find(|h| h.key == name).map(|h| h.value.clone())
    };
    assert_eq!(set("x-keygate-principal-id"), Some(key_id));
    server.stop().await;
}
