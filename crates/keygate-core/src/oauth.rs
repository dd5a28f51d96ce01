//! The OAuth2 client-credentials grant (RFC 6749 §4.4) and token introspection (RFC 7662).
//! Client secrets go through the verdict cache, so a returning client pays argon2 once per
//! cache lifetime, not once per token.

use std::sync::Arc;

use crate::credentials::client::{is_valid_client_id, is_well_formed_secret};
use crate::credentials::hashing::{SecretHasher, Verification};
use crate::credentials::scopes::any_grants;
use crate::engine::Engine;
use crate::error::{CoreError, OAuthError, OAuthErrorKind};
use crate::known_ids::KnownIds;
use crate::last_used::LastUsedRecorder;
use crate::model::{ApiClientRecord, Credentials, Principal, PrincipalKind};
use crate::ports::{ClientStore, Clock};
use crate::tokens::signing::Keyring;
use crate::tokens::{self, AccessToken, Subject, TokenSettings};
use crate::verdicts::{CachedClient, VerdictCache, Verified};

/// The only grant keygate serves.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// A token request, from the form of `/oauth/token` or from `IssueToken`.
#[derive(Default)]
pub struct TokenRequest {
    pub grant_type: String,
    pub client_id: String,
    pub client_secret: String,
    /// Space-separated; empty means every scope of the client.
    pub scope: String,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Who asks to introspect a token: a registered client or a bearer credential.
pub enum IntrospectionCaller {
    Client { client_id: String, client_secret: String },
    Bearer(Credentials),
}

/// What RFC 7662 answers about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    Inactive,
    Active(Principal),
}

/// The OAuth2 endpoints' use cases.
pub struct OAuth {
    engine: Arc<Engine>,
    clients: Arc<dyn ClientStore>,
    hasher: SecretHasher,
    verdicts: Arc<VerdictCache>,
    keyring: Arc<Keyring>,
    settings: TokenSettings,
    clock: Arc<dyn Clock>,
    last_used: Arc<LastUsedRecorder>,
}

/// What [`OAuth`] is built from.
pub struct OAuthParts {
    pub engine: Arc<Engine>,
    pub clients: Arc<dyn ClientStore>,
    pub hasher: SecretHasher,
    pub verdicts: Arc<VerdictCache>,
    pub keyring: Arc<Keyring>,
    pub settings: TokenSettings,
    pub clock: Arc<dyn Clock>,
    pub last_used: Arc<LastUsedRecorder>,
}

