//! The admin use cases: organizations and the API-key lifecycle, over the ports (API clients and
//! signing keys in [`clients`]; the audit log's listing in [`audit`]). Every call authenticates
//! its caller through the engine and checks the admin scope it needs; every change is recorded in
//! the audit log in the same transaction as the change, and every change an admin attempted and
//! was refused on its own. Calls by credentials holding no admin scope at all are only counted
//! ([`Admin::refusal_counters`]): anyone with any key could otherwise fill the log.

pub mod audit;
pub mod clients;
pub mod identity;
mod organizations;
#[cfg(test)]
mod tests;
pub mod usage;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::engine::Engine;
use super::error::CoreError;
use super::instruments::LabeledCounters;
use super::limits::grants::{GrantBounds, asked_on_change, asked_on_create};
use super::limits::{LimitDefaults, check_overrides, check_resets};
use super::model::{
    ApiKeyRecord, AuditEntry, Credentials, KeyStatus, Labels, LimitField, LimitOverrides, ListFilter, Organization,
    Page, Principal, PrincipalKind, RequestOrigin,
};
use super::ports::{AuditStore, ClientStore, Clock, KeyChanges, Revival, RotateOutcome, Rotation, Store, UsageStore};
use super::validate::{Violations, is_valid_slug};
use super::verdicts::VerdictCache;
use crate::credentials::api_key;
use crate::credentials::hashing::SecretHasher;
use crate::credentials::scopes::{ScopeRegistry, any_grants, holds_admin_scope};
use crate::tokens::signing::Keyring;

pub use organizations::{NewOrganization, OrganizationUpdate};

const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;
const MAX_SEARCH: usize = 200;
/// Who created keys made by `keygate bootstrap`.
pub const BOOTSTRAP_CREATOR: &str = "bootstrap";

/// An admin request as the edge received it: the caller's own credential and where the request
/// came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct AdminContext {
    pub credentials: Credentials,
    pub origin: RequestOrigin,
}

/// Limits and defaults of the key lifecycle, from config.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub key_prefix: String,
    pub default_expires_in_days: i64,
    pub max_expires_in_days: i64,
    pub default_grace_period_days: i64,
    pub max_grace_period_days: i64,
    pub plans: BTreeMap<String, Plan>,
    pub default_plan: String,
    pub bootstrap_plan: String,
    /// The loosest limits organization admins may grant where their plan sets none.
    pub ceiling: LimitOverrides,
    /// The configured limits by kind: where ceilings fall back to, and what a caller's own
    /// limits are made of.
    pub limit_defaults: LimitDefaults,
}

/// A configured plan: how many keys an organization on it may have active, and the loosest
/// limits its own admins may give a key or client (over `limits.ceiling`, over the defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    pub max_active_keys: u32,
    pub ceiling: LimitOverrides,
}

impl Plan {
    /// A plan of `max_active_keys` with no ceiling of its own.
    pub fn with_keys(max_active_keys: u32) -> Self {
        Self { max_active_keys, ceiling: LimitOverrides::default() }
    }
}

/// Why an admin call was refused without an entry in the audit log.
const UNAUTHENTICATED: &str = "unauthenticated";
const NO_ADMIN_SCOPE: &str = "no_admin_scope";

/// A key as shown to admins: the record and what is derived from it at read time.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub key: ApiKeyRecord,
    pub status: KeyStatus,
    /// Until when the replaced secret works, when it still does.
    pub previous_key_expires_at: Option<DateTime<Utc>>,
}

/// A new key or a rotated one: the full key, shown once, and the key's view.
pub struct IssuedKey {
    pub api_key: String,
    pub view: KeyView,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey").field("view", &self.view).finish_non_exhaustive()
    }
}

/// What `CreateApiKey` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub expires_in_days: Option<i64>,
    pub organization: String,
    pub limits: LimitOverrides,
    pub labels: Labels,
}

/// What `RotateApiKey` asks for.
#[derive(Debug, Clone, Default)]
pub struct RotateKey {
    pub key_id: String,
    pub grace_period_days: Option<i64>,
    pub expires_in_days: Option<i64>,
}

