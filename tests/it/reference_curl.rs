//! The reference's curl examples for API keys and API clients, run as written with the real
//! `curl` (only the host, the tokens and the ids substituted), and keygate's answers compared
//! with the reference's example responses; against SQLite and PostgreSQL.
//!
//! The reference's other examples call the product's own API (`GET /api/v1/search…` with
//! `X-API-Key` or a bearer token): keygate does not serve those paths, it decides them for the
//! product (`Authorize`, Envoy's `Check`), which `tests/it/envoy.rs` and `tests/it/keys.rs` test.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::backend_tests;
use crate::support::{Backend, TestServer};

use keygate::proto::keygate_v1 as pb;

backend_tests!(the_reference_api_key_examples_run_as_written, the_reference_api_client_examples_run_as_written);

/// The real curl, from Debian's base image.
const CURL: &str = "/usr/bin/curl";

// From /work/shared/reference/001_e077c299f8168225.txt (API keys), verbatim.

const CREATE_KEY: &str = r#"curl -X POST https://api.socmate.yourcompany.com/api/admin/api-keys \
  -H "Authorization: Bearer <admin_token>" \
  -H "Content-Type: application/json" \
  -d '{
    "name": "SOAR Integration",
    "description": "API key for Palo Alto XSOAR integration",
    "scopes": ["investigations:read", "investigations:write", "incidents:read"],
    "expires_in_days": 365
  }'"#;

const CREATE_KEY_RESPONSE: &str = r#"{
  "id": "6507f1f77bcf86cd799439011",
  "key_id": "k_abc123",
  "api_key": "sk_live_k_abc123_7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a",
  "name": "SOAR Integration",
  "scopes": ["investigations:read", "investigations:write", "incidents:read"],
  "expires_at": "2027-03-27T00:00:00Z",
  "header_name": "X-API-Key"
}"#;

const ROTATE_KEY: &str = r#"curl -X POST https://api.socmate.yourcompany.com/api/admin/api-keys/k_abc123/rotate \
  -H "Authorization: Bearer <admin_token>" \
  -H "Content-Type: application/json" \
  -d '{
    "grace_period_days": 7,
    "expires_in_days": 365
  }'"#;

const ROTATE_KEY_RESPONSE: &str = r#"{
  "key_id": "k_abc123",
  "api_key": "sk_live_k_abc123_newkeyvalue...",
  "expires_at": "2027-03-27T00:00:00Z",
  "previous_key_expires_at": "2026-04-03T00:00:00Z"
}"#;

const LIST_KEYS: &str = r#"curl -X GET "https://api.socmate.yourcompany.com/api/admin/api-keys?search=SOAR" \
  -H "Authorization: Bearer <admin_token>""#;

const LIST_KEYS_RESPONSE: &str = r#"{
  "api_keys": [
    {
      "id": "6507f1f77bcf86cd799439011",
      "key_id": "k_abc123",
      "key_prefix": "sk_live_k_abc123",
      "name": "SOAR Integration",
      "description": "API key for Palo Alto XSOAR integration",
      "status": "active",
      "scopes": ["investigations:read", "investigations:write", "incidents:read"],
      "created_by": "admin@example.com",
      "created_at": "2026-03-27T00:00:00Z",
      "updated_at": "2026-03-27T00:00:00Z",
      "expires_at": "2027-03-27T00:00:00Z",
      "last_used_at": "2026-03-27T10:30:00Z",
      "last_rotated_at": null,
      "previous_key_expires_at": null
    }
  ],
  "total": 1
}"#;

const DISABLE_KEY: &str = r#"curl -X DELETE https://api.socmate.yourcompany.com/api/admin/api-keys/k_abc123 \
  -H "Authorization: Bearer <admin_token>""#;

// From /work/shared/reference/002_8db175cc812d7f33.txt (API clients), verbatim.

const CREATE_CLIENT: &str = r#"curl -X POST https://api.socmate.yourcompany.com/api/admin/api-clients \
-H "Authorization: Bearer <admin_token>" \
-H "Content-Type: application/json" \
-d '{
"name": "XSOAR Production",
"description": "Palo Alto XSOAR integration for automated investigation",
"scopes": ["investigations:read", "investigations:write", "incidents:read"]
}'"#;

