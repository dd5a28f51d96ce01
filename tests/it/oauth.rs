//! OAuth2 client credentials over gRPC and HTTP: API clients, token issuance and its RFC 6749
//! errors, token checks (expiry, leeway, tampering, `alg: none`, HMAC confusion), regenerate,
//! disable with and without revocation, signing-key rotation; each against SQLite and PostgreSQL.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use keygate::proto::keygate_v1 as pb;
use pb::DecisionReason as R;
use serde_json::Value;
use tonic::Code;

use crate::backend_tests;
use crate::support::{Backend, TestServer, as_admin, error_reason, expect_code, violated_fields};

backend_tests!(
    clients_are_created_listed_and_validated,
    tokens_are_issued_over_http_and_grpc,
    token_requests_get_rfc_6749_errors,
    tokens_expire_with_the_clock_and_leeway,
    forged_tokens_are_rejected,
    regenerate_kills_the_old_secret_and_its_tokens,
    disable_keeps_tokens_unless_revoked,
    signing_key_rotation_keeps_old_tokens_valid,
    introspection_needs_a_credential_of_the_organization,
);

/// A client: (client id, secret).
async fn create_client(server: &TestServer, scopes: &[&str]) -> (String, String) {
    let request = pb::CreateApiClientRequest {
        limits: None,
        name: "XSOAR Production".into(),
        description: "Palo Alto XSOAR integration".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        organization: String::new(),
        labels: Default::default(),
    };
    let created = server
        .admin()
        .await
        .create_api_client(as_admin(request, &server.admin_key))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.token_endpoint, server.url("/oauth/token"));
    (created.client_id, created.client_secret)
}

/// `POST /oauth/token` with form client authentication: (status, headers, JSON body).
async fn token_over_http(server: &TestServer, form: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new().post(server.url("/oauth/token")).form(form).send().await.expect("post");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = serde_json::from_str(&response.text().await.expect("body")).expect("json body");
    (status, headers, body)
}