/// What `ListApiKeys` or `ListApiClients` asks for; unset filters match everything.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub search: String,
    pub offset: i64,
    pub limit: i64,
    /// The organization's slug; the caller's own when empty.
    pub organization: String,
    pub status: Option<KeyStatus>,
    /// Only keys active now that expire within this many days (keys only).
    pub expiring_within_days: Option<i64>,
    /// Only credentials not used since this time (never-used ones included).
    pub unused_since: Option<DateTime<Utc>>,
    /// Only credentials carrying every one of these labels.
    pub labels: Labels,
}

/// An authenticated admin and what its organization is.
struct Caller {
    principal: Principal,
    /// The caller's own organization, read once per call.
    organization: Option<Organization>,
    platform: bool,
}

/// The admin use cases.
pub struct Admin {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    clients: Arc<dyn ClientStore>,
    audit: Arc<dyn AuditStore>,
    keyring: Arc<Keyring>,
    hasher: SecretHasher,
    clock: Arc<dyn Clock>,
    scopes: Arc<ScopeRegistry>,
    verdicts: Arc<VerdictCache>,
    usage: Arc<dyn UsageStore>,
    settings: AdminSettings,
    /// Refusals not recorded in the audit log, by reason.
    refusals: Arc<LabeledCounters>,
}

/// What [`Admin`] is built from.
pub struct AdminParts {
    pub engine: Arc<Engine>,
    pub store: Arc<dyn Store>,
    pub clients: Arc<dyn ClientStore>,
    pub audit: Arc<dyn AuditStore>,
    pub keyring: Arc<Keyring>,
    pub hasher: SecretHasher,
    pub clock: Arc<dyn Clock>,
    pub scopes: Arc<ScopeRegistry>,
    pub verdicts: Arc<VerdictCache>,
    /// Daily use counts, for a credential's usage.
    pub usage: Arc<dyn UsageStore>,
    pub settings: AdminSettings,
}

impl Admin {
    pub fn new(parts: AdminParts) -> Self {
        let AdminParts { engine, store, clients, audit, keyring, hasher, clock, scopes, verdicts, usage, settings } =
            parts;
        let refusals = Arc::default();
        Self { engine, store, clients, audit, keyring, hasher, clock, scopes, verdicts, usage, settings, refusals }
    }

    /// Admin calls refused without an audit entry, by reason (`unauthenticated`,
    /// `no_admin_scope`), for registration.
    pub fn refusal_counters(&self) -> Arc<LabeledCounters> {
        self.refusals.clone()
    }

    /// Creates an API key in the caller's organization (or, for a platform admin, any).
    pub async fn create_key(&self, ctx: &AdminContext, request: NewKey) -> Result<IssuedKey, CoreError> {
        let (caller, entry) = self.changer(ctx, "admin:keys:write", "api_key.create", "").await?;
        self.audited(&entry, async {
            let mut violations = Violations::default();
            violations.required_text("name", &request.name, MAX_NAME);
            violations.optional_text("description", &request.description, MAX_DESCRIPTION);
            self.check_scopes(&mut violations, "scopes", &request.scopes);
            if let Some(days) = request.expires_in_days {
                violations.days("expires_in_days", days, 1, self.settings.max_expires_in_days);
            }
            check_overrides(&request.limits, &mut violations);
            violations.labels("labels", &request.labels);
            if !request.organization.is_empty() && !is_valid_slug(&request.organization) {
                violations.add("organization", "is not an organization slug");
            }
            violations.finish()?;
            require_subset(&caller.principal, &request.scopes, "grant")?;
            let org = self.target_organization(&caller, &request.organization).await?;
            let limits = self.granted_limits(&caller, PrincipalKind::ApiKey, request.limits)?;
            let expires_at = self.new_key_expiry(&caller, request.expires_in_days)?;
            let name = request.name.trim().to_owned();
            let issued = self.issue_key(&org, NewKey { name, limits, ..request }, expires_at, &entry).await?;
            tracing::info!(key_id = %issued.view.key.key_id, organization = %org.slug, created_by = %caller.principal.id, "api key created");
            Ok(issued)
        })
        .await
    }

    /// Looks one key up.
    pub async fn get_key(&self, ctx: &AdminContext, key_id: &str) -> Result<KeyView, CoreError> {
        let caller = self.caller(ctx, "admin:keys:read").await?;
        let key = self.visible_key(&caller, key_id).await?;
        Ok(self.view(key))
    }

