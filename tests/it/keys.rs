//! The API-key lifecycle over gRPC: create, authorize, authenticate failures, expiry, rotation
//! with a grace period, update, disable, list; each against SQLite and PostgreSQL.

use keygate::proto::keygate_v1 as pb;
use keygate_core::credentials::api_key as credential;
use pb::DecisionReason as R;
use tonic::{Code, Request};

use crate::backend_tests;
use crate::support::{Backend, TestServer, as_admin, bearer, error_reason, expect_code, violated_fields};

backend_tests!(
    authorize_decides_by_scope,
    authenticate_reports_why,
    expiry_follows_the_clock,
    rotation_keeps_the_old_secret_for_the_grace_period,
    update_and_disable,
    list_searches_and_pages,
    invalid_requests_name_their_fields,
    last_use_is_recorded_in_batches,
);

async fn authorize_decides_by_scope(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, key_id) =
        server.create_key(&server.admin_key, "SOAR Integration", &["investigations:read", "incidents:read"]).await;

    let allowed = server.authorize(&key, &["investigations:read", "incidents:read"]).await;
    let decision = allowed.decision.expect("decision");
    assert!(decision.allowed);
    assert_eq!(decision.reason(), R::Allowed);
    assert_eq!(decision.http_status, 200);
    let principal = allowed.principal.expect("principal");
    assert_eq!(principal.key_id, key_id);
    assert_eq!(principal.organization, "platform");
    assert_eq!(principal.name, "SOAR Integration");
    assert!(!allowed.request_id.is_empty());

    let denied = server.authorize(&key, &["investigations:write"]).await;
    let decision = denied.decision.expect("decision");
    assert!(!decision.allowed);
    assert_eq!(decision.reason(), R::InsufficientScope);
    assert_eq!(decision.http_status, 403);
    assert_eq!(decision.error_code, "insufficient_scope");
    assert_eq!(decision.message, "API key does not have the required scope: investigations:write");
    assert_eq!(denied.principal.expect("principal of a valid key").key_id, key_id);

    // The same key in X-API-Key, and a caller's request id echoed back.
    let mut request = Request::new(pb::AuthorizeRequest {
        cost: None,
        credentials: Some(pb::Credentials { authorization: String::new(), api_key: key.clone() }),
        required_scopes: vec!["incidents:read".into()],
        organization: String::new(),
    });
    request.metadata_mut().insert("x-request-id", "req-42".parse().expect("ascii"));
    let response = server.auth().await.authorize(request).await.expect("authorize");
    assert_eq!(response.metadata().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-42"));
    let response = response.into_inner();
    assert_eq!(response.request_id, "req-42");
    assert!(response.decision.expect("decision").allowed);

    // A parent scope grants its actions; `*` grants everything.
    let (parent, _) = server.create_key(&server.admin_key, "parent", &["investigations"]).await;
    assert_eq!(server.reason(&parent, &["investigations:write", "investigations:read"]).await, R::Allowed);
    assert_eq!(server.reason(&parent, &["graph:read"]).await, R::InsufficientScope);
    assert_eq!(server.reason(&server.admin_key, &["graph:read", "admin:keys:write"]).await, R::Allowed);

    // Organization pinning.
    let mut wrong_org = pb::AuthorizeRequest {
        cost: None,
        credentials: Some(bearer(&key)),
        required_scopes: vec!["incidents:read".into()],
        organization: "someone-else".into(),
    };
    let decision = server.auth().await.authorize(wrong_org.clone()).await.expect("ok").into_inner().decision;
    assert_eq!(decision.expect("decision").reason(), R::OrganizationMismatch);
    wrong_org.organization = "platform".into();
    let decision = server.auth().await.authorize(wrong_org).await.expect("ok").into_inner().decision;
    assert!(decision.expect("decision").allowed);
    server.stop().await;
}