async fn token_for(server: &TestServer, client_id: &str, secret: &str, scope: &str) -> String {
    let form =
        [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret), ("scope", scope)];
    let (status, _, body) = token_over_http(server, &form).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("access_token").to_owned()
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn clients_are_created_listed_and_validated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["investigations:read", "incidents:read"]).await;
    assert!(client_id.starts_with("xsoar-production-"), "{client_id}");
    assert!(secret.len() >= 40, "at least 128 bits of randomness");

    let mut admin = server.admin().await;
    let got = admin
        .get_api_client(as_admin(pb::GetApiClientRequest { client_id: client_id.clone() }, &server.admin_key))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.status(), pb::api_client::Status::Active);
    assert_eq!(got.scopes, ["investigations:read", "incidents:read"]);
    assert_eq!(got.organization, "platform");

    let listed = admin
        .list_api_clients(as_admin(
            pb::ListApiClientsRequest { search: "xsoar".into(), ..Default::default() },
            &server.admin_key,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.total, 1);
    assert!(!format!("{listed:?}").contains(&secret), "the secret never appears again");
    let none = admin
        .list_api_clients(as_admin(
            pb::ListApiClientsRequest { search: "nothing".into(), ..Default::default() },
            &server.admin_key,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(none.total, 0);

    // Unknown scopes and a missing name are named; scopes the caller lacks are refused.
    let bad = pb::CreateApiClientRequest { scopes: vec!["nope:read".into()], ..Default::default() };
    let status = expect_code(admin.create_api_client(as_admin(bad, &server.admin_key)).await, Code::InvalidArgument);
    let fields = violated_fields(&status);
    assert_eq!(fields, ["name", "scopes"]);
    let (reader, _) =
        server.create_key(&server.admin_key, "client admin", &["admin:clients:write", "incidents:read"]).await;
    let beyond = pb::CreateApiClientRequest {
        name: "x".into(),
        scopes: vec!["investigations:write".into()],
        ..Default::default()
    };
    expect_code(admin.create_api_client(as_admin(beyond, &reader)).await, Code::PermissionDenied);
    let bad_id = pb::GetApiClientRequest { client_id: "Not An Id".into() };
    let status = expect_code(admin.get_api_client(as_admin(bad_id, &server.admin_key)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["client_id"]);
    server.stop().await;
}

async fn tokens_are_issued_over_http_and_grpc(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["investigations:read", "incidents:read"]).await;

    // Form authentication, all scopes.
    let form = [("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", &secret)];
    let (status, headers, body) = token_over_http(&server, &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["scope"], "investigations:read incidents:read");
    let token = body["access_token"].as_str().expect("token").to_owned();

    // RFC 9068 header and claims.
    let parts: Vec<&str> = token.split('.').collect();
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    let jwks: Value = serde_json::from_str(
        &reqwest::get(server.url("/.well-known/jwks.json")).await.expect("jwks").text().await.expect("text"),
    )
    .expect("json");
    assert!(jwks["keys"].as_array().expect("keys").iter().any(|k| k["kid"] == header["kid"]), "{jwks}");
    assert!(jwks.to_string().find("\"d\"").is_none(), "no private key material is published");
    assert_eq!(claims["iss"], format!("http://{}", server.http_addr));
    assert_eq!(claims["sub"], client_id.as_str());
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["aud"], "keygate");
    assert_eq!(claims["org"], "platform");
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 1800);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // The token authorizes like a key, as a CLIENT principal.
    let allowed = server.authorize(&token, &["investigations:read"]).await;
    assert!(allowed.decision.expect("decision").allowed);
    let principal = allowed.principal.expect("principal");
    assert_eq!(principal.r#type(), pb::principal::Type::Client);
    assert_eq!(principal.key_id, client_id);
    assert_eq!(server.reason(&token, &["investigations:write"]).await, R::InsufficientScope);

    // HTTP Basic with a narrower scope.
    let response = reqwest::Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "incidents:read")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_str(&response.text().await.expect("text")).expect("json");
    assert_eq!(body["scope"], "incidents:read");
    let narrow = body["access_token"].as_str().expect("token");
    assert_eq!(server.reason(narrow, &["investigations:read"]).await, R::InsufficientScope);

    // gRPC IssueToken.
    let request = pb::IssueTokenRequest {
        grant_type: "client_credentials".into(),
        client_id: client_id.clone(),
        client_secret: secret.clone(),
        scope: "investigations:read".into(),
    };
    let issued = server.auth().await.issue_token(request).await.expect("issue").into_inner();
    assert_eq!(
        (issued.token_type.as_str(), issued.expires_in, issued.scope.as_str()),
        ("Bearer", 1800, "investigations:read")
    );
    assert_eq!(server.reason(&issued.access_token, &["investigations:read"]).await, R::Allowed);

    // Metadata names the endpoints.
    let metadata: Value = serde_json::from_str(
        &reqwest::get(server.url("/.well-known/oauth-authorization-server"))
            .await
            .expect("get")
            .text()
            .await
            .expect("t"),
    )
    .expect("json");
    assert_eq!(metadata["token_endpoint"], server.url("/oauth/token"));
    assert_eq!(metadata["jwks_uri"], server.url("/.well-known/jwks.json"));
    assert_eq!(metadata["grant_types_supported"][0], "client_credentials");
    server.stop().await;
}