    /// Lists one organization's keys, newest first.
    pub async fn list_keys(&self, ctx: &AdminContext, listing: &ListRequest) -> Result<(Vec<KeyView>, u64), CoreError> {
        let (org, filter, page) = self.listing(ctx, "admin:keys:read", listing).await?;
        let (keys, total) = self.store.list_keys(&org.slug, &filter, page).await?;
        Ok((keys.into_iter().map(|k| self.view(k)).collect(), total))
    }

    /// Changes a key's name, description or scopes.
    pub async fn update_key(
        &self,
        ctx: &AdminContext,
        key_id: &str,
        changes: KeyChanges,
    ) -> Result<KeyView, CoreError> {
        let (caller, entry) = self
            .changer(ctx, "admin:keys:write", "api_key.update", id_or_nothing(key_id, api_key::is_valid_key_id))
            .await?;
        self.audited(&entry, async {
            self.check_changes(&caller, &changes, "key_id")?;
            let key = self.visible_key(&caller, key_id).await?;
            require_subset(&caller.principal, &key.scopes, "change a key with")?;
            if key.disabled_at.is_some() {
                return Err(disabled(key_id, "updated"));
            }
            self.bound_changes(&caller, PrincipalKind::ApiKey, key.limits, &changes)?;
            let changes = KeyChanges { name: changes.name.map(|n| n.trim().to_owned()), ..changes };
            let updated = self
                .store
                .update_key(key_id, &changes, self.clock.now(), &entry.about(key_id, &key.organization))
                .await?;
            self.verdicts.invalidate_key(key_id).await;
            if !updated {
                return Err(disabled(key_id, "updated"));
            }
            tracing::info!(key_id, updated_by = %caller.principal.id, "api key updated");
            self.reread(key_id).await
        })
        .await
    }

    /// Gives a key a new secret; the old one keeps working for the grace period.
    pub async fn rotate_key(&self, ctx: &AdminContext, request: RotateKey) -> Result<IssuedKey, CoreError> {
        let (caller, entry) = self
            .changer(
                ctx,
                "admin:keys:write",
                "api_key.rotate",
                id_or_nothing(&request.key_id, api_key::is_valid_key_id),
            )
            .await?;
        self.audited(&entry, async {
            let mut violations = Violations::default();
            if let Some(days) = request.grace_period_days {
                violations.days("grace_period_days", days, 0, self.settings.max_grace_period_days);
            }
            if let Some(days) = request.expires_in_days {
                violations.days("expires_in_days", days, 1, self.settings.max_expires_in_days);
            }
            violations.finish()?;
            let key = self.visible_key(&caller, &request.key_id).await?;
            // Rotation hands out the key's secret, so the caller must hold everything the key can do.
            require_subset(&caller.principal, &key.scopes, "rotate a key with")?;
            let now = self.clock.now();
            if key.disabled_at.is_some() {
                return Err(disabled(&key.key_id, "rotated"));
            }
            if now >= key.expires_at && request.expires_in_days.is_none() {
                return Err(CoreError::FailedPrecondition(format!(
                    "API key {} has expired; pass expires_in_days to rotate it",
                    key.key_id
                )));
            }
            let grace = request.grace_period_days.unwrap_or(self.settings.default_grace_period_days);
            let expires_at = match request.expires_in_days {
                Some(days) => now + Duration::days(days),
                None => key.expires_at,
            };
            // Rotation hands out the new secret: it may not outlive the caller's credential.
            if let Some(deadline) = handout_deadline(&caller)
                && expires_at > deadline
            {
                return Err(outliving(deadline, now, "rotate a key whose new secret would outlive"));
            }
            let generated = api_key::generate_for(&self.settings.key_prefix, &key.key_id);
            let rotation = Rotation {
                new_secret_hash: self.hasher.hash(generated.secret.clone()).await?,
                previous_key_expires_at: (now + Duration::days(grace)).min(key.expires_at).min(expires_at).max(now),
                expires_at,
                replaces_hash: key.secret_hash.clone(),
            };
            // An expired key that comes back to life counts against its organization's limit again.
            let revival = if now >= key.expires_at {
                let org = self.store.organization(&key.organization).await?;
                org.map(|o| Revival { organization: o.slug, max_active: o.max_active_keys })
            } else {
                None
            };
            let audit = entry.about(&key.key_id, &key.organization);
            let outcome = self.store.rotate_key(&key.key_id, &rotation, revival.as_ref(), now, &audit).await?;
            self.verdicts.invalidate_key(&key.key_id).await;
            match outcome {
                RotateOutcome::Rotated => {}
                RotateOutcome::LimitReached => {
                    return Err(CoreError::FailedPrecondition(format!(
                        "organization {} has reached its limit of active API keys; the expired key {} cannot be revived",
                        key.organization, key.key_id
                    )));
                }
                RotateOutcome::Changed => {
                    let now_disabled = self.store.key(&key.key_id).await?.is_some_and(|k| k.disabled_at.is_some());
                    if now_disabled {
                        return Err(disabled(&key.key_id, "rotated"));
                    }
                    return Err(CoreError::Aborted(format!(
                        "API key {} was rotated by another request meanwhile; read it again before rotating",
                        key.key_id
                    )));
                }
            }
            tracing::info!(key_id = %key.key_id, grace_period_days = grace, rotated_by = %caller.principal.id, "api key rotated");
            let view = self.reread(&key.key_id).await?;
            Ok(IssuedKey { api_key: generated.full, view })
        })
        .await
    }

