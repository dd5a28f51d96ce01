//! The audit log: every admin change leaves one entry (who, what, when, from where, outcome),
//! refusals of admins too; `ListAuditEvents` filters, pages, needs its scope and stays within the
//! caller's organization; no entry holds a secret; a flood of calls by a credential that is no
//! admin adds no entry, only counts; a caller's request id never passes for keygate's. On both
//! backends.

use keygate::proto::keygate_v1 as pb;
use tonic::{Code, Request};

use crate::backend_tests;
use crate::metrics::sample;
use crate::secrets::secret_parts;
use crate::support::{Backend, TestServer, as_admin, bearer, expect_code, start_time, violated_fields};

backend_tests!(
    every_change_is_recorded_once,
    listing_filters_pages_and_stays_in_the_organization,
    refusals_are_recorded_and_secrets_never,
    refusals_of_non_admins_are_counted_not_stored,
    callers_request_ids_cannot_pass_for_keygates,
);

/// The response's `x-request-id`.
fn response_id(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata.get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id").to_owned()
}

/// `keygate_admin_refusals_total{reason}` from `/metrics`; 0 before the first.
async fn refusals(server: &TestServer, reason: &str) -> f64 {
    let text = reqwest::get(server.url("/metrics")).await.expect("scrape").text().await.expect("text");
    sample(&text, &format!("keygate_admin_refusals_total{{reason=\"{reason}\"}}")).unwrap_or(0.0)
}

/// An admin request with the caller's key and an `x-request-id`.
fn traced<T>(message: T, key: &str, request_id: &str) -> Request<T> {
    let mut request = as_admin(message, key);
    request.metadata_mut().insert("x-request-id", request_id.parse().expect("ascii"));
    request
}

/// The key id behind a full key.
async fn key_id_of(server: &TestServer, key: &str) -> String {
    let request = pb::AuthenticateRequest { credentials: Some(bearer(key)) };
    let response = server.auth().await.authenticate(request).await.expect("authenticates");
    response.into_inner().principal.expect("principal").key_id
}

async fn list(server: &TestServer, key: &str, request: pb::ListAuditEventsRequest) -> pb::ListAuditEventsResponse {
    server.admin().await.list_audit_events(as_admin(request, key)).await.expect("list audit events").into_inner()
}

fn all_of(organization: &str) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest { organization: organization.into(), limit: 100, ..Default::default() }
}

async fn create_key_in(server: &TestServer, organization: &str, name: &str, scopes: &[&str]) -> (String, String) {
    let request = pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        organization: organization.into(),
        ..Default::default()
    };
    let created = server.admin().await.create_api_key(as_admin(request, &server.admin_key)).await.expect("create");
    let created = created.into_inner();
    (created.api_key, created.key.expect("view").key_id)
}

async fn create_org(server: &TestServer, slug: &str, request_id: &str) {
    let request = pb::CreateOrganizationRequest { slug: slug.into(), name: slug.into(), plan: "pro".into() };
    server.admin().await.create_organization(traced(request, &server.admin_key, request_id)).await.expect("org");
}

