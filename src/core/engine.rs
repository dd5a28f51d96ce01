//! THE decision engine: credential -> principal -> scopes -> decision. `Authenticate`,
//! `Authorize`, the admin RPCs' caller check and (later) Envoy's `Check` all come through here.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::clock::Clock;
use super::credential::{self, ParsedKey};
use super::error::CoreError;
use super::hashing::SecretHasher;
use super::last_used::LastUsedRecorder;
use super::model::{AuthFailure, Credentials, Decision, Principal, PrincipalKind, Reason, ScopeMatch};
use super::ports::Store;
use super::scopes::{ScopeRegistry, any_grants};
use super::validate::{Violations, is_valid_slug};
use super::verdicts::{CachedKey, VerdictCache, Verified, digest};

/// What `Authorize` asks.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeInput {
    pub credentials: Credentials,
    /// Every one must be granted, or one of them under [`ScopeMatch::Any`].
    pub required_scopes: Vec<String>,
    pub scope_match: ScopeMatch,
    /// When non-empty, the principal must belong to this organization.
    pub organization: String,
}

/// The outcome of checking a credential: a principal, or why not. A failure to decide is the
/// outer `Err`.
pub type Authentication = Result<Principal, AuthFailure>;

/// Decides who a credential belongs to and what it may do.
pub struct Engine {
    store: Arc<dyn Store>,
    hasher: SecretHasher,
    clock: Arc<dyn Clock>,
    scopes: Arc<ScopeRegistry>,
    last_used: Arc<LastUsedRecorder>,
    verdicts: Arc<VerdictCache>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: SecretHasher,
        clock: Arc<dyn Clock>,
        scopes: Arc<ScopeRegistry>,
        last_used: Arc<LastUsedRecorder>,
        verdicts: Arc<VerdictCache>,
    ) -> Self {
        Self { store, hasher, clock, scopes, last_used, verdicts }
    }

    /// Resolves a credential to a principal.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<Authentication, CoreError> {
        let presented = match presented_key(credentials) {
            Ok(presented) => presented,
            Err(failure) => return Ok(Err(failure)),
        };
        self.verify_key(presented, self.clock.now()).await
    }

    /// Decides whether the credential may act with `required_scopes`. Denials are decisions.
    pub async fn authorize(&self, input: &AuthorizeInput) -> Result<Decision, CoreError> {
        let mut violations = Violations::default();
        if input.required_scopes.is_empty() {
            // An empty list would allow any valid key; a backend that forgot the field must hear it.
            violations.add("required_scopes", "at least one scope is required (Authenticate only identifies)");
        }
        violations.extend(self.scopes.check("required_scopes", &input.required_scopes));
        if !input.organization.is_empty() && !is_valid_slug(&input.organization) {
            violations.add("organization", "is not an organization slug");
        }
        violations.finish()?;

        let principal = match self.authenticate(&input.credentials).await? {
            Ok(principal) => principal,
            Err(failure) => return Ok(deny(failure.reason, failure.message, None)),
        };
        if !input.organization.is_empty() && principal.organization != input.organization {
            let message = "API key belongs to another organization".to_owned();
            return Ok(deny(Reason::OrganizationMismatch, message, Some(principal)));
        }
        let missing: Vec<&str> = input
            .required_scopes
            .iter()
            .filter(|wanted| !any_grants(&principal.scopes, wanted))
            .map(String::as_str)
            .collect();
        let satisfied = match input.scope_match {
            ScopeMatch::All => missing.is_empty(),
            ScopeMatch::Any => missing.len() < input.required_scopes.len(),
        };
        if !satisfied {
            let needed =
                if input.scope_match == ScopeMatch::Any { "any of the required scopes" } else { "the required scope" };
            let message = format!("API key does not have {needed}: {}", missing.join(", "));
            return Ok(deny(Reason::InsufficientScope, message, Some(principal)));
        }
        Ok(Decision { allowed: true, reason: Reason::Allowed, message: String::new(), principal: Some(principal) })
    }

    async fn verify_key(&self, presented: &str, now: DateTime<Utc>) -> Result<Authentication, CoreError> {
        // Malformed keys and bad checksums never reach the cache, the database or argon2.
        let Some(parsed) = credential::parse(presented) else {
            return Ok(Err(AuthFailure::new(Reason::InvalidApiKey, "API key is malformed")));
        };
        let verified = self.verdicts.get_or_verify(digest(presented), || self.verify_uncached(&parsed)).await?;
        let authentication = judge(&verified, now);
        if let Ok(principal) = &authentication {
            self.last_used.record(&principal.id, now);
        }
        Ok(authentication)
    }

    /// The expensive path: one database look-up and up to two argon2 verifications.
    async fn verify_uncached(&self, parsed: &ParsedKey<'_>) -> Result<Verified, CoreError> {
        let Some(record) = self.store.key(parsed.key_id).await? else {
            return Ok(Verified::Invalid { key_id: None });
        };
        let invalid = || Ok(Verified::Invalid { key_id: Some(record.key_id.clone()) });
        if record.key_prefix != parsed.key_prefix {
            return invalid();
        }
        let previous = if self.hasher.verify(parsed.secret.to_owned(), record.secret_hash.clone()).await? {
            false
        } else {
            match &record.previous_secret_hash {
                Some(hash) if self.hasher.verify(parsed.secret.to_owned(), hash.clone()).await? => true,
                _ => return invalid(),
            }
        };
        Ok(Verified::Key { key: Arc::new(CachedKey::from_record(&record)), previous })
    }
}

