//! Every store port in this process's memory, for tests: one mutex around the whole state, held
//! for the whole of each call, stands for the SQL store's transactions. A call checks everything
//! before it changes anything, so a write and its audit entry are made together or not at all.
//! The semantics are the SQL store's (`src/store/` of the keygate crate), which is the reference:
//! the conformance suite ([`super::store_conformance`]) holds both to them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::error::StoreError;
use crate::model::{
    ApiClientRecord, ApiKeyRecord, AuditEntry, AuditQuery, ClientStatus, DailyUses, Fingerprint, KeyStatus, Labels,
    LimitField, LimitOverrides, ListFilter, Organization, Page, SigningKeyRecord, StoredSecret, UsageRow,
};
use crate::ports::{
    AuditStore, ClientStore, DisableOutcome, KeyChanges, OrganizationChanges, Revival, RotateOutcome, Rotation,
    SecretSlot, SigningKeyStore, Store, UsageStore,
};

/// Quota usage by subject, window start and replica.
type UsageKey = (String, DateTime<Utc>, String);

#[derive(Debug, Default)]
struct State {
    organizations: BTreeMap<String, Organization>,
    keys: BTreeMap<String, ApiKeyRecord>,
    clients: BTreeMap<String, ApiClientRecord>,
    signing_keys: BTreeMap<String, SigningKeyRecord>,
    /// In insertion order; ids from 1.
    audit: Vec<AuditEntry>,
    usage: BTreeMap<UsageKey, u64>,
    daily: BTreeMap<(String, NaiveDate), u64>,
}

impl State {
    /// Appends `entry` with the next id, as the table's auto-increment key would.
    fn append_audit(&mut self, entry: &AuditEntry) {
        let id = i64::try_from(self.audit.len()).unwrap_or(i64::MAX).saturating_add(1);
        self.audit.push(AuditEntry { id, ..entry.clone() });
    }

    /// Keys of `organization` neither disabled nor expired at `now`.
    fn count_active(&self, organization: &str, now: DateTime<Utc>) -> u64 {
        let active = self
            .keys
            .values()
            .filter(|key| key.organization == organization && key.disabled_at.is_none() && key.expires_at > now)
            .count();
        u64::try_from(active).unwrap_or(u64::MAX)
    }

    /// The foreign key from keys and clients to their organization.
    fn require_organization(&self, slug: &str) -> Result<(), StoreError> {
        if self.organizations.contains_key(slug) {
            return Ok(());
        }
        Err(StoreError::Internal(format!("foreign key violated: organization {slug:?} does not exist")))
    }
}

/// The in-memory store. `Default` is an empty, available store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Set by [`Self::set_available`]: every call then fails as a database outage would.
    down: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail with [`StoreError::Unavailable`] (false) or answer again (true), as
    /// an unreachable database would.
    pub fn set_available(&self, available: bool) {
        self.down.store(!available, Ordering::SeqCst);
    }

    /// Every audit entry ever stored, oldest first, whatever its organization.
    pub fn audit_entries(&self) -> Vec<AuditEntry> {
        self.lock().audit.clone()
    }

    /// The state, for one whole call: the store's one transaction at a time. Every call leaves the
    /// state whole before it could panic, so a poisoned lock still guards a consistent state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, unless the store is down.
    fn open(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the in-memory store was made unavailable".into()));
        }
        Ok(self.lock())
    }
}

/// What the SQL columns keep of an organization: the key limit is a 32-bit signed column.
fn stored_organization(org: &Organization) -> Organization {
    Organization { max_active_keys: org.max_active_keys.min(i32::MAX.unsigned_abs()), ..org.clone() }
}

/// Scopes as the SQL store keeps them: joined by spaces, split on whitespace when read.
fn stored_scopes(scopes: &[String]) -> Vec<String> {
    scopes.join(" ").split_whitespace().map(str::to_owned).collect()
}

/// Limits as their columns keep them: 32-bit and 64-bit signed, clamped.
fn stored_limit(field: LimitField, value: u64) -> u64 {
    let max = match field {
        LimitField::MaxQuota => i64::MAX.unsigned_abs(),
        LimitField::RatePerMinute | LimitField::RateBurst | LimitField::MaxConcurrency => {
            u64::from(i32::MAX.unsigned_abs())
        }
    };
    value.min(max)
}