async fn every_change_is_recorded_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let key = &server.admin_key;
    let admin_id = key_id_of(&server, key).await;

    create_org(&server, "acme", "req-org").await;
    let create = pb::CreateApiKeyRequest { name: "ci".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let created = admin.create_api_key(traced(create, key, "req-key-create")).await.expect("create").into_inner();
    let key_id = created.key.expect("view").key_id;
    let update = pb::UpdateApiKeyRequest { key_id: key_id.clone(), name: Some("ci 2".into()), ..Default::default() };
    admin.update_api_key(traced(update, key, "req-key-update")).await.expect("update");
    let rotate = pb::RotateApiKeyRequest { key_id: key_id.clone(), grace_period_days: Some(0), expires_in_days: None };
    admin.rotate_api_key(traced(rotate, key, "req-key-rotate")).await.expect("rotate");
    let disable = pb::DisableApiKeyRequest { key_id: key_id.clone() };
    admin.disable_api_key(traced(disable, key, "req-key-disable")).await.expect("disable");
    let client = pb::CreateApiClientRequest {
        name: "xsoar".into(),
        scopes: vec!["incidents:read".into()],
        ..Default::default()
    };
    let client_id =
        admin.create_api_client(traced(client, key, "req-client-create")).await.expect("client").into_inner().client_id;
    let regenerate = pb::RegenerateClientSecretRequest { client_id: client_id.clone(), revoke_tokens: None };
    admin.regenerate_client_secret(traced(regenerate, key, "req-client-regenerate")).await.expect("regenerate");
    let disable = pb::DisableApiClientRequest { client_id: client_id.clone(), revoke_tokens: true };
    admin.disable_api_client(traced(disable, key, "req-client-disable")).await.expect("disable client");
    let rotate = pb::RotateSigningKeyRequest {};
    let kid =
        admin.rotate_signing_key(traced(rotate, key, "req-signing")).await.expect("rotate signing").into_inner().kid;
    // Reads are not changes: nothing recorded.
    let get = pb::GetApiKeyRequest { key_id: key_id.clone() };
    admin.get_api_key(traced(get, key, "req-read")).await.expect("get");

    let listed = list(&server, key, all_of("")).await;
    let expected = [
        ("req-org", "organization.create", "acme"),
        ("req-key-create", "api_key.create", key_id.as_str()),
        ("req-key-update", "api_key.update", key_id.as_str()),
        ("req-key-rotate", "api_key.rotate", key_id.as_str()),
        ("req-key-disable", "api_key.disable", key_id.as_str()),
        ("req-client-create", "api_client.create", client_id.as_str()),
        ("req-client-regenerate", "api_client.regenerate_secret", client_id.as_str()),
        ("req-client-disable", "api_client.disable", client_id.as_str()),
        ("req-signing", "signing_key.rotate", kid.as_str()),
    ];
    for (request_id, action, target) in expected {
        let matching: Vec<&pb::AuditEvent> =
            listed.events.iter().filter(|e| e.client_request_id == request_id).collect();
        assert_eq!(matching.len(), 1, "{request_id}: {:?}", listed.events);
        let event = matching[0];
        assert!(uuid::Uuid::parse_str(&event.request_id).is_ok(), "keygate's own id: {event:?}");
        assert_eq!((event.action.as_str(), event.target.as_str()), (action, target), "{event:?}");
        assert_eq!((event.actor.as_str(), event.actor_kind.as_str()), (admin_id.as_str(), "api_key"));
        assert_eq!((event.outcome.as_str(), event.organization.as_str()), ("success", "platform"));
        assert!(event.peer.starts_with("127.0.0.1:"), "{event:?}");
        assert_eq!(event.time, Some(keygate::grpc::convert::timestamp(start_time())));
    }
    assert!(listed.events.iter().all(|e| e.client_request_id != "req-read"), "reads are not recorded");
    // Bootstrap's organization and key, and the nine changes above: newest first.
    assert_eq!(listed.total, 11, "{:?}", listed.events);
    assert_eq!(listed.events[0].client_request_id, "req-signing");
    assert!(listed.events.windows(2).all(|w| w[0].id > w[1].id));
    let bootstrap: Vec<&str> = listed.events[9..].iter().map(|e| e.action.as_str()).collect();
    assert_eq!(bootstrap, ["api_key.create", "organization.create"]);
    assert!(listed.events[9..].iter().all(|e| e.actor == "bootstrap" && e.actor_kind == "operator"));
    server.stop().await;
}