/// Judges a verified key against the clock: disabled, expired and grace periods are decided here,
/// on every use, so a cached verdict never outlives the key.
fn judge(verified: &Verified, now: DateTime<Utc>) -> Authentication {
    let (key, previous) = match verified {
        Verified::Key { key, previous } => (key, *previous),
        Verified::Invalid { .. } => return Err(AuthFailure::new(Reason::InvalidApiKey, "API key is not valid")),
    };
    if key.disabled {
        return Err(AuthFailure::new(Reason::ExpiredApiKey, "API key has been disabled"));
    }
    if now >= key.expires_at {
        return Err(AuthFailure::new(Reason::ExpiredApiKey, "API key has expired"));
    }
    let expires_at = if previous {
        match key.previous_key_expires_at.filter(|until| *until > now) {
            Some(until) => until.min(key.expires_at),
            None => {
                let message = "API key was replaced by a rotation and its grace period has ended";
                return Err(AuthFailure::new(Reason::ExpiredApiKey, message));
            }
        }
    } else {
        key.expires_at
    };
    Ok(Principal {
        kind: PrincipalKind::ApiKey,
        id: key.key_id.clone(),
        organization: key.organization.clone(),
        scopes: key.scopes.clone(),
        name: key.name.clone(),
        expires_at,
    })
}

fn deny(reason: Reason, message: String, principal: Option<Principal>) -> Decision {
    Decision { allowed: false, reason, message, principal }
}

/// Picks the presented key: `X-API-Key` when set, else a Bearer `Authorization`.
fn presented_key(credentials: &Credentials) -> Result<&str, AuthFailure> {
    let api_key = credentials.api_key.trim();
    if !api_key.is_empty() {
        return Ok(api_key);
    }
    let authorization = credentials.authorization.trim();
    if authorization.is_empty() {
        return Err(AuthFailure::new(Reason::MissingApiKey, "no API key was included in the request"));
    }
    if authorization.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::new(Reason::MissingApiKey, "the Bearer credential is empty"));
    }
    match authorization.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(AuthFailure::new(Reason::InvalidApiKey, "the Authorization header must use the Bearer scheme")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(authorization: &str, api_key: &str) -> Credentials {
        Credentials { authorization: authorization.into(), api_key: api_key.into() }
    }

    #[test]
    fn picks_the_presented_key() {
        assert_eq!(presented_key(&creds("Bearer abc", "")), Ok("abc"));
        assert_eq!(presented_key(&creds("bearer  abc ", "")), Ok("abc"));
        assert_eq!(presented_key(&creds("Bearer abc", "xyz")), Ok("xyz"));
        assert_eq!(presented_key(&creds("", "")).map_err(|f| f.reason), Err(Reason::MissingApiKey));
        assert_eq!(presented_key(&creds("Bearer ", "")).map_err(|f| f.reason), Err(Reason::MissingApiKey));
        assert_eq!(presented_key(&creds("Basic abc", "")).map_err(|f| f.reason), Err(Reason::InvalidApiKey));
    }
}
