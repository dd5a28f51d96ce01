//! JWT access tokens: keygate's own (RFC 9068, signed by the keyring) and user tokens from
//! trusted outside issuers. Verification pins the algorithm to the key's, requires `kid`, and
//! checks `iss`, `aud`, `exp` and `nbf` against the clock with a small leeway.

pub mod claims;
pub mod issuers;
pub mod sealing;
pub mod signing;

pub use claims::numeric_date;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use josekit::jws::{JwsHeader, JwsVerifier};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::model::{AuthFailure, LimitOverrides, Principal, PrincipalKind, Reason};
use crate::tokens::issuers::TrustedIssuer;
use crate::tokens::signing::{Algorithm, Keyring};

/// The `typ` of keygate's access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The claim that carries the organization.
pub const ORGANIZATION_CLAIM: &str = "org";
/// The claim that carries the client's token generation a token was signed for, when above 0:
/// tokens of an older generation than the client's are revoked.
pub const GENERATION_CLAIM: &str = "gen";
/// Longer bearer values are refused unread.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// How keygate issues and checks its own tokens.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` of keygate's tokens, e.g. `https://auth.example.com`.
    pub issuer: String,
    /// `aud` of keygate's tokens; a token must name at least one of them.
    pub audience: Vec<String>,
    /// Lifetime of an access token.
    pub ttl: Duration,
    /// Tolerated clock skew when checking `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

/// A signed access token.
pub struct AccessToken {
    pub token: String,
    pub expires_in: i64,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// Who a token is for.
pub struct Subject<'a> {
    pub client_id: &'a str,
    pub organization: &'a str,
    /// The client's token generation.
    pub generation: i64,
}

/// Signs an RFC 9068 access token for a client.
pub fn sign(
    keyring: &Keyring,
    settings: &TokenSettings,
    subject: Subject<'_>,
    scopes: Vec<String>,
    now: DateTime<Utc>,
) -> Result<AccessToken, CoreError> {
    let key = keyring.active().ok_or_else(|| CoreError::Unavailable("no signing key is loaded".into()))?;
    let mut header = JwsHeader::new();
    header.set_token_type(ACCESS_TOKEN_TYPE);
    header.set_key_id(key.kid.clone());
    let expires_at = now + settings.ttl;
    let mut payload = JwtPayload::new();
    payload.set_issuer(settings.issuer.clone());
    payload.set_subject(subject.client_id);
    payload.set_audience(settings.audience.clone());
    payload.set_jwt_id(uuid::Uuid::new_v4().to_string());
    // Whole seconds: josekit's setters write fractions, which some verifiers refuse.
    let claims = [
        ("iat", Value::from(now.timestamp())),
        ("exp", Value::from(expires_at.timestamp())),
        ("client_id", Value::from(subject.client_id)),
        ("scope", Value::from(scopes.join(" "))),
        (ORGANIZATION_CLAIM, Value::from(subject.organization)),
    ];
    let generation = (subject.generation > 0).then(|| (GENERATION_CLAIM, Value::from(subject.generation)));
    for (name, value) in claims.into_iter().chain(generation) {
        payload.set_claim(name, Some(value)).map_err(|e| CoreError::Internal(format!("token claim {name}: {e}")))?;
    }
    let token = jwt::encode_with_signer(&payload, &header, key.signer.as_ref())
        .map_err(|e| CoreError::Internal(format!("signing a token: {e}")))?;
    Ok(AccessToken { token, expires_in: settings.ttl.num_seconds(), scopes })
}

/// Whether a bearer value has the shape of a compact JWS (three base64url parts). API keys never
/// contain a dot.
pub fn looks_like_jwt(bearer: &str) -> bool {
    let bytes = bearer.as_bytes();
    // API keys, the common bearer, have no dot: one vectorised search tells them apart.
    if bytes.len() > MAX_TOKEN_LEN || !bytes.contains(&b'.') {
        return false;
    }
    // One pass over the token with a table, with no branch per byte: a token is the hot path's
    // longest input, and three passes of per-byte tests cost as much as the rest of a cached
    // decision.
    let (mut dots, mut outside) = (0u32, 0u8);
    for byte in bytes {
        let class = JWT_BYTES[usize::from(*byte)];
        dots += u32::from(class == DOT);
        outside |= u8::from(class == OUTSIDE);
    }
    dots == 2 && outside == 0
}

const OUTSIDE: u8 = 0;
const BASE64URL: u8 = 1;
const DOT: u8 = 2;