async fn token_requests_get_rfc_6749_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", &wrong)],
            401,
            "invalid_client",
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_id", "no-such-client"), ("client_secret", &secret)],
            401,
            "invalid_client",
        ),
        (vec![("grant_type", "client_credentials")], 401, "invalid_client"),
        (
            vec![("grant_type", "password"), ("client_id", &client_id), ("client_secret", &secret)],
            400,
            "unsupported_grant_type",
        ),
        (vec![("client_id", &client_id), ("client_secret", &secret)], 400, "invalid_request"),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("scope", "investigations:read"),
            ],
            400,
            "invalid_scope",
        ),
    ];
    for (form, status, error) in cases {
        let (got, headers, body) = token_over_http(&server, &form).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(error)), "{form:?}: {body}");
        if status == 401 {
            assert!(headers["www-authenticate"].to_str().expect("ascii").starts_with("Basic"), "{headers:?}");
        }
        assert!(!body.to_string().contains(&secret), "errors never repeat the secret");
    }

    // Not a form; two authentication methods at once; a repeated parameter.
    let client = reqwest::Client::new();
    let json = client.post(server.url("/oauth/token")).body("{}").header("content-type", "application/json");
    let response = json.send().await.expect("post");
    assert_eq!(response.status(), 400);
    let both = client.post(server.url("/oauth/token")).basic_auth(&client_id, Some(&secret)).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &client_id),
        ("client_secret", &secret),
    ]);
    let body: Value = serde_json::from_str(&both.send().await.expect("post").text().await.expect("t")).expect("json");
    assert_eq!(body["error"], "invalid_request");
    let repeated = client
        .post(server.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials");
    assert_eq!(repeated.send().await.expect("post").status(), 400);

    // gRPC: the same refusals as status codes with the OAuth error as ErrorInfo reason.
    let mut auth = server.auth().await;
    let request = |secret: &str, scope: &str, grant: &str| pb::IssueTokenRequest {
        grant_type: grant.into(),
        client_id: client_id.clone(),
        client_secret: secret.into(),
        scope: scope.into(),
    };
    let status = expect_code(auth.issue_token(request(&wrong, "", "client_credentials")).await, Code::Unauthenticated);
    assert_eq!(error_reason(&status), "INVALID_CLIENT");
    let status = expect_code(
        auth.issue_token(request(&secret, "graph:read", "client_credentials")).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        (error_reason(&status), violated_fields(&status)),
        ("INVALID_SCOPE".to_owned(), vec!["scope".to_owned()])
    );
    let status = expect_code(auth.issue_token(request(&secret, "", "")).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["grant_type"]);
    server.stop().await;
}

async fn tokens_expire_with_the_clock_and_leeway(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
    let token = token_for(&server, &client_id, &secret, "").await;
    assert_eq!(server.reason(&token, &["incidents:read"]).await, R::Allowed);
    // 1800 s lifetime, 30 s leeway: valid 29 s past exp, expired at 30 s.
    server.clock.advance(Duration::seconds(1800 + 29));
    assert_eq!(server.reason(&token, &["incidents:read"]).await, R::Allowed);
    server.clock.advance(Duration::seconds(1));
    assert_eq!(server.reason(&token, &["incidents:read"]).await, R::ExpiredToken);
    let response = server.authorize(&token, &["incidents:read"]).await;
    let decision = response.decision.expect("decision");
    assert_eq!((decision.http_status, decision.error_code.as_str()), (401, "expired_token"));
    server.stop().await;
}

async fn forged_tokens_are_rejected(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
    let token = token_for(&server, &client_id, &secret, "").await;
    let parts: Vec<&str> = token.split('.').collect();
    let (header, mut claims) = (decode(parts[0]), decode(parts[1]));

    // A changed claim breaks the signature.
    claims["scope"] = Value::from("incidents:read investigations:write");
    let tampered = format!("{}.{}.{}", parts[0], encode(&claims), parts[2]);
    assert_eq!(server.reason(&tampered, &["incidents:read"]).await, R::InvalidToken);

    // alg none, with and without a signature.
    let mut none = header.clone();
    none["alg"] = Value::from("none");
    assert_eq!(server.reason(&format!("{}.{}.", encode(&none), parts[1]), &["incidents:read"]).await, R::InvalidToken);
    assert_eq!(
        server.reason(&format!("{}.{}.{}", encode(&none), parts[1], parts[2]), &["incidents:read"]).await,
        R::InvalidToken
    );

    // HS256 keyed with the published RSA key (the RSA/HMAC confusion attack).
    let jwks = reqwest::get(server.url("/.well-known/jwks.json")).await.expect("jwks").text().await.expect("text");
    let mut hs = header.clone();
    hs["alg"] = Value::from("HS256");
    let signing_input = format!("{}.{}", encode(&hs), parts[1]);
    let signer = josekit::jws::HS256.signer_from_bytes(jwks.as_bytes()).expect("hmac");
    let signature = josekit::jws::JwsSigner::sign(&signer, signing_input.as_bytes()).expect("sign");
    let confused = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    assert_eq!(server.reason(&confused, &["incidents:read"]).await, R::InvalidToken);

    // A token from an issuer keygate does not trust, and garbage with dots.
    let mut foreign = claims.clone();
    foreign["iss"] = Value::from("https://evil.example");
    let foreign = format!("{}.{}.{}", parts[0], encode(&foreign), parts[2]);
    assert_eq!(server.reason(&foreign, &["incidents:read"]).await, R::UntrustedIssuer);
    assert_eq!(server.reason("a.b.c", &["incidents:read"]).await, R::InvalidToken);

    // Authenticate reports the reason in ErrorInfo, never echoing the token.
    let request = pb::AuthenticateRequest { credentials: Some(crate::support::bearer(&tampered)) };
    let status = expect_code(server.auth().await.authenticate(request).await, Code::Unauthenticated);
    assert_eq!(error_reason(&status), "INVALID_TOKEN");
    assert!(!status.message().contains(parts[2]));
    server.stop().await;
}

