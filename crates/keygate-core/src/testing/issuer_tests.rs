//! Trusted outside issuers, through the token verifier: a fake JWKS source that counts its
//! fetches, user tokens signed here with josekit, and the manual clock. What a valid token maps
//! to, which claims and headers are refused, and when the issuer's keys are fetched again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, HS256, JwsHeader, JwsSigner, RS256};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value, json};

use crate::error::CoreError;
use crate::model::{PrincipalKind, Reason};
use crate::ports::{Clock, JwksSource};
use crate::testing::harness::{Core, scopes};
use crate::tokens::issuers::{IssuerSettings, OrganizationBinding, TrustedIssuer};
use crate::tokens::signing::Algorithm;
use crate::tokens::{OutsideIssuer, TokenSettings, TokenVerifier, VerifiedToken};

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "keygate-api";

/// A JWKS document that tests change, or make fail, and that counts how often it is fetched.
struct FakeJwks {
    document: Mutex<Result<String, String>>,
    fetches: AtomicUsize,
}

impl FakeJwks {
    fn new(keys: &[&TestKey]) -> Self {
        Self { document: Mutex::new(Ok(jwks(keys))), fetches: AtomicUsize::new(0) }
    }

    fn publish(&self, keys: &[&TestKey]) {
        *self.document.lock().expect("document") = Ok(jwks(keys));
    }

    fn fail(&self) {
        *self.document.lock().expect("document") = Err("connection refused".to_owned());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl JwksSource for FakeJwks {
    async fn fetch(&self) -> Result<String, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.document.lock().expect("document").clone()
    }

    fn describe(&self) -> String {
        "fake JWKS".to_owned()
    }
}

/// A key pair of the issuer's: the public JWK it publishes and a signer for its tokens.
struct TestKey {
    kid: String,
    public: Jwk,
    signer: Box<dyn JwsSigner>,
}

fn es256(kid: &str) -> TestKey {
    let pair = ES256.generate_key_pair().expect("an EC key pair");
    let mut public = pair.to_jwk_public_key();
    public.set_key_id(kid);
    let signer = ES256.signer_from_jwk(&pair.to_jwk_private_key()).expect("an ES256 signer");
    TestKey { kid: kid.to_owned(), public, signer: Box::new(signer) }
}

fn rs256(kid: &str) -> TestKey {
    let pair = RS256.generate_key_pair(2048).expect("an RSA key pair");
    let mut public = pair.to_jwk_public_key();
    public.set_key_id(kid);
    let signer = RS256.signer_from_jwk(&pair.to_jwk_private_key()).expect("an RS256 signer");
    TestKey { kid: kid.to_owned(), public, signer: Box::new(signer) }
}

fn jwks(keys: &[&TestKey]) -> String {
    let keys: Vec<Value> =
        keys.iter().map(|key| serde_json::from_str(&key.public.to_string()).expect("a JWK as JSON")).collect();
    json!({ "keys": keys }).to_string()
}

fn settings() -> IssuerSettings {
    IssuerSettings {
        name: "idp".to_owned(),
        issuer: ISSUER.to_owned(),
        audiences: vec![AUDIENCE.to_owned()],
        algorithms: vec![Algorithm::Es256],
        user_claim: "sub".to_owned(),
        scope_claim: "scope".to_owned(),
        organization_claim: "org".to_owned(),
        organization: OrganizationBinding::Fixed("acme".to_owned()),
        platform: false,
        refresh: Duration::hours(1),
        min_refetch: Duration::seconds(60),
        allow_admin_scopes: false,
        typ: String::new(),
        lasting_credentials: false,
    }
}

/// The harness's core (for its keyring and clock), and a verifier trusting one outside issuer.
struct Fixture {
    core: Core,
    source: Arc<FakeJwks>,
    verifier: TokenVerifier,
    key: TestKey,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(settings(), es256("k1")).await
    }

    async fn with(settings: IssuerSettings, key: TestKey) -> Self {
        let core = Core::new().await;
        let source = Arc::new(FakeJwks::new(&[&key]));
        let clock: Arc<dyn Clock> = core.clock.clone();
        let issuer = Arc::new(TrustedIssuer::new(settings, source.clone(), clock));
        let token_settings = TokenSettings {
            issuer: "https://keygate.test".to_owned(),
            audience: vec!["keygate".to_owned()],
            ttl: Duration::minutes(30),
            leeway: Duration::seconds(30),
        };
        let verifier = TokenVerifier::new(core.keyring.clone(), token_settings, vec![issuer]);
        Self { core, source, verifier, key }
    }