async fn authenticate_reports_why(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, key_id) = server.create_key(&server.admin_key, "ci", &["search:read"]).await;
    let mut auth = server.auth().await;

    let ok = auth.authenticate(pb::AuthenticateRequest { credentials: Some(bearer(&key)) }).await.expect("valid");
    let principal = ok.into_inner().principal.expect("principal");
    assert_eq!(principal.key_id, key_id);
    assert_eq!(principal.r#type(), pb::principal::Type::ApiKey);
    assert_eq!(principal.scopes, vec!["search:read".to_owned()]);

    let wrong_secret = credential::generate_for("sk_live_", &key_id).full;
    let unknown = credential::generate("sk_live_").full;
    let mut tampered = key.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let cases = [
        (pb::Credentials::default(), "MISSING_API_KEY"),
        (bearer(""), "MISSING_API_KEY"),
        (pb::Credentials { authorization: format!("Basic {key}"), api_key: String::new() }, "INVALID_API_KEY"),
        (bearer("sk_live_nonsense"), "INVALID_API_KEY"),
        (bearer(&tampered), "INVALID_API_KEY"),
        (bearer(&unknown), "INVALID_API_KEY"),
        (bearer(&wrong_secret), "INVALID_API_KEY"),
    ];
    for (credentials, reason) in cases {
        let mut request = Request::new(pb::AuthenticateRequest { credentials: Some(credentials.clone()) });
        request.metadata_mut().insert("x-request-id", "req-7".parse().expect("ascii"));
        let status = expect_code(auth.authenticate(request).await, Code::Unauthenticated);
        assert_eq!(error_reason(&status), reason, "{credentials:?}");
        assert_eq!(status.metadata().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-7"));
        assert!(!status.message().contains(&key), "the message must not echo the key");
    }

    // Authorize turns the same failures into decisions with the reference's codes.
    let response = server.authorize("", &["search:read"]).await;
    let decision = response.decision.expect("decision");
    assert_eq!(
        (decision.reason(), decision.http_status, decision.error_code.as_str()),
        (R::MissingApiKey, 401, "missing_api_key")
    );
    let decision = server.authorize(&wrong_secret, &["search:read"]).await.decision.expect("decision");
    assert_eq!(
        (decision.reason(), decision.http_status, decision.error_code.as_str()),
        (R::InvalidApiKey, 401, "invalid_api_key")
    );
    server.stop().await;
}

async fn expiry_follows_the_clock(backend: Backend) {
    let server = TestServer::start(backend).await;
    let request = pb::CreateApiKeyRequest {
        name: "short".into(),
        scopes: vec!["graph:read".into()],
        expires_in_days: Some(30),
        ..Default::default()
    };
    let created = server.admin().await.create_api_key(as_admin(request, &server.admin_key)).await.expect("create");
    let created = created.into_inner();
    let view = created.key.expect("view");
    assert_eq!(view.expires_at.expect("expiry").seconds - view.created_at.expect("created").seconds, 30 * 86_400);
    let (default_key, _) = server.create_key(&server.admin_key, "default expiry", &["graph:read"]).await;

    server.advance_days(29);
    assert_eq!(server.reason(&created.api_key, &["graph:read"]).await, R::Allowed);
    server.advance_days(1);
    let decision = server.authorize(&created.api_key, &["graph:read"]).await.decision.expect("decision");
    assert_eq!(
        (decision.reason(), decision.http_status, decision.error_code.as_str()),
        (R::ExpiredApiKey, 401, "expired_api_key")
    );
    let expired = server
        .admin()
        .await
        .get_api_key(as_admin(pb::GetApiKeyRequest { key_id: view.key_id }, &server.admin_key))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(expired.status(), pb::api_key::Status::Expired, "status is derived when read");
    // The configured default (365 days) applies when expires_in_days is unset.
    assert_eq!(server.reason(&default_key, &["graph:read"]).await, R::Allowed);
    server.advance_days(335);
    assert_eq!(server.reason(&default_key, &["graph:read"]).await, R::ExpiredApiKey);
    server.stop().await;
}

async fn rotation_keeps_the_old_secret_for_the_grace_period(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (old, key_id) = server.create_key(&server.admin_key, "rotating", &["incidents:read"]).await;
    let mut admin = server.admin().await;

    let rotate = |grace: Option<i32>, expires: Option<i32>| pb::RotateApiKeyRequest {
        key_id: key_id.clone(),
        grace_period_days: grace,
        expires_in_days: expires,
    };
    let rotated = admin.rotate_api_key(as_admin(rotate(None, None), &server.admin_key)).await.expect("rotate");
    let rotated = rotated.into_inner();
    assert_eq!(rotated.key_id, key_id, "rotation keeps the key id");
    assert_ne!(rotated.api_key, old);
    let grace_end = rotated.previous_key_expires_at.expect("grace end").seconds;
    assert_eq!(grace_end - crate::support::start_time().timestamp(), 7 * 86_400, "default grace is 7 days");
    let view = rotated.key.expect("view");
    assert!(view.last_rotated_at.is_some());
    assert_eq!(view.key_prefix, format!("sk_live_{key_id}"));

    assert_eq!(server.reason(&old, &["incidents:read"]).await, R::Allowed);
    assert_eq!(server.reason(&rotated.api_key, &["incidents:read"]).await, R::Allowed);
    server.advance_days(6);
    assert_eq!(server.reason(&old, &["incidents:read"]).await, R::Allowed);
    server.advance_days(1);
    assert_eq!(server.reason(&old, &["incidents:read"]).await, R::ExpiredApiKey, "grace over");
    assert_eq!(server.reason(&rotated.api_key, &["incidents:read"]).await, R::Allowed);

    // Grace 0: the old secret dies now. A new expiry can be set.
    let second = admin.rotate_api_key(as_admin(rotate(Some(0), Some(10)), &server.admin_key)).await.expect("rotate");
    let second = second.into_inner();
    assert!(second.previous_key_expires_at.is_none());
    assert_eq!(server.reason(&rotated.api_key, &["incidents:read"]).await, R::ExpiredApiKey);
    assert_eq!(server.reason(&second.api_key, &["incidents:read"]).await, R::Allowed);
    server.advance_days(10);
    assert_eq!(server.reason(&second.api_key, &["incidents:read"]).await, R::ExpiredApiKey, "new expiry applies");

    // An expired key needs a new expiry to be rotated.
    let status = expect_code(
        admin.rotate_api_key(as_admin(rotate(None, None), &server.admin_key)).await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("expires_in_days"), "{status:?}");
    let third = admin.rotate_api_key(as_admin(rotate(Some(3), Some(30)), &server.admin_key)).await.expect("rotate");
    let third = third.into_inner();
    assert_eq!(server.reason(&third.api_key, &["incidents:read"]).await, R::Allowed);

    // Disabling kills the current and the grace-period secret at once; then no more rotations.
    let fourth = admin.rotate_api_key(as_admin(rotate(Some(5), None), &server.admin_key)).await.expect("rotate");
    let fourth = fourth.into_inner();
    assert_eq!(server.reason(&third.api_key, &["incidents:read"]).await, R::Allowed, "in grace");
    admin
        .disable_api_key(as_admin(pb::DisableApiKeyRequest { key_id: key_id.clone() }, &server.admin_key))
        .await
        .expect("disable");
    assert_eq!(server.reason(&third.api_key, &["incidents:read"]).await, R::ExpiredApiKey);
    assert_eq!(server.reason(&fourth.api_key, &["incidents:read"]).await, R::ExpiredApiKey);
    let status = expect_code(
        admin.rotate_api_key(as_admin(rotate(None, None), &server.admin_key)).await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("disabled"), "{status:?}");
    server.stop().await;
}

async fn update_and_disable(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, key_id) = server.create_key(&server.admin_key, "before", &["search:read"]).await;
    let mut admin = server.admin().await;

    let update = pb::UpdateApiKeyRequest {
        key_id: key_id.clone(),
        name: Some("after".into()),
        description: Some("now with graph".into()),
        scopes: Some(pb::ScopeList { values: vec!["search:read".into(), "graph:read".into()] }),
        ..Default::default()
    };
    let updated = admin.update_api_key(as_admin(update, &server.admin_key)).await.expect("update").into_inner();
    assert_eq!(updated.name, "after");
    assert_eq!(updated.description, "now with graph");
    assert_eq!(updated.scopes, vec!["search:read".to_owned(), "graph:read".to_owned()]);
    assert_eq!(server.reason(&key, &["graph:read"]).await, R::Allowed, "new scope takes effect");

    // Only the set fields change.
    let rename = pb::UpdateApiKeyRequest { key_id: key_id.clone(), name: Some("renamed".into()), ..Default::default() };
    let renamed = admin.update_api_key(as_admin(rename, &server.admin_key)).await.expect("update").into_inner();
    assert_eq!((renamed.name.as_str(), renamed.description.as_str()), ("renamed", "now with graph"));
    assert_eq!(renamed.scopes.len(), 2);

    let disabled = admin
        .disable_api_key(as_admin(pb::DisableApiKeyRequest { key_id: key_id.clone() }, &server.admin_key))
        .await
        .expect("disable")
        .into_inner();
    assert_eq!(disabled.status(), pb::api_key::Status::Disabled);
    assert!(disabled.disabled_at.is_some());
    let response = server.authorize(&key, &["search:read"]).await.decision.expect("decision");
    assert_eq!(response.reason(), R::ExpiredApiKey);
    assert_eq!(response.message, "API key has been disabled");
    let again =
        admin.disable_api_key(as_admin(pb::DisableApiKeyRequest { key_id: key_id.clone() }, &server.admin_key)).await;
    assert_eq!(again.expect("disabling twice is harmless").into_inner().status(), pb::api_key::Status::Disabled);

    let update = pb::UpdateApiKeyRequest { key_id, name: Some("x".into()), ..Default::default() };
    expect_code(admin.update_api_key(as_admin(update, &server.admin_key)).await, Code::FailedPrecondition);
    server.stop().await;
}