/// What each byte is in a compact JWS: base64url, the dot between parts, or neither.
const JWT_BYTES: [u8; 256] = {
    let mut table = [OUTSIDE; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            table[byte] = BASE64URL;
        }
        byte += 1;
    }
    table[b'.' as usize] = DOT;
    table
};

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub principal: Principal,
    pub not_before: Option<DateTime<Utc>>,
    /// For keygate's own client tokens: the client, whose record must then be read: its
    /// revocation, and its organization and scopes, which bound what the token claims.
    pub client_id: Option<String>,
    /// For user tokens of outside issuers: what the organization is checked against.
    pub outside: Option<OutsideIssuer>,
    /// For keygate's own client tokens: the client's token generation it was signed for (0
    /// without the claim).
    pub generation: i64,
}

/// What is known of the outside issuer of a user token once its signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutsideIssuer {
    /// The operator marked it as the platform's: its users may act for the platform organization.
    pub platform: bool,
}

/// Verifies bearer JWTs: keygate's own, then those of trusted issuers.
pub struct TokenVerifier {
    keyring: Arc<Keyring>,
    settings: TokenSettings,
    issuers: Vec<Arc<TrustedIssuer>>,
}

/// The parts of a token read before its signature is checked, only to pick the key.
struct Unverified {
    algorithm: Option<Algorithm>,
    kid: String,
    typ: Option<String>,
    issuer: String,
}

fn invalid(message: &str) -> AuthFailure {
    AuthFailure::new(Reason::InvalidToken, message)
}

fn decode_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn peek(token: &str) -> Result<Unverified, AuthFailure> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return Err(invalid("the bearer token is malformed"));
    };
    let (Some(header), Some(payload)) = (decode_part(header), decode_part(payload)) else {
        return Err(invalid("the bearer token is malformed"));
    };
    let text = |map: &Map<String, Value>, name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(kid) = text(&header, "kid") else {
        return Err(invalid("the bearer token names no signing key (kid)"));
    };
    let Some(issuer) = text(&payload, "iss") else {
        return Err(AuthFailure::new(Reason::UntrustedIssuer, "the bearer token names no issuer"));
    };
    Ok(Unverified {
        algorithm: text(&header, "alg").as_deref().and_then(Algorithm::parse),
        kid,
        typ: text(&header, "typ"),
        issuer,
    })
}

impl TokenVerifier {
    pub fn new(keyring: Arc<Keyring>, settings: TokenSettings, issuers: Vec<Arc<TrustedIssuer>>) -> Self {
        Self { keyring, settings, issuers }
    }

    /// The verifier's settings (issuer, audience, lifetime).
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Checks signature and claims at `now`. A denial is the inner `Err`; the outer one is a
    /// failure to decide (an outside JWKS that was never reachable, the database).
    pub async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<VerifiedToken, AuthFailure>, CoreError> {
        let unverified = match peek(token) {
            Ok(unverified) => unverified,
            Err(failure) => return Ok(Err(failure)),
        };
        let Some(algorithm) = unverified.algorithm else {
            return Ok(Err(invalid("the bearer token's algorithm is not accepted")));
        };
        if unverified.issuer == self.settings.issuer {
            return self.verify_own(token, algorithm, &unverified, now).await;
        }
        let Some(issuer) = self.issuers.iter().find(|issuer| issuer.issuer() == unverified.issuer) else {
            return Ok(Err(AuthFailure::new(Reason::UntrustedIssuer, "the bearer token's issuer is not trusted")));
        };
        if !issuer.accepts(algorithm) {
            return Ok(Err(invalid("the bearer token's algorithm is not accepted")));
        }
        if !issuer.accepts_type(unverified.typ.as_deref()) {
            return Ok(Err(invalid("the bearer token is not an access token of its issuer (typ)")));
        }
        let Some(verifier) = issuer.verifier(&unverified.kid, algorithm).await? else {
            return Ok(Err(invalid("the bearer token's signing key is unknown")));
        };
        let checked =
            check(token, verifier.as_ref(), &unverified.issuer, issuer.audiences(), self.settings.leeway, now);
        let outside = OutsideIssuer { platform: issuer.is_platform() };
        Ok(checked.and_then(|payload| {
            let principal = issuer.principal(&payload, now)?;
            Ok(VerifiedToken { outside: Some(outside), ..verified(principal, &payload) })
        }))
    }