/// A regenerated secret usually means a leak: by default the tokens taken with the old secret
/// stop with it, cached ones included, wherever they are checked; `revoke_tokens: false` keeps
/// them, as the reference's disable does.
async fn regenerate_kills_the_old_secret_and_its_tokens(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
    let stolen = token_for(&server, &client_id, &secret, "").await;
    assert_eq!(server.reason(&stolen, &["incidents:read"]).await, R::Allowed, "verified and cached");
    let mut admin = server.admin().await;
    let regenerate = |revoke_tokens| {
        let request = pb::RegenerateClientSecretRequest { client_id: client_id.clone(), revoke_tokens };
        as_admin(request, &server.admin_key)
    };
    let regenerated = admin.regenerate_client_secret(regenerate(None)).await.expect("regenerate").into_inner();
    assert!(regenerated.tokens_revoked, "revoking is the default");
    assert_ne!(regenerated.client_secret, secret);
    let old = [("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", &secret)];
    let (status, _, body) = token_over_http(&server, &old).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(server.reason(&stolen, &["incidents:read"]).await, R::RevokedToken);
    let request = pb::AuthenticateRequest { credentials: Some(crate::support::bearer(&stolen)) };
    let status = expect_code(server.auth().await.authenticate(request).await, Code::Unauthenticated);
    assert_eq!(error_reason(&status), "REVOKED_TOKEN");
    let form = [("token", stolen.as_str())];
    let introspected = reqwest::Client::new()
        .post(server.url("/oauth/introspect"))
        .basic_auth(&client_id, Some(&regenerated.client_secret))
        .form(&form)
        .send()
        .await
        .expect("introspect");
    let introspected: Value = serde_json::from_str(&introspected.text().await.expect("body")).expect("json");
    assert_eq!(introspected["active"], false, "{introspected}");
    // A token of the new secret works, in the same instant as the regeneration.
    let fresh = token_for(&server, &client_id, &regenerated.client_secret, "").await;
    assert_eq!(server.reason(&fresh, &["incidents:read"]).await, R::Allowed);

    // revoke_tokens: false kills the secret only.
    let kept = admin.regenerate_client_secret(regenerate(Some(false))).await.expect("regenerate").into_inner();
    assert!(!kept.tokens_revoked);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", &client_id),
        ("client_secret", &regenerated.client_secret),
    ];
    assert_eq!(token_over_http(&server, &form).await.0, 401);
    assert_eq!(server.reason(&fresh, &["incidents:read"]).await, R::Allowed, "tokens issued before stay valid");
    let newest = token_for(&server, &client_id, &kept.client_secret, "").await;
    // Revoking once more stops every token issued so far, and only those.
    let last = admin.regenerate_client_secret(regenerate(Some(true))).await.expect("regenerate").into_inner();
    for token in [&stolen, &fresh, &newest] {
        assert_eq!(server.reason(token, &["incidents:read"]).await, R::RevokedToken);
    }
    let after = token_for(&server, &client_id, &last.client_secret, "").await;
    assert_eq!(server.reason(&after, &["incidents:read"]).await, R::Allowed);
    server.stop().await;
}

