//! THE decision engine: credential -> principal -> scopes -> decision. `Authenticate`,
//! `Authorize`, the admin RPCs' caller check and Envoy's `Check` all come through here.

mod presented;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::CoreError;
use super::instruments::ReasonCounters;
use super::known_ids::KnownIds;
use super::last_used::LastUsedRecorder;
use super::limits::{AdmitRequest, LimitVerdict, Limiter};
use super::model::{
    AuthFailure, Credentials, Decision, Principal, PrincipalKind, QuotaState, Reason, ScopeMatch, StoredSecret,
};
use super::ports::{ClientStore, Clock, SecretSlot, Store};
use super::tokens::{OutsideIssuer, TokenVerifier, judge_times};
use super::validate::{Violations, is_valid_slug};
use super::verdicts::{CachedToken, StaleKey, VerdictCache, Verified, proof_of};
use crate::credentials::api_key::{self, ParsedKey};
use crate::credentials::hashing::{SecretHasher, Verification};
use crate::credentials::scopes::{ScopeRegistry, any_grants};
#[doc(hidden)]
pub use presented::{Presented, presented_credential};

/// What `Authorize` asks, borrowed from the request so that nothing is copied per call.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizeInput<'a> {
    pub credentials: &'a Credentials,
    /// Every one must be granted, or one of them under [`ScopeMatch::Any`].
    pub required_scopes: &'a [String],
    pub scope_match: ScopeMatch,
    /// When non-empty, the principal must belong to this organization.
    pub organization: &'a str,
    /// Quota units the request costs (0 for a free request).
    pub cost: u64,
    /// For `AcquireSlot`: hold a concurrency slot this long.
    pub lease: Option<Duration>,
}

/// The outcome of checking a credential: a principal, or why not. A failure to decide is the
/// outer `Err`.
pub type Authentication = Result<Principal, AuthFailure>;

/// How often a stale verdict is judged again in one request: a verdict stays stale only if the
/// key changes again while its record is being re-read, and then it is refused as not valid.
const MAX_REJUDGEMENTS: usize = 3;

/// What the engine is built from.
pub struct EngineParts {
    pub store: Arc<dyn Store>,
    pub clients: Arc<dyn ClientStore>,
    pub tokens: Arc<TokenVerifier>,
    pub hasher: SecretHasher,
    pub clock: Arc<dyn Clock>,
    pub scopes: Arc<ScopeRegistry>,
    pub last_used: Arc<LastUsedRecorder>,
    pub verdicts: Arc<VerdictCache>,
    pub limiter: Arc<Limiter>,
}

/// Decides who a credential belongs to and what it may do.
pub struct Engine {
    store: Arc<dyn Store>,
    clients: Arc<dyn ClientStore>,
    tokens: Arc<TokenVerifier>,
    hasher: SecretHasher,
    clock: Arc<dyn Clock>,
    scopes: Arc<ScopeRegistry>,
    last_used: Arc<LastUsedRecorder>,
    verdicts: Arc<VerdictCache>,
    limiter: Arc<Limiter>,
    decisions: Arc<ReasonCounters>,
}

/// Why a token verification did not produce a verdict: shared by every caller that waited for
/// it, and never cached.
#[derive(Debug, Clone)]
enum TokenError {
    Rejected(AuthFailure),
    Core(CoreError),
}

impl Engine {
    pub fn new(parts: EngineParts) -> Self {
        let EngineParts { store, clients, tokens, hasher, clock, scopes, last_used, verdicts, limiter } = parts;
        Self { store, clients, tokens, hasher, clock, scopes, last_used, verdicts, limiter, decisions: Arc::default() }
    }

    /// Decisions by reason, for registration.
    pub fn decision_counters(&self) -> Arc<ReasonCounters> {
        self.decisions.clone()
    }

