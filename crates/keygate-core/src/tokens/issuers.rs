//! Trusted outside identity providers: their JWKS (fetched through a [`JwksSource`], cached,
//! refreshed, re-fetched once on an unknown `kid` but not more often than configured) and how
//! their claims map to a USER principal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Duration, Utc};
use josekit::jwk::JwkSet;
use josekit::jws::JwsVerifier;
use josekit::jwt::JwtPayload;
use serde_json::Value;

use super::claims::numeric_date;
use crate::error::CoreError;
use crate::model::{AuthFailure, LimitOverrides, Principal, PrincipalKind, Reason};
use crate::ports::{Clock, JwksSource};
use crate::tokens::signing::Algorithm;

/// One trusted issuer, as configured.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// The configuration's name for it (for logs).
    pub name: String,
    /// The exact `iss` value.
    pub issuer: String,
    /// A token must name one of these in `aud`.
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    /// The claim holding the user id.
    pub user_claim: String,
    /// The claim holding scopes: a space-separated string (`scope`) or an array (`scp`, roles).
    pub scope_claim: String,
    /// The claim naming the organization: required with an allow-list; with a fixed
    /// organization a token naming another one in it is refused.
    pub organization_claim: String,
    /// Which organizations the issuer's users belong to.
    pub organization: OrganizationBinding,
    /// The operator marked this issuer as the platform's: its users may act for the platform
    /// organization. Without it a token naming the platform organization is refused, so that an
    /// outside provider never makes platform admins (nor keys that are).
    pub platform: bool,
    /// How long a fetched JWKS is used before it is fetched again.
    pub refresh: Duration,
    /// The least time between two fetches caused by unknown key ids (or a provider that is down).
    pub min_refetch: Duration,
    /// Whether this provider may grant keygate's admin scopes (and `*`); off by default, so that
    /// an outside provider cannot mint keygate administrators.
    pub allow_admin_scopes: bool,
    /// The `typ` header a token must carry (e.g. `at+jwt`); empty accepts any.
    pub typ: String,
    /// Whether the keys and client secrets its users create may outlive their token (the
    /// reference's admins create year-long keys from a login session). Off by default: a
    /// stolen token could otherwise leave a lasting key behind.
    pub lasting_credentials: bool,
}

/// The organizations an issuer may speak for. A token never chooses one freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrganizationBinding {
    /// Every user belongs to this one.
    Fixed(String),
    /// The token names its organization, which must be one of these.
    AllowList(Vec<String>),
}

/// The longest user id or scope copied from an outside token into a principal (and headers).
const MAX_CLAIM_LEN: usize = 256;

type Verifiers = HashMap<(String, Algorithm), Arc<dyn JwsVerifier>>;

/// A trusted issuer and its cached keys.
pub struct TrustedIssuer {
    settings: IssuerSettings,
    source: Arc<dyn JwksSource>,
    clock: Arc<dyn Clock>,
    keys: RwLock<Option<Arc<Verifiers>>>,
    fetched_at: Mutex<Option<DateTime<Utc>>>,
    /// One fetch at a time; callers that waited re-check instead of fetching again.
    fetching: tokio::sync::Mutex<()>,
}

impl TrustedIssuer {
    pub fn new(settings: IssuerSettings, source: Arc<dyn JwksSource>, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            source,
            clock,
            keys: RwLock::new(None),
            fetched_at: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn audiences(&self) -> &[String] {
        &self.settings.audiences
    }

    pub fn accepts(&self, algorithm: Algorithm) -> bool {
        self.settings.algorithms.contains(&algorithm)
    }

    /// Whether a token of this `typ` header is one this issuer's access tokens carry. The
    /// `application/` prefix may be left out (RFC 7515 §4.1.9), and case does not matter.
    pub fn accepts_type(&self, typ: Option<&str>) -> bool {
        let wanted = self.settings.typ.as_str();
        if wanted.is_empty() {
            return true;
        }
        let bare = |typ: &str| {
            let prefix = "application/";
            match typ.get(..prefix.len()) {
                Some(head) if head.eq_ignore_ascii_case(prefix) => typ[prefix.len()..].to_owned(),
                _ => typ.to_owned(),
            }
        };
        typ.is_some_and(|typ| bare(typ).eq_ignore_ascii_case(&bare(wanted)))
    }

    /// Whether the operator marked this issuer as the platform's.
    pub fn is_platform(&self) -> bool {
        self.settings.platform
    }

    fn cached(&self) -> Option<Arc<Verifiers>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fetched_within(&self, period: Duration) -> bool {
        let now = self.clock.now();
        self.fetched_at.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|at| now < at + period)
    }

    /// The verifier for `kid` and `algorithm`: from the cached JWKS while it is fresh, else
    /// fetched again; an unknown `kid` causes one more fetch unless one happened lately. Fails
    /// to decide only when the JWKS has never been fetched.
    pub async fn verifier(&self, kid: &str, algorithm: Algorithm) -> Result<Option<Arc<dyn JwsVerifier>>, CoreError> {
        let lookup = |keys: &Verifiers| keys.get(&(kid.to_owned(), algorithm)).cloned();
        if let Some(keys) = self.cached()
            && self.fetched_within(self.settings.refresh)
            && let Some(found) = lookup(&keys)
        {
            return Ok(Some(found));
        }
        let _turn = self.fetching.lock().await;
        let cached = self.cached();
        if let Some(found) = cached.as_deref().and_then(lookup).filter(|_| self.fetched_within(self.settings.refresh)) {
            return Ok(Some(found));
        }
        // Also while the keys have never loaded: a provider that is down is not asked again for
        // every request that names it.
        if !self.fetched_within(self.settings.min_refetch) {
            self.fetch().await;
        }
        match self.cached() {
            Some(keys) => Ok(lookup(&keys)),
            None => {
                // The issuer's name is the operator's configuration: logged, not answered.
                tracing::warn!(issuer = %self.settings.name, "cannot decide: the issuer's signing keys are not loaded");
                Err(CoreError::Unavailable("the token issuer's signing keys could not be fetched".into()))
            }
        }
    }