fn invalid_client() -> CoreError {
    OAuthError::refuse(OAuthErrorKind::InvalidClient, Some("client_id"), "client authentication failed")
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl OAuth {
    pub fn new(parts: OAuthParts) -> Self {
        let OAuthParts { engine, clients, hasher, verdicts, keyring, settings, clock, last_used } = parts;
        Self { engine, clients, hasher, verdicts, keyring, settings, clock, last_used }
    }

    /// The issuer, audience and lifetime of keygate's tokens (for metadata documents).
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The JWK Set of every published signing key.
    pub fn jwks(&self) -> serde_json::Value {
        self.keyring.jwks()
    }

    /// The client-credentials grant: authenticates the client and signs a token for the
    /// requested scopes (a subset of the client's; all of them when none are asked for).
    pub async fn issue_token(&self, request: &TokenRequest) -> Result<AccessToken, CoreError> {
        if request.grant_type.is_empty() {
            return Err(CoreError::invalid("grant_type", "is required"));
        }
        if request.grant_type != CLIENT_CREDENTIALS {
            return Err(OAuthError::refuse(
                OAuthErrorKind::UnsupportedGrantType,
                Some("grant_type"),
                format!("only the {CLIENT_CREDENTIALS} grant is supported"),
            ));
        }
        let requested: Vec<String> = request.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if let Some(bad) = requested.iter().find(|s| !is_scope_token(s)) {
            let description = format!("{bad} is not a scope token");
            return Err(OAuthError::refuse(OAuthErrorKind::InvalidScope, Some("scope"), description));
        }
        let now = self.clock.now();
        let client = self.authenticate_client(&request.client_id, &request.client_secret).await?;
        if client.disabled {
            return Err(OAuthError::refuse(
                OAuthErrorKind::UnauthorizedClient,
                Some("client_id"),
                "the client is disabled and cannot obtain tokens",
            ));
        }
        let scopes = if requested.is_empty() { client.scopes.clone() } else { requested };
        let beyond: Vec<&str> = scopes.iter().filter(|s| !any_grants(&client.scopes, s)).map(String::as_str).collect();
        if !beyond.is_empty() {
            let description = format!("the client does not hold these scopes: {}", beyond.join(" "));
            return Err(OAuthError::refuse(OAuthErrorKind::InvalidScope, Some("scope"), description));
        }
        let subject = Subject {
            client_id: &client.client_id,
            organization: &client.organization,
            generation: client.token_generation,
        };
        let token = tokens::sign(&self.keyring, &self.settings, subject, scopes, now)?;
        self.last_used.record_client(&client.client_id, now);
        tracing::debug!(client_id = %client.client_id, "access token issued");
        Ok(token)
    }

    /// Checks a client's id and secret: shape first (no look-up for garbage), then the verdict
    /// cache, then one database read, the secret's fingerprint, and one argon2 verification for a
    /// secret the fingerprint does not rule out.
    async fn authenticate_client(&self, client_id: &str, secret: &str) -> Result<Arc<CachedClient>, CoreError> {
        if client_id.is_empty() || secret.is_empty() {
            return Err(OAuthError::refuse(
                OAuthErrorKind::InvalidClient,
                Some("client_id"),
                "client authentication is required (client_id and client_secret, or HTTP Basic)",
            ));
        }
        if !is_valid_client_id(client_id) || !is_well_formed_secret(secret) {
            return Err(invalid_client());
        }
        let now = self.clock.now();
        let may_exist = |known: &KnownIds| known.may_exist(client_id, now);
        let verify = || async {
            let Some(record) = self.clients.client(client_id).await? else {
                return Ok(Verified::Invalid { key_id: None });
            };
            // A disabled client is refused whichever secret it was: decided by the fingerprint
            // alone, without argon2.
            let matches = if record.disabled_at.is_some() {
                self.hasher.may_match(secret, &record.secret_hash)
            } else {
                self.verify_secret(&record, secret).await?
            };
            if matches {
                Ok(Verified::Client(Arc::new(CachedClient::from_record(&record))))
            } else {
                Ok(Verified::refused(record.client_id))
            }
        };
        match self
            .verdicts
            .get_or_try_verify::<CoreError, _, _>(self.verdicts.client_digest(client_id, secret), may_exist, verify)
            .await?
        {
            Verified::Client(client) => Ok(client),
            _ => Err(invalid_client()),
        }
    }

    /// The fingerprint, then argon2 for a secret it does not rule out; records the fingerprint
    /// of a client stored without one.
    async fn verify_secret(&self, record: &ApiClientRecord, secret: &str) -> Result<bool, CoreError> {
        let fingerprint = match self.hasher.verify(secret, &record.secret_hash).await? {
            Verification::Mismatch => return Ok(false),
            Verification::Match => return Ok(true),
            Verification::MatchUnrecorded(fingerprint) => fingerprint,
        };
        let recorded =
            self.clients.record_client_fingerprint(&record.client_id, &record.secret_hash.phc, fingerprint).await;
        if let Err(err) = recorded {
            tracing::warn!(client_id = %record.client_id, error = %err, "could not record a client's secret fingerprint");
        }
        Ok(true)
    }

    /// RFC 7662: whether `token` is active, for a caller of the same organization. Tokens of
    /// other organizations are reported inactive, as if unknown.
    pub async fn introspect(&self, caller: IntrospectionCaller, token: &str) -> Result<Introspection, CoreError> {
        let organization = match caller {
            IntrospectionCaller::Client { client_id, client_secret } => {
                let client = self.authenticate_client(&client_id, &client_secret).await?;
                if client.disabled {
                    return Err(invalid_client());
                }
                client.organization.clone()
            }
            IntrospectionCaller::Bearer(credentials) => match self.engine.authenticate(&credentials).await? {
                Ok(principal) => principal.organization,
                Err(failure) => {
                    return Err(OAuthError::refuse(OAuthErrorKind::InvalidClient, None, failure.message));
                }
            },
        };
        if token.is_empty() {
            return Err(CoreError::invalid("token", "is required"));
        }
        let presented = Credentials { authorization: format!("Bearer {token}"), api_key: String::new() };
        Ok(match self.engine.authenticate(&presented).await? {
            Ok(principal) if principal.organization == organization => Introspection::Active(principal),
            _ => Introspection::Inactive,
        })
    }
}

/// The RFC 7662 members for an active token.
pub fn introspection_claims(principal: &Principal, issuer: &str) -> serde_json::Value {
    let kind = principal.kind.as_str();
    let mut claims = serde_json::json!({
        "active": true,
        "scope": principal.scopes.join(" "),
        "sub": principal.id,
        "exp": principal.expires_at.timestamp(),
        "token_type": "Bearer",
        "org": principal.organization,
        "principal_type": kind,
    });
    if principal.kind == PrincipalKind::Client {
        claims["client_id"] = serde_json::Value::from(principal.id.clone());
        claims["iss"] = serde_json::Value::from(issuer);
    }
    claims
}
