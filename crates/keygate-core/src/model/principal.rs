//! Who is calling and what was decided: principals, the credentials they present, reasons and decisions.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::limits::{LimitOverrides, LimitState, Slot};

/// What kind of credential a principal presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    ApiKey,
    Client,
    User,
}

impl PrincipalKind {
    /// The name of a key's or client's counters (`api_key:ID`, `client:ID`): its rate limit,
    /// quota and daily uses are kept under it. Users, from outside issuers, are named with their
    /// organization too (see `limits`).
    pub fn credential_name(self, id: &str) -> String {
        format!("{}:{id}", self.as_str())
    }

    /// The lowercase name headers, metadata, introspection and audit rows carry.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::Client => "client",
            PrincipalKind::User => "user",
        }
    }
}

/// Who is calling, as a verified credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The key id (API keys), the client id (client tokens) or the user id (user tokens).
    pub id: String,
    pub organization: String,
    pub scopes: Vec<String>,
    pub name: String,
    /// When the presented credential stops working.
    pub expires_at: DateTime<Utc>,
    /// The credential's own limits (the configured defaults of its kind fill the rest).
    pub limits: LimitOverrides,
    /// Whether keys and client secrets it creates may outlive it: true only for users of an
    /// outside issuer the operator trusts so (`lasting_credentials`), whose people log in again
    /// while what they create stays. Otherwise they are held to `expires_at`.
    pub creations_may_outlive: bool,
}

/// The raw credential header values, as the caller received them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The whole `Authorization` header value.
    pub authorization: String,
    /// The `X-API-Key` header value.
    pub api_key: String,
}

/// Says only whether each header was given and how long it was: the values are secrets, and a
/// `{:?}` in a log line must never print one.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted =
            |value: &str| if value.is_empty() { "none".to_owned() } else { format!("<{} bytes>", value.len()) };
        f.debug_struct("Credentials")
            .field("authorization", &redacted(&self.authorization))
            .field("api_key", &redacted(&self.api_key))
            .finish()
    }
}

/// Why a decision came out the way it did. The single table of reasons, their HTTP statuses and
/// their wire error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Allowed,
    MissingApiKey,
    InvalidApiKey,
    ExpiredApiKey,
    InsufficientScope,
    OrganizationMismatch,
    /// A bearer token that is malformed, badly signed, not yet valid or of a refused algorithm.
    InvalidToken,
    ExpiredToken,
    /// A client token whose client was disabled with its tokens revoked.
    RevokedToken,
    /// A token from an issuer keygate does not trust.
    UntrustedIssuer,
    /// A token meant for another audience.
    InvalidAudience,
    /// No route of the gateway's policy matches the request, and unmatched requests are denied.
    RouteNotAllowed,
    /// The principal's rate limit has no room now.
    RateLimited,
    /// The principal's monthly quota is spent.
    QuotaExceeded,
    /// The principal holds as many concurrency slots as it may.
    ConcurrencyLimit,
    /// The request costs more than the principal's whole monthly quota.
    InsufficientMaxQuota,
    /// A token from a trusted issuer naming an organization that issuer may not speak for: outside
    /// its binding, one that does not exist, or the platform's for an issuer not marked `platform`.
    UntrustedOrganization,
    /// A gateway request whose path is not in normal form (dot segments, encoded dots or slashes,
    /// `;` parameters, ...), which the upstream may read differently from the route matcher.
    InvalidPath,
}

impl Reason {
    /// Every reason, each at the index of its discriminant.
    pub const ALL: [Reason; 18] = [
        Reason::Allowed,
        Reason::MissingApiKey,
        Reason::InvalidApiKey,
        Reason::ExpiredApiKey,
        Reason::InsufficientScope,
        Reason::OrganizationMismatch,
        Reason::InvalidToken,
        Reason::ExpiredToken,
        Reason::RevokedToken,
        Reason::UntrustedIssuer,
        Reason::InvalidAudience,
        Reason::RouteNotAllowed,
        Reason::RateLimited,
        Reason::QuotaExceeded,
        Reason::ConcurrencyLimit,
        Reason::InsufficientMaxQuota,
        Reason::UntrustedOrganization,
        Reason::InvalidPath,
    ];

    /// The HTTP status a gateway should answer with.
    pub fn http_status(self) -> u16 {
        match self {
            Reason::Allowed => 200,
            Reason::MissingApiKey
            | Reason::InvalidApiKey
            | Reason::ExpiredApiKey
            | Reason::InvalidToken
            | Reason::ExpiredToken
            | Reason::RevokedToken
            | Reason::UntrustedIssuer
            | Reason::InvalidAudience
            | Reason::UntrustedOrganization => 401,
            Reason::InsufficientScope
            | Reason::OrganizationMismatch
            | Reason::RouteNotAllowed
            | Reason::InsufficientMaxQuota => 403,
            Reason::RateLimited | Reason::QuotaExceeded | Reason::ConcurrencyLimit => 429,
            Reason::InvalidPath => 400,
        }
    }

