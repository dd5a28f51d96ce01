//! Target `jwt`: the reading of bearer JWTs, keygate's own (RFC 9068, signed by its keyring) and
//! those of a trusted outside issuer, through [`TokenVerifier::verify`].
//!
//! A token made of random bytes never gets past its signature, so most inputs are signed here
//! first: the first byte picks how. Low two bits: `0` the rest is a whole token as sent; `1` the
//! rest is the claims of a token signed with keygate's own key; `2` the same with the outside
//! issuer's key; `3` the rest is a header, a NUL and claims, signed with the outside key when bit
//! 2 is set, else keygate's own. For `1` and `2`, bit 2 merges claims that are a JSON object over
//! a valid set, so that the fuzzer starts from tokens that verify.
//!
//! What must hold: verification always decides (no error, since the keys are loaded), and a
//! token that verifies is unexpired and valid yet; an outside user's id is header-safe, it holds
//! no admin scope and its organization is one the issuer may speak for; keygate's own token
//! names a client and an organization. (An own token's `scope` may hold control characters and
//! still verify: its scopes are narrowed to the client's record later, so that is not asserted.)

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use josekit::jws::JwsSigner;
use serde_json::{Map, Value, json};

use keygate_core::clock::ManualClock;
use keygate_core::model::PrincipalKind;
use keygate_core::ports::{Clock, JwksSource};
use keygate_core::tokens::issuers::{IssuerSettings, OrganizationBinding, TrustedIssuer};
use keygate_core::tokens::signing::{self, Algorithm, KeySource, Keyring, KeyringSettings};
use keygate_core::tokens::{TokenSettings, TokenVerifier, looks_like_jwt};

use crate::fields;

const OWN_ISSUER: &str = "https://auth.keygate.test";
const AUDIENCE: &str = "keygate-api";
const OUTSIDE_ISSUER: &str = "https://idp.example.test";
const OUTSIDE_AUDIENCE: &str = "app";
const ORGANIZATIONS: [&str; 2] = ["acme", "globex"];
/// 2026-01-01T00:00:00Z: a fixed "now", so that a corpus entry means the same on every run.
const NOW: i64 = 1_767_225_600;
const LEEWAY_SECONDS: i64 = 30;

/// The keys and the verifier, made once per process.
struct State {
    verifier: TokenVerifier,
    own_kid: String,
    own_signer: Box<dyn JwsSigner>,
    outside_kid: String,
    outside_signer: Box<dyn JwsSigner>,
    now: DateTime<Utc>,
}

/// The outside issuer's JWK Set, served from memory.
struct StaticJwks(String);

#[async_trait]
impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<String, String> {
        Ok(self.0.clone())
    }

    fn describe(&self) -> String {
        "the fuzz target's JWKS".to_owned()
    }
}

fn setup() -> Result<State, String> {
    let now = DateTime::from_timestamp(NOW, 0).ok_or("the fixed time")?;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now));
    let own = signing::generate(Algorithm::EdDsa, now).map_err(|e| e.to_string())?;
    let outside = signing::generate(Algorithm::EdDsa, now).map_err(|e| e.to_string())?;
    let settings = KeyringSettings {
        algorithm: Algorithm::EdDsa,
        retired_lifetime: Duration::minutes(10),
        min_reload_interval: Duration::seconds(10),
    };
    let keyring = block_on(Keyring::open(KeySource::Files(vec![own.clone()]), settings, clock.clone()))
        .map_err(|e| e.to_string())?;
    let issuer = IssuerSettings {
        name: "fuzz".to_owned(),
        issuer: OUTSIDE_ISSUER.to_owned(),
        audiences: vec![OUTSIDE_AUDIENCE.to_owned()],
        algorithms: vec![Algorithm::EdDsa],
        user_claim: "sub".to_owned(),
        scope_claim: "scope".to_owned(),
        organization_claim: "org".to_owned(),
        organization: OrganizationBinding::AllowList(ORGANIZATIONS.map(str::to_owned).to_vec()),
        platform: false,
        refresh: Duration::hours(1),
        min_refetch: Duration::minutes(1),
        allow_admin_scopes: false,
        typ: String::new(),
        lasting_credentials: false,
    };
    let jwks = StaticJwks(format!("{{\"keys\":[{}]}}", outside.public_jwk));
    let issuer = Arc::new(TrustedIssuer::new(issuer, Arc::new(jwks), clock));
    let tokens = TokenSettings {
        issuer: OWN_ISSUER.to_owned(),
        audience: vec![AUDIENCE.to_owned()],
        ttl: Duration::minutes(5),
        leeway: Duration::seconds(LEEWAY_SECONDS),
    };
    Ok(State {
        verifier: TokenVerifier::new(Arc::new(keyring), tokens, vec![issuer]),
        own_kid: own.kid.clone(),
        own_signer: Algorithm::EdDsa.signer(own.private_key_pem.as_bytes())?,
        outside_kid: outside.kid.clone(),
        outside_signer: Algorithm::EdDsa.signer(outside.private_key_pem.as_bytes())?,
        now,
    })
}

