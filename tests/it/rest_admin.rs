//! The REST admin API over HTTP: the reference's key and client life cycles, its error shape
//! and status codes, the same rules as the gRPC admin RPCs, and the OpenAPI document; each
//! against SQLite and PostgreSQL.

use keygate::proto::keygate_v1 as pb;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::{Backend, TestServer};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

backend_tests!(
    keys_live_their_reference_life_cycle_over_rest,
    clients_and_errors_follow_the_reference,
    organizations_plans_and_the_audit_log_over_rest,
    labels_and_filters_narrow_lists_over_rest,
    usage_counts_requests_per_day_over_rest,
);

/// Sends `body` (when given) as JSON with the admin key; the status and the JSON answer.
async fn call(server: &TestServer, method: Method, path: &str, auth: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Client::new().request(method, server.url(path));
    if !auth.is_empty() {
        request = request.header("Authorization", format!("Bearer {auth}"));
    }
    if let Some(body) = body {
        request = request.header("Content-Type", "application/json").body(body.to_string());
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    assert!(response.headers().contains_key("x-request-id"), "{path}: every answer has a request id");
    let text = response.text().await.expect("body");
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("a JSON answer") };
    (status, value)
}

async fn keys_live_their_reference_life_cycle_over_rest(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    // The reference's create, as written.
    let body = json!({
        "name": "SOAR Integration",
        "description": "API key for Palo Alto XSOAR integration",
        "scopes": ["investigations:read", "investigations:write", "incidents:read"],
        "expires_in_days": 365
    });
    let (status, created) = call(&server, Method::POST, "/api/admin/api-keys", &admin, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for field in ["id", "key_id", "api_key", "name", "scopes", "expires_at", "header_name"] {
        assert!(created.get(field).is_some(), "create answers {field}: {created}");
    }
    assert_eq!(created["header_name"], "X-API-Key");
    let key_id = created["key_id"].as_str().expect("key id").to_owned();
    let api_key = created["api_key"].as_str().expect("key").to_owned();
    assert_eq!(server.reason(&api_key, &["investigations:read"]).await, pb::DecisionReason::Allowed);

    // The list: every field the reference lists, never the secret.
    let (status, listed) = call(&server, Method::GET, "/api/admin/api-keys?search=SOAR", &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["total"], 1, "{listed}");
    let listed_key = &listed["api_keys"][0];
    for field in [
        "id",
        "key_id",
        "key_prefix",
        "name",
        "description",
        "status",
        "scopes",
        "created_by",
        "created_at",
        "updated_at",
        "expires_at",
        "last_used_at",
        "last_rotated_at",
        "previous_key_expires_at",
    ] {
        assert!(listed_key.get(field).is_some(), "list answers {field}: {listed_key}");
    }
    assert_eq!(listed_key["status"], "active");
    assert!(!listed.to_string().contains(&api_key), "a list never shows the key");

    // Update, then the reference's rotation with its grace period: both secrets work.
    let patch = json!({"name": "SOAR", "limits": {"max_quota": 1000}});
    let (status, updated) =
        call(&server, Method::PATCH, &format!("/api/admin/api-keys/{key_id}"), &admin, Some(patch)).await;
    assert_eq!(
        (status, &updated["name"], &updated["limits"]["max_quota"]),
        (StatusCode::OK, &json!("SOAR"), &json!(1000))
    );
    // The key reads its own quota, as GetQuota answers it, at no cost.
    server.authorize(&api_key, &["incidents:read"]).await;
    let (status, quota) = call(&server, Method::GET, "/quota", &api_key, None).await;
    assert_eq!(status, StatusCode::OK, "{quota}");
    let request = pb::GetQuotaRequest { credentials: Some(crate::support::bearer(&api_key)) };
    let grpc = server.auth().await.get_quota(request).await.expect("GetQuota").into_inner();
    assert_eq!((&quota["quota"], &quota["max_quota"]), (&json!(grpc.quota), &json!(1000)), "{quota}");
    assert!(grpc.quota < 1000 && quota["next_window_refresh"].is_string(), "{quota}");
    let (_, again) = call(&server, Method::GET, "/quota", &api_key, None).await;
    assert_eq!(again["quota"], quota["quota"], "reading the quota costs none");
    let (status, error) = call(&server, Method::GET, "/quota", "", None).await;
    assert_eq!((status, &error["code"]), (StatusCode::UNAUTHORIZED, &json!("missing_api_key")), "{error}");
    let reset = json!({"limits": {"max_quota": null}});
    let (_, updated) =
        call(&server, Method::PATCH, &format!("/api/admin/api-keys/{key_id}"), &admin, Some(reset)).await;
    assert_eq!(updated["limits"]["max_quota"], Value::Null, "null returns a limit to the default: {updated}");
    let rotate = json!({"grace_period_days": 7, "expires_in_days": 365});
    let path = format!("/api/admin/api-keys/{key_id}/rotate");
    let (status, rotated) = call(&server, Method::POST, &path, &admin, Some(rotate)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(rotated["previous_key_expires_at"].is_string(), "{rotated}");
    let new_key = rotated["api_key"].as_str().expect("new key").to_owned();
    assert_eq!(server.reason(&new_key, &["incidents:read"]).await, pb::DecisionReason::Allowed);
    assert_eq!(server.reason(&api_key, &["incidents:read"]).await, pb::DecisionReason::Allowed);

    // Disable: 204, both secrets denied, and rotating it now is a conflict.
    let (status, _) = call(&server, Method::DELETE, &format!("/api/admin/api-keys/{key_id}"), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_ne!(server.reason(&new_key, &["incidents:read"]).await, pb::DecisionReason::Allowed);
    assert_ne!(server.reason(&api_key, &["incidents:read"]).await, pb::DecisionReason::Allowed);
    let (status, error) = call(&server, Method::POST, &path, &admin, None).await;
    assert_eq!((status, &error["code"]), (StatusCode::CONFLICT, &json!("conflict")), "{error}");
    let (_, got) = call(&server, Method::GET, &format!("/api/admin/api-keys/{key_id}"), &admin, None).await;
    assert_eq!(got["status"], "disabled");
    server.stop().await;
}

async fn clients_and_errors_follow_the_reference(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let body = json!({
        "name": "XSOAR Production",
        "description": "Palo Alto XSOAR integration for automated investigation",
        "scopes": ["investigations:read", "investigations:write", "incidents:read"]
    });
    let (status, created) = call(&server, Method::POST, "/api/admin/api-clients", &admin, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["token_endpoint"].as_str().unwrap_or_default().ends_with("/oauth/token"), "{created}");
    let client_id = created["client_id"].as_str().expect("client id").to_owned();
    let secret = created["client_secret"].as_str().expect("secret").to_owned();
    let (_, listed) = call(&server, Method::GET, "/api/admin/api-clients?search=XSOAR", &admin, None).await;
    assert_eq!((&listed["total"], &listed["clients"][0]["status"]), (&json!(1), &json!("active")), "{listed}");
    assert!(!listed.to_string().contains(&secret));
    let path = format!("/api/admin/api-clients/{client_id}/regenerate-secret");
    let (status, regenerated) = call(&server, Method::POST, &path, &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{regenerated}");
    assert_ne!(regenerated["client_secret"], json!(secret));
    let (status, _) = call(&server, Method::DELETE, &format!("/api/admin/api-clients/{client_id}"), &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // No credential: 401 with the reference's code and a request id.
    let (status, error) = call(&server, Method::GET, "/api/admin/api-keys", "", None).await;
    assert_eq!((status, &error["code"]), (StatusCode::UNAUTHORIZED, &json!("missing_api_key")), "{error}");
    assert!(!error["request_id"].as_str().unwrap_or_default().is_empty());
    // A body of the wrong shape: 422 naming every bad field at once.
    let bad = json!({"name": 7, "scopes": "incidents:read", "colour": "blue"});
    let (status, error) = call(&server, Method::POST, "/api/admin/api-keys", &admin, Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let fields: Vec<&str> =
        error["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    for field in ["name", "scopes", "colour"] {
        assert!(fields.contains(&field), "{field} named: {error}");
    }
    // A value the use case refuses: 400 naming it; a bad parameter: 400.
    let unknown_scope = json!({"name": "x", "scopes": ["nope:read"]});
    let (status, error) = call(&server, Method::POST, "/api/admin/api-keys", &admin, Some(unknown_scope)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["errors"].to_string().contains("scopes"), "{error}");
    let (status, error) = call(&server, Method::GET, "/api/admin/api-keys/not-a-key-id", &admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a malformed id, as over gRPC: {error}");
    let (status, error) = call(&server, Method::GET, "/api/admin/api-keys?limit=-1", &admin, None).await;
    assert_eq!((status, error["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")), "{error}");

    // The OpenAPI document: 3.1, every path served here.
    let text = reqwest::get(server.url("/api/openapi.json")).await.expect("get").text().await.expect("text");
    let document: Value = serde_json::from_str(&text).expect("json");
    assert!(document["openapi"].as_str().unwrap_or_default().starts_with("3.1"), "{}", document["openapi"]);
    for path in [
        "/api/admin/api-keys",
        "/api/admin/api-keys/{key_id}/rotate",
        "/api/admin/api-clients/{client_id}/regenerate-secret",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} documented");
    }
    for (schema, fields) in [
        ("CreateKey", ["name", "scopes"]),
        ("CreateClient", ["name", "scopes"]),
        ("CreateOrganization", ["slug", "name"]),
    ] {
        let required = &document["components"]["schemas"][schema]["required"];
        for field in fields {
            assert!(
                required.as_array().is_some_and(|r| r.contains(&json!(field))),
                "{schema}.{field} required: {required}"
            );
        }
    }
    server.stop().await;
}

async fn organizations_plans_and_the_audit_log_over_rest(backend: Backend) {
    let server = TestServer::start(backend).await;
    let root = server.admin_key.clone();
    let body = json!({"slug": "acme", "name": "Acme Corp", "plan": "pro"});
    let (status, org) = call(&server, Method::POST, "/api/admin/organizations", &root, Some(body)).await;
    assert_eq!(
        (status, &org["plan"], &org["max_active_keys"]),
        (StatusCode::CREATED, &json!("pro"), &json!(50)),
        "{org}"
    );
    let (status, again) =
        call(&server, Method::POST, "/api/admin/organizations", &root, Some(json!({"slug": "acme", "name": "x"})))
            .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let acme_admin =
        |name: &str| json!({"name": name, "scopes": ["admin"], "organization": "acme", "expires_in_days": 30});
    let (_, created) = call(&server, Method::POST, "/api/admin/api-keys", &root, Some(acme_admin("acme admin"))).await;
    let acme = created["api_key"].as_str().expect("acme's admin key").to_owned();
    for n in 0..2 {
        let (status, _) =
            call(&server, Method::POST, "/api/admin/api-keys", &root, Some(acme_admin(&format!("k{n}")))).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    // The plan goes down to free (3 keys): acme's 3 keys keep working, a fourth is a conflict.
    let (status, error) =
        call(&server, Method::PATCH, "/api/admin/organizations/acme", &acme, Some(json!({"plan": "free"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the platform changes plans: {error}");
    let (status, moved) =
        call(&server, Method::PATCH, "/api/admin/organizations/acme", &root, Some(json!({"plan": "free"}))).await;
    assert_eq!((status, &moved["max_active_keys"]), (StatusCode::OK, &json!(3)), "{moved}");
    let (status, own) = call(&server, Method::GET, "/api/admin/api-keys", &acme, None).await;
    assert_eq!((status, &own["total"]), (StatusCode::OK, &json!(3)), "keys over the new limit keep working");
    let (status, error) = call(&server, Method::POST, "/api/admin/api-keys", &root, Some(acme_admin("k3"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let (status, renamed) =
        call(&server, Method::PATCH, "/api/admin/organizations/acme", &acme, Some(json!({"name": "Acme Inc"}))).await;
    assert_eq!((status, &renamed["name"]), (StatusCode::OK, &json!("Acme Inc")), "{renamed}");
    let (status, error) =
        call(&server, Method::PATCH, "/api/admin/organizations/acme", &root, Some(json!({"plan": "gold"}))).await;
    assert_eq!((status, error["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("plan")), "{error}");
    let (status, listed) = call(&server, Method::GET, "/api/admin/organizations", &acme, None).await;
    assert_eq!((status, &listed["total"]), (StatusCode::OK, &json!(1)), "an organization admin sees its own: {listed}");
    let (status, _) = call(&server, Method::GET, "/api/admin/organizations/platform", &acme, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A client's update reaches its scopes.
    let client = json!({"name": "Exporter", "scopes": ["incidents:read", "investigations:read"]});
    let (_, created) = call(&server, Method::POST, "/api/admin/api-clients", &root, Some(client)).await;
    let client_id = created["client_id"].as_str().expect("client id").to_owned();
    let patch =
        json!({"description": "nightly", "scopes": ["incidents:read"], "limits": {"rate_limit_per_minute": 30}});
    let path = format!("/api/admin/api-clients/{client_id}");
    let (status, updated) = call(&server, Method::PATCH, &path, &root, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["scopes"], &updated["limits"]["rate_limit_per_minute"]),
        (&json!(["incidents:read"]), &json!(30))
    );

    // The audit log, filtered: acme's plan changes are the platform's acts.
    let (status, log) =
        call(&server, Method::GET, "/api/admin/audit-events?action=organization.update", &root, None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let outcomes: Vec<&str> =
        log["events"].as_array().expect("events").iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert_eq!(outcomes, vec!["INVALID_ARGUMENT", "success"], "newest first: {log}");
    let (_, own_log) =
        call(&server, Method::GET, "/api/admin/audit-events?action=organization.update", &acme, None).await;
    assert_eq!(own_log["total"], 2, "acme's refused plan change and its rename: {own_log}");
    let (status, error) =
        call(&server, Method::GET, "/api/admin/audit-events?start_time=yesterday&limit=x", &root, None).await;
    let fields: Vec<&str> =
        error["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!((status, fields), (StatusCode::BAD_REQUEST, vec!["start_time", "limit"]), "{error}");

    // An API key as the Basic user name (`curl -u KEY:`), here and for Authorize.
    let response =
        Client::new().get(server.url("/api/admin/api-keys")).basic_auth(&acme, Some("")).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let basic = format!("Basic {}", STANDARD.encode(format!("{acme}:")));
    let request = pb::AuthorizeRequest {
        credentials: Some(pb::Credentials { authorization: basic.clone(), api_key: String::new() }),
        required_scopes: vec!["admin".to_owned()],
        ..Default::default()
    };
    let answer = server.auth().await.authorize(request).await.expect("authorize").into_inner();
    assert_eq!(answer.decision.expect("decision").reason(), pb::DecisionReason::Allowed);
    let credentials = Some(pb::Credentials { authorization: basic.clone(), api_key: String::new() });
    let authenticated = server.auth().await.authenticate(pb::AuthenticateRequest { credentials }).await;
    assert!(authenticated.expect("authenticate").into_inner().principal.is_some(), "Authenticate takes Basic too");
    let response = Client::new()
        .get(server.url("/api/admin/api-keys"))
        .basic_auth(&acme, Some("a password"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "a password is refused, not ignored");

    // Paths and methods the API does not have: its error shape too.
    let (status, error) = call(&server, Method::GET, "/api/admin/nothing-here", &root, None).await;
    assert_eq!((status, &error["code"]), (StatusCode::NOT_FOUND, &json!("not_found")), "{error}");
    let (status, error) = call(&server, Method::PUT, "/api/admin/api-keys", &root, None).await;
    assert_eq!((status, &error["code"]), (StatusCode::METHOD_NOT_ALLOWED, &json!("method_not_allowed")), "{error}");
    server.stop().await;
}

async fn labels_and_filters_narrow_lists_over_rest(backend: Backend) {
    let server = TestServer::start(backend).await;
    let root = server.admin_key.clone();
    let make = |name: &str, days: u32, labels: Value| json!({"name": name, "scopes": ["incidents:read"], "expires_in_days": days, "labels": labels});
    let mut ids = std::collections::HashMap::new();
    for (name, days, labels) in [
        ("soar", 365, json!({"owner": "secops", "env": "prod"})),
        ("ci", 5, json!({"env": "ci"})),
        ("old", 365, json!({})),
    ] {
        let (status, created) =
            call(&server, Method::POST, "/api/admin/api-keys", &root, Some(make(name, days, labels))).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.insert(name, created["key_id"].as_str().expect("id").to_owned());
        if name == "soar" {
            assert_eq!(created["key"]["labels"], json!({"env": "prod", "owner": "secops"}), "{created}");
        }
    }
    let names = |listed: &Value| {
        let mut names: Vec<String> = listed["api_keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    let list = |query: &str| {
        let path = format!("/api/admin/api-keys?{query}");
        let server = &server;
        let root = root.clone();
        async move { call(server, Method::GET, &path, &root, None).await }
    };
    let (status, listed) = list("label=env%3Dprod").await;
    assert_eq!((status, names(&listed)), (StatusCode::OK, vec!["soar".to_owned()]), "{listed}");
    let (_, listed) = list("label=env=prod&label=owner=secops").await;
    assert_eq!(names(&listed), vec!["soar".to_owned()]);
    let (_, listed) = list("label=env=Prod").await;
    assert_eq!(listed["total"], 0, "label values match exactly, case included: {listed}");
    let (_, listed) = list("search=SECOPS").await;
    assert_eq!(names(&listed), vec!["soar".to_owned()], "search reaches label values");
    let (_, listed) = list("expiring_within_days=14").await;
    assert_eq!(names(&listed), vec!["ci".to_owned()], "{listed}");
    let (_, listed) = list(&format!("unused_since={}", "2020-01-01T00:00:00Z")).await;
    assert_eq!(listed["total"], 4, "nothing was used: the bootstrap key too: {listed}");

    // Relabel, disable, then the status filter.
    let path = format!("/api/admin/api-keys/{}", ids["old"]);
    let (status, relabelled) =
        call(&server, Method::PATCH, &path, &root, Some(json!({"labels": {"env": "prod"}}))).await;
    assert_eq!((status, &relabelled["labels"]), (StatusCode::OK, &json!({"env": "prod"})), "{relabelled}");
    let (_, listed) = list("label=env=prod").await;
    assert_eq!(names(&listed), vec!["old".to_owned(), "soar".to_owned()]);
    call(&server, Method::DELETE, &path, &root, None).await;
    let (_, listed) = list("status=disabled").await;
    assert_eq!(names(&listed), vec!["old".to_owned()]);
    let (_, listed) = list("status=active&label=env=prod").await;
    assert_eq!(names(&listed), vec!["soar".to_owned()]);

    // Every bad filter named at once; bad labels named by label.
    let (status, error) = list("status=gone&expiring_within_days=x&unused_since=soon&label=novalue").await;
    let fields: Vec<&str> =
        error["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    for field in ["status", "expiring_within_days", "unused_since", "label"] {
        assert!(fields.contains(&field), "{field} in {error}");
    }
    let (status, error) = call(
        &server,
        Method::POST,
        "/api/admin/api-keys",
        &root,
        Some(make("bad", 30, json!({"Env": "x", "ok": "a\"b"}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error.to_string().contains("labels.Env") && error.to_string().contains("labels.ok"), "{error}");
    let (status, error) = call(&server, Method::GET, "/api/admin/api-clients?status=expired", &root, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "clients never expire: {error}");
    server.stop().await;
}

async fn usage_counts_requests_per_day_over_rest(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let body = json!({"name": "counted", "scopes": ["incidents:read"], "limits": {"max_quota": 50}});
    let (_, created) = call(&server, Method::POST, "/api/admin/api-keys", &admin, Some(body)).await;
    let (key_id, api_key) = (created["key_id"].as_str().expect("id"), created["api_key"].as_str().expect("key"));
    for _ in 0..3 {
        assert_eq!(server.reason(api_key, &["incidents:read"]).await, pb::DecisionReason::Allowed);
    }
    // A restart flushes what the batched writer holds.
    let server = server.restart(&[]).await;
    let path = format!("/api/admin/api-keys/{key_id}/usage");
    let (status, usage) = call(&server, Method::GET, &path, &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let days = usage["days"].as_array().expect("days");
    assert_eq!(days.len(), 14, "{usage}");
    assert_eq!(days[13]["requests"], 3, "today's requests: {usage}");
    let today = keygate_core::ports::Clock::now(server.clock.as_ref()).date_naive();
    assert_eq!(days[13]["day"], today.to_string());
    assert_eq!((usage["quota"]["max_quota"].as_u64(), usage["quota"]["quota"].as_u64()), (Some(50), Some(47)));

    let body = json!({"name": "counted client", "scopes": ["incidents:read"]});
    let (_, client) = call(&server, Method::POST, "/api/admin/api-clients", &admin, Some(body)).await;
    let client_id = client["client_id"].as_str().expect("client id");
    let (status, usage) =
        call(&server, Method::GET, &format!("/api/admin/api-clients/{client_id}/usage"), &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["days"][13]["requests"], 0, "no token yet");
    assert_eq!(usage["quota"]["unlimited"], true);
    let (status, _) = call(&server, Method::GET, "/api/admin/api-keys/k_000000000000/usage", &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(&server, Method::GET, "/api/admin/api-keys/nope/usage", &admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    server.stop().await;
}