async fn listing_filters_pages_and_stays_in_the_organization(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    create_org(&server, "acme", "req-acme").await;
    create_org(&server, "globex", "req-globex").await;
    let scopes = ["admin:keys:read", "admin:keys:write", "admin:audit:read", "graph:read"];
    let (acme_admin, acme_admin_id) = create_key_in(&server, "acme", "acme admin", &scopes).await;
    let (globex_admin, _) = create_key_in(&server, "globex", "globex admin", &scopes).await;

    // Two creations now, two updates of the first key a day later.
    let (_, first) = server.create_key(&acme_admin, "one", &["graph:read"]).await;
    server.create_key(&acme_admin, "two", &["graph:read"]).await;
    server.advance_days(1);
    for (n, name) in ["one b", "one c"].into_iter().enumerate() {
        let update = pb::UpdateApiKeyRequest { key_id: first.clone(), name: Some(name.into()), ..Default::default() };
        admin.update_api_key(traced(update, &acme_admin, &format!("req-update-{n}"))).await.expect("update");
    }

    // acme's log: the platform admin's creation of its admin key, and acme's own four changes.
    let own = list(&server, &acme_admin, pb::ListAuditEventsRequest::default()).await;
    assert_eq!(own.total, 5, "{:?}", own.events);
    assert!(own.events.iter().all(|e| e.organization == "acme"));
    let actions = |events: &[pb::AuditEvent]| events.iter().map(|e| e.action.clone()).collect::<Vec<_>>();
    assert_eq!(
        actions(&own.events),
        ["api_key.update", "api_key.update", "api_key.create", "api_key.create", "api_key.create"]
    );

    let filtered = |request: pb::ListAuditEventsRequest| list(&server, &acme_admin, request);
    let by_action =
        filtered(pb::ListAuditEventsRequest { action: "api_key.update".into(), ..Default::default() }).await;
    assert_eq!(by_action.total, 2);
    let by_target = filtered(pb::ListAuditEventsRequest { target: first.clone(), ..Default::default() }).await;
    assert_eq!(by_target.total, 3);
    let by_actor = filtered(pb::ListAuditEventsRequest { actor: acme_admin_id.clone(), ..Default::default() }).await;
    assert_eq!(by_actor.total, 4);
    let noon = keygate::grpc::convert::timestamp(start_time() + chrono::Duration::hours(12));
    let later = filtered(pb::ListAuditEventsRequest { start_time: Some(noon), ..Default::default() }).await;
    assert_eq!(actions(&later.events), ["api_key.update", "api_key.update"]);
    let earlier = filtered(pb::ListAuditEventsRequest { end_time: Some(noon), ..Default::default() }).await;
    assert_eq!(earlier.total, 3);
    assert!(earlier.events.iter().all(|e| e.action == "api_key.create"));

    // Pages, newest first, with the total on each.
    let page = |offset, limit| filtered(pb::ListAuditEventsRequest { offset, limit, ..Default::default() });
    let (first_page, last_page) = (page(0, 2).await, page(4, 2).await);
    assert_eq!((first_page.events.len(), first_page.total, last_page.events.len(), last_page.total), (2, 5, 1, 5));
    assert_eq!(first_page.events[0].client_request_id, "req-update-1");
    assert_eq!(last_page.events[0].actor, own.events[4].actor);

    // Another organization's admin sees none of it, and cannot ask for it.
    let globex = list(&server, &globex_admin, pb::ListAuditEventsRequest::default()).await;
    assert_eq!(globex.total, 1, "only the creation of its own admin key: {:?}", globex.events);
    assert!(globex.events.iter().all(|e| e.organization == "globex"));
    let peek = pb::ListAuditEventsRequest { organization: "acme".into(), ..Default::default() };
    expect_code(admin.list_audit_events(as_admin(peek, &globex_admin)).await, Code::NotFound);
    // A platform admin may read any organization's log.
    assert_eq!(list(&server, &server.admin_key, all_of("acme")).await.total, 5);

    // The scope is needed: admin:keys:read is not enough.
    let (reader, _) = server.create_key(&acme_admin, "reader", &["admin:keys:read"]).await;
    let status = expect_code(
        admin.list_audit_events(as_admin(pb::ListAuditEventsRequest::default(), &reader)).await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("admin:audit:read"), "{}", status.message());

    let bad = pb::ListAuditEventsRequest {
        start_time: Some(noon),
        end_time: Some(keygate::grpc::convert::timestamp(start_time())),
        organization: "Not A Slug".into(),
        limit: 101,
        ..Default::default()
    };
    let status = expect_code(admin.list_audit_events(as_admin(bad, &acme_admin)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["limit", "end_time", "organization"]);
    let invalid_time = pb::ListAuditEventsRequest {
        start_time: Some(prost_types::Timestamp { seconds: 0, nanos: -1 }),
        ..Default::default()
    };
    let status = expect_code(admin.list_audit_events(as_admin(invalid_time, &acme_admin)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["start_time"]);
    server.stop().await;
}

async fn refusals_are_recorded_and_secrets_never(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let root = server.admin_key.clone();
    let root_id = key_id_of(&server, &root).await;
    let (lesser, lesser_id) = server.create_key(&root, "lesser", &["admin:keys:read", "admin:keys:write"]).await;

    // A lesser admin cannot disable the bootstrap key, nor rotate the signing key: both recorded.
    let disable = pb::DisableApiKeyRequest { key_id: root_id.clone() };
    expect_code(admin.disable_api_key(traced(disable, &lesser, "req-refused")).await, Code::PermissionDenied);
    let rotate = pb::RotateSigningKeyRequest {};
    expect_code(admin.rotate_signing_key(traced(rotate, &lesser, "req-no-scope")).await, Code::PermissionDenied);
    // Invalid arguments too; an unauthenticated call has no actor and is not recorded.
    let invalid = pb::CreateApiKeyRequest { name: String::new(), scopes: vec![], ..Default::default() };
    expect_code(admin.create_api_key(traced(invalid, &lesser, "req-invalid")).await, Code::InvalidArgument);
    // A key pasted into the id field: refused and recorded, without the key as target.
    let pasted = pb::DisableApiKeyRequest { key_id: lesser.clone() };
    expect_code(admin.disable_api_key(traced(pasted, &lesser, "req-pasted")).await, Code::InvalidArgument);
    let anonymous = pb::DisableApiKeyRequest { key_id: root_id.clone() };
    expect_code(admin.disable_api_key(traced(anonymous, "sk_live_nonsense", "req-anon")).await, Code::Unauthenticated);

    let listed = list(&server, &root, all_of("")).await;
    let find = |request_id: &str| {
        let found: Vec<&pb::AuditEvent> = listed.events.iter().filter(|e| e.client_request_id == request_id).collect();
        assert!(found.len() <= 1, "{found:?}");
        found.first().map(|e| (e.actor.clone(), e.action.clone(), e.target.clone(), e.outcome.clone()))
    };
    let refused = |action: &str, target: &str, outcome: &str| {
        Some((lesser_id.clone(), action.to_owned(), target.to_owned(), outcome.to_owned()))
    };
    assert_eq!(find("req-refused"), refused("api_key.disable", &root_id, "PERMISSION_DENIED"));
    assert_eq!(find("req-no-scope"), refused("signing_key.rotate", "", "PERMISSION_DENIED"));
    assert_eq!(find("req-invalid"), refused("api_key.create", "", "INVALID_ARGUMENT"));
    assert_eq!(find("req-pasted"), refused("api_key.disable", "", "INVALID_ARGUMENT"));
    assert_eq!(find("req-anon"), None);
    // The refused disable changed nothing.
    assert_eq!(server.reason(&root, &["graph:read"]).await, pb::DecisionReason::Allowed);

    // Secrets handed out by changes never reach the log.
    let (key, key_id) = server.create_key(&root, "secret", &["graph:read"]).await;
    let rotate = pb::RotateApiKeyRequest { key_id, grace_period_days: Some(1), expires_in_days: None };
    let rotated = admin.rotate_api_key(as_admin(rotate, &root)).await.expect("rotate").into_inner().api_key;
    let client =
        pb::CreateApiClientRequest { name: "c".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let created = admin.create_api_client(as_admin(client, &root)).await.expect("client").into_inner();
    let regenerate = pb::RegenerateClientSecretRequest { client_id: created.client_id, revoke_tokens: None };
    let regenerated = admin.regenerate_client_secret(as_admin(regenerate, &root)).await.expect("regenerate");
    let client_secrets = [created.client_secret, regenerated.into_inner().client_secret];
    let shown = format!("{:?}", list(&server, &root, all_of("")).await);

    server.shutdown_only().await;
    let stored = server.db.dump().await;
    if backend == Backend::Postgres {
        assert!(stored.contains("api_key.rotate"), "the dump holds the audit rows");
    }
    let mut secrets: Vec<String> = [&key, &rotated, &root, &lesser].iter().flat_map(|k| secret_parts(k)).collect();
    secrets.extend(client_secrets);
    for secret in &secrets {
        assert!(!stored.contains(secret.as_str()), "the database holds a secret");
        assert!(!shown.contains(secret.as_str()), "ListAuditEvents shows a secret");
    }
    server.db.drop_database().await;
}

/// A key holding no admin scope floods every kind of admin change with its own request ids: not
/// one audit entry is written (the log cannot be drowned), and each refusal is counted; so are
/// calls that do not authenticate. An admin's refusal is still recorded.
async fn refusals_of_non_admins_are_counted_not_stored(backend: Backend) {
    const FLOOD: usize = 300;
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let root = server.admin_key.clone();
    let root_id = key_id_of(&server, &root).await;
    let (plain, _) = server.create_key(&root, "plain", &["graph:read", "incidents:read"]).await;
    let (reader, reader_id) = server.create_key(&root, "reader", &["admin:keys:read"]).await;
    let before = list(&server, &root, all_of("")).await.total;
    let (no_scope, unauthenticated) =
        (refusals(&server, "no_admin_scope").await, refusals(&server, "unauthenticated").await);

    for i in 0..FLOOD {
        let id = format!("flood-{i}");
        let result = match i % 4 {
            0 => {
                let create = pb::CreateApiKeyRequest {
                    name: "x".into(),
                    scopes: vec!["graph:read".into()],
                    ..Default::default()
                };
                admin.create_api_key(traced(create, &plain, &id)).await.map(|_| ())
            }
            1 => admin
                .disable_api_key(traced(pb::DisableApiKeyRequest { key_id: root_id.clone() }, &plain, &id))
                .await
                .map(|_| ()),
            2 => admin.rotate_signing_key(traced(pb::RotateSigningKeyRequest {}, &plain, &id)).await.map(|_| ()),
            _ => {
                let org =
                    pb::CreateOrganizationRequest { slug: format!("o{i}"), name: "o".into(), plan: String::new() };
                admin.create_organization(traced(org, &plain, &id)).await.map(|_| ())
            }
        };
        let status = expect_code(result, Code::PermissionDenied);
        assert!(status.message().contains("scope"), "{}", status.message());
    }
    for i in 0..50 {
        let disable = pb::DisableApiKeyRequest { key_id: root_id.clone() };
        expect_code(
            admin.disable_api_key(traced(disable, "sk_live_nonsense", &format!("anon-{i}"))).await,
            Code::Unauthenticated,
        );
    }
    // Reads by a non-admin are counted too (reads are never recorded).
    let read = pb::ListApiKeysRequest::default();
    expect_code(admin.list_api_keys(as_admin(read, &plain)).await, Code::PermissionDenied);

    let after = list(&server, &root, all_of("")).await;
    assert_eq!(after.total, before, "no entry for calls by a credential that is no admin: {:?}", after.events.first());
    assert_eq!(refusals(&server, "no_admin_scope").await - no_scope, (FLOOD + 1) as f64);
    assert_eq!(refusals(&server, "unauthenticated").await - unauthenticated, 50.0);

    // A credential with some admin scope is an admin: its refused change is recorded, once.
    let disable = pb::DisableApiKeyRequest { key_id: root_id.clone() };
    expect_code(admin.disable_api_key(traced(disable, &reader, "req-admin-refused")).await, Code::PermissionDenied);
    let listed = list(&server, &root, all_of("")).await;
    assert_eq!(listed.total, before + 1);
    let event = &listed.events[0];
    assert_eq!((event.actor.as_str(), event.client_request_id.as_str()), (reader_id.as_str(), "req-admin-refused"));
    assert_eq!((event.action.as_str(), event.outcome.as_str()), ("api_key.disable", "PERMISSION_DENIED"));
    assert_eq!(refusals(&server, "no_admin_scope").await - no_scope, (FLOOD + 1) as f64, "not counted as no admin");
    server.stop().await;
}

/// keygate makes its own request id for every admin call, returns it and records it; the
/// caller's `x-request-id` is kept apart, and only when it is a sensible id. So a caller that
/// sends the id of someone else's request gets an entry that still has its own keygate id.
async fn callers_request_ids_cannot_pass_for_keygates(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let root = server.admin_key.clone();

    let first = pb::CreateOrganizationRequest { slug: "acme".into(), name: "Acme".into(), plan: "pro".into() };
    let first = admin.create_organization(traced(first, &root, "req-first")).await.expect("org");
    let first_id = response_id(first.metadata());
    assert!(uuid::Uuid::parse_str(&first_id).is_ok(), "keygate's own id: {first_id}");
    // Another call presents the first one's keygate id as its own.
    let second = pb::CreateOrganizationRequest { slug: "globex".into(), name: "Globex".into(), plan: "pro".into() };
    let second = admin.create_organization(traced(second, &root, &first_id)).await.expect("org");
    let second_id = response_id(second.metadata());
    assert_ne!(second_id, first_id);
    // Ids that are too long or hold other characters are dropped, not stored.
    let long = "x".repeat(129);
    let mut dropped = Vec::new();
    for (slug, given) in [("initech", long.as_str()), ("umbrella", "req <script>\"quoted\"")] {
        let create = pb::CreateOrganizationRequest { slug: slug.into(), name: slug.into(), plan: "pro".into() };
        let response = admin.create_organization(traced(create, &root, given)).await.expect("org");
        dropped.push(response_id(response.metadata()));
    }
    // A refusal carries keygate's id in its status, and the entry records it.
    let bad = pb::CreateOrganizationRequest { slug: "acme".into(), name: "again".into(), plan: "pro".into() };
    let status = expect_code(admin.create_organization(traced(bad, &root, "req-again")).await, Code::AlreadyExists);
    let refused_id = response_id(status.metadata());

    let listed = list(&server, &root, all_of("")).await;
    let by_id = |id: &str| {
        let found: Vec<&pb::AuditEvent> = listed.events.iter().filter(|e| e.request_id == id).collect();
        assert_eq!(found.len(), 1, "{id}: {:?}", listed.events);
        (found[0].target.clone(), found[0].client_request_id.clone())
    };
    assert_eq!(by_id(&first_id), ("acme".to_owned(), "req-first".to_owned()));
    assert_eq!(by_id(&second_id), ("globex".to_owned(), first_id.clone()), "the caller's id is only the caller's");
    assert_eq!(by_id(&dropped[0]), ("initech".to_owned(), String::new()));
    assert_eq!(by_id(&dropped[1]), ("umbrella".to_owned(), String::new()));
    assert_eq!(by_id(&refused_id), ("acme".to_owned(), "req-again".to_owned()));
    assert!(listed.events.iter().all(|e| uuid::Uuid::parse_str(&e.request_id).is_ok() || e.actor_kind == "operator"));
    server.stop().await;
}