async fn disable_keeps_tokens_unless_revoked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
    let token = token_for(&server, &client_id, &secret, "").await;
    assert_eq!(server.reason(&token, &["incidents:read"]).await, R::Allowed);
    let mut admin = server.admin().await;
    let disable = |revoke_tokens| {
        as_admin(pb::DisableApiClientRequest { client_id: client_id.clone(), revoke_tokens }, &server.admin_key)
    };

    let disabled = admin.disable_api_client(disable(false)).await.expect("disable").into_inner();
    assert_eq!(disabled.status(), pb::api_client::Status::Disabled);
    assert!(disabled.tokens_revoked_at.is_none());
    let form = [("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", &secret)];
    let (status, _, body) = token_over_http(&server, &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
    assert_eq!(server.reason(&token, &["incidents:read"]).await, R::Allowed, "outstanding tokens stay valid");

    let revoked = admin.disable_api_client(disable(true)).await.expect("revoke").into_inner();
    assert!(revoked.tokens_revoked_at.is_some());
    assert_eq!(server.reason(&token, &["incidents:read"]).await, R::RevokedToken);
    let regenerate = pb::RegenerateClientSecretRequest { client_id: client_id.clone(), revoke_tokens: None };
    let status = expect_code(
        admin.regenerate_client_secret(as_admin(regenerate, &server.admin_key)).await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("disabled"));
    server.stop().await;
}

async fn signing_key_rotation_keeps_old_tokens_valid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
    let old_token = token_for(&server, &client_id, &secret, "").await;
    let old_kid = decode(old_token.split('.').next().expect("header"))["kid"].clone();

    let rotated = server
        .admin()
        .await
        .rotate_signing_key(as_admin(pb::RotateSigningKeyRequest {}, &server.admin_key))
        .await
        .expect("rotate")
        .into_inner();
    assert_ne!(Value::from(rotated.kid.clone()), old_kid);
    let kids = |jwks: &Value| -> Vec<Value> {
        jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].clone()).collect()
    };
    let fetch = || async {
        let text = reqwest::get(server.url("/.well-known/jwks.json")).await.expect("jwks").text().await.expect("text");
        serde_json::from_str::<Value>(&text).expect("json")
    };
    let published = kids(&fetch().await);
    assert!(published.contains(&old_kid) && published.contains(&Value::from(rotated.kid.clone())), "{published:?}");

    let new_token = token_for(&server, &client_id, &secret, "").await;
    assert_eq!(decode(new_token.split('.').next().expect("header"))["kid"], Value::from(rotated.kid.clone()));
    assert_eq!(server.reason(&old_token, &["incidents:read"]).await, R::Allowed);
    assert_eq!(server.reason(&new_token, &["incidents:read"]).await, R::Allowed);

    // Once every token the old key signed has expired (lifetime, leeway, and the minute a replica
    // may take to notice a rotation), it is unpublished.
    server.clock.advance(Duration::seconds(1800 + 30 + 60));
    assert_eq!(kids(&fetch().await), [Value::from(rotated.kid.clone())]);
    assert_eq!(server.reason(&new_token, &["incidents:read"]).await, R::ExpiredToken);

    // Only platform admins may rotate.
    let (plain, _) = server.create_key(&server.admin_key, "signer", &["admin:signing:write"]).await;
    let org = pb::CreateOrganizationRequest { slug: "acme".into(), name: "Acme".into(), plan: String::new() };
    server.admin().await.create_organization(as_admin(org, &server.admin_key)).await.expect("org");
    let key = pb::CreateApiKeyRequest {
        name: "acme signer".into(),
        scopes: vec!["admin:signing:write".into()],
        organization: "acme".into(),
        ..Default::default()
    };
    let acme = server.admin().await.create_api_key(as_admin(key, &server.admin_key)).await.expect("key").into_inner();
    let refused =
        server.admin().await.rotate_signing_key(as_admin(pb::RotateSigningKeyRequest {}, &acme.api_key)).await;
    expect_code(refused, Code::PermissionDenied);
    server.admin().await.rotate_signing_key(as_admin(pb::RotateSigningKeyRequest {}, &plain)).await.expect("platform");
    server.stop().await;
}