    /// The lowercase code for HTTP error bodies (the reference's `missing_api_key` etc.).
    pub fn error_code(self) -> &'static str {
        match self {
            Reason::Allowed => "",
            Reason::MissingApiKey => "missing_api_key",
            Reason::InvalidApiKey => "invalid_api_key",
            Reason::ExpiredApiKey => "expired_api_key",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::OrganizationMismatch => "organization_mismatch",
            Reason::InvalidToken => "invalid_token",
            Reason::ExpiredToken => "expired_token",
            Reason::RevokedToken => "revoked_token",
            Reason::UntrustedIssuer => "untrusted_issuer",
            Reason::InvalidAudience => "invalid_audience",
            Reason::RouteNotAllowed => "route_not_allowed",
            Reason::RateLimited => "rate_limited",
            Reason::QuotaExceeded => "quota_exceeded",
            Reason::ConcurrencyLimit => "concurrency_limit",
            Reason::InsufficientMaxQuota => "insufficient_max_quota",
            Reason::UntrustedOrganization => "untrusted_organization",
            Reason::InvalidPath => "invalid_path",
        }
    }

    /// The uppercase reason for `google.rpc.ErrorInfo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "ALLOWED",
            Reason::MissingApiKey => "MISSING_API_KEY",
            Reason::InvalidApiKey => "INVALID_API_KEY",
            Reason::ExpiredApiKey => "EXPIRED_API_KEY",
            Reason::InsufficientScope => "INSUFFICIENT_SCOPE",
            Reason::OrganizationMismatch => "ORGANIZATION_MISMATCH",
            Reason::InvalidToken => "INVALID_TOKEN",
            Reason::ExpiredToken => "EXPIRED_TOKEN",
            Reason::RevokedToken => "REVOKED_TOKEN",
            Reason::UntrustedIssuer => "UNTRUSTED_ISSUER",
            Reason::InvalidAudience => "INVALID_AUDIENCE",
            Reason::RouteNotAllowed => "ROUTE_NOT_ALLOWED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::QuotaExceeded => "QUOTA_EXCEEDED",
            Reason::ConcurrencyLimit => "CONCURRENCY_LIMIT",
            Reason::InsufficientMaxQuota => "INSUFFICIENT_MAX_QUOTA",
            Reason::UntrustedOrganization => "UNTRUSTED_ORGANIZATION",
            Reason::InvalidPath => "INVALID_PATH",
        }
    }

    /// The RFC 6750 `error` attribute of a `WWW-Authenticate: Bearer` challenge, where one
    /// applies: none for a missing credential (the RFC asks for no error then).
    pub fn bearer_error(self) -> Option<&'static str> {
        match self {
            Reason::InvalidApiKey
            | Reason::ExpiredApiKey
            | Reason::InvalidToken
            | Reason::ExpiredToken
            | Reason::RevokedToken
            | Reason::UntrustedIssuer
            | Reason::InvalidAudience
            | Reason::UntrustedOrganization => Some("invalid_token"),
            Reason::InsufficientScope => Some("insufficient_scope"),
            Reason::Allowed
            | Reason::MissingApiKey
            | Reason::OrganizationMismatch
            | Reason::RouteNotAllowed
            | Reason::RateLimited
            | Reason::QuotaExceeded
            | Reason::ConcurrencyLimit
            | Reason::InsufficientMaxQuota
            | Reason::InvalidPath => None,
        }
    }
}

/// How a list of required scopes is satisfied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScopeMatch {
    /// Every required scope must be held.
    #[default]
    All,
    /// One of the required scopes is enough.
    Any,
}

/// Why a credential did not authenticate. Messages never repeat the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub reason: Reason,
    pub message: String,
}

impl AuthFailure {
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

/// The engine's answer to "may this request proceed?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    pub message: String,
    /// Set whenever the credential was valid, even when the decision is a denial.
    pub principal: Option<Principal>,
    /// The rate limit and quota after this decision, where they were consulted.
    pub limits: LimitState,
    /// For a refusal that time cures (rate, quota, concurrency): how long to wait.
    pub retry_after: Option<Duration>,
    /// The concurrency slot an admitted `AcquireSlot` holds.
    pub slot: Option<Slot>,
}

impl Decision {
    /// A decision that consulted no limit.
    pub fn new(allowed: bool, reason: Reason, message: String, principal: Option<Principal>) -> Self {
        Self { allowed, reason, message, principal, limits: LimitState::default(), retry_after: None, slot: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_at_its_discriminant() {
        for (index, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index, "{reason:?}");
        }
        // A new reason is a new last variant: this match stops compiling until ALL lists it.
        let last = |reason: Reason| match reason {
            Reason::Allowed
            | Reason::MissingApiKey
            | Reason::InvalidApiKey
            | Reason::ExpiredApiKey
            | Reason::InsufficientScope
            | Reason::OrganizationMismatch
            | Reason::InvalidToken
            | Reason::ExpiredToken
            | Reason::RevokedToken
            | Reason::UntrustedIssuer
            | Reason::InvalidAudience
            | Reason::RouteNotAllowed
            | Reason::RateLimited
            | Reason::QuotaExceeded
            | Reason::ConcurrencyLimit
            | Reason::InsufficientMaxQuota
            | Reason::UntrustedOrganization => false,
            Reason::InvalidPath => true,
        };
        assert_eq!(Reason::ALL.iter().filter(|reason| last(**reason)).count(), 1);
        assert!(last(Reason::ALL[Reason::ALL.len() - 1]));
    }
}
