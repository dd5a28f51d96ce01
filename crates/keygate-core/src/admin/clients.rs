//! Admin use cases for OAuth2 API clients (create, read, list, update, regenerate the secret,
//! disable)
//! and for rotating the token signing key.

use chrono::SecondsFormat;

use super::{
    Admin, AdminContext, CLI_ACTOR, Caller, ListRequest, MAX_DESCRIPTION, MAX_NAME, id_or_nothing, operator_entry,
    require_subset,
};
use crate::credentials::client::{client_id_for, generate_secret, is_valid_client_id};
use crate::error::CoreError;
use crate::limits::check_overrides;
use crate::model::{ApiClientRecord, KeyStatus, Labels, LimitOverrides, PrincipalKind, SigningKeyRecord};
use crate::ports::{DisableOutcome, KeyChanges};
use crate::validate::{Violations, is_valid_slug};

/// How often creation tries another random suffix when a client id is taken.
const CLIENT_ID_ATTEMPTS: usize = 3;

/// What `CreateApiClient` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub organization: String,
    /// Limits of the client's tokens.
    pub limits: LimitOverrides,
    pub labels: Labels,
}

/// A new client or a regenerated secret: the secret, shown once, and the client.
pub struct IssuedClient {
    pub client_secret: String,
    pub client: ApiClientRecord,
}

impl std::fmt::Debug for IssuedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedClient").field("client", &self.client).finish_non_exhaustive()
    }
}

impl Admin {
    /// Creates a client in the caller's organization (or, for a platform admin, any).
    pub async fn create_client(&self, ctx: &AdminContext, request: NewClient) -> Result<IssuedClient, CoreError> {
        let (caller, entry) = self.changer(ctx, "admin:clients:write", "api_client.create", "").await?;
        self.audited(&entry, async {
            let mut violations = Violations::default();
            violations.required_text("name", &request.name, MAX_NAME);
            violations.optional_text("description", &request.description, MAX_DESCRIPTION);
            self.check_scopes(&mut violations, "scopes", &request.scopes);
            check_overrides(&request.limits, &mut violations);
            violations.labels("labels", &request.labels);
            if !request.organization.is_empty() && !is_valid_slug(&request.organization) {
                violations.add("organization", "is not an organization slug");
            }
            violations.finish()?;
            require_subset(&caller.principal, &request.scopes, "grant")?;
            require_api_key_for_secrets(&caller, "create API clients")?;
            let org = self.target_organization(&caller, &request.organization).await?;
            let limits = self.granted_limits(&caller, PrincipalKind::Client, request.limits)?;
            let secret = generate_secret();
            let secret_hash = self.hasher.hash(secret.clone()).await?;
            let now = self.clock.now();
            let name = request.name.trim();
            for attempt in 1..=CLIENT_ID_ATTEMPTS {
                let client = ApiClientRecord {
                    client_id: client_id_for(name),
                    organization: org.slug.clone(),
                    name: name.to_owned(),
                    description: request.description.clone(),
                    scopes: request.scopes.clone(),
                    secret_hash: secret_hash.clone(),
                    created_by: caller.principal.id.clone(),
                    created_at: now,
                    updated_at: now,
                    disabled_at: None,
                    tokens_revoked_at: None,
                    last_used_at: None,
                    secret_regenerated_at: None,
                    token_generation: 0,
                    limits,
                    labels: request.labels.clone(),
                };
                let audit = entry.about(&client.client_id, &client.organization);
                match self.clients.create_client(&client, &audit).await.map_err(CoreError::from) {
                    Ok(()) => {
                        self.verdicts.known().add(&client.client_id);
                        tracing::info!(client_id = %client.client_id, organization = %org.slug, created_by = %caller.principal.id, "api client created");
                        return Ok(IssuedClient { client_secret: secret, client });
                    }
                    Err(CoreError::AlreadyExists(_)) if attempt < CLIENT_ID_ATTEMPTS => continue,
                    Err(err) => return Err(err),
                }
            }
            Err(CoreError::Aborted("could not find a free client id; try again".into()))
        })
        .await
    }