async fn list_searches_and_pages(backend: Backend) {
    let server = TestServer::start(backend).await;
    let names = [
        ("SOAR Integration", "API key for Palo Alto XSOAR integration"),
        ("CI Pipeline", "builds"),
        ("Nightly report", "runs the soar export"),
        ("100% literal_name", ""),
        ("Ünïcode Kéy", "ÉTÉ"),
    ];
    let mut secrets = Vec::new();
    for (name, description) in names {
        server.clock.advance(chrono::Duration::minutes(1));
        let request = pb::CreateApiKeyRequest {
            name: name.into(),
            description: description.into(),
            scopes: vec!["search:read".into()],
            ..Default::default()
        };
        let created = server.admin().await.create_api_key(as_admin(request, &server.admin_key)).await.expect("create");
        secrets.push(created.into_inner().api_key);
    }
    let mut admin = server.admin().await;
    let list = |search: &str, offset: i32, limit: i32| {
        as_admin(
            pb::ListApiKeysRequest { search: search.into(), offset, limit, ..Default::default() },
            &server.admin_key,
        )
    };

    let all = admin.list_api_keys(list("", 0, 0)).await.expect("list").into_inner();
    assert_eq!(all.total, 6, "five keys and the bootstrap key");
    let listed: Vec<&str> = all.api_keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        listed[..5],
        ["Ünïcode Kéy", "100% literal_name", "Nightly report", "CI Pipeline", "SOAR Integration"],
        "newest first"
    );

    let soar = admin.list_api_keys(list("soar", 0, 0)).await.expect("list").into_inner();
    assert_eq!(soar.total, 2, "name and description, any case");
    let unicode = admin.list_api_keys(list("été", 0, 0)).await.expect("list").into_inner();
    assert_eq!(unicode.total, 1);
    let literal = admin.list_api_keys(list("0%", 0, 0)).await.expect("list").into_inner();
    assert_eq!(literal.total, 1, "% is matched literally");
    let underscore = admin.list_api_keys(list("l_n", 0, 0)).await.expect("list").into_inner();
    assert_eq!(underscore.total, 1, "_ is matched literally");
    assert_eq!(admin.list_api_keys(list("e_o", 0, 0)).await.expect("list").into_inner().total, 0);

    let page = admin.list_api_keys(list("", 2, 2)).await.expect("list").into_inner();
    assert_eq!(page.total, 6);
    let names: Vec<&str> = page.api_keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["Nightly report", "CI Pipeline"]);

    let status = expect_code(admin.list_api_keys(list("", 0, 101)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["limit"]);
    let status = expect_code(admin.list_api_keys(list("", -1, 5)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["offset"]);
    assert_eq!(admin.list_api_keys(list("", 0, 100)).await.expect("100 is allowed").into_inner().api_keys.len(), 6);

    let text = format!("{all:?}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a list never shows a full key");
        let tail = secret.rsplit('_').next().expect("secret part");
        assert!(!text.contains(tail), "nor its secret part");
    }
    assert!(!text.contains("argon2"), "nor a hash");
    server.stop().await;
}