/// Runs a future that never waits on I/O (the keys are in memory) to its end.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    static STATE: OnceLock<Result<State, String>> = OnceLock::new();
    let state = STATE.get_or_init(setup);
    assert!(state.is_ok(), "the jwt target's keys: {:?}", state.as_ref().err());
    let Ok(state) = state else { return };
    let Some(token) = token(state, data) else { return };
    let _ = looks_like_jwt(&token);
    let decided = block_on(state.verifier.verify(&token, state.now));
    assert!(decided.is_ok(), "verification decides when the keys are loaded: {:?}", decided.err());
    let Ok(Ok(verified)) = decided else { return };
    let leeway = Duration::seconds(LEEWAY_SECONDS);
    let principal = &verified.principal;
    assert!(principal.expires_at + leeway > state.now, "a verified token is not expired: {verified:?}");
    assert!(verified.not_before.is_none_or(|nbf| state.now + leeway >= nbf), "a verified token is valid yet");
    match verified.outside {
        Some(_) => {
            assert_eq!(principal.kind, PrincipalKind::User);
            assert!(header_safe(&principal.id), "an outside user id is header-safe: {:?}", principal.id);
            assert!(principal.scopes.iter().all(|s| header_safe(s) && !is_admin_scope(s)), "{:?}", principal.scopes);
            assert!(ORGANIZATIONS.contains(&principal.organization.as_str()), "{:?}", principal.organization);
            assert!(verified.client_id.is_none());
        }
        None => {
            assert_eq!(principal.kind, PrincipalKind::Client);
            assert!(!principal.id.is_empty() && !principal.organization.is_empty(), "{verified:?}");
            assert_eq!(verified.client_id.as_deref(), Some(principal.id.as_str()));
            assert!(verified.generation >= 0);
        }
    }
}

/// The token an input stands for (see the module's documentation).
fn token(state: &State, data: &[u8]) -> Option<String> {
    let (&mode, rest) = data.split_first()?;
    let merged = mode & 4 != 0;
    let token = match mode & 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => {
            let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": state.own_kid});
            let claims = claims(rest, merged.then(|| own_claims(state.now)));
            sign(state.own_signer.as_ref(), header.to_string().as_bytes(), &claims)
        }
        2 => {
            let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": state.outside_kid});
            let claims = claims(rest, merged.then(|| outside_claims(state.now)));
            sign(state.outside_signer.as_ref(), header.to_string().as_bytes(), &claims)
        }
        _ => {
            let mut parts = fields(rest);
            let (header, claims) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            let signer = if merged { &state.outside_signer } else { &state.own_signer };
            sign(signer.as_ref(), header, claims)
        }
    };
    Some(token)
}

/// The claims bytes: `given` as sent, or merged over `base` when both are JSON objects.
fn claims(given: &[u8], base: Option<Map<String, Value>>) -> Vec<u8> {
    match (base, serde_json::from_slice::<Value>(given)) {
        (Some(mut base), Ok(Value::Object(given))) => {
            base.extend(given);
            Value::Object(base).to_string().into_bytes()
        }
        _ => given.to_vec(),
    }
}

fn own_claims(now: DateTime<Utc>) -> Map<String, Value> {
    let now = now.timestamp();
    let claims = json!({
        "iss": OWN_ISSUER, "sub": "billing-worker", "aud": [AUDIENCE], "iat": now, "exp": now + 300,
        "client_id": "billing-worker", "scope": "invoices:read", "org": "acme", "jti": "1",
    });
    claims.as_object().cloned().unwrap_or_default()
}

fn outside_claims(now: DateTime<Utc>) -> Map<String, Value> {
    let now = now.timestamp();
    let claims = json!({
        "iss": OUTSIDE_ISSUER, "sub": "alice", "aud": OUTSIDE_AUDIENCE, "iat": now, "exp": now + 300,
        "scope": "invoices:read", "org": "acme",
    });
    claims.as_object().cloned().unwrap_or_default()
}

/// A compact JWS of `header` and `claims` (any bytes), signed with `signer`.
fn sign(signer: &dyn JwsSigner, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = signer.sign(input.as_bytes()).unwrap_or_default();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// What may go into a header value and a space-separated list unchanged.
fn header_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= 256 && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_admin_scope(scope: &str) -> bool {
    scope == "*" || scope == "admin" || scope.starts_with("admin:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(data: &[u8]) -> Result<keygate_core::tokens::VerifiedToken, keygate_core::model::AuthFailure> {
        let state = STATE_FOR_TESTS.get_or_init(setup).as_ref().expect("setup");
        let token = token(state, data).expect("a token");
        block_on(state.verifier.verify(&token, state.now)).expect("decided")
    }

    static STATE_FOR_TESTS: OnceLock<Result<State, String>> = OnceLock::new();

    #[test]
    fn the_merged_seeds_verify_and_reach_the_claims() {
        assert!(verdict(b"\x05{}").expect("own").outside.is_none());
        assert!(verdict(b"\x06{}").expect("outside").outside.is_some());
        // Known and accepted: the engine narrows an own token's scopes to its client's record.
        let scopes = verdict(b"\x05{\"scope\":\"a\\u0001b c\"}").expect("own, control character").principal.scopes;
        assert_eq!(scopes, ["a\u{1}b", "c"]);
        assert!(verdict(b"\x06{\"sub\":\"bob smith\"}").is_err());
        assert!(verdict(b"\x05{\"exp\":1}").is_err());
        assert!(verdict(b"\x01{}").is_err());
    }
}