fn stored_limits(limits: &LimitOverrides) -> LimitOverrides {
    let mut stored = LimitOverrides::default();
    for field in LimitField::ALL {
        stored.set(field, limits.get(field).map(|value| stored_limit(field, value)));
    }
    stored
}

fn stored_key(key: &ApiKeyRecord) -> ApiKeyRecord {
    ApiKeyRecord { scopes: stored_scopes(&key.scopes), limits: stored_limits(&key.limits), ..key.clone() }
}

fn stored_client(client: &ApiClientRecord) -> ApiClientRecord {
    ApiClientRecord { scopes: stored_scopes(&client.scopes), limits: stored_limits(&client.limits), ..client.clone() }
}

/// What the SQL store's search column holds for a key: both texts lowercased, on two lines.
fn search_text(name: &str, description: &str, labels: &Labels) -> String {
    let mut text = format!("{}\n{}", name.to_lowercase(), description.to_lowercase());
    for value in labels.values() {
        text.push('\n');
        text.push_str(&value.to_lowercase());
    }
    text
}

/// `LIKE '%term%'` on the search column, the term lowercased and its wildcards escaped.
fn matches_search(text: &str, search: &str) -> bool {
    search.is_empty() || text.contains(&search.to_lowercase())
}

/// One page of `items`, sorted already.
fn page_of<T>(items: Vec<T>, page: Page) -> Vec<T> {
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    items.into_iter().skip(offset).take(limit).collect()
}

fn count(items: usize) -> u64 {
    u64::try_from(items).unwrap_or(u64::MAX)
}