const CREATE_CLIENT_RESPONSE: &str = r#"{
"id": "6507f1f77bcf86cd799439011",
"client_id": "socmate-xsoar-production-abc123",
"client_secret": "generated-secret-value-shown-once",
"name": "XSOAR Production",
"scopes": ["investigations:read", "investigations:write", "incidents:read"],
"token_endpoint": "https://auth.socmate.yourcompany.com/oauth/token"
}"#;

const TOKEN: &str = r#"curl -X POST https://auth.socmate.yourcompany.com/oauth/token \
-d "grant_type=client_credentials" \
-d "client_id=socmate-xsoar-production-abc123" \
-d "client_secret=generated-secret-value""#;

const TOKEN_RESPONSE: &str = r#"{
"access_token": "eyJhbGciOiJSUzI1NiIs...",
"expires_in": 1800,
"token_type": "Bearer",
"scope": "investigations:read investigations:write incidents:read"
}"#;

const LIST_CLIENTS: &str = r#"curl -X GET "https://api.socmate.yourcompany.com/api/admin/api-clients?search=XSOAR" \
-H "Authorization: Bearer <admin_token>""#;

const LIST_CLIENTS_RESPONSE: &str = r#"{
"clients": [
{
"id": "6507f1f77bcf86cd799439011",
"client_id": "socmate-xsoar-production-abc123",
"name": "XSOAR Production",
"description": "Palo Alto XSOAR integration for automated investigation",
"status": "active",
"scopes": ["investigations:read", "investigations:write", "incidents:read"],
"created_by": "admin-user-id",
"created_at": "2026-03-27T00:00:00Z",
"last_used_at": "2026-03-27T10:30:00Z"
}
],
"total": 1
}"#;

const REGENERATE_SECRET: &str = r#"curl -X POST https://api.socmate.yourcompany.com/api/admin/api-clients/socmate-xsoar-production-abc123/regenerate-secret \
-H "Authorization: Bearer <admin_token>""#;

const REGENERATE_SECRET_RESPONSE: &str = r#"{
"client_id": "socmate-xsoar-production-abc123",
"client_secret": "new-secret-value-shown-once"
}"#;

const DISABLE_CLIENT: &str = r#"curl -X DELETE https://api.socmate.yourcompany.com/api/admin/api-clients/socmate-xsoar-production-abc123 \
-H "Authorization: Bearer <admin_token>""#;

