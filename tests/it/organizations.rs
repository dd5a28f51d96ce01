//! Organizations, plan limits, tenant isolation and the scope subset rule, on both backends.

use keygate::proto::keygate_v1 as pb;
use tonic::Code;

use crate::backend_tests;
use crate::support::{Backend, TestServer, as_admin, error_reason, expect_code, violated_fields};

backend_tests!(organizations_are_isolated_and_limited, concurrent_creations_respect_the_plan_limit);

fn new_key(name: &str, scopes: &[&str], organization: &str) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        organization: organization.into(),
        ..Default::default()
    }
}

pub(crate) async fn create_org(server: &TestServer, slug: &str, plan: &str) -> pb::Organization {
    let request = pb::CreateOrganizationRequest { slug: slug.into(), name: format!("{slug} Inc."), plan: plan.into() };
    server
        .admin()
        .await
        .create_organization(as_admin(request, &server.admin_key))
        .await
        .expect("create org")
        .into_inner()
}

async fn organizations_are_isolated_and_limited(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let platform = &server.admin_key;

    let acme = create_org(&server, "acme", "").await;
    assert_eq!((acme.plan.as_str(), acme.max_active_keys, acme.platform), ("free", 3, false));
    let duplicate = pb::CreateOrganizationRequest { slug: "acme".into(), name: "again".into(), plan: String::new() };
    expect_code(admin.create_organization(as_admin(duplicate, platform)).await, Code::AlreadyExists);
    let bad = pb::CreateOrganizationRequest { slug: "Bad Slug".into(), name: String::new(), plan: "gold".into() };
    let status = expect_code(admin.create_organization(as_admin(bad, platform)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["slug", "name", "plan"]);

    // The platform admin makes acme's first admin key.
    let acme_scopes = ["admin:keys:read", "admin:keys:write", "admin:orgs:read", "investigations:read"];
    let created = admin.create_api_key(as_admin(new_key("acme admin", &acme_scopes, "acme"), platform)).await;
    let created = created.expect("platform admin creates in acme").into_inner();
    let acme_admin = created.api_key;
    assert_eq!(created.key.expect("view").organization, "acme");

    // acme's plan allows three active keys.
    let (_, second) = server.create_key(&acme_admin, "two", &["investigations:read"]).await;
    server.create_key(&acme_admin, "three", &["investigations:read"]).await;
    let status = expect_code(
        admin.create_api_key(as_admin(new_key("four", &["investigations:read"], ""), &acme_admin)).await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("limit of 3 active API keys"), "{}", status.message());
    admin.disable_api_key(as_admin(pb::DisableApiKeyRequest { key_id: second }, &acme_admin)).await.expect("disable");
    server.create_key(&acme_admin, "four", &["investigations:read"]).await;

    // acme cannot see the platform's keys or organization; the answer is NOT_FOUND, as for nothing.
    let (_, platform_key_id) = server.create_key(platform, "platform only", &["graph:read"]).await;
    let get = pb::GetApiKeyRequest { key_id: platform_key_id.clone() };
    let hidden = expect_code(admin.get_api_key(as_admin(get, &acme_admin)).await, Code::NotFound);
    let absent = pb::GetApiKeyRequest { key_id: "k_zzzzzzzzzzzz".into() };
    let missing = expect_code(admin.get_api_key(as_admin(absent, &acme_admin)).await, Code::NotFound);
    assert_eq!(hidden.message().replace(&platform_key_id, "ID"), missing.message().replace("k_zzzzzzzzzzzz", "ID"));
    let disable = pb::DisableApiKeyRequest { key_id: platform_key_id.clone() };
    expect_code(admin.disable_api_key(as_admin(disable, &acme_admin)).await, Code::NotFound);
    let list_platform = pb::ListApiKeysRequest { organization: "platform".into(), ..Default::default() };
    expect_code(admin.list_api_keys(as_admin(list_platform, &acme_admin)).await, Code::NotFound);
    let own = admin.list_api_keys(as_admin(pb::ListApiKeysRequest::default(), &acme_admin)).await.expect("list");
    let own = own.into_inner();
    assert_eq!(own.total, 4);
    assert!(own.api_keys.iter().all(|k| k.organization == "acme"));
    let get_platform = pb::GetOrganizationRequest { slug: "platform".into() };
    expect_code(admin.get_organization(as_admin(get_platform, &acme_admin)).await, Code::NotFound);
    let orgs = admin.list_organizations(as_admin(pb::ListOrganizationsRequest::default(), &acme_admin)).await;
    let orgs = orgs.expect("list orgs").into_inner();
    assert_eq!(orgs.organizations.iter().map(|o| o.slug.as_str()).collect::<Vec<_>>(), ["acme"]);
    let new_org = pb::CreateOrganizationRequest { slug: "evil".into(), name: "Evil".into(), plan: String::new() };
    let status = expect_code(admin.create_organization(as_admin(new_org, &acme_admin)).await, Code::PermissionDenied);
    assert!(status.message().contains("admin:orgs:write"), "{}", status.message());

    // The platform admin sees everything.
    let orgs = admin.list_organizations(as_admin(pb::ListOrganizationsRequest::default(), platform)).await;
    assert_eq!(orgs.expect("list").into_inner().total, 2);
    let list_acme = pb::ListApiKeysRequest { organization: "acme".into(), ..Default::default() };
    assert_eq!(admin.list_api_keys(as_admin(list_acme, platform)).await.expect("list").into_inner().total, 4);

    // The subset rule: nobody grants what it does not hold.
    for scopes in [&["incidents:read"][..], &["investigations"], &["*"]] {
        let status = expect_code(
            admin.create_api_key(as_admin(new_key("more", scopes, ""), &acme_admin)).await,
            Code::PermissionDenied,
        );
        assert!(status.message().contains("scopes you do not hold"), "{}", status.message());
    }
    // Rotation hands out a secret, so it needs every scope of the key; disabling does not.
    let strong = admin.create_api_key(as_admin(new_key("strong", &["incidents:read"], "acme"), platform)).await;
    server.create_key(platform, "filler", &["graph:read"]).await;
    let strong_id = strong.expect_err("acme is full: three active").code();
    assert_eq!(strong_id, Code::FailedPrecondition);
    let keys = admin.list_api_keys(as_admin(pb::ListApiKeysRequest::default(), &acme_admin)).await.expect("list");
    let victim = keys.into_inner().api_keys.into_iter().find(|k| k.name == "four").expect("four").key_id;
    admin.disable_api_key(as_admin(pb::DisableApiKeyRequest { key_id: victim }, &acme_admin)).await.expect("disable");
    let strong = admin.create_api_key(as_admin(new_key("strong", &["incidents:read"], "acme"), platform)).await;
    let strong_id = strong.expect("room again").into_inner().key.expect("view").key_id;
    let rotate = pb::RotateApiKeyRequest { key_id: strong_id.clone(), ..Default::default() };
    expect_code(admin.rotate_api_key(as_admin(rotate, &acme_admin)).await, Code::PermissionDenied);
    let update = pb::UpdateApiKeyRequest {
        key_id: strong_id.clone(),
        scopes: Some(pb::ScopeList { values: vec!["incidents:read".into()] }),
        ..Default::default()
    };
    expect_code(admin.update_api_key(as_admin(update, &acme_admin)).await, Code::PermissionDenied);
    let rename = pb::UpdateApiKeyRequest { key_id: strong_id.clone(), name: Some("mine".into()), ..Default::default() };
    expect_code(admin.update_api_key(as_admin(rename, &acme_admin)).await, Code::PermissionDenied);
    // Nor may a lesser admin disable a stronger key (which would let it lock the stronger admin out).
    let disable = pb::DisableApiKeyRequest { key_id: strong_id.clone() };
    expect_code(admin.disable_api_key(as_admin(disable, &acme_admin)).await, Code::PermissionDenied);
    admin.disable_api_key(as_admin(pb::DisableApiKeyRequest { key_id: strong_id }, platform)).await.expect("disable");

    // Admin RPCs need admin scopes and a credential.
    let (reader, _) = server.create_key(platform, "reader", &["graph:read"]).await;
    let status = expect_code(
        admin.list_api_keys(as_admin(pb::ListApiKeysRequest::default(), &reader)).await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("admin:keys:read"));
    let status = expect_code(admin.list_api_keys(pb::ListApiKeysRequest::default()).await, Code::Unauthenticated);
    assert_eq!(error_reason(&status), "MISSING_API_KEY");
    let mut bearer = tonic::Request::new(pb::ListApiKeysRequest::default());
    bearer.metadata_mut().insert("authorization", format!("Bearer {platform}").parse().expect("ascii"));
    admin.list_api_keys(bearer).await.expect("Authorization: Bearer works for admins too");

    // A key of one organization is not accepted where another is required.
    let request = pb::AuthorizeRequest {
        cost: None,
        credentials: Some(crate::support::bearer(&acme_admin)),
        required_scopes: vec!["investigations:read".into()],
        organization: "platform".into(),
    };
    let decision = server.auth().await.authorize(request).await.expect("decision").into_inner().decision.expect("d");
    assert_eq!((decision.reason(), decision.http_status), (pb::DecisionReason::OrganizationMismatch, 403));
    server.stop().await;
}

async fn concurrent_creations_respect_the_plan_limit(backend: Backend) {
    let server = TestServer::start(backend).await;
    create_org(&server, "racy", "free").await;
    let mut attempts = Vec::new();
    for i in 0..6 {
        let mut admin = server.admin().await;
        let key = server.admin_key.clone();
        attempts.push(tokio::spawn(async move {
            admin.create_api_key(as_admin(new_key(&format!("k{i}"), &["graph:read"], "racy"), &key)).await.map(|_| ())
        }));
    }
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(()) => created += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(created, 3, "exactly the plan's limit is created, however the requests interleave");
    server.stop().await;
}