async fn invalid_requests_name_their_fields(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let request = pb::CreateApiKeyRequest {
        limits: None,
        name: " ".into(),
        description: "x".repeat(1001),
        scopes: vec!["investigations:read".into(), "nope:nothing".into(), "Not A Scope".into()],
        expires_in_days: Some(0),
        organization: "Bad Slug".into(),
        labels: [("Bad Name".to_owned(), "x".to_owned())].into(),
    };
    let status = expect_code(admin.create_api_key(as_admin(request, &server.admin_key)).await, Code::InvalidArgument);
    let fields = violated_fields(&status);
    for field in ["name", "description", "scopes", "scopes[2]", "expires_in_days", "organization", "labels.Bad Name"] {
        assert!(fields.iter().any(|f| f == field), "{field} not named in {fields:?}");
    }
    assert!(status.message().contains("unknown scopes: nope:nothing"), "{}", status.message());

    let no_scopes = pb::CreateApiKeyRequest { name: "n".into(), ..Default::default() };
    let status = expect_code(admin.create_api_key(as_admin(no_scopes, &server.admin_key)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["scopes"]);

    let too_long = pb::CreateApiKeyRequest {
        name: "n".into(),
        scopes: vec!["graph:read".into()],
        expires_in_days: Some(100_000),
        ..Default::default()
    };
    let status = expect_code(admin.create_api_key(as_admin(too_long, &server.admin_key)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["expires_in_days"]);

    let get = pb::GetApiKeyRequest { key_id: "not a key id".into() };
    let status = expect_code(admin.get_api_key(as_admin(get, &server.admin_key)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["key_id"]);
    let get = pb::GetApiKeyRequest { key_id: "k_000000000000".into() };
    expect_code(admin.get_api_key(as_admin(get, &server.admin_key)).await, Code::NotFound);

    let (_, key_id) = server.create_key(&server.admin_key, "r", &["graph:read"]).await;
    let rotate =
        pb::RotateApiKeyRequest { key_id: key_id.clone(), grace_period_days: Some(-1), expires_in_days: Some(0) };
    let status = expect_code(admin.rotate_api_key(as_admin(rotate, &server.admin_key)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["grace_period_days", "expires_in_days"]);
    let empty = pb::UpdateApiKeyRequest { key_id, ..Default::default() };
    expect_code(admin.update_api_key(as_admin(empty, &server.admin_key)).await, Code::InvalidArgument);

    // A key pasted into the wrong field is not echoed back.
    let pasted =
        pb::CreateApiKeyRequest { name: "n".into(), scopes: vec![server.admin_key.clone()], ..Default::default() };
    let status = expect_code(admin.create_api_key(as_admin(pasted, &server.admin_key)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["scopes[0]"]);
    assert!(!format!("{status:?}").contains(&server.admin_key[10..]), "{status:?}");

    let everything = pb::AuthorizeRequest {
        cost: None,
        credentials: Some(bearer(&server.admin_key)),
        required_scopes: vec![],
        organization: String::new(),
    };
    let status = expect_code(server.auth().await.authorize(everything).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["required_scopes"], "an empty list must not allow everything");

    let authorize = pb::AuthorizeRequest {
        cost: None,
        credentials: Some(bearer(&server.admin_key)),
        required_scopes: vec!["investigatons:read".into(), "".into()],
        organization: String::new(),
    };
    let status = expect_code(server.auth().await.authorize(authorize).await, Code::InvalidArgument);
    let fields = violated_fields(&status);
    assert!(
        fields.contains(&"required_scopes".to_owned()) && fields.contains(&"required_scopes[1]".to_owned()),
        "{fields:?}"
    );
    server.stop().await;
}

async fn last_use_is_recorded_in_batches(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, key_id) = server.create_key(&server.admin_key, "used", &["graph:read"]).await;
    let get = || as_admin(pb::GetApiKeyRequest { key_id: key_id.clone() }, &server.admin_key);
    let mut admin = server.admin().await;
    assert!(admin.get_api_key(get()).await.expect("get").into_inner().last_used_at.is_none());

    server.advance_days(1);
    assert_eq!(server.reason(&key, &["graph:read"]).await, R::Allowed);
    let used_at = crate::support::start_time().timestamp() + 86_400;
    // Written by the flusher within its interval (1 s in tests): poll, bounded.
    let mut seen = None;
    for _ in 0..100 {
        seen = admin.get_api_key(get()).await.expect("get").into_inner().last_used_at;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen.expect("last_used_at written").seconds, used_at);
    server.stop().await;
}