    /// The claims of a valid user token issued now, with `changes` (a `null` removes a claim).
    fn claims(&self, changes: Value) -> Map<String, Value> {
        let now = self.core.now().timestamp();
        let mut claims = json!({
            "iss": ISSUER,
            "aud": [AUDIENCE, "other"],
            "sub": "alice",
            "name": "Alice",
            "scope": "search:read graph:read",
            "iat": now,
            "exp": now + 600,
        });
        let map = claims.as_object_mut().expect("an object");
        for (name, value) in changes.as_object().expect("an object of changes") {
            if value.is_null() {
                map.remove(name);
            } else {
                map.insert(name.clone(), value.clone());
            }
        }
        map.clone()
    }

    fn token(&self, changes: Value) -> String {
        sign(&self.key, None, self.claims(changes))
    }

    async fn verify(&self, token: &str) -> Result<Result<VerifiedToken, Reason>, CoreError> {
        let verified = self.verifier.verify(token, self.core.now()).await?;
        Ok(verified.map_err(|failure| failure.reason))
    }

    /// The verdict on `token`, which must be one (not a failure to decide).
    async fn verdict(&self, token: &str) -> Result<VerifiedToken, Reason> {
        self.verify(token).await.expect("a verdict")
    }

    fn advance(&self, seconds: i64) {
        self.core.clock.advance(Duration::seconds(seconds));
    }
}

/// A token signed by `key` under its kid, with `typ` when given.
fn sign(key: &TestKey, typ: Option<&str>, claims: Map<String, Value>) -> String {
    let mut header = JwsHeader::new();
    header.set_key_id(key.kid.clone());
    if let Some(typ) = typ {
        header.set_token_type(typ);
    }
    let payload = JwtPayload::from_map(claims).expect("a payload");
    jwt::encode_with_signer(&payload, &header, key.signer.as_ref()).expect("a signed token")
}

#[tokio::test]
async fn a_valid_token_is_a_user_principal_with_its_scopes() {
    let f = Fixture::new().await;
    let exp = f.core.now() + Duration::seconds(600);
    let token = f.token(json!({ "scope": "search:read admin:keys graph:read *" }));
    let verified = f.verdict(&token).await.expect("a valid token");
    let principal = &verified.principal;
    assert_eq!(
        (principal.kind, principal.id.as_str(), principal.organization.as_str()),
        (PrincipalKind::User, "alice", "acme")
    );
    assert_eq!(principal.scopes, scopes(&["search:read", "graph:read"]), "admin scopes are dropped by default");
    assert_eq!((principal.name.as_str(), principal.expires_at), ("Alice", exp));
    assert_eq!(
        (verified.outside, verified.client_id, verified.not_before),
        (Some(OutsideIssuer { platform: false }), None, None)
    );
    assert_eq!(f.source.fetches(), 1, "the keys are fetched on first use");
    f.verdict(&token).await.expect("valid again");
    assert_eq!(f.source.fetches(), 1, "and cached while fresh");
}

#[tokio::test]
async fn an_array_scope_claim_and_admin_scopes_when_allowed() {
    let settings = IssuerSettings { scope_claim: "scp".to_owned(), allow_admin_scopes: true, ..settings() };
    let f = Fixture::with(settings, es256("k1")).await;
    let token = f.token(json!({ "scp": ["search:read", "admin:keys", "*"], "scope": "ignored" }));
    let principal = f.verdict(&token).await.expect("a valid token").principal;
    assert_eq!(principal.scopes, scopes(&["search:read", "admin:keys", "*"]));
    let none = f.verdict(&f.token(json!({ "scp": null }))).await.expect("a token without scopes");
    assert!(none.principal.scopes.is_empty(), "{:?}", none.principal.scopes);
}