async fn the_reference_api_key_examples_run_as_written(backend: Backend) {
    let server = TestServer::start(backend).await;
    let host = format!("http://{}", server.http_addr);
    let admin = server.admin_key.clone();
    let with = |command: &str, key_id: &str| {
        command
            .replace("https://api.socmate.yourcompany.com", &host)
            .replace("<admin_token>", &admin)
            .replace("k_abc123", key_id)
    };

    let (status, created) = curl(&with(CREATE_KEY, "k_abc123")).await;
    assert_eq!(status, 201, "create: {created}");
    same_shape("create", &json(CREATE_KEY_RESPONSE), &created);
    same_values("create", &json(CREATE_KEY_RESPONSE), &created, &["name", "scopes", "expires_at", "header_name"]);
    let key_id = text(&created, "key_id");
    let api_key = text(&created, "api_key");

    // The reference lists a key that has been used: use it once and wait for the batched write
    // of `last_used_at` (every second in tests).
    assert_eq!(server.reason(&api_key, &["incidents:read"]).await, pb::DecisionReason::Allowed);
    let mut listed = Value::Null;
    for _ in 0..50 {
        let (status, answer) = curl(&with(LIST_KEYS, &key_id)).await;
        assert_eq!(status, 200, "list: {answer}");
        listed = answer;
        if listed["api_keys"][0]["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    same_shape("list", &json(LIST_KEYS_RESPONSE), &listed);
    let reference = json(LIST_KEYS_RESPONSE);
    same_values("list", &reference, &listed, &["total"]);
    let fields = [
        "name",
        "description",
        "status",
        "scopes",
        "created_at",
        "updated_at",
        "expires_at",
        "last_rotated_at",
        "previous_key_expires_at",
    ];
    same_values("list api_keys[0]", &reference["api_keys"][0], &listed["api_keys"][0], &fields);
    assert!(!listed.to_string().contains(&api_key), "the list never shows the key: {listed}");

    let (status, rotated) = curl(&with(ROTATE_KEY, &key_id)).await;
    assert_eq!(status, 200, "rotate: {rotated}");
    same_shape("rotate", &json(ROTATE_KEY_RESPONSE), &rotated);
    same_values("rotate", &json(ROTATE_KEY_RESPONSE), &rotated, &["expires_at", "previous_key_expires_at"]);
    assert_eq!(rotated["key_id"].as_str(), Some(key_id.as_str()), "a rotation keeps the key id");
    let new_key = text(&rotated, "api_key");
    for key in [&api_key, &new_key] {
        assert_eq!(server.reason(key, &["incidents:read"]).await, pb::DecisionReason::Allowed, "grace period");
    }

    // The reference shows no answer for DELETE; keygate's is 204, empty.
    let (status, body) = curl_raw(&with(DISABLE_KEY, &key_id)).await;
    assert_eq!((status, body.as_str()), (204, ""), "disable");
    for key in [&api_key, &new_key] {
        assert_ne!(server.reason(key, &["incidents:read"]).await, pb::DecisionReason::Allowed, "disabled");
    }
    // "The key cannot be rotated after disabling."
    let (status, refused) = curl(&with(ROTATE_KEY, &key_id)).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("conflict")), "rotate after disable: {refused}");
    server.stop().await;
}

async fn the_reference_api_client_examples_run_as_written(backend: Backend) {
    let server = TestServer::start(backend).await;
    let host = format!("http://{}", server.http_addr);
    let admin = server.admin_key.clone();
    let with = |command: &str, client_id: &str, secret: &str| {
        command
            .replace("https://api.socmate.yourcompany.com", &host)
            .replace("https://auth.socmate.yourcompany.com", &host)
            .replace("<admin_token>", &admin)
            .replace("socmate-xsoar-production-abc123", client_id)
            .replace("generated-secret-value", secret)
    };
    let none = "socmate-xsoar-production-abc123";

    let (status, created) = curl(&with(CREATE_CLIENT, none, "")).await;
    assert_eq!(status, 201, "create: {created}");
    same_shape("create", &json(CREATE_CLIENT_RESPONSE), &created);
    same_values("create", &json(CREATE_CLIENT_RESPONSE), &created, &["name", "scopes"]);
    assert_eq!(created["token_endpoint"].as_str(), Some(format!("{host}/oauth/token").as_str()), "{created}");
    let client_id = text(&created, "client_id");
    let secret = text(&created, "client_secret");

    let (status, token) = curl(&with(TOKEN, &client_id, &secret)).await;
    assert_eq!(status, 200, "token: {token}");
    same_shape("token", &json(TOKEN_RESPONSE), &token);
    same_values("token", &json(TOKEN_RESPONSE), &token, &["expires_in", "token_type", "scope"]);
    assert_eq!(text(&token, "access_token").split('.').count(), 3, "a JWT: {token}");

    // The token request was the client's use: wait for the batched `last_used_at`.
    let mut listed = Value::Null;
    for _ in 0..50 {
        let (status, answer) = curl(&with(LIST_CLIENTS, &client_id, &secret)).await;
        assert_eq!(status, 200, "list: {answer}");
        listed = answer;
        if listed["clients"][0]["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reference = json(LIST_CLIENTS_RESPONSE);
    same_shape("list", &reference, &listed);
    same_values("list", &reference, &listed, &["total"]);
    let fields = ["name", "description", "status", "scopes", "created_at"];
    same_values("list clients[0]", &reference["clients"][0], &listed["clients"][0], &fields);
    assert!(!listed.to_string().contains(&secret), "the list never shows the secret: {listed}");

    let (status, regenerated) = curl(&with(REGENERATE_SECRET, &client_id, &secret)).await;
    assert_eq!(status, 200, "regenerate: {regenerated}");
    same_shape("regenerate", &json(REGENERATE_SECRET_RESPONSE), &regenerated);
    assert_eq!(regenerated["client_id"].as_str(), Some(client_id.as_str()));
    let new_secret = text(&regenerated, "client_secret");
    // "Regenerating the secret immediately invalidates the old secret."
    let (status, refused) = curl(&with(TOKEN, &client_id, &secret)).await;
    assert_eq!(status, 401, "the old secret: {refused}");
    let (status, token) = curl(&with(TOKEN, &client_id, &new_secret)).await;
    assert_eq!(status, 200, "the new secret: {token}");

    // The reference's "Response:" for DELETE is empty; keygate's is 204.
    let (status, body) = curl_raw(&with(DISABLE_CLIENT, &client_id, &new_secret)).await;
    assert_eq!((status, body.as_str()), (204, ""), "disable");
    // "Disabled clients: Cannot obtain new tokens". The reference gives no status; RFC 6749 §5.2
    // has keygate answer 400 `unauthorized_client` (the secret is right, the client may not).
    let (status, refused) = curl(&with(TOKEN, &client_id, &new_secret)).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("unauthorized_client")), "a disabled client: {refused}");
    assert!(refused.get("access_token").is_none(), "{refused}");
    server.stop().await;
}