/// Sets `last_used` to `at` unless it is later already.
fn touch(last_used: &mut Option<DateTime<Utc>>, at: DateTime<Utc>) {
    if last_used.is_none_or(|previous| previous < at) {
        *last_used = Some(at);
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.open().map(drop)
    }

    async fn create_organization(&self, org: &Organization, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut state = self.open()?;
        if state.organizations.contains_key(&org.slug) {
            return Err(StoreError::Conflict(format!("organization {} exists", org.slug)));
        }
        state.organizations.insert(org.slug.clone(), stored_organization(org));
        state.append_audit(audit);
        Ok(())
    }

    async fn organization(&self, slug: &str) -> Result<Option<Organization>, StoreError> {
        Ok(self.open()?.organizations.get(slug).cloned())
    }

    async fn list_organizations(&self, page: Page) -> Result<(Vec<Organization>, u64), StoreError> {
        let state = self.open()?;
        let mut all: Vec<Organization> = state.organizations.values().cloned().collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.slug.cmp(&b.slug)));
        let total = count(all.len());
        Ok((page_of(all, page), total))
    }

    async fn platform_organization(&self) -> Result<Option<Organization>, StoreError> {
        let state = self.open()?;
        let oldest = state
            .organizations
            .values()
            .filter(|org| org.platform)
            .min_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.slug.cmp(&b.slug)));
        Ok(oldest.cloned())
    }

    async fn update_organization(
        &self,
        slug: &str,
        changes: &OrganizationChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Organization>, StoreError> {
        let mut state = self.open()?;
        let Some(org) = state.organizations.get_mut(slug) else { return Ok(None) };
        if let Some(name) = &changes.name {
            org.name.clone_from(name);
        }
        if let Some((plan, max_active_keys)) = &changes.plan {
            org.plan.clone_from(plan);
            org.max_active_keys = *max_active_keys;
        }
        org.updated_at = now;
        let changed = org.clone();
        state.append_audit(audit);
        Ok(Some(changed))
    }

    async fn create_key_within_limit(
        &self,
        key: &ApiKeyRecord,
        max_active: u32,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut state = self.open()?;
        if state.count_active(&key.organization, now) >= u64::from(max_active) {
            return Ok(false);
        }
        if state.keys.contains_key(&key.key_id) {
            return Err(StoreError::Conflict(format!("key {} exists", key.key_id)));
        }
        state.require_organization(&key.organization)?;
        state.keys.insert(key.key_id.clone(), stored_key(key));
        state.append_audit(audit);
        Ok(true)
    }

    async fn key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.open()?.keys.get(key_id).cloned())
    }

    async fn key_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.open()?.keys.keys().cloned().collect())
    }

    async fn list_keys(
        &self,
        organization: &str,
        filter: &ListFilter,
        page: Page,
    ) -> Result<(Vec<ApiKeyRecord>, u64), StoreError> {
        let state = self.open()?;
        let mut found: Vec<ApiKeyRecord> = state
            .keys
            .values()
            .filter(|key| key.organization == organization)
            .filter(|key| matches_search(&search_text(&key.name, &key.description, &key.labels), &filter.search))
            .filter(|key| filter.admits(key.status(filter.now), Some(key.expires_at), key.last_used_at, &key.labels))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.key_id.cmp(&a.key_id)));
        let total = count(found.len());
        Ok((page_of(found, page), total))
    }

    async fn update_key(
        &self,
        key_id: &str,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut state = self.open()?;
        let Some(key) = state.keys.get_mut(key_id).filter(|key| key.disabled_at.is_none()) else {
            return Ok(false);
        };
        apply_changes(changes, &mut key.name, &mut key.description, &mut key.scopes, &mut key.limits, &mut key.labels);
        key.updated_at = now;
        state.append_audit(audit);
        Ok(true)
    }

    async fn rotate_key(
        &self,
        key_id: &str,
        rotation: &Rotation,
        revival: Option<&Revival>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<RotateOutcome, StoreError> {
        let mut state = self.open()?;
        let Some(current) = state.keys.get(key_id) else {
            return Ok(RotateOutcome::Changed);
        };
        if current.disabled_at.is_some() || current.secret_hash.phc != rotation.replaces_hash.phc {
            return Ok(RotateOutcome::Changed);
        }
        let rotated = ApiKeyRecord {
            previous_secret_hash: Some(current.secret_hash.clone()),
            secret_hash: rotation.new_secret_hash.clone(),
            previous_key_expires_at: Some(rotation.previous_key_expires_at),
            expires_at: rotation.expires_at,
            last_rotated_at: Some(now),
            updated_at: now,
            ..current.clone()
        };
        let previous = state.keys.insert(key_id.to_owned(), rotated);
        if let Some(revival) = revival
            // The revived key is among the active ones now, so more than the limit is too many.
            && state.count_active(&revival.organization, now) > u64::from(revival.max_active)
        {
            if let Some(previous) = previous {
                state.keys.insert(key_id.to_owned(), previous);
            }
            return Ok(RotateOutcome::LimitReached);
        }
        state.append_audit(audit);
        Ok(RotateOutcome::Rotated)
    }

    async fn disable_key(&self, key_id: &str, now: DateTime<Utc>, audit: &AuditEntry) -> Result<bool, StoreError> {
        let mut state = self.open()?;
        let disabled = match state.keys.get_mut(key_id) {
            Some(key) if key.disabled_at.is_none() => {
                key.disabled_at = Some(now);
                key.updated_at = now;
                true
            }
            _ => false,
        };
        // Recorded whether or not anything changed, as the SQL store does.
        state.append_audit(audit);
        Ok(disabled)
    }

    async fn touch_keys(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        let mut state = self.open()?;
        for (key_id, at) in uses {
            if let Some(key) = state.keys.get_mut(key_id) {
                touch(&mut key.last_used_at, *at);
            }
        }
        Ok(())
    }

    async fn record_key_fingerprint(
        &self,
        key_id: &str,
        slot: SecretSlot,
        phc: &str,
        fingerprint: Fingerprint,
    ) -> Result<(), StoreError> {
        let mut state = self.open()?;
        let Some(key) = state.keys.get_mut(key_id) else {
            return Ok(());
        };
        let secret = match slot {
            SecretSlot::Current => Some(&mut key.secret_hash),
            SecretSlot::Previous => key.previous_secret_hash.as_mut(),
        };
        if let Some(secret) = secret.filter(|secret| secret.phc == phc) {
            secret.fingerprint = Some(fingerprint);
        }
        Ok(())
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn create_client(&self, client: &ApiClientRecord, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut state = self.open()?;
        if state.clients.contains_key(&client.client_id) {
            return Err(StoreError::Conflict(format!("client {} exists", client.client_id)));
        }
        state.require_organization(&client.organization)?;
        state.clients.insert(client.client_id.clone(), stored_client(client));
        state.append_audit(audit);
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<ApiClientRecord>, StoreError> {
        Ok(self.open()?.clients.get(client_id).cloned())
    }

    async fn client_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.open()?.clients.keys().cloned().collect())
    }

    async fn list_clients(
        &self,
        organization: &str,
        filter: &ListFilter,
        page: Page,
    ) -> Result<(Vec<ApiClientRecord>, u64), StoreError> {
        let state = self.open()?;
        let mut found: Vec<ApiClientRecord> = state
            .clients
            .values()
            .filter(|client| client.organization == organization)
            .filter(|client| {
                // The id is searchable too, as it is (ids are lowercase).
                let own = search_text(&client.name, &client.description, &client.labels);
                matches_search(&format!("{}\n{own}", client.client_id), &filter.search)
            })
            .filter(|client| {
                let status = match client.status() {
                    ClientStatus::Active => KeyStatus::Active,
                    ClientStatus::Disabled => KeyStatus::Disabled,
                };
                filter.admits(status, None, client.last_used_at, &client.labels)
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.client_id.cmp(&a.client_id)));
        let total = count(found.len());
        Ok((page_of(found, page), total))
    }

    async fn update_client(
        &self,
        client_id: &str,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut state = self.open()?;
        let Some(client) = state.clients.get_mut(client_id).filter(|client| client.disabled_at.is_none()) else {
            return Ok(false);
        };
        let (name, description) = (&mut client.name, &mut client.description);
        apply_changes(changes, name, description, &mut client.scopes, &mut client.limits, &mut client.labels);
        client.updated_at = now;
        state.append_audit(audit);
        Ok(true)
    }

    async fn replace_client_secret(
        &self,
        client_id: &str,
        secret_hash: &StoredSecret,
        revoke_tokens: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut state = self.open()?;
        let Some(client) = state.clients.get_mut(client_id).filter(|client| client.disabled_at.is_none()) else {
            return Ok(false);
        };
        client.secret_hash = secret_hash.clone();
        client.secret_regenerated_at = Some(now);
        client.updated_at = now;
        if revoke_tokens {
            client.token_generation = client.token_generation.saturating_add(1);
        }
        state.append_audit(audit);
        Ok(true)
    }

    async fn disable_client(
        &self,
        client_id: &str,
        revoke_tokens: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<DisableOutcome, StoreError> {
        let mut state = self.open()?;
        let (mut disabled, mut revoked) = (false, false);
        if let Some(client) = state.clients.get_mut(client_id) {
            if client.disabled_at.is_none() {
                client.disabled_at = Some(now);
                client.updated_at = now;
                disabled = true;
            }
            if revoke_tokens && client.tokens_revoked_at.is_none() {
                client.tokens_revoked_at = Some(now);
                client.updated_at = now;
                revoked = true;
            }
        }
        // Recorded whatever changed, as the SQL store does.
        state.append_audit(audit);
        Ok(match (disabled, revoked) {
            (true, _) => DisableOutcome::Disabled,
            (false, true) => DisableOutcome::TokensRevoked,
            (false, false) => DisableOutcome::Unchanged,
        })
    }

    async fn touch_clients(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        let mut state = self.open()?;
        for (client_id, at) in uses {
            if let Some(client) = state.clients.get_mut(client_id) {
                touch(&mut client.last_used_at, *at);
            }
        }
        Ok(())
    }

    async fn record_client_fingerprint(
        &self,
        client_id: &str,
        phc: &str,
        fingerprint: Fingerprint,
    ) -> Result<(), StoreError> {
        let mut state = self.open()?;
        if let Some(client) = state.clients.get_mut(client_id).filter(|client| client.secret_hash.phc == phc) {
            client.secret_hash.fingerprint = Some(fingerprint);
        }
        Ok(())
    }
}

#[async_trait]
impl SigningKeyStore for MemoryStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let state = self.open()?;
        let mut keys: Vec<SigningKeyRecord> = state.signing_keys.values().cloned().collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.kid.cmp(&a.kid)));
        Ok(keys)
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord, audit: Option<&AuditEntry>) -> Result<(), StoreError> {
        let mut state = self.open()?;
        if state.signing_keys.contains_key(&key.kid) {
            return Err(StoreError::Conflict(format!("signing key {} exists", key.kid)));
        }
        for other in state.signing_keys.values_mut().filter(|other| other.retired_at.is_none()) {
            other.retired_at = Some(key.created_at);
        }
        state.signing_keys.insert(key.kid.clone(), SigningKeyRecord { retired_at: None, ..key.clone() });
        if let Some(audit) = audit {
            state.append_audit(audit);
        }
        Ok(())
    }

    async fn seal_signing_key(&self, kid: &str, plain: &str, sealed: &str) -> Result<bool, StoreError> {
        let mut state = self.open()?;
        let Some(key) = state.signing_keys.get_mut(kid).filter(|key| key.private_key_pem == plain) else {
            return Ok(false);
        };
        sealed.clone_into(&mut key.private_key_pem);
        Ok(true)
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.open()?.append_audit(entry);
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery, page: Page) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        let state = self.open()?;
        let filter = |value: &str, wanted: &str| wanted.is_empty() || value == wanted;
        // The organization always filters, an empty one too: entries of no organization (an
        // operator's, before bootstrap) are listed only by asking for none.
        let mut found: Vec<AuditEntry> = state
            .audit
            .iter()
            .filter(|entry| entry.organization == query.organization)
            .filter(|entry| query.start.is_none_or(|start| entry.at >= start))
            .filter(|entry| query.end.is_none_or(|end| entry.at < end))
            .filter(|entry| filter(&entry.actor, &query.actor))
            .filter(|entry| filter(&entry.action, &query.action))
            .filter(|entry| filter(&entry.target, &query.target))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
        let total = count(found.len());
        Ok((page_of(found, page), total))
    }
}