    /// Looks one client up.
    pub async fn get_client(&self, ctx: &AdminContext, client_id: &str) -> Result<ApiClientRecord, CoreError> {
        let caller = self.caller(ctx, "admin:clients:read").await?;
        self.visible_client(&caller, client_id).await
    }

    /// Lists one organization's clients, newest first.
    pub async fn list_clients(
        &self,
        ctx: &AdminContext,
        listing: &ListRequest,
    ) -> Result<(Vec<ApiClientRecord>, u64), CoreError> {
        if listing.status == Some(KeyStatus::Expired) || listing.expiring_within_days.is_some() {
            // Only the filter is checked here, before the caller: a refusal either way.
            let field = if listing.status == Some(KeyStatus::Expired) { "status" } else { "expiring_within_days" };
            return Err(CoreError::invalid(field, "API clients do not expire"));
        }
        let (org, filter, page) = self.listing(ctx, "admin:clients:read", listing).await?;
        Ok(self.clients.list_clients(&org.slug, &filter, page).await?)
    }

    /// Changes a client's name, description, scopes or limits. Its outstanding tokens follow at
    /// once: a token's scopes are cut to its client's and its limits are the client's, read
    /// again when the change drops the client's cached verdicts on every replica.
    pub async fn update_client(
        &self,
        ctx: &AdminContext,
        client_id: &str,
        changes: KeyChanges,
    ) -> Result<ApiClientRecord, CoreError> {
        let (caller, entry) = self
            .changer(ctx, "admin:clients:write", "api_client.update", id_or_nothing(client_id, is_valid_client_id))
            .await?;
        self.audited(&entry, async {
            self.check_changes(&caller, &changes, "client_id")?;
            let client = self.visible_client(&caller, client_id).await?;
            require_subset(&caller.principal, &client.scopes, "change a client with")?;
            if client.disabled_at.is_some() {
                return Err(client_disabled(client_id));
            }
            self.bound_changes(&caller, PrincipalKind::Client, client.limits, &changes)?;
            let changes = KeyChanges { name: changes.name.map(|n| n.trim().to_owned()), ..changes };
            let audit = entry.about(client_id, &client.organization);
            let updated = self.clients.update_client(client_id, &changes, self.clock.now(), &audit).await?;
            self.verdicts.invalidate_key(client_id).await;
            if !updated {
                return Err(client_disabled(client_id));
            }
            tracing::info!(client_id, updated_by = %caller.principal.id, "api client updated");
            self.reread_client(client_id).await
        })
        .await
    }

    /// Gives a client a new secret; the old one stops working at once (no grace period). With
    /// `revoke_tokens`, so do the tokens issued with it, on every replica within the bound of any
    /// revocation: a secret is usually regenerated because it leaked, and whoever has it may have
    /// taken tokens with it.
    pub async fn regenerate_client_secret(
        &self,
        ctx: &AdminContext,
        client_id: &str,
        revoke_tokens: bool,
    ) -> Result<IssuedClient, CoreError> {
        let (caller, entry) = self
            .changer(
                ctx,
                "admin:clients:write",
                "api_client.regenerate_secret",
                id_or_nothing(client_id, is_valid_client_id),
            )
            .await?;
        self.audited(&entry, async {
            let client = self.visible_client(&caller, client_id).await?;
            require_subset(&caller.principal, &client.scopes, "regenerate the secret of a client with")?;
            require_api_key_for_secrets(&caller, "regenerate client secrets")?;
            if client.disabled_at.is_some() {
                return Err(client_disabled(client_id));
            }
            let secret = generate_secret();
            let secret_hash = self.hasher.hash(secret.clone()).await?;
            let audit = entry.about(client_id, &client.organization);
            let now = self.clock.now();
            let replaced =
                self.clients.replace_client_secret(client_id, &secret_hash, revoke_tokens, now, &audit).await?;
            // Drops the old secret's verdict and every cached token of the client; other replicas
            // are told through the change's announcement.
            self.verdicts.invalidate_key(client_id).await;
            if !replaced {
                return Err(client_disabled(client_id));
            }
            tracing::info!(client_id, revoke_tokens, regenerated_by = %caller.principal.id, "api client secret regenerated");
            let client = self.reread_client(client_id).await?;
            Ok(IssuedClient { client_secret: secret, client })
        })
        .await
    }

