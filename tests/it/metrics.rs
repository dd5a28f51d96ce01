//! `/metrics` on the HTTP listener: requests by RPC and status, decisions by reason, cache hits
//! and misses, argon2 work, the database pool; in the OpenMetrics text format, without secrets.

use keygate::proto::keygate_v1 as pb;

use crate::support::{Backend, TestServer, as_admin};

/// The value of the sample `name{labels}` (labels as rendered), if present.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_decisions_cache_and_argon2() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (key, _) = server.create_key(&server.admin_key, "metered", &["graph:read"]).await;
    for _ in 0..3 {
        server.authorize(&key, &["graph:read"]).await;
    }
    server.authorize(&key, &["incidents:read"]).await;
    server.authorize("sk_live_garbage", &["graph:read"]).await;
    let request = pb::GetApiKeyRequest { key_id: "not-a-key-id".into() };
    let _ = server.admin().await.get_api_key(as_admin(request, &server.admin_key)).await;
    let _ = reqwest::Client::new().post(server.url("/oauth/token")).form(&[("grant_type", "password")]).send().await;

    let response = reqwest::get(server.url("/metrics")).await.expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = response.text().await.expect("text");
    assert!(text.ends_with("# EOF\n"), "{text}");

    let authorize = r#"keygate_requests_total{transport="grpc",rpc="/keygate.v1.AuthService/Authorize",code="Ok"}"#;
    assert_eq!(sample(&text, authorize), Some(5.0), "{text}");
    let bad =
        r#"keygate_requests_total{transport="grpc",rpc="/keygate.v1.AdminService/GetApiKey",code="InvalidArgument"}"#;
    assert_eq!(sample(&text, bad), Some(1.0), "{text}");
    let token = r#"keygate_requests_total{transport="http",rpc="/oauth/token",code="400"}"#;
    assert_eq!(sample(&text, token), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"keygate_decisions_total{reason="ALLOWED"}"#), Some(3.0), "{text}");
    assert_eq!(sample(&text, r#"keygate_decisions_total{reason="INSUFFICIENT_SCOPE"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"keygate_decisions_total{reason="INVALID_API_KEY"}"#), Some(1.0));
    // The admin key and the new key were each verified once (argon2), then came from the cache.
    let misses = sample(&text, "keygate_verdict_cache_misses_total").expect("misses");
    let lookups = sample(&text, "keygate_verdict_cache_lookups_total").expect("lookups");
    assert!(misses >= 2.0 && lookups >= misses + 3.0, "{text}");
    assert!(sample(&text, "keygate_argon2_verifications_total").is_some_and(|n| n >= 2.0), "{text}");
    assert!(sample(&text, "keygate_argon2_duration_seconds_count").is_some_and(|n| n >= 2.0), "{text}");
    assert!(sample(&text, "keygate_db_pool_connections").is_some_and(|n| n >= 1.0), "{text}");
    let latency = r#"keygate_request_duration_seconds_count{transport="grpc",rpc="/keygate.v1.AuthService/Authorize"}"#;
    assert_eq!(sample(&text, latency), Some(5.0), "{text}");
    for secret in crate::secrets::secret_parts(&key) {
        assert!(!text.contains(&secret), "a secret reached the metrics");
    }
    server.stop().await;
}