    /// Resolves a credential (an API key or a bearer JWT) to a principal.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<Authentication, CoreError> {
        self.authenticate_at(credentials, self.clock.now()).await
    }

    /// [`Self::authenticate`] at `now`, read once by a caller that needs it again.
    async fn authenticate_at(
        &self,
        credentials: &Credentials,
        now: DateTime<Utc>,
    ) -> Result<Authentication, CoreError> {
        match presented_credential(credentials) {
            Ok(Presented::Key(key)) => self.verify_key(&key, now).await,
            Ok(Presented::Token(token)) => self.verify_token(token, now).await,
            Err(failure) => Ok(Err(failure)),
        }
    }

    /// Decides whether the credential may act with `required_scopes`, after checking the
    /// request's fields. Denials are decisions.
    pub async fn authorize(&self, input: &AuthorizeInput<'_>) -> Result<Decision, CoreError> {
        self.check_input(input, Violations::default())?;
        self.authorize_checked(input).await
    }

    /// [`Self::authorize`] that also takes a concurrency slot for `lease_seconds` (the configured
    /// default when unset) when allowed.
    pub async fn acquire_slot(
        &self,
        input: &AuthorizeInput<'_>,
        lease_seconds: Option<u32>,
    ) -> Result<Decision, CoreError> {
        let mut violations = Violations::default();
        let lease = self.limiter.lease(lease_seconds, &mut violations);
        self.check_input(input, violations)?;
        self.authorize_checked(&AuthorizeInput { lease: Some(lease), ..*input }).await
    }

    fn check_input(&self, input: &AuthorizeInput<'_>, mut violations: Violations) -> Result<(), CoreError> {
        if input.required_scopes.is_empty() {
            // An empty list would allow any valid key; a backend that forgot the field must hear it.
            violations.add("required_scopes", "at least one scope is required (Authenticate only identifies)");
        }
        violations.extend(self.scopes.check("required_scopes", input.required_scopes));
        if !input.organization.is_empty() && !is_valid_slug(input.organization) {
            violations.add("organization", "is not an organization slug");
        }
        violations.finish()
    }

    /// [`Self::authorize`] for input whose scopes were checked already: the route policy's,
    /// validated against the registry when the policy was loaded.
    pub async fn authorize_checked(&self, input: &AuthorizeInput<'_>) -> Result<Decision, CoreError> {
        let decision = self.decide(input).await?;
        self.decisions.inc(decision.reason);
        Ok(decision)
    }

    /// The credential's monthly quota (`None` inside when it has none); charges nothing.
    pub async fn quota(&self, credentials: &Credentials) -> Result<Result<Option<QuotaState>, AuthFailure>, CoreError> {
        let principal = match self.authenticate(credentials).await? {
            Ok(principal) => principal,
            Err(failure) => return Ok(Err(failure)),
        };
        Ok(Ok(self.limiter.quota(&principal, self.clock.now()).await?))
    }

    /// A principal's monthly quota as it stands (`None` when it has none); charges nothing.
    pub async fn quota_of(&self, principal: &Principal) -> Result<Option<QuotaState>, CoreError> {
        self.limiter.quota(principal, self.clock.now()).await
    }

    /// Releases a concurrency slot the credential's principal holds; `Ok(false)` when it held
    /// no such slot (released already, or its lease ended).
    pub async fn release_slot(
        &self,
        credentials: &Credentials,
        slot_id: &str,
    ) -> Result<Result<bool, AuthFailure>, CoreError> {
        let principal = match self.authenticate(credentials).await? {
            Ok(principal) => principal,
            Err(failure) => return Ok(Err(failure)),
        };
        Ok(Ok(self.limiter.release(&principal, slot_id).await?))
    }

    async fn decide(&self, input: &AuthorizeInput<'_>) -> Result<Decision, CoreError> {
        let now = self.clock.now();
        let principal = match self.authenticate_at(input.credentials, now).await? {
            Ok(principal) => principal,
            Err(failure) => return Ok(deny(failure.reason, failure.message, None)),
        };
        if !input.organization.is_empty() && principal.organization != input.organization {
            let message = format!("{} belongs to another organization", noun(principal.kind));
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
            let message = format!("{} does not have {needed}: {}", noun(principal.kind), missing.join(", "));
            return Ok(deny(Reason::InsufficientScope, message, Some(principal)));
        }
        let request = AdmitRequest { cost: input.cost, lease: input.lease };
        let verdict = self.limiter.admit(&principal, request, now).await?;
        Ok(limit_decision(verdict, principal))
    }

    async fn verify_token(&self, token: &str, now: DateTime<Utc>) -> Result<Authentication, CoreError> {
        let verified = self
            .verdicts
            .get_or_try_verify(self.verdicts.digest(token), |_| true, || self.verify_token_uncached(token, now))
            .await;
        let cached = match verified {
            Ok(Verified::Token(cached)) => cached,
            Ok(_) => return Ok(Err(AuthFailure::new(Reason::InvalidToken, "the bearer token is not valid"))),
            Err(TokenError::Rejected(failure)) => return Ok(Err(failure)),
            Err(TokenError::Core(err)) => return Err(err),
        };
        let token = &cached.token;
        if let Err(failure) =
            judge_times(Some(token.principal.expires_at), token.not_before, self.tokens.settings().leeway, now)
        {
            return Ok(Err(failure));
        }
        if let Some(client_id) = &token.client_id {
            self.last_used.record_client(client_id, now);
        }
        Ok(Ok(token.principal.clone()))
    }

    /// Signature and claims, then, for keygate's own client tokens, the client's record: whether
    /// its tokens were revoked, and its organization and scopes, which bound the token's (one
    /// database read; the verdict is cached and dropped when the client changes).
    async fn verify_token_uncached(&self, token: &str, now: DateTime<Utc>) -> Result<Verified, TokenError> {
        let mut token =
            self.tokens.verify(token, now).await.map_err(TokenError::Core)?.map_err(TokenError::Rejected)?;
        if let Some(client_id) = &token.client_id {
            let client = self.clients.client(client_id).await.map_err(|err| TokenError::Core(err.into()))?;
            let Some(client) = client else {
                return Err(TokenError::Rejected(AuthFailure::new(
                    Reason::InvalidToken,
                    "the bearer token's client does not exist",
                )));
            };
            // A client is disabled for good before its tokens are revoked, so every token it
            // holds is revoked, including one another replica issued while the change travelled.
            // A regenerated secret that revoked the tokens raised the client's generation: those
            // signed for an older one, also by a replica yet to hear of it, are revoked.
            if client.tokens_revoked_at.is_some() || token.generation < client.token_generation {
                return Err(TokenError::Rejected(AuthFailure::new(
                    Reason::RevokedToken,
                    "the bearer token has been revoked",
                )));
            }
            // The signature shows that one of keygate's keys signed the token, not that keygate
            // issued it: a copy of a signing key signs any claims. So the organization and the
            // scopes are the client's own, as its record says now, whatever the token claims.
            if token.principal.organization != client.organization {
                tracing::warn!(
                    client_id = %client.client_id,
                    "a validly signed token names another organization than its client's: a signing key may have leaked"
                );
                return Err(TokenError::Rejected(AuthFailure::new(
                    Reason::InvalidToken,
                    "the bearer token does not match its client",
                )));
            }
            let claimed = token.principal.scopes.len();
            token.principal.scopes.retain(|scope| any_grants(&client.scopes, scope));
            if token.principal.scopes.len() < claimed {
                tracing::warn!(
                    client_id = %client.client_id,
                    dropped = claimed - token.principal.scopes.len(),
                    "a validly signed token claims scopes its client does not hold; they are ignored"
                );
            }
            token.principal.limits = client.limits;
        }
        if let Some(outside) = token.outside {
            self.check_outside_organization(&token.principal.organization, outside).await?;
        }
        let remaining = token.principal.expires_at + self.tokens.settings().leeway - now;
        let cache_for = remaining.to_std().unwrap_or_default();
        Ok(Verified::Token(Arc::new(CachedToken { token, cache_for })))
    }

    /// An outside token's organization must exist, and be the platform's only for an issuer the
    /// operator marked so: the admin use cases take platform-admin rights from the organization,
    /// and a user acting for the platform organization could also create keys that are platform
    /// admins. One database read, on the token's first check (the verdict is cached).
    async fn check_outside_organization(&self, slug: &str, outside: OutsideIssuer) -> Result<(), TokenError> {
        let rejected =
            |message: &str| Err(TokenError::Rejected(AuthFailure::new(Reason::UntrustedOrganization, message)));
        match self.store.organization(slug).await.map_err(|err| TokenError::Core(err.into()))? {
            None => rejected("the bearer token's organization does not exist"),
            Some(org) if org.platform && !outside.platform => {
                rejected("the bearer token's issuer is not trusted for the platform organization")
            }
            Some(_) => Ok(()),
        }
    }

    async fn verify_key(&self, presented: &str, now: DateTime<Utc>) -> Result<Authentication, CoreError> {
        // Malformed keys and bad checksums never reach the cache, the database or argon2.
        let Some(parsed) = api_key::parse(presented) else {
            return Ok(Err(AuthFailure::new(Reason::InvalidApiKey, "API key is malformed")));
        };
        let digest = self.verdicts.digest(presented);
        let may_exist = |known: &KnownIds| known.may_exist(parsed.key_id, now);
        let mut verified =
            self.verdicts.get_or_try_verify(digest, may_exist, || self.verify_uncached(&parsed, now)).await?;
        // A change arriving during the re-judgement can leave the new verdict stale again.
        for _ in 0..MAX_REJUDGEMENTS {
            let Verified::Stale(stale) = verified else { break };
            verified = self.verdicts.rejudge(digest, || self.rejudge_key(&parsed, &stale)).await?;
        }
        let authentication = judge(&verified, now);
        if let Ok(principal) = &authentication {
            self.last_used.record_key(&principal.id, now);
        }
        Ok(authentication)
    }

    /// The expensive path: one database look-up, then each stored secret's fingerprint, and
    /// argon2 only for a secret the fingerprint does not rule out (one in four billion made-up
    /// ones, or a row from before fingerprints). A secret that could not be accepted whichever
    /// it was (a disabled or expired key, a replaced secret past its grace period) is decided
    /// without argon2: its answer does not depend on argon2's.
    async fn verify_uncached(&self, parsed: &ParsedKey<'_>, now: DateTime<Utc>) -> Result<Verified, CoreError> {
        let Some(record) = self.store.key(parsed.key_id).await? else {
            return Ok(Verified::Invalid { key_id: None });
        };
        if record.key_prefix != parsed.key_prefix {
            return Ok(Verified::refused(record.key_id));
        }
        let secret = parsed.secret;
        let matched = |previous: bool| {
            let stored = if previous { record.previous_secret_hash.as_ref() } else { None };
            let key = self.verdicts.cached_key(&record, stored.unwrap_or(&record.secret_hash));
            Ok(Verified::Key { key: Arc::new(key), previous })
        };
        let unusable = record.disabled_at.is_some() || now >= record.expires_at;
        let current_matches = if unusable {
            self.hasher.may_match(secret, &record.secret_hash)
        } else {
            self.verify_secret(&record.key_id, SecretSlot::Current, secret, &record.secret_hash).await?
        };
        if current_matches {
            return matched(false);
        }
        let Some(previous) = &record.previous_secret_hash else {
            return Ok(Verified::refused(record.key_id.clone()));
        };
        let grace_over = record.previous_key_expires_at.is_none_or(|until| until <= now);
        let previous_matches = if unusable || grace_over {
            self.hasher.may_match(secret, previous)
        } else {
            self.verify_secret(&record.key_id, SecretSlot::Previous, secret, previous).await?
        };
        if previous_matches {
            return matched(true);
        }
        Ok(Verified::refused(record.key_id.clone()))
    }

    /// A stale verdict judged again: the key's record re-read, and the presented secret taken to
    /// match the stored hash it was proven to match while that hash is still stored, in either
    /// slot (a rotation moves the current one to the previous slot). No argon2: what it proved
    /// still holds. A hash no longer stored leaves nothing the secret could match.
    async fn rejudge_key(&self, parsed: &ParsedKey<'_>, stale: &StaleKey) -> Result<Verified, CoreError> {
        let Some(record) = self.store.key(parsed.key_id).await? else {
            return Ok(Verified::Invalid { key_id: None });
        };
        if record.key_prefix != parsed.key_prefix {
            return Ok(Verified::refused(record.key_id));
        }
        let proven = |stored: &StoredSecret| proof_of(stored) == stale.proof;
        let (matched, previous) = match &record.previous_secret_hash {
            _ if proven(&record.secret_hash) => (&record.secret_hash, false),
            Some(replaced) if proven(replaced) => (replaced, true),
            _ => return Ok(Verified::refused(record.key_id.clone())),
        };
        Ok(Verified::Key { key: Arc::new(self.verdicts.cached_key(&record, matched)), previous })
    }

    /// Verifies one of a key's secrets, and records its fingerprint when the row lacks one.
    async fn verify_secret(
        &self,
        key_id: &str,
        slot: SecretSlot,
        secret: &str,
        stored: &StoredSecret,
    ) -> Result<bool, CoreError> {
        match self.hasher.verify(secret, stored).await? {
            Verification::Mismatch => Ok(false),
            Verification::Match => Ok(true),
            Verification::MatchUnrecorded(fingerprint) => {
                // The verdict stands without it; the next verification just runs argon2 again.
                if let Err(err) = self.store.record_key_fingerprint(key_id, slot, &stored.phc, fingerprint).await {
                    tracing::warn!(key_id, error = %err, "could not record a key's secret fingerprint");
                }
                Ok(true)
            }
        }
    }
}