    /// Disables a key at once, grace-period secret included. Disabling twice is harmless.
    pub async fn disable_key(&self, ctx: &AdminContext, key_id: &str) -> Result<KeyView, CoreError> {
        let (caller, entry) = self
            .changer(ctx, "admin:keys:write", "api_key.disable", id_or_nothing(key_id, api_key::is_valid_key_id))
            .await?;
        self.audited(&entry, async {
            let key = self.visible_key(&caller, key_id).await?;
            // Otherwise a lesser admin could lock a stronger one (the bootstrap key) out.
            require_subset(&caller.principal, &key.scopes, "disable a key with")?;
            let audit = entry.about(&key.key_id, &key.organization);
            let disabled = self.store.disable_key(&key.key_id, self.clock.now(), &audit).await?;
            self.verdicts.invalidate_key(&key.key_id).await;
            if disabled {
                tracing::info!(key_id, disabled_by = %caller.principal.id, "api key disabled");
            }
            self.reread(key_id).await
        })
        .await
    }

    /// Creates the platform organization (when there is none) and an admin key holding `*`.
    /// Refuses when already bootstrapped unless `force`, which adds another admin key.
    pub async fn bootstrap(&self, slug: &str, force: bool) -> Result<IssuedKey, CoreError> {
        if !is_valid_slug(slug) {
            return Err(CoreError::invalid("org", "must be 2 to 63 lowercase letters, digits or '-'"));
        }
        let org = match self.store.platform_organization().await? {
            Some(existing) if !force => {
                return Err(CoreError::FailedPrecondition(format!(
                    "keygate is already bootstrapped: platform organization {:?} exists; \
                     run with --force to create another admin key for it",
                    existing.slug
                )));
            }
            Some(existing) if existing.slug != slug => {
                return Err(CoreError::FailedPrecondition(format!(
                    "the platform organization is {:?}, not {slug:?}; run with --org {} --force",
                    existing.slug, existing.slug
                )));
            }
            Some(existing) => existing,
            None => {
                let org = self.new_organization(slug, slug, &self.settings.bootstrap_plan.clone(), true)?;
                let audit =
                    operator_entry(BOOTSTRAP_CREATOR, "organization.create", self.clock.now()).about(slug, slug);
                self.store.create_organization(&org, &audit).await?;
                org
            }
        };
        let scopes = vec!["*".to_owned()];
        let expires_at = self.clock.now() + Duration::days(self.settings.default_expires_in_days);
        let entry = operator_entry(BOOTSTRAP_CREATOR, "api_key.create", self.clock.now());
        let key = NewKey { name: "bootstrap admin".to_owned(), scopes, ..NewKey::default() };
        let issued = self.issue_key(&org, key, expires_at, &entry).await?;
        tracing::info!(key_id = %issued.view.key.key_id, organization = %org.slug, "bootstrap admin key created");
        Ok(issued)
    }