#[async_trait]
impl UsageStore for MemoryStore {
    async fn usage_by_others(
        &self,
        subject: &str,
        window_start: DateTime<Utc>,
        replica: &str,
    ) -> Result<u64, StoreError> {
        let state = self.open()?;
        let total = state
            .usage
            .iter()
            .filter(|((s, w, r), _)| s == subject && *w == window_start && r != replica)
            .fold(0u64, |sum, (_, used)| sum.saturating_add(*used));
        Ok(total)
    }

    async fn record_usage(&self, replica: &str, rows: &[UsageRow], _now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.open()?;
        for row in rows {
            let key = (row.subject.clone(), row.window_start, replica.to_owned());
            // A 64-bit signed column, clamped.
            state.usage.insert(key, row.used.min(i64::MAX.unsigned_abs()));
        }
        Ok(())
    }

    async fn add_daily_uses(&self, rows: &[DailyUses], forget_before: Option<NaiveDate>) -> Result<(), StoreError> {
        let mut state = self.open()?;
        for row in rows {
            let uses = state.daily.entry((row.credential.clone(), row.day)).or_default();
            *uses = uses.saturating_add(row.uses).min(i64::MAX.unsigned_abs());
        }
        if let Some(before) = forget_before {
            state.daily.retain(|(_, day), _| *day >= before);
        }
        Ok(())
    }