async fn introspection_needs_a_credential_of_the_organization(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
    let token = token_for(&server, &client_id, &secret, "").await;
    let http = reqwest::Client::new();
    let introspect = |auth: Option<(&str, &str)>, bearer: Option<&str>, token: &str| {
        let mut request = http.post(server.url("/oauth/introspect")).form(&[("token", token)]);
        if let Some((id, secret)) = auth {
            request = request.basic_auth(id, Some(secret));
        }
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move {
            let response = request.send().await.expect("post");
            let status = response.status().as_u16();
            (status, serde_json::from_str::<Value>(&response.text().await.expect("text")).expect("json"))
        }
    };
    let (status, body) = introspect(None, None, &token).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
    let (status, body) = introspect(Some((&client_id, &secret)), None, &token).await;
    assert_eq!(status, 200);
    assert_eq!((body["active"].as_bool(), body["client_id"].as_str()), (Some(true), Some(client_id.as_str())));
    assert_eq!(body["scope"], "incidents:read");
    let (_, body) = introspect(None, Some(&server.admin_key), &token).await;
    assert_eq!(body["active"], true);
    let (_, body) = introspect(None, Some(&server.admin_key), "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").await;
    assert_eq!(body, serde_json::json!({ "active": false }));
    server.clock.advance(Duration::seconds(1900));
    let (_, body) = introspect(None, Some(&server.admin_key), &token).await;
    assert_eq!(body["active"], false);
    server.stop().await;
}

/// ES256 and EdDSA keys sign when configured; PEM files replace generated keys and cannot be
/// rotated by RPC. (SQLite only: nothing here depends on the backend.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_algorithms_and_pem_files_sign() {
    for algorithm in ["ES256", "EdDSA"] {
        let server = TestServer::start_with(Backend::Sqlite, &[("oauth.algorithm", algorithm)]).await;
        let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
        let token = token_for(&server, &client_id, &secret, "").await;
        assert_eq!(decode(token.split('.').next().expect("header"))["alg"], algorithm);
        assert_eq!(server.reason(&token, &["incidents:read"]).await, R::Allowed);
        server.stop().await;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let (current, previous) = (dir.path().join("current.pem"), dir.path().join("previous.pem"));
    let now = chrono::Utc::now();
    let current_key =
        keygate_core::tokens::signing::generate(keygate_core::tokens::signing::Algorithm::Rs256, now).expect("key");
    let previous_key =
        keygate_core::tokens::signing::generate(keygate_core::tokens::signing::Algorithm::Es256, now).expect("key");
    std::fs::write(&current, &current_key.private_key_pem).expect("write");
    std::fs::write(&previous, &previous_key.private_key_pem).expect("write");
    let files = format!("{},{}", current.display(), previous.display());
    let server = TestServer::start_with(Backend::Sqlite, &[("oauth.signing_key_files", &files)]).await;
    let (client_id, secret) = create_client(&server, &["incidents:read"]).await;
    let token = token_for(&server, &client_id, &secret, "").await;
    assert_eq!(decode(token.split('.').next().expect("header"))["kid"], current_key.kid.as_str());
    let jwks = reqwest::get(server.url("/.well-known/jwks.json")).await.expect("jwks").text().await.expect("text");
    assert!(jwks.contains(&current_key.kid) && jwks.contains(&previous_key.kid), "{jwks}");
    let refused =
        server.admin().await.rotate_signing_key(as_admin(pb::RotateSigningKeyRequest {}, &server.admin_key)).await;
    let status = expect_code(refused, Code::FailedPrecondition);
    assert!(status.message().contains("signing_key_files"), "{status:?}");
    server.stop().await;
}
