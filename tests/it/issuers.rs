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

const ISSUER: &str = "https://idp.test";

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

/// A user token signed with `key`, expiring `exp_in` seconds after the test clock's start.
fn user_token(key: &Jwk, claims: Value) -> String {
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    header.set_key_id(key.key_id().expect("kid"));
    let mut defaults = json!({
        "iss": ISSUER,
        "aud": "api",
        "sub": "alice",
        "org": "platform",
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

async fn start(idp_url: &str, extra: &[(&'static str, &str)]) -> TestServer {
    let mut settings = vec![
        ("oauth.issuers.idp.issuer", ISSUER),
        ("oauth.issuers.idp.audiences", "api"),
        ("oauth.issuers.idp.jwks_url", idp_url),
        ("oauth.issuers.idp.scope_claim", "scp"),
        ("oauth.issuers.idp.min_refetch_secs", "60"),
    ];
    settings.extend_from_slice(extra);
    TestServer::start_with(Backend::Sqlite, &settings).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_map_to_user_principals() {
    let idp = Idp::start().await;
    let key = idp.key("k1", true);
    let server = start(&idp.url, &[]).await;

    let token = user_token(&key, json!({}));
    let response = server.authorize(&token, &["incidents:read"]).await;
    assert!(response.decision.expect("decision").allowed);
    let principal = response.principal.expect("principal");
    assert_eq!(principal.r#type(), pb::principal::Type::User);
    assert_eq!((principal.key_id.as_str(), principal.organization.as_str()), ("alice", "platform"));
    assert_eq!(server.reason(&token, &["investigations:write"]).await, R::InsufficientScope);

    let cases = [
        (json!({ "aud": "someone-else" }), R::InvalidAudience),
        (json!({ "exp": start_time().timestamp() - 31 }), R::ExpiredToken),
        (json!({ "nbf": start_time().timestamp() + 120 }), R::InvalidToken),
        (json!({ "org": null }), R::InvalidToken),
        (json!({ "iss": "https://other.test" }), R::UntrustedIssuer),
    ];
    for (claims, reason) in cases {
        let token = user_token(&key, claims.clone());
        assert_eq!(server.reason(&token, &["incidents:read"]).await, reason, "{claims}");
    }
    // An outside provider cannot grant `*` or keygate's admin scopes (unless configured to).
    let mighty = user_token(&key, json!({ "scp": ["*", "admin:keys:read", "incidents:read"] }));
    assert_eq!(server.reason(&mighty, &["graph:read"]).await, R::InsufficientScope);
    let list = crate::support::as_admin(pb::ListApiKeysRequest::default(), "unused");
    let mut list = list;
    list.metadata_mut().remove("x-api-key");
    list.metadata_mut().insert("authorization", format!("Bearer {mighty}").parse().expect("ascii"));
    expect_code(server.admin().await.list_api_keys(list).await, Code::PermissionDenied);

    // A key the provider never published.
    let rogue = idp.key("rogue", false);
    assert_eq!(server.reason(&user_token(&rogue, json!({})), &["incidents:read"]).await, R::InvalidToken);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refetches_at_most_once_per_interval() {
    let idp = Idp::start().await;
    let first = idp.key("k1", true);
    let server = start(&idp.url, &[]).await;
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
            ("oauth.issuers.filed.issuer", "https://filed.test"),
            ("oauth.issuers.filed.audiences", "api"),
            ("oauth.issuers.filed.jwks_file", path.to_str().expect("utf-8")),
            ("oauth.issuers.filed.organization", "platform"),
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
    expect_code(server.auth().await.authorize(request).await, Code::Unavailable);
    server.stop().await;
}