    async fn daily_uses(&self, credential: &str, since: NaiveDate) -> Result<Vec<DailyUses>, StoreError> {
        let state = self.open()?;
        let rows = state.daily.iter().filter(|((c, day), _)| c == credential && *day >= since);
        Ok(rows
            .map(|((credential, day), uses)| DailyUses { credential: credential.clone(), day: *day, uses: *uses })
            .collect())
    }
}

/// A change of a key's or client's fields, as the SQL store makes it.
fn apply_changes(
    changes: &KeyChanges,
    name: &mut String,
    description: &mut String,
    scopes: &mut Vec<String>,
    limits: &mut LimitOverrides,
    labels: &mut Labels,
) {
    if let Some(new) = &changes.name {
        name.clone_from(new);
    }
    if let Some(new) = &changes.description {
        description.clone_from(new);
    }
    if let Some(new) = &changes.scopes {
        *scopes = stored_scopes(new);
    }
    if let Some(new) = &changes.labels {
        labels.clone_from(new);
    }
    for field in LimitField::ALL {
        if let Some(value) = changes.limits.get(field) {
            limits.set(field, Some(stored_limit(field, value)));
        }
    }
    // After the limits set, as SQLite applies the last of two assignments to one column.
    for field in changes.reset_limits.iter().filter_map(|name| LimitField::from_name(name)) {
        limits.set(field, None);
    }
}