/// Runs `command` in a shell, its curl the real one; the status and the answer as JSON.
async fn curl(command: &str) -> (u16, Value) {
    let (status, body) = curl_raw(command).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("a JSON answer ({e}) to\n{command}\n{body}"));
    (status, value)
}

/// Runs `command` in a shell as written, with curl's output options added after it (silent, and
/// the status on a last line of its own); the status and the body.
async fn curl_raw(command: &str) -> (u16, String) {
    assert!(Path::new(CURL).exists(), "{CURL} is missing: the reference's examples need curl (Debian's base has it)");
    let script = format!("{command} \"$@\"");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/bin/sh")
            .args(["-c", &script, "sh", "--silent", "--show-error", "--write-out", "\n%{http_code}"])
            // `curl` in the examples is the real one, and no proxy is on the way to 127.0.0.1.
            .env("PATH", "/usr/bin:/bin")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env("NO_PROXY", "*")
            .output()
    })
    .await
    .expect("join")
    .expect("sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl failed:\n{command}\n{}", String::from_utf8_lossy(&out.stderr));
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    (status.trim().parse().unwrap_or_else(|_| panic!("a status from curl: {stdout}")), body.to_owned())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("the reference's example is JSON")
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_else(|| panic!("{field} in {value}")).to_owned()
}

/// Every field of the reference's example is in keygate's answer, with the same JSON type; the
/// first element of an array of objects is compared the same way. keygate may answer more.
fn same_shape(call: &str, reference: &Value, actual: &Value) {
    let (Some(reference), Some(answer)) = (reference.as_object(), actual.as_object()) else {
        panic!("{call}: keygate's answer is {}, the reference's an object: {actual}", kind(actual));
    };
    for (field, example) in reference {
        let got = answer.get(field).unwrap_or_else(|| panic!("{call}: no `{field}` in keygate's answer: {actual}"));
        assert_eq!(kind(got), kind(example), "{call}: `{field}` in keygate's answer and in the reference: {actual}");
        if let (Some(Value::Object(_)), Some(first)) =
            (example.as_array().and_then(|a| a.first()), got.as_array().and_then(|a| a.first()))
        {
            same_shape(&format!("{call} {field}[0]"), &example[0], first);
        }
    }
}

/// `fields` have the reference's own values in keygate's answer.
fn same_values(call: &str, reference: &Value, actual: &Value, fields: &[&str]) {
    for field in fields {
        assert_eq!(actual[*field], reference[*field], "{call}: `{field}` as the reference has it: {actual}");
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
