//! User tokens from outside identity providers: a JWKS served by a local HTTP endpoint in the
//! test (and one read from a file), claims mapped to a USER principal, audience and expiry
//! checks, re-fetching on an unknown `kid` no more often than configured, and UNAVAILABLE when
//! the keys were never reachable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::Duration;
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, RS256};
use josekit::jwt::{self, JwtPayload};
use keygate::proto::keygate_v1 as pb;
use pb::DecisionReason as R;
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Backend, TestServer, bearer, expect_code, start_time};

pub(crate) const ISSUER: &str = "https://idp.test";

/// An identity provider: its key pairs and a JWKS endpoint that counts its fetches.
struct Idp {
    jwks: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

type Served = (Arc<Mutex<Vec<Jwk>>>, Arc<AtomicUsize>);

async fn serve_jwks(State((jwks, fetches)): State<Served>) -> axum::Json<Value> {
    fetches.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> =
        jwks.lock().expect("jwks").iter().map(|k| serde_json::to_value(k.as_ref()).expect("json")).collect();
    axum::Json(json!({ "keys": keys }))
}

impl Idp {
    async fn start() -> Self {
        let jwks = Arc::new(Mutex::new(Vec::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = Router::new().route("/jwks", get(serve_jwks)).with_state((jwks.clone(), fetches.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { jwks, fetches, url }
    }

    /// A new RSA key `kid`: published when `publish`, returned as a private JWK to sign with.
    fn key(&self, kid: &str, publish: bool) -> Jwk {
        let pair = RS256.generate_key_pair(2048).expect("keypair");
        let mut private = pair.to_jwk_private_key();
        private.set_key_id(kid);
        let mut public = pair.to_jwk_public_key();
        public.set_key_id(kid);
        if publish {
            self.jwks.lock().expect("jwks").push(public);
        }
        private
    }
}

/// A user token signed with `key` (header `typ: JWT`), with `claims` over the defaults.
pub(crate) fn user_token(key: &Jwk, claims: Value) -> String {
    typed_token(key, "JWT", claims)
}

/// A user token with header `typ`.
fn typed_token(key: &Jwk, typ: &str, claims: Value) -> String {
    let mut header = JwsHeader::new();
    header.set_token_type(typ);
    header.set_key_id(key.key_id().expect("kid"));
    let mut defaults = json!({
        "iss": ISSUER,
        "aud": "api",
        "sub": "alice",
        "org": "acme",
        "scp": ["incidents:read"],
        "iat": start_time().timestamp(),
        "exp": start_time().timestamp() + 600,
    });
    for (name, value) in claims.as_object().expect("object") {
        defaults[name] = value.clone();
    }
    let payload = JwtPayload::from_map(defaults.as_object().expect("object").clone()).expect("payload");
    jwt::encode_with_signer(&payload, &header, &RS256.signer_from_jwk(key).expect("signer")).expect("sign")
}

/// The issuer `idp`'s users all belong to acme.
pub(crate) const IN_ACME: &[(&str, &str)] = &[("oauth.issuers.idp.organization", "acme")];

/// Starts keygate trusting `idp` (bound as `extra` says) and makes the organizations acme and
/// globex.
pub(crate) async fn start(idp_url: &str, extra: &[(&'static str, &str)]) -> TestServer {
    let mut settings = vec![
        ("oauth.issuers.idp.issuer", ISSUER),
        ("oauth.issuers.idp.audiences", "api"),
        ("oauth.issuers.idp.jwks_url", idp_url),
        // The test's provider serves its keys in plain HTTP on the loopback.
        ("oauth.issuers.idp.allow_http", "true"),
        ("oauth.issuers.idp.scope_claim", "scp"),
        ("oauth.issuers.idp.min_refetch_secs", "60"),
    ];
    settings.extend_from_slice(extra);
    let server = TestServer::start_with(Backend::Sqlite, &settings).await;
    for org in ["acme", "globex"] {
        crate::organizations::create_org(&server, org, "").await;
    }
    server
}

/// An admin request carrying `token` as `Authorization: Bearer`.
fn as_user<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_map_to_user_principals() {
    let idp = Idp::start().await;
    let key = idp.key("k1", true);
    let server = start(&idp.url, IN_ACME).await;

    let token = user_token(&key, json!({}));
    let response = server.authorize(&token, &["incidents:read"]).await;
    assert!(response.decision.expect("decision").allowed);
    let principal = response.principal.expect("principal");
    assert_eq!(principal.r#type(), pb::principal::Type::User);
    assert_eq!((principal.key_id.as_str(), principal.organization.as_str()), ("alice", "acme"));
    assert_eq!(server.reason(&token, &["investigations:write"]).await, R::InsufficientScope);

    let cases = [
        (json!({ "aud": "someone-else" }), R::InvalidAudience),
        (json!({ "exp": start_time().timestamp() - 31 }), R::ExpiredToken),
        (json!({ "nbf": start_time().timestamp() + 120 }), R::InvalidToken),
        (json!({ "iss": "https://other.test" }), R::UntrustedIssuer),
        // What is copied into upstream headers must stay one value: no spaces, no control bytes.
        (json!({ "sub": "alice x-keygate-scopes: *" }), R::InvalidToken),
        (json!({ "sub": "alice\r\nx-keygate-scopes: *" }), R::InvalidToken),
        (json!({ "sub": "x".repeat(257) }), R::InvalidToken),
        (json!({ "scp": ["incidents:read *"] }), R::InvalidToken),
        (json!({ "scp": ["incidents:read", "graph:read\u{1}"] }), R::InvalidToken),
        (json!({ "scp": "incidents:read\u{7f}" }), R::InvalidToken),
    ];
    for (claims, reason) in cases {
        let token = user_token(&key, claims.clone());
        assert_eq!(server.reason(&token, &["incidents:read"]).await, reason, "{claims}");
    }
    // An outside provider cannot grant `*` or keygate's admin scopes (unless configured to).
    let mighty = user_token(&key, json!({ "scp": ["*", "admin:keys:read", "incidents:read"] }));
    assert_eq!(server.reason(&mighty, &["graph:read"]).await, R::InsufficientScope);
    expect_code(
        server.admin().await.list_api_keys(as_user(pb::ListApiKeysRequest::default(), &mighty)).await,
        Code::PermissionDenied,
    );

    // A key the provider never published.
    let rogue = idp.key("rogue", false);
    assert_eq!(server.reason(&user_token(&rogue, json!({})), &["incidents:read"]).await, R::InvalidToken);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refetches_at_most_once_per_interval() {
    let idp = Idp::start().await;
    let first = idp.key("k1", true);
    let server = start(&idp.url, IN_ACME).await;
    assert_eq!(server.reason(&user_token(&first, json!({})), &["incidents:read"]).await, R::Allowed);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    // The provider rotates; within the interval since the last fetch the new kid is not fetched.
    let second = idp.key("k2", true);
    let token = user_token(&second, json!({ "exp": start_time().timestamp() + 3600 }));
    for _ in 0..5 {
        assert_eq!(server.reason(&token, &["incidents:read"]).await, R::InvalidToken);
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "fetches are rate-limited");

    server.clock.advance(Duration::seconds(61));
    assert_eq!(server.reason(&token, &["incidents:read"]).await, R::Allowed);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2, "one fetch for the new kid");
    // A flood of tokens naming unknown kids costs at most one fetch per interval.
    let unknown = idp.key("k3", false);
    for _ in 0..5 {
        let token = user_token(&unknown, json!({ "exp": start_time().timestamp() + 3600 }));
        assert_eq!(server.reason(&token, &["incidents:read"]).await, R::InvalidToken);
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_file_works_and_an_unreachable_jwks_is_unavailable() {
    let idp = Idp::start().await;
    let key = idp.key("k1", true);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    let public = serde_json::to_value(idp.jwks.lock().expect("jwks")[0].as_ref()).expect("json");
    std::fs::write(&path, json!({ "keys": [public] }).to_string()).expect("write");
    let server = start(
        "http://127.0.0.1:9/unreachable",
        &[
            ("oauth.issuers.idp.organization", "acme"),
            ("oauth.issuers.filed.issuer", "https://filed.test"),
            ("oauth.issuers.filed.audiences", "api"),
            ("oauth.issuers.filed.jwks_file", path.to_str().expect("utf-8")),
            ("oauth.issuers.filed.organization", "globex"),
            ("oauth.issuers.filed.scope_claim", "scp"),
        ],
    )
    .await;
    let filed = user_token(&key, json!({ "iss": "https://filed.test", "org": null }));
    assert_eq!(server.reason(&filed, &["incidents:read"]).await, R::Allowed);

    // keygate cannot decide for an issuer whose keys it never got: UNAVAILABLE, not a denial.
    let token = user_token(&key, json!({}));
    let request = pb::AuthorizeRequest {
        cost: None,
        credentials: Some(bearer(&token)),
        required_scopes: vec!["incidents:read".into()],
        organization: String::new(),
    };
    let status = expect_code(server.auth().await.authorize(request).await, Code::Unavailable);
    // The operator's configuration (the issuer's name, its URL) stays in the logs.
    assert!(!status.message().contains("idp") && !status.message().contains("127.0.0.1"), "{status:?}");
    server.stop().await;
}

/// H1: an outside issuer speaks only for the organizations the operator bound it to; naming
/// another one, one that does not exist, or the platform's is refused, and platform-admin rights
/// come only from an issuer marked `platform`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_speaks_only_for_its_organizations() {
    let idp = Idp::start().await;
    let key = idp.key("k1", true);
    let jwks = idp.url.as_str();
    let settings = [
        ("oauth.issuers.idp.organization", "acme"),
        ("oauth.issuers.idp.allow_admin_scopes", "true"),
        ("oauth.issuers.listed.issuer", "https://listed.test"),
        ("oauth.issuers.listed.organizations", "acme, globex, platform, no-such-org"),
        ("oauth.issuers.listed.allow_admin_scopes", "true"),
        ("oauth.issuers.staff.issuer", "https://staff.test"),
        ("oauth.issuers.staff.organization", "platform"),
        ("oauth.issuers.staff.platform", "true"),
        ("oauth.issuers.staff.allow_admin_scopes", "true"),
        ("oauth.issuers.gone.issuer", "https://gone.test"),
        ("oauth.issuers.gone.organization", "initech"),
        ("oauth.issuers.typed.issuer", "https://typed.test"),
        ("oauth.issuers.typed.organization", "acme"),
        ("oauth.issuers.typed.typ", "at+jwt"),
    ];
    // Each issuer's audience, scope claim and keys: the test's one provider.
    let shared = [
        ["oauth.issuers.listed.audiences", "oauth.issuers.listed.scope_claim", "oauth.issuers.listed.jwks_url"],
        ["oauth.issuers.staff.audiences", "oauth.issuers.staff.scope_claim", "oauth.issuers.staff.jwks_url"],
        ["oauth.issuers.gone.audiences", "oauth.issuers.gone.scope_claim", "oauth.issuers.gone.jwks_url"],
        ["oauth.issuers.typed.audiences", "oauth.issuers.typed.scope_claim", "oauth.issuers.typed.jwks_url"],
    ];
    let mut all = settings.to_vec();
    for [audiences, scope_claim, jwks_url] in shared {
        all.extend([(audiences, "api"), (scope_claim, "scp"), (jwks_url, jwks)]);
    }
    all.extend([
        ("oauth.issuers.listed.allow_http", "true"),
        ("oauth.issuers.staff.allow_http", "true"),
        ("oauth.issuers.gone.allow_http", "true"),
        ("oauth.issuers.typed.allow_http", "true"),
    ]);
    let server = start(&idp.url, &all).await;
    let mut admin = server.admin().await;
    let token = |claims: Value| user_token(&key, claims);
    let org_of = |response: pb::AuthorizeResponse| response.principal.expect("principal").organization;

    // Bound to acme: acme (named or not) works; any other organization is refused, whatever
    // scopes the token claims and although the issuer may grant admin scopes.
    assert_eq!(org_of(server.authorize(&token(json!({})), &["incidents:read"]).await), "acme");
    assert_eq!(org_of(server.authorize(&token(json!({ "org": null })), &["incidents:read"]).await), "acme");
    for org in ["globex", "platform", "no-such-org"] {
        let claims = json!({ "org": org, "scp": ["*"] });
        assert_eq!(server.reason(&token(claims), &["incidents:read"]).await, R::UntrustedOrganization, "{org}");
    }
    let decision = server.authorize(&token(json!({ "org": "globex" })), &["incidents:read"]).await;
    let decision = decision.decision.expect("decision");
    assert_eq!((decision.http_status, decision.error_code.as_str()), (401, "untrusted_organization"));

    // The attack: org "platform" with `*` lists nothing, creates nothing elsewhere, rotates nothing.
    let forged = token(json!({ "org": "platform", "scp": ["*"] }));
    let elsewhere = pb::CreateApiKeyRequest {
        name: "backdoor".into(),
        scopes: vec!["*".into()],
        organization: "globex".into(),
        ..Default::default()
    };
    let status = expect_code(
        admin.list_organizations(as_user(pb::ListOrganizationsRequest::default(), &forged)).await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("organization"), "{status:?}");
    expect_code(admin.create_api_key(as_user(elsewhere.clone(), &forged)).await, Code::Unauthenticated);
    expect_code(
        admin.rotate_signing_key(as_user(pb::RotateSigningKeyRequest {}, &forged)).await,
        Code::Unauthenticated,
    );
    // acme's own admin (`*` from an issuer allowed to grant it) stays inside acme.
    let acme_admin = token(json!({ "scp": ["*"] }));
    let listed = admin.list_organizations(as_user(pb::ListOrganizationsRequest::default(), &acme_admin)).await;
    let slugs: Vec<String> =
        listed.expect("own organization").into_inner().organizations.into_iter().map(|o| o.slug).collect();
    assert_eq!(slugs, ["acme"]);
    expect_code(admin.create_api_key(as_user(elsewhere.clone(), &acme_admin)).await, Code::NotFound);
    expect_code(
        admin.rotate_signing_key(as_user(pb::RotateSigningKeyRequest {}, &acme_admin)).await,
        Code::PermissionDenied,
    );

    // An allow-list: the listed organizations that exist work; others, unknown ones and the
    // platform's (the issuer is not marked platform) are refused; the claim is required.
    let listed = |claims: Value| {
        let mut claims = claims;
        claims["iss"] = json!("https://listed.test");
        token(claims)
    };
    for org in ["acme", "globex"] {
        assert_eq!(org_of(server.authorize(&listed(json!({ "org": org })), &["incidents:read"]).await), org);
    }
    for org in ["initech", "platform", "no-such-org", "ACME"] {
        let reason = server.reason(&listed(json!({ "org": org, "scp": ["*"] })), &["incidents:read"]).await;
        assert_eq!(reason, R::UntrustedOrganization, "{org}");
    }
    assert_eq!(server.reason(&listed(json!({ "org": null })), &["incidents:read"]).await, R::InvalidToken);
    let listed_platform = listed(json!({ "org": "platform", "scp": ["*"] }));
    expect_code(admin.create_api_key(as_user(elsewhere.clone(), &listed_platform)).await, Code::Unauthenticated);

    // A fixed organization that does not exist: every token of that issuer is refused.
    let gone = token(json!({ "iss": "https://gone.test", "org": null }));
    assert_eq!(server.reason(&gone, &["incidents:read"]).await, R::UntrustedOrganization);

    // The issuer the operator marked as the platform's makes platform admins.
    let staff = token(json!({ "iss": "https://staff.test", "org": null, "scp": ["*"] }));
    let all = admin.list_organizations(as_user(pb::ListOrganizationsRequest::default(), &staff)).await;
    let mut slugs: Vec<String> =
        all.expect("every organization").into_inner().organizations.into_iter().map(|o| o.slug).collect();
    slugs.sort();
    assert_eq!(slugs, ["acme", "globex", "platform"]);
    let org = pb::CreateOrganizationRequest { slug: "umbrella".into(), name: "Umbrella".into(), plan: String::new() };
    let created = admin.create_organization(as_user(org, &staff)).await.expect("a platform admin creates anywhere");
    assert!(!created.into_inner().platform);
    // A platform admin still, but its 10-minute token cannot mint a key that outlives it.
    let status = expect_code(admin.create_api_key(as_user(elsewhere, &staff)).await, Code::PermissionDenied);
    assert!(status.message().contains("outlive your own credential"), "{status:?}");
    admin.rotate_signing_key(as_user(pb::RotateSigningKeyRequest {}, &staff)).await.expect("a platform admin rotates");
    // Its tokens naming another organization are refused like any other issuer's.
    let astray = token(json!({ "iss": "https://staff.test", "org": "acme", "scp": ["*"] }));
    assert_eq!(server.reason(&astray, &["incidents:read"]).await, R::UntrustedOrganization);

    // An expected `typ`: an ID token (typ JWT, or none) is not an access token.
    let typed = |typ: &str| typed_token(&key, typ, json!({ "iss": "https://typed.test" }));
    assert_eq!(server.reason(&typed("at+jwt"), &["incidents:read"]).await, R::Allowed);
    assert_eq!(server.reason(&typed("application/AT+JWT"), &["incidents:read"]).await, R::Allowed);
    assert_eq!(server.reason(&typed("JWT"), &["incidents:read"]).await, R::InvalidToken);
    let mut header = JwsHeader::new();
    header.set_key_id("k1");
    let claims =
        json!({ "iss": "https://typed.test", "aud": "api", "sub": "alice", "exp": start_time().timestamp() + 600 });
    let payload = JwtPayload::from_map(claims.as_object().expect("object").clone()).expect("payload");
    let untyped =
        jwt::encode_with_signer(&payload, &header, &RS256.signer_from_jwk(&key).expect("signer")).expect("sign");
    assert_eq!(server.reason(&untyped, &["incidents:read"]).await, R::InvalidToken);
    server.stop().await;
}

/// The reference's flow: an admin signed in at the company's identity provider creates a
/// year-long key with `Authorization: Bearer <admin_token>`. Only an issuer the operator marks
/// `lasting_credentials` may; another issuer's admin tokens are held to their own expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_issuers_admins_create_lasting_keys_over_rest() {
    let idp = Idp::start().await;
    let key = idp.key("k1", true);
    let settings: &[(&'static str, &str)] = &[
        ("oauth.issuers.idp.organization", "acme"),
        ("oauth.issuers.idp.allow_admin_scopes", "true"),
        ("oauth.issuers.idp.lasting_credentials", "true"),
        ("oauth.issuers.plain.issuer", "https://plain.test"),
        ("oauth.issuers.plain.audiences", "api"),
        ("oauth.issuers.plain.jwks_url", &idp.url),
        ("oauth.issuers.plain.allow_http", "true"),
        ("oauth.issuers.plain.scope_claim", "scp"),
        ("oauth.issuers.plain.organization", "acme"),
        ("oauth.issuers.plain.allow_admin_scopes", "true"),
    ];
    let server = start(&idp.url, settings).await;
    let admin_scopes = json!(["admin:keys", "admin:clients", "incidents:read"]);
    let trusted = user_token(&key, json!({"scp": admin_scopes}));
    let plain = user_token(&key, json!({"iss": "https://plain.test", "scp": admin_scopes}));
    let create = |token: &str| {
        let body = json!({"name": "SOAR Integration", "scopes": ["incidents:read"], "expires_in_days": 365});
        reqwest::Client::new()
            .post(server.url("/api/admin/api-keys"))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
    };
    let response = create(&trusted).await.expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let created: Value = serde_json::from_str(&response.text().await.expect("body")).expect("json");
    let expected = (start_time() + Duration::days(365)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(created["expires_at"], expected.as_str(), "{created}");
    assert_eq!(created["key"]["created_by"], "alice");
    let client = json!({"name": "XSOAR", "scopes": ["incidents:read"]});
    let response = reqwest::Client::new()
        .post(server.url("/api/admin/api-clients"))
        .header("Authorization", format!("Bearer {trusted}"))
        .header("Content-Type", "application/json")
        .body(client.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED, "a trusted admin creates clients too");

    let response = create(&plain).await.expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    let refused: Value = serde_json::from_str(&response.text().await.expect("body")).expect("json");
    assert!(refused["detail"].as_str().unwrap_or_default().contains("outlive your own credential"), "{refused}");
    server.stop().await;
}