/// Judges a verified key against the clock: disabled, expired and grace periods are decided here,
/// on every use, so a cached verdict never outlives the key.
fn judge(verified: &Verified, now: DateTime<Utc>) -> Authentication {
    let (key, previous) = match verified {
        Verified::Key { key, previous } => (key, *previous),
        _ => return Err(AuthFailure::new(Reason::InvalidApiKey, "API key is not valid")),
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
        id: key.key_id().to_owned(),
        organization: key.organization.to_string(),
        scopes: key.scopes.to_vec(),
        name: key.name().to_owned(),
        expires_at,
        limits: key.limits,
        creations_may_outlive: false,
    })
}

/// The decision for a request whose credential and scopes are fine, after its limits.
fn limit_decision(verdict: LimitVerdict, principal: Principal) -> Decision {
    let (state, retry_after, reason, message) = match verdict {
        LimitVerdict::Admitted { state, slot } => {
            let mut decision = Decision::new(true, Reason::Allowed, String::new(), Some(principal));
            decision.limits = state;
            decision.slot = slot;
            return decision;
        }
        LimitVerdict::InsufficientMaxQuota { cost, max_quota } => {
            let message = format!("the request costs {cost} quota units, more than the monthly quota of {max_quota}");
            return deny(Reason::InsufficientMaxQuota, message, Some(principal));
        }
        LimitVerdict::RateLimited { state, retry_after } => {
            (state, retry_after, Reason::RateLimited, format!("{} is over its rate limit", noun(principal.kind)))
        }
        LimitVerdict::QuotaExceeded { state, retry_after } => {
            (state, retry_after, Reason::QuotaExceeded, format!("{} has spent its monthly quota", noun(principal.kind)))
        }
        LimitVerdict::ConcurrencyLimit { state, retry_after } => (
            state,
            retry_after,
            Reason::ConcurrencyLimit,
            format!("{} holds as many concurrency slots as it may", noun(principal.kind)),
        ),
    };
    let mut decision = deny(reason, message, Some(principal));
    decision.limits = state;
    decision.retry_after = Some(retry_after);
    decision
}

/// How messages name a principal.
fn noun(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::ApiKey => "API key",
        PrincipalKind::Client => "client token",
        PrincipalKind::User => "user token",
    }
}

fn deny(reason: Reason, message: String, principal: Option<Principal>) -> Decision {
    Decision::new(false, reason, message, principal)
}