    /// Disables a client for good. Its tokens keep working until they expire unless
    /// `revoke_tokens`, which stops them on every replica (also for an already disabled client).
    pub async fn disable_client(
        &self,
        ctx: &AdminContext,
        client_id: &str,
        revoke_tokens: bool,
    ) -> Result<ApiClientRecord, CoreError> {
        let (caller, entry) = self
            .changer(ctx, "admin:clients:write", "api_client.disable", id_or_nothing(client_id, is_valid_client_id))
            .await?;
        self.audited(&entry, async {
            let client = self.visible_client(&caller, client_id).await?;
            require_subset(&caller.principal, &client.scopes, "disable a client with")?;
            let audit = entry.about(client_id, &client.organization);
            let outcome = self.clients.disable_client(client_id, revoke_tokens, self.clock.now(), &audit).await?;
            self.verdicts.invalidate_key(client_id).await;
            if outcome != DisableOutcome::Unchanged {
                tracing::info!(client_id, revoke_tokens, disabled_by = %caller.principal.id, "api client disabled");
            }
            self.reread_client(client_id).await
        })
        .await
    }

    /// Makes a new key sign tokens; the old one stays published until its tokens expire.
    /// Platform admins only: the key signs every organization's tokens.
    pub async fn rotate_signing_key(&self, ctx: &AdminContext) -> Result<SigningKeyRecord, CoreError> {
        let (caller, entry) = self.changer(ctx, "admin:signing:write", "signing_key.rotate", "").await?;
        self.audited(&entry, async {
            if !caller.platform {
                return Err(CoreError::PermissionDenied("only a platform admin can rotate the signing key".into()));
            }
            let record = self.keyring.rotate(&entry).await?;
            tracing::info!(kid = %record.kid, rotated_by = %caller.principal.id, "signing key rotated by admin");
            Ok(record)
        })
        .await
    }

    /// Rotates the signing key for an operator at the command line, who has the database and
    /// needs no admin key; recorded in the platform organization's log.
    pub async fn rotate_signing_key_as_operator(&self) -> Result<SigningKeyRecord, CoreError> {
        let platform = self.store.platform_organization().await?.map(|org| org.slug).unwrap_or_default();
        let entry = operator_entry(CLI_ACTOR, "signing_key.rotate", self.clock.now()).about("", &platform);
        self.keyring.rotate(&entry).await
    }

    /// A client the caller may see: its organization's, or any for a platform admin.
    pub(super) async fn visible_client(&self, caller: &Caller, client_id: &str) -> Result<ApiClientRecord, CoreError> {
        if !is_valid_client_id(client_id) {
            return Err(CoreError::invalid("client_id", "is not a client id (lowercase letters, digits and '-')"));
        }
        let not_found = || CoreError::NotFound(format!("API client {client_id} not found"));
        let client = self.clients.client(client_id).await?.ok_or_else(not_found)?;
        if client.organization != caller.principal.organization && !caller.platform {
            return Err(not_found());
        }
        Ok(client)
    }

    async fn reread_client(&self, client_id: &str) -> Result<ApiClientRecord, CoreError> {
        self.clients
            .client(client_id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("API client {client_id} not found")))
    }
}

/// A client's secret never expires, so a caller authenticated by a token (a 30-minute client
/// token, an outside user's token) is not handed one: it would outlive the token forever, the
/// way [`super::handout_deadline`] keeps keys from doing. Admin API keys may, and users of an
/// issuer the operator trusts to create lasting credentials; platform admins' tokens may not.
fn require_api_key_for_secrets(caller: &Caller, what: &str) -> Result<(), CoreError> {
    if caller.principal.kind == PrincipalKind::ApiKey || caller.principal.creations_may_outlive {
        return Ok(());
    }
    Err(CoreError::PermissionDenied(format!(
        "only an admin API key can {what}: a client secret never expires, and your token expires at {}",
        caller.principal.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )))
}

fn client_disabled(client_id: &str) -> CoreError {
    CoreError::FailedPrecondition(format!("API client {client_id} is disabled; create a new client instead"))
}