    async fn issue_key(
        &self,
        org: &Organization,
        key: NewKey,
        expires_at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<IssuedKey, CoreError> {
        let NewKey { name, description, scopes, limits, labels, .. } = key;
        let now = self.clock.now();
        let generated = api_key::generate(&self.settings.key_prefix);
        let record = ApiKeyRecord {
            key_id: generated.key_id.clone(),
            key_prefix: generated.key_prefix.clone(),
            organization: org.slug.clone(),
            name,
            description,
            scopes,
            secret_hash: self.hasher.hash(generated.secret.clone()).await?,
            previous_secret_hash: None,
            previous_key_expires_at: None,
            created_by: audit.actor.clone(),
            created_at: now,
            updated_at: now,
            expires_at,
            disabled_at: None,
            last_used_at: None,
            last_rotated_at: None,
            limits,
            labels,
        };
        let audit = audit.about(&record.key_id, &org.slug);
        if !self.store.create_key_within_limit(&record, org.max_active_keys, now, &audit).await? {
            return Err(CoreError::FailedPrecondition(format!(
                "organization {} has reached its limit of {} active API keys (plan {})",
                org.slug, org.max_active_keys, org.plan
            )));
        }
        self.verdicts.known().add(&record.key_id);
        Ok(IssuedKey { api_key: generated.full, view: self.view(record) })
    }

    /// Checks a listing request (page, search, organization) and finds the organization to list.
    /// Checks a listing request (page, filters, organization), finds the organization to list
    /// and builds the filter, judged now.
    async fn listing(
        &self,
        ctx: &AdminContext,
        scope: &str,
        listing: &ListRequest,
    ) -> Result<(Organization, ListFilter, Page), CoreError> {
        let caller = self.caller(ctx, scope).await?;
        let mut violations = Violations::default();
        let page = violations.page(listing.offset, listing.limit);
        violations.optional_text("search", &listing.search, MAX_SEARCH);
        if !listing.organization.is_empty() && !is_valid_slug(&listing.organization) {
            violations.add("organization", "is not an organization slug");
        }
        if let Some(days) = listing.expiring_within_days {
            violations.days("expiring_within_days", days, 1, self.settings.max_expires_in_days);
        }
        violations.labels("labels", &listing.labels);
        violations.finish()?;
        let now = self.clock.now();
        let filter = ListFilter {
            search: listing.search.trim().to_owned(),
            status: listing.status,
            expires_before: listing.expiring_within_days.map(|days| now + Duration::days(days)),
            unused_since: listing.unused_since,
            labels: listing.labels.clone(),
            now,
        };
        Ok((self.target_organization(&caller, &listing.organization).await?, filter, page))
    }

    /// Authenticates the caller and checks it holds `scope`.
    async fn caller(&self, ctx: &AdminContext, scope: &str) -> Result<Caller, CoreError> {
        let principal = self.admin_principal(ctx, scope).await?;
        self.authorize(principal, scope).await
    }

    /// Authenticates the caller of a change and checks it holds `scope`, recording a refusal.
    /// Returns the caller and the entry its change is recorded with (about `target` in the
    /// caller's organization until the change says otherwise). Calls that do not authenticate, or
    /// whose credential holds no admin scope, are not recorded (see [`Self::admin_principal`]).
    async fn changer(
        &self,
        ctx: &AdminContext,
        scope: &str,
        action: &str,
        target: &str,
    ) -> Result<(Caller, AuditEntry), CoreError> {
        let principal = self.admin_principal(ctx, scope).await?;
        let entry = AuditEntry::by(&principal, action, self.clock.now(), &ctx.origin);
        let entry = entry.about(target, &principal.organization);
        let caller = self.audited(&entry, self.authorize(principal, scope)).await?;
        Ok((caller, entry))
    }

    /// Runs a change and, when it fails, records the refusal on its own: a refused change has
    /// no transaction to ride in (a successful one writes its entry with the change itself).
    async fn audited<T>(
        &self,
        entry: &AuditEntry,
        change: impl Future<Output = Result<T, CoreError>>,
    ) -> Result<T, CoreError> {
        let result = change.await;
        if let Err(err) = &result
            && let Err(store_err) = self.audit.record(&entry.refused(err.code().as_str())).await
        {
            // The caller still learns why the change was refused; the log misses the attempt.
            tracing::warn!(action = %entry.action, request_id = %entry.request_id, error = %store_err, "audit entry of a refused change not recorded");
        }
        result
    }

    /// Authenticates an admin call's caller, which must hold some admin scope. Refusals here are
    /// counted, never recorded in the audit log: a call that does not authenticate has no actor,
    /// and a credential with no admin scope is no admin, yet any holder of any key could call
    /// without end, each call a row. An admin's refused attempts are recorded (see
    /// [`Self::changer`]): those are what the log is for.
    async fn admin_principal(&self, ctx: &AdminContext, scope: &str) -> Result<Principal, CoreError> {
        let principal = match self.engine.authenticate(&ctx.credentials).await? {
            Ok(principal) => principal,
            Err(failure) => {
                self.refused(UNAUTHENTICATED);
                return Err(CoreError::Unauthenticated(failure));
            }
        };
        if !holds_admin_scope(&principal.scopes) {
            self.refused(NO_ADMIN_SCOPE);
            return Err(CoreError::PermissionDenied(format!("this call needs the {scope} scope")));
        }
        Ok(principal)
    }

    fn refused(&self, reason: &'static str) {
        self.refusals.inc(reason);
    }

    /// The bounds an organization admin's grant of limits to a new or changed credential of
    /// `kind` is held to: the ceiling of the caller's organization's plan (over
    /// `limits.ceiling`, over the defaults of `kind`) and the caller's own limits. `None` for
    /// platform admins, who may exceed the ceilings; everyone else acts only in their own
    /// organization.
    fn grant_bounds(&self, caller: &Caller, kind: PrincipalKind) -> Option<GrantBounds> {
        if caller.platform {
            return None;
        }
        let plan = caller.organization.as_ref().map_or("", |org| org.plan.as_str());
        let plan_ceiling = self.settings.plans.get(plan).map(|plan| plan.ceiling).unwrap_or_default();
        let own = self.settings.limit_defaults.resolve(caller.principal.kind, &caller.principal.limits);
        Some(GrantBounds::new(&self.settings.limit_defaults, kind, plan_ceiling.or(self.settings.ceiling), plan, own))
    }

    /// Checks a change of a key's or client's fields, and that the caller holds the scopes it
    /// grants; `id_field` names the request's id, where an empty change is reported.
    fn check_changes(&self, caller: &Caller, changes: &KeyChanges, id_field: &str) -> Result<(), CoreError> {
        let mut violations = Violations::default();
        if *changes == KeyChanges::default() {
            violations
                .add(id_field, "nothing to update: set name, description, scopes, labels, a limit or a limit to reset");
        }
        check_overrides(&changes.limits, &mut violations);
        check_resets("reset_limits", &changes.reset_limits, &changes.limits, &mut violations);
        if let Some(name) = &changes.name {
            violations.required_text("name", name, MAX_NAME);
        }
        if let Some(description) = &changes.description {
            violations.optional_text("description", description, MAX_DESCRIPTION);
        }
        if let Some(scopes) = &changes.scopes {
            self.check_scopes(&mut violations, "scopes", scopes);
        }
        if let Some(labels) = &changes.labels {
            violations.labels("labels", labels);
        }
        violations.finish()?;
        match &changes.scopes {
            Some(scopes) => require_subset(&caller.principal, scopes, "grant"),
            None => Ok(()),
        }
    }

    /// Holds the limits a change touches to the caller's bounds for a credential of `kind`
    /// whose limits are `current`. Only what the change touches: a credential granted more
    /// before a ceiling was lowered keeps the rest.
    fn bound_changes(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        current: LimitOverrides,
        changes: &KeyChanges,
    ) -> Result<(), CoreError> {
        let Some(bounds) = self.grant_bounds(caller, kind) else { return Ok(()) };
        let mut changed = current;
        for field in LimitField::ALL {
            if let Some(value) = changes.limits.get(field) {
                changed.set(field, Some(value));
            }
        }
        for field in changes.reset_limits.iter().filter_map(|name| LimitField::from_name(name)) {
            changed.set(field, None);
        }
        let asked = asked_on_change(&changes.limits, &changes.reset_limits);
        bounds.apply(&self.settings.limit_defaults, kind, changed, &asked)?;
        Ok(())
    }

    /// The limits a new credential of `kind` is created with: those asked for, unset ones capped
    /// at the caller's bounds; refused when asked-for ones are beyond them.
    fn granted_limits(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        asked: LimitOverrides,
    ) -> Result<LimitOverrides, CoreError> {
        match self.grant_bounds(caller, kind) {
            Some(bounds) => bounds.apply(&self.settings.limit_defaults, kind, asked, &asked_on_create(&asked)),
            None => Ok(asked),
        }
    }

    /// When a new key expires: in `asked` days, or by default the configured default, cut to
    /// the caller's own expiry when that is sooner but at least a day away. A key never outlives
    /// the credential that created it (see [`handout_deadline`]): an explicit `expires_in_days`
    /// beyond it is refused rather than cut, so that the caller does not learn of a shorter key
    /// only when it stops working.
    fn new_key_expiry(&self, caller: &Caller, asked: Option<i64>) -> Result<DateTime<Utc>, CoreError> {
        let now = self.clock.now();
        let expires_at = now + Duration::days(asked.unwrap_or(self.settings.default_expires_in_days));
        let Some(deadline) = handout_deadline(caller) else { return Ok(expires_at) };
        if expires_at <= deadline {
            return Ok(expires_at);
        }
        if asked.is_none() && deadline - now >= Duration::days(1) {
            return Ok(deadline);
        }
        Err(outliving(deadline, now, "create a key that would outlive"))
    }

    /// Checks `principal` holds `scope` and finds out whether it is a platform admin: a member of
    /// the platform organization. An outside token reaches that organization only from an issuer
    /// the operator marked `platform` (the engine refuses the others), so an outside provider
    /// never makes platform admins on its own.
    async fn authorize(&self, principal: Principal, scope: &str) -> Result<Caller, CoreError> {
        if !any_grants(&principal.scopes, scope) {
            return Err(CoreError::PermissionDenied(format!("this call needs the {scope} scope")));
        }
        let organization = self.store.organization(&principal.organization).await?;
        let platform = organization.as_ref().is_some_and(|org| org.platform);
        Ok(Caller { principal, organization, platform })
    }

    /// The organization a request names (empty: the caller's own). Other organizations exist only
    /// for platform admins; anyone else gets NOT_FOUND, as if they did not exist.
    async fn target_organization(&self, caller: &Caller, requested: &str) -> Result<Organization, CoreError> {
        let slug = if requested.is_empty() { caller.principal.organization.as_str() } else { requested };
        let not_found = || CoreError::NotFound(format!("organization {slug} not found"));
        if slug == caller.principal.organization {
            return caller.organization.clone().ok_or_else(not_found);
        }
        if !caller.platform {
            return Err(not_found());
        }
        self.store.organization(slug).await?.ok_or_else(not_found)
    }

    /// A key the caller may see: its organization's, or any for a platform admin.
    async fn visible_key(&self, caller: &Caller, key_id: &str) -> Result<ApiKeyRecord, CoreError> {
        if !api_key::is_valid_key_id(key_id) {
            return Err(CoreError::invalid("key_id", "is not a key id (k_ followed by 12 letters or digits)"));
        }
        let not_found = || CoreError::NotFound(format!("API key {key_id} not found"));
        let key = self.store.key(key_id).await?.ok_or_else(not_found)?;
        if key.organization != caller.principal.organization && !caller.platform {
            return Err(not_found());
        }
        Ok(key)
    }

    async fn reread(&self, key_id: &str) -> Result<KeyView, CoreError> {
        let key =
            self.store.key(key_id).await?.ok_or_else(|| CoreError::NotFound(format!("API key {key_id} not found")))?;
        Ok(self.view(key))
    }

    fn view(&self, key: ApiKeyRecord) -> KeyView {
        let now = self.clock.now();
        KeyView { status: key.status(now), previous_key_expires_at: key.grace_until(now), key }
    }

    fn check_scopes(&self, violations: &mut Violations, field: &str, scopes: &[String]) {
        if scopes.is_empty() {
            violations.add(field, "at least one scope is required");
        }
        violations.extend(self.scopes.check(field, scopes));
    }
}

/// Until when a key the caller creates, or a secret it is handed, may work: the caller's own
/// credential's expiry, so that a short-lived credential (a 30-minute token, a key about to
/// expire) cannot turn itself into a long-lived one. `None` for a platform admin calling with an
/// API key, the operator's own long-lived credential, and for users of an issuer the operator
/// trusts to create lasting credentials; any other platform admin's token is held to it.
fn handout_deadline(caller: &Caller) -> Option<DateTime<Utc>> {
    let operator = caller.platform && caller.principal.kind == PrincipalKind::ApiKey;
    let exempt = operator || caller.principal.creations_may_outlive;
    (!exempt).then_some(caller.principal.expires_at)
}

/// The refusal of a key that would outlive the caller's credential (`deadline`), naming the field.
fn outliving(deadline: DateTime<Utc>, now: DateTime<Utc>, what: &str) -> CoreError {
    let days = (deadline - now).num_days();
    let fix = if days >= 1 {
        format!("pass expires_in_days of at most {days}")
    } else {
        "it expires within a day and keys live at least one: use an admin API key that lives longer".to_owned()
    };
    CoreError::PermissionDenied(format!(
        "expires_in_days: you cannot {what} your own credential, which expires at {}; {fix}",
        deadline.to_rfc3339_opts(SecondsFormat::Secs, true)
    ))
}

fn disabled(key_id: &str, what: &str) -> CoreError {
    CoreError::FailedPrecondition(format!("API key {key_id} is disabled and cannot be {what}"))
}

/// Who rotates the signing key with `keygate rotate-signing-key`, in the audit log.
pub const CLI_ACTOR: &str = "cli";

/// An entry for a change an operator makes from the command line (`actor` names the command):
/// no principal, no request.
fn operator_entry(actor: &str, action: &str, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        id: 0,
        at,
        actor: actor.to_owned(),
        actor_kind: "operator".to_owned(),
        organization: String::new(),
        action: action.to_owned(),
        target: String::new(),
        outcome: super::model::SUCCESS.to_owned(),
        request_id: String::new(),
        client_request_id: String::new(),
        peer: String::new(),
    }
}