#[tokio::test]
async fn another_issuer_or_audience_is_refused() {
    let f = Fixture::new().await;
    let other = f.verdict(&f.token(json!({ "iss": "https://other.example" }))).await;
    assert_eq!(other.map(|_| ()), Err(Reason::UntrustedIssuer));
    assert_eq!(f.source.fetches(), 0, "an untrusted issuer's token fetches nothing");
    let no_issuer = f.verdict(&f.token(json!({ "iss": null }))).await;
    assert_eq!(no_issuer.map(|_| ()), Err(Reason::UntrustedIssuer));
    // keygate's own issuer, signed by the outside key: keygate's keyring knows no such kid.
    let own = f.verdict(&f.token(json!({ "iss": "https://keygate.test" }))).await;
    assert_eq!(own.map(|_| ()), Err(Reason::InvalidToken));
    for aud in [json!("other"), json!(["keygate", "other"]), Value::Null] {
        let wrong = f.verdict(&f.token(json!({ "aud": aud.clone() }))).await;
        assert_eq!(wrong.map(|_| ()), Err(Reason::InvalidAudience), "aud {aud}");
    }
    let single = f.verdict(&f.token(json!({ "aud": AUDIENCE }))).await;
    assert_eq!(single.map(|v| v.principal.id), Ok("alice".to_owned()), "a string aud works too");
}

#[tokio::test]
async fn expiry_and_not_before_allow_the_leeway_and_no_more() {
    let f = Fixture::new().await;
    let token = f.token(json!({}));
    f.advance(600 + 29);
    assert_eq!(f.verdict(&token).await.map(|v| v.principal.id), Ok("alice".to_owned()), "within the leeway");
    f.advance(1);
    assert_eq!(f.verdict(&token).await.map(|_| ()), Err(Reason::ExpiredToken));

    let now = f.core.now().timestamp();
    let early = f.verdict(&f.token(json!({ "nbf": now + 31 }))).await;
    assert_eq!(early.map(|_| ()), Err(Reason::InvalidToken), "nbf beyond the leeway");
    let skewed = f.verdict(&f.token(json!({ "nbf": now + 30 }))).await.expect("nbf within the leeway");
    assert_eq!(skewed.not_before.map(|nbf| nbf.timestamp()), Some(now + 30));
    let endless = f.verdict(&f.token(json!({ "exp": null }))).await;
    assert_eq!(endless.map(|_| ()), Err(Reason::InvalidToken), "exp is required");
}

