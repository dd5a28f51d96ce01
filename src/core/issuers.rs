//! Trusted outside identity providers: their JWKS (fetched through a [`JwksSource`], cached,
//! refreshed, re-fetched once on an unknown `kid` but not more often than configured) and how
//! their claims map to a USER principal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use josekit::jwk::JwkSet;
use josekit::jws::JwsVerifier;
use josekit::jwt::JwtPayload;
use serde_json::Value;

use super::clock::Clock;
use super::error::CoreError;
use super::limits::LimitOverrides;
use super::model::{AuthFailure, Principal, PrincipalKind, Reason};
use super::signing::Algorithm;
use super::tokens::numeric_date;

/// Where an issuer's JWK Set document comes from (an HTTPS URL or a file).
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// The document's text.
    async fn fetch(&self) -> Result<String, String>;
    /// Where it comes from, for logs.
    fn describe(&self) -> String;
}

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
    /// The claim holding the organization, used when `organization` is empty.
    pub organization_claim: String,
    /// Every user of this issuer belongs to this organization, when set.
    pub organization: String,
    /// How long a fetched JWKS is used before it is fetched again.
    pub refresh: Duration,
    /// The least time between two fetches caused by unknown key ids (or a provider that is down).
    pub min_refetch: Duration,
    /// Whether this provider may grant keygate's admin scopes (and `*`); off by default, so that
    /// an outside provider cannot mint keygate administrators.
    pub allow_admin_scopes: bool,
}

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
            None => Err(CoreError::Unavailable(format!(
                "the signing keys of issuer {} could not be fetched",
                self.settings.name
            ))),
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

    /// The USER principal the verified `payload` describes.
    pub fn principal(&self, payload: &JwtPayload, now: DateTime<Utc>) -> Result<Principal, AuthFailure> {
        let claims = payload.claims_set();
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let lacks = |what: &str| AuthFailure::new(Reason::InvalidToken, format!("the bearer token lacks the {what}"));
        let id = text(&self.settings.user_claim).filter(|id| !id.is_empty()).ok_or_else(|| lacks("user id"))?;
        let organization = if self.settings.organization.is_empty() {
            text(&self.settings.organization_claim).filter(|o| !o.is_empty()).ok_or_else(|| lacks("organization"))?
        } else {
            self.settings.organization.clone()
        };
        let scopes: Vec<String> = match claims.get(&self.settings.scope_claim) {
            Some(Value::String(joined)) => joined.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
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
        })
    }
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