/// An id a request names, as a refusal's target: only when it has the shape of an id, since the
/// field may hold anything, even a secret pasted into the wrong field.
fn id_or_nothing(id: &str, well_formed: fn(&str) -> bool) -> &str {
    if well_formed(id) { id } else { "" }
}

/// The subset rule: a caller can only hand out what it holds itself.
fn require_subset(caller: &Principal, scopes: &[String], verb: &str) -> Result<(), CoreError> {
    let beyond: Vec<&str> = scopes.iter().filter(|s| !any_grants(&caller.scopes, s)).map(String::as_str).collect();
    if beyond.is_empty() {
        return Ok(());
    }
    Err(CoreError::PermissionDenied(format!("you cannot {verb} scopes you do not hold: {}", beyond.join(", "))))
}

#[cfg(test)]
mod redaction_tests {
    use super::*;
    use crate::oauth::TokenRequest;

    /// What `{:?}` of the types that carry secrets prints: never the secret, so a future log
    /// line with a Debug of one of them cannot leak it.
    #[test]
    fn debug_never_prints_a_secret() {
        const SECRET: &str = "sk_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEF_s3cr3t";
        let credentials = Credentials { authorization: format!("Bearer {SECRET}"), api_key: SECRET.to_owned() };
        let context = AdminContext { credentials: credentials.clone(), origin: RequestOrigin::default() };
        let request = TokenRequest {
            grant_type: "client_credentials".into(),
            client_id: "c".into(),
            client_secret: SECRET.into(),
            scope: String::new(),
        };
        let printed = [format!("{credentials:?}"), format!("{context:?}"), format!("{request:?}")];
        for text in &printed {
            assert!(!text.contains("s3cr3t") && !text.contains("sk_live_"), "{text}");
        }
        assert!(printed[0].contains("bytes"), "the headers' presence still shows: {}", printed[0]);
        assert_eq!(
            format!("{:?}", Credentials::default()),
            r#"Credentials { authorization: "none", api_key: "none" }"#
        );
    }
}