    /// Fetches and parses the JWKS; on failure the previous keys stay.
    async fn fetch(&self) {
        *self.fetched_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.clock.now());
        let parsed = match self.source.fetch().await {
            Ok(text) => parse_jwks(&text, &self.settings.algorithms),
            Err(err) => Err(err),
        };
        match parsed {
            Ok(keys) => {
                tracing::info!(issuer = %self.settings.name, keys = keys.len(), "issuer keys fetched");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(keys));
            }
            Err(err) => {
                tracing::warn!(issuer = %self.settings.name, source = %self.source.describe(), error = %err, "issuer keys could not be fetched")
            }
        }
    }

    /// The USER principal the verified `payload` describes. Whether its organization exists (and
    /// is the platform's) is for the caller to check against the store.
    pub fn principal(&self, payload: &JwtPayload, now: DateTime<Utc>) -> Result<Principal, AuthFailure> {
        let claims = payload.claims_set();
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let lacks = |what: &str| AuthFailure::new(Reason::InvalidToken, format!("the bearer token lacks the {what}"));
        let id = text(&self.settings.user_claim).filter(|id| !id.is_empty()).ok_or_else(|| lacks("user id"))?;
        // The user id and scopes go into upstream headers (`x-keygate-principal-id`, the
        // space-separated `x-keygate-scopes`): a space would add a scope, a control byte a header.
        if !is_header_safe(&id) {
            return Err(AuthFailure::new(
                Reason::InvalidToken,
                "the bearer token's user id has spaces or control characters, or is too long",
            ));
        }
        let organization = self.organization(&text)?;
        let scopes: Vec<String> = match claims.get(&self.settings.scope_claim) {
            Some(Value::String(joined)) => joined.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        if !scopes.iter().all(|scope| is_header_safe(scope)) {
            return Err(AuthFailure::new(
                Reason::InvalidToken,
                "the bearer token's scopes have spaces or control characters, or are too long",
            ));
        }
        let scopes =
            scopes.into_iter().filter(|scope| self.settings.allow_admin_scopes || !is_admin_scope(scope)).collect();
        Ok(Principal {
            kind: PrincipalKind::User,
            id,
            organization,
            scopes,
            name: text("name").unwrap_or_default(),
            expires_at: numeric_date(payload, "exp").unwrap_or(now),
            limits: LimitOverrides::default(),
            creations_may_outlive: self.settings.lasting_credentials,
        })
    }

    /// The organization a token's user belongs to under the issuer's binding.
    fn organization(&self, text: &dyn Fn(&str) -> Option<String>) -> Result<String, AuthFailure> {
        let named = text(&self.settings.organization_claim).filter(|o| !o.is_empty());
        let outside = || {
            AuthFailure::new(Reason::UntrustedOrganization, "the bearer token names an organization its issuer may not")
        };
        match (&self.settings.organization, named) {
            // The claim is not needed, but one naming another organization is a token meant for
            // elsewhere (or forged for it): refused, not quietly re-homed.
            (OrganizationBinding::Fixed(fixed), Some(named)) if named != *fixed => Err(outside()),
            (OrganizationBinding::Fixed(fixed), _) => Ok(fixed.clone()),
            (OrganizationBinding::AllowList(allowed), Some(named)) if allowed.contains(&named) => Ok(named),
            (OrganizationBinding::AllowList(_), Some(_)) => Err(outside()),
            (OrganizationBinding::AllowList(_), None) => {
                Err(AuthFailure::new(Reason::InvalidToken, "the bearer token lacks the organization"))
            }
        }
    }
}

/// Printable, without spaces, and short: what may go into a header value and a space-separated
/// list unchanged.
fn is_header_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_CLAIM_LEN && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `*`, `admin` and `admin:…`: the scopes that manage keygate itself.
fn is_admin_scope(scope: &str) -> bool {
    scope == "*" || scope == "admin" || scope.starts_with("admin:")
}

/// Verifiers by (kid, algorithm) for every signing key of a JWKS document. A key that names its
/// `alg` is used only with it; otherwise with each accepted algorithm its type fits.
fn parse_jwks(text: &str, algorithms: &[Algorithm]) -> Result<Verifiers, String> {
    let set = JwkSet::from_bytes(text.as_bytes()).map_err(|e| format!("not a JWK Set: {e}"))?;
    let mut verifiers = Verifiers::new();
    for jwk in set.keys() {
        let Some(kid) = jwk.key_id() else { continue };
        if jwk.key_use().is_some_and(|use_| use_ != "sig") {
            continue;
        }
        for algorithm in algorithms {
            if jwk.algorithm().is_some_and(|named| named != algorithm.as_str()) {
                continue;
            }
            if let Ok(verifier) = algorithm.verifier(jwk) {
                verifiers.insert((kid.to_owned(), *algorithm), Arc::from(verifier));
            }
        }
    }
    Ok(verifiers)
}