    async fn verify_own(
        &self,
        token: &str,
        algorithm: Algorithm,
        unverified: &Unverified,
        now: DateTime<Utc>,
    ) -> Result<Result<VerifiedToken, AuthFailure>, CoreError> {
        if !unverified.typ.as_deref().is_some_and(|typ| typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)) {
            return Ok(Err(invalid("the bearer token is not an access token (typ at+jwt)")));
        }
        self.keyring.reload_for_unknown(&unverified.kid).await?;
        let Some(key) = self.keyring.key(&unverified.kid) else {
            return Ok(Err(invalid("the bearer token's signing key is unknown")));
        };
        if key.algorithm != algorithm {
            return Ok(Err(invalid("the bearer token's algorithm is not accepted")));
        }
        let payload = match check(
            token,
            key.verifier.as_ref(),
            &self.settings.issuer,
            &self.settings.audience,
            self.settings.leeway,
            now,
        ) {
            Ok(payload) => payload,
            Err(failure) => return Ok(Err(failure)),
        };
        let claims = payload.claims_set();
        let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (client_id, organization) = (text("client_id"), text(ORGANIZATION_CLAIM));
        if client_id.is_empty() || organization.is_empty() || numeric_date(&payload, "iat").is_none() {
            return Ok(Err(invalid("the bearer token lacks required claims")));
        }
        let generation = match claims.get(GENERATION_CLAIM) {
            None => 0,
            Some(value) => match value.as_i64() {
                Some(generation) if generation > 0 => generation,
                _ => return Ok(Err(invalid("the bearer token's claims are not valid"))),
            },
        };
        // As claimed: the engine checks the organization and narrows the scopes to the client's
        // record, since a copy of a signing key signs any claims.
        let principal = Principal {
            kind: PrincipalKind::Client,
            id: client_id.clone(),
            organization,
            scopes: text("scope").split_whitespace().map(str::to_owned).collect(),
            name: String::new(),
            expires_at: numeric_date(&payload, "exp").unwrap_or(now),
            // The client's own limits are read with the client when the token is first checked.
            limits: LimitOverrides::default(),
            creations_may_outlive: false,
        };
        let mut verified = verified(principal, &payload);
        verified.client_id = Some(client_id);
        verified.generation = generation;
        Ok(Ok(verified))
    }
}

fn verified(principal: Principal, payload: &JwtPayload) -> VerifiedToken {
    VerifiedToken { principal, not_before: numeric_date(payload, "nbf"), client_id: None, outside: None, generation: 0 }
}

/// Checks the signature with `verifier` (which pins the algorithm and the key id), then `iss`,
/// `aud`, `exp` (required) and `nbf` at `now`, allowing `leeway` of clock skew.
fn check(
    token: &str,
    verifier: &dyn JwsVerifier,
    issuer: &str,
    audiences: &[String],
    leeway: Duration,
    now: DateTime<Utc>,
) -> Result<JwtPayload, AuthFailure> {
    let (payload, _header) =
        jwt::decode_with_verifier(token, verifier).map_err(|_| invalid("the bearer token's signature is not valid"))?;
    if payload.issuer() != Some(issuer) {
        return Err(AuthFailure::new(Reason::UntrustedIssuer, "the bearer token's issuer is not trusted"));
    }
    let named = payload.audience().unwrap_or_default();
    if !audiences.is_empty() && !named.iter().any(|aud| audiences.iter().any(|want| want == aud)) {
        return Err(AuthFailure::new(Reason::InvalidAudience, "the bearer token is meant for another audience"));
    }
    judge_times(numeric_date(&payload, "exp"), numeric_date(&payload, "nbf"), leeway, now).map(|()| payload)
}

/// The time checks, shared with cached verdicts: expired at `exp + leeway`, valid from
/// `nbf - leeway`.
pub fn judge_times(
    expires_at: Option<DateTime<Utc>>,
    not_before: Option<DateTime<Utc>>,
    leeway: Duration,
    now: DateTime<Utc>,
) -> Result<(), AuthFailure> {
    let Some(expires_at) = expires_at else {
        return Err(invalid("the bearer token has no expiry (exp)"));
    };
    if now >= expires_at + leeway {
        return Err(AuthFailure::new(Reason::ExpiredToken, "the bearer token has expired"));
    }
    if not_before.is_some_and(|nbf| now + leeway < nbf) {
        return Err(invalid("the bearer token is not valid yet"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_tokens_from_keys() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("sk_live_k_abcdefabcdef_0123456789"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a.b.c d"), "a space is not base64url");
        assert!(!looks_like_jwt("a.b.c\u{e9}"), "nor is a byte past ASCII");
        assert!(looks_like_jwt("-_.AZaz09."), "the base64url alphabet; empty parts are the verifier's to refuse");
        assert!(!looks_like_jwt("a.b+.c"));
        assert!(looks_like_jwt(".."));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c d"));
    }

    #[test]
    fn time_checks_allow_the_leeway_and_no_more() {
        let now = Utc::now();
        let leeway = Duration::seconds(30);
        assert!(judge_times(Some(now - Duration::seconds(29)), None, leeway, now).is_ok());
        let expired = judge_times(Some(now - Duration::seconds(30)), None, leeway, now);
        assert_eq!(expired.map_err(|f| f.reason), Err(Reason::ExpiredToken));
        let early = judge_times(Some(now + leeway * 10), Some(now + Duration::seconds(31)), leeway, now);
        assert_eq!(early.map_err(|f| f.reason), Err(Reason::InvalidToken));
        assert_eq!(judge_times(None, None, leeway, now).map_err(|f| f.reason), Err(Reason::InvalidToken));
    }
}
