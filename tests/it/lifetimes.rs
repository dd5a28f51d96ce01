//! A key never outlives the credential that made it: an admin key about to expire, or a 30-minute
//! token, cannot turn itself into a key that lives for years. An unset `expires_in_days` is cut
//! to the caller's own expiry; an explicit one beyond it, and a rotation whose new secret would
//! outlive the caller, are PERMISSION_DENIED naming `expires_in_days`. Only a platform admin
//! calling with an API key is exempt; a platform admin's token is not. Client secrets never
//! expire, so no token creates a client or regenerates a secret.

use chrono::Duration;
use keygate::grpc::convert::timestamp;
use keygate::proto::keygate_v1 as pb;
use tonic::{Code, Request};

use crate::backend_tests;
use crate::support::{Backend, TestServer, as_admin, expect_code, start_time};

backend_tests!(keys_never_outlive_the_credential_that_made_them);

/// An admin request with a bearer token in `authorization`.
fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    request
}

fn key_request(name: &str, days: Option<i32>, organization: &str, scopes: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_in_days: days,
        organization: organization.into(),
        ..Default::default()
    }
}

/// A new client of `organization` holding `admin:keys:write` and `admin:clients:write`, and a
/// 30-minute token of it: (client id, token).
async fn admin_token(server: &TestServer, organization: &str) -> (String, String) {
    let request = pb::CreateApiClientRequest {
        name: format!("{organization} provisioner"),
        scopes: vec!["admin:keys:write".into(), "admin:clients:write".into(), "graph:read".into()],
        organization: organization.into(),
        ..Default::default()
    };
    let client = server.admin().await.create_api_client(as_admin(request, &server.admin_key)).await.expect("client");
    let client = client.into_inner();
    let issue = pb::IssueTokenRequest {
        grant_type: "client_credentials".into(),
        client_id: client.client_id.clone(),
        client_secret: client.client_secret,
        scope: String::new(),
    };
    let token = server.auth().await.issue_token(issue).await.expect("token").into_inner().access_token;
    (client.client_id, token)
}

fn denied_for_lifetime(result: Result<tonic::Response<pb::CreateApiKeyResponse>, tonic::Status>, hint: &str) {
    let status = expect_code(result, Code::PermissionDenied);
    assert!(status.message().contains("expires_in_days"), "{}", status.message());
    assert!(status.message().contains("outlive your own credential"), "{}", status.message());
    assert!(status.message().contains(hint), "{hint}: {}", status.message());
}

async fn keys_never_outlive_the_credential_that_made_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let root = server.admin_key.clone();
    let org = pb::CreateOrganizationRequest { slug: "acme".into(), name: "Acme".into(), plan: "pro".into() };
    admin.create_organization(as_admin(org, &root)).await.expect("org");
    // acme's admin key lives 30 days.
    let scopes = ["admin:keys:read", "admin:keys:write", "graph:read"];
    let acme = admin.create_api_key(as_admin(key_request("acme admin", Some(30), "acme", &scopes), &root)).await;
    let acme = acme.expect("acme admin").into_inner().api_key;
    let deadline = timestamp(start_time() + Duration::days(30));

    // Unset: the default 365 days are cut to the admin's own expiry.
    let cut = admin.create_api_key(as_admin(key_request("default", None, "", &["graph:read"]), &acme)).await;
    assert_eq!(cut.expect("create").into_inner().key.expect("view").expires_at, Some(deadline));
    // Asked beyond: refused, saying how far it may go; up to it is fine.
    let far = admin.create_api_key(as_admin(key_request("far", Some(31), "", &["graph:read"]), &acme)).await;
    denied_for_lifetime(far, "at most 30");
    let near = admin.create_api_key(as_admin(key_request("near", Some(30), "", &["graph:read"]), &acme)).await;
    let near = near.expect("up to the admin's expiry").into_inner().key.expect("view");
    server.advance_days(10);
    let far = admin.create_api_key(as_admin(key_request("far", Some(30), "", &["graph:read"]), &acme)).await;
    denied_for_lifetime(far, "at most 20");
    admin.create_api_key(as_admin(key_request("nearer", Some(20), "", &["graph:read"]), &acme)).await.expect("create");

    // Rotating hands out the key's new secret: it may not outlive the caller either.
    let long = admin.create_api_key(as_admin(key_request("long", Some(365), "acme", &["graph:read"]), &root)).await;
    let long = long.expect("a platform admin's key may").into_inner().key.expect("view").key_id;
    let rotate = |key_id: &str, days| pb::RotateApiKeyRequest {
        key_id: key_id.into(),
        grace_period_days: Some(0),
        expires_in_days: days,
    };
    let status = expect_code(admin.rotate_api_key(as_admin(rotate(&long, None), &acme)).await, Code::PermissionDenied);
    assert!(status.message().contains("rotate a key whose new secret would outlive"), "{}", status.message());
    assert!(status.message().contains("at most 20"), "{}", status.message());
    let status =
        expect_code(admin.rotate_api_key(as_admin(rotate(&long, Some(21)), &acme)).await, Code::PermissionDenied);
    assert!(status.message().contains("expires_in_days"), "{}", status.message());
    admin.rotate_api_key(as_admin(rotate(&long, Some(20)), &acme)).await.expect("rotate within the admin's life");
    admin.rotate_api_key(as_admin(rotate(&near.key_id, None), &acme)).await.expect("its expiry is the admin's");

    // A 30-minute client token can create no key at all: keys live at least a day.
    let (client_id, token) = admin_token(&server, "acme").await;
    for days in [None, Some(1)] {
        let result =
            admin.create_api_key(with_token(key_request("from a token", days, "", &["graph:read"]), &token)).await;
        denied_for_lifetime(result, "expires within a day");
    }
    // Nor a client, whose secret never expires, nor a new secret.
    let client =
        pb::CreateApiClientRequest { name: "forever".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let status = expect_code(admin.create_api_client(with_token(client, &token)).await, Code::PermissionDenied);
    assert!(status.message().contains("only an admin API key can create API clients"), "{}", status.message());
    let regenerate = pb::RegenerateClientSecretRequest { client_id, revoke_tokens: Some(false) };
    let status =
        expect_code(admin.regenerate_client_secret(with_token(regenerate, &token)).await, Code::PermissionDenied);
    assert!(status.message().contains("only an admin API key can regenerate client secrets"), "{}", status.message());

    // The platform admin's own API key is exempt (the bootstrap key lives 365 days) ...
    let decade =
        admin.create_api_key(as_admin(key_request("decade", Some(3650), "acme", &["graph:read"]), &root)).await;
    let expires_at = decade.expect("a platform admin's API key is exempt").into_inner().key.expect("view").expires_at;
    assert_eq!(expires_at, Some(timestamp(start_time() + Duration::days(10 + 3650))));
    // ... but a platform admin's token is not.
    let (_, platform_token) = admin_token(&server, "platform").await;
    let result = admin
        .create_api_key(with_token(
            key_request("from a platform token", None, "acme", &["graph:read"]),
            &platform_token,
        ))
        .await;
    denied_for_lifetime(result, "expires within a day");
    server.stop().await;
}