#[tokio::test]
async fn an_unknown_kid_fetches_again_but_not_more_often_than_configured() {
    let f = Fixture::new().await;
    f.verdict(&f.token(json!({}))).await.expect("k1 is published");
    assert_eq!(f.source.fetches(), 1);
    let k2 = es256("k2");
    let rotated = sign(&k2, None, f.claims(json!({})));
    f.source.publish(&[&f.key, &k2]);
    assert_eq!(f.verdict(&rotated).await.map(|_| ()), Err(Reason::InvalidToken), "fetched < min_refetch ago");
    assert_eq!(f.source.fetches(), 1, "no fetch within min_refetch of the last");
    f.advance(60);
    let rotated = sign(&k2, None, f.claims(json!({})));
    assert_eq!(f.verdict(&rotated).await.map(|v| v.principal.id), Ok("alice".to_owned()));
    assert_eq!(f.source.fetches(), 2, "one fetch for the unknown kid");
    let k3 = sign(&es256("k3"), None, f.claims(json!({})));
    for _ in 0..3 {
        assert_eq!(f.verdict(&k3).await.map(|_| ()), Err(Reason::InvalidToken));
    }
    assert_eq!(f.source.fetches(), 2, "unknown kids right after a fetch fetch nothing");
    f.advance(60);
    assert_eq!(f.verdict(&k3).await.map(|_| ()), Err(Reason::InvalidToken), "still unknown");
    assert_eq!(f.source.fetches(), 3, "once min_refetch has passed");
    assert_eq!(f.verdict(&f.token(json!({}))).await.map(|v| v.principal.id), Ok("alice".to_owned()));
    assert_eq!(f.source.fetches(), 3, "a known kid fetches nothing");
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_last_good_keys() {
    let f = Fixture::new().await;
    f.verdict(&f.token(json!({}))).await.expect("k1 is published");
    f.source.fail();
    f.advance(3600);
    let token = f.token(json!({}));
    assert_eq!(f.verdict(&token).await.map(|v| v.principal.id), Ok("alice".to_owned()), "the old keys still work");
    assert_eq!(f.source.fetches(), 2, "the stale keys were fetched again");
    // A JWKS that does not parse is a failure too.
    *f.source.document.lock().expect("document") = Ok("{\"keys\": 5}".to_owned());
    f.advance(3600);
    assert_eq!(f.verdict(&f.token(json!({}))).await.map(|v| v.principal.id), Ok("alice".to_owned()));
    assert_eq!(f.source.fetches(), 3);
}

#[tokio::test]
async fn keys_never_fetched_fail_to_decide_and_are_not_asked_for_every_request() {
    let f = Fixture::new().await;
    f.source.fail();
    let token = f.token(json!({}));
    for _ in 0..3 {
        let outcome = f.verify(&token).await;
        assert!(matches!(outcome, Err(CoreError::Unavailable(_))), "{outcome:?}");
    }
    assert_eq!(f.source.fetches(), 1, "a provider that is down is asked once per min_refetch");
    f.source.publish(&[&f.key]);
    f.advance(60);
    assert_eq!(f.verdict(&token).await.map(|v| v.principal.id), Ok("alice".to_owned()));
    assert_eq!(f.source.fetches(), 2);
}

#[tokio::test]
async fn the_algorithm_is_pinned_to_the_key_and_the_issuer() {
    let settings = IssuerSettings { algorithms: vec![Algorithm::Es256, Algorithm::Rs256], ..settings() };
    let f = Fixture::with(settings, es256("k1")).await;
    let r1 = rs256("r1");
    let mut ps = rs256("ps");
    ps.public.set_algorithm("PS256");
    let mut enc = rs256("enc");
    enc.public.set_key_use("enc");
    f.source.publish(&[&f.key, &r1, &ps, &enc]);
    assert_eq!(f.verdict(&sign(&r1, None, f.claims(json!({})))).await.map(|v| v.principal.id), Ok("alice".to_owned()));
    // Signed with the RSA key but naming the EC key's kid: (k1, RS256) is no key of the issuer's.
    let rsa_as_ec = TestKey { kid: "k1".to_owned(), public: r1.public.clone(), signer: r1.signer };
    assert_eq!(f.verdict(&sign(&rsa_as_ec, None, f.claims(json!({})))).await.map(|_| ()), Err(Reason::InvalidToken));
    let ec_as_rsa = TestKey { kid: "r1".to_owned(), public: f.key.public.clone(), signer: es256("x").signer };
    assert_eq!(f.verdict(&sign(&ec_as_rsa, None, f.claims(json!({})))).await.map(|_| ()), Err(Reason::InvalidToken));
    // A key that names another algorithm, or is not for signatures, verifies nothing.
    for key in [ps, enc] {
        let refused = f.verdict(&sign(&key, None, f.claims(json!({})))).await;
        assert_eq!(refused.map(|_| ()), Err(Reason::InvalidToken), "{}", key.kid);
    }
}

#[tokio::test]
async fn an_algorithm_the_issuer_does_not_accept_is_refused_unfetched() {
    let f = Fixture::new().await;
    let claims = f.claims(json!({}));
    let rsa = sign(&rs256("k1"), None, claims.clone());
    let hmac_signer = HS256.signer_from_bytes(f.key.public.to_string().as_bytes()).expect("an HMAC signer");
    let hmac = sign(
        &TestKey { kid: "k1".to_owned(), public: f.key.public.clone(), signer: Box::new(hmac_signer) },
        None,
        claims.clone(),
    );
    let part = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let none = format!("{}.{}.", part(json!({ "alg": "none", "kid": "k1" })), part(Value::Object(claims)));
    for (name, token) in [("RS256", rsa), ("HS256", hmac), ("none", none)] {
        assert_eq!(f.verdict(&token).await.map(|_| ()), Err(Reason::InvalidToken), "{name}");
    }
    assert_eq!(f.source.fetches(), 0, "refused before any key is looked up");
    let no_kid = {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        let payload = JwtPayload::from_map(f.claims(json!({}))).expect("a payload");
        jwt::encode_with_signer(&payload, &header, f.key.signer.as_ref()).expect("a token")
    };
    assert_eq!(f.verdict(&no_kid).await.map(|_| ()), Err(Reason::InvalidToken), "kid is required");
    let forged = sign(
        &TestKey { kid: "k1".to_owned(), public: f.key.public.clone(), signer: es256("k1").signer },
        None,
        f.claims(json!({})),
    );
    assert_eq!(f.verdict(&forged).await.map(|_| ()), Err(Reason::InvalidToken), "another key's signature");
}

#[tokio::test]
async fn user_ids_and_scopes_that_are_not_header_safe_are_invalid() {
    let f = Fixture::new().await;
    let longest = "a".repeat(256);
    let ok = f.verdict(&f.token(json!({ "sub": longest.clone(), "scope": format!("x:{}", "b".repeat(254)) }))).await;
    assert_eq!(
        ok.map(|v| (v.principal.id.len(), v.principal.scopes[0].len())),
        Ok((256, 256)),
        "256 bytes is the most"
    );
    for changes in [
        json!({ "sub": "alice smith" }),
        json!({ "sub": "alice\tsmith" }),
        json!({ "sub": "alice\u{7}" }),
        json!({ "sub": "alice\r\nx-evil: 1" }),
        json!({ "sub": "a".repeat(257) }),
        json!({ "sub": "" }),
        json!({ "sub": null }),
        json!({ "scope": "search:read bad\u{1}scope" }),
        json!({ "scope": format!("x:{}", "b".repeat(255)) }),
    ] {
        let refused = f.verdict(&f.token(changes.clone())).await;
        assert_eq!(refused.map(|_| ()), Err(Reason::InvalidToken), "{changes}");
    }
    // A space-separated string is a list; a space inside an array item would add a scope.
    let split = f.verdict(&f.token(json!({ "scope": "  search:read\tgraph:read " }))).await.expect("a list");
    assert_eq!(split.principal.scopes, scopes(&["search:read", "graph:read"]));
    let array = IssuerSettings { scope_claim: "scp".to_owned(), ..settings() };
    let g = Fixture::with(array, es256("k1")).await;
    let spaced = g.verdict(&g.token(json!({ "scp": ["search:read graph:read"] }))).await;
    assert_eq!(spaced.map(|_| ()), Err(Reason::InvalidToken));
}

#[tokio::test]
async fn the_organization_follows_the_issuer_binding() {
    let f = Fixture::new().await;
    assert_eq!(
        f.verdict(&f.token(json!({ "org": "acme" }))).await.map(|v| v.principal.organization),
        Ok("acme".to_owned())
    );
    let elsewhere = f.verdict(&f.token(json!({ "org": "globex" }))).await;
    assert_eq!(elsewhere.map(|_| ()), Err(Reason::UntrustedOrganization), "a fixed binding is not re-homed");
    let binding = OrganizationBinding::AllowList(vec!["acme".to_owned(), "globex".to_owned()]);
    let g = Fixture::with(IssuerSettings { organization: binding, platform: true, ..settings() }, es256("k1")).await;
    let globex = g.verdict(&g.token(json!({ "org": "globex" }))).await.expect("an allowed organization");
    assert_eq!(
        (globex.principal.organization.as_str(), globex.outside),
        ("globex", Some(OutsideIssuer { platform: true }))
    );
    assert_eq!(g.verdict(&g.token(json!({ "org": "initech" }))).await.map(|_| ()), Err(Reason::UntrustedOrganization));
    assert_eq!(g.verdict(&g.token(json!({ "org": "" }))).await.map(|_| ()), Err(Reason::InvalidToken));
    assert_eq!(g.verdict(&g.token(json!({}))).await.map(|_| ()), Err(Reason::InvalidToken), "the claim is required");
}

#[tokio::test]
async fn the_typ_header_is_checked_when_configured() {
    let f = Fixture::with(IssuerSettings { typ: "at+jwt".to_owned(), ..settings() }, es256("k1")).await;
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
        let token = sign(&f.key, Some(typ), f.claims(json!({})));
        assert_eq!(f.verdict(&token).await.map(|v| v.principal.id), Ok("alice".to_owned()), "{typ}");
    }
    for typ in [Some("JWT"), Some("application/jwt"), None] {
        let token = sign(&f.key, typ, f.claims(json!({})));
        assert_eq!(f.verdict(&token).await.map(|_| ()), Err(Reason::InvalidToken), "{typ:?}");
    }
    let any = Fixture::new().await;
    assert!(
        any.verdict(&sign(&any.key, Some("JWT"), any.claims(json!({})))).await.is_ok_and(|v| v.principal.id == "alice")
    );
}
