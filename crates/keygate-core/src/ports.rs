//! The ports: every trait the core needs from the world, on one page, with its contract. The
//! stores (`Store`, `ClientStore`, `SigningKeyStore`, `AuditStore`, `UsageStore`) are implemented
//! on SeaORM by keygate's `adapters::sql`; the rate-limit [`Counters`] in memory here
//! (`limits::memory`) and on Redis by keygate's adapters; a [`JwksSource`] over HTTP or files;
//! the [`Clock`] by `clock`.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::error::{CoreError, StoreError};
use super::model::{Admission, Charge, QuotaWindow};
use super::model::{
    ApiClientRecord, ApiKeyRecord, AuditEntry, AuditQuery, DailyUses, Fingerprint, Labels, LimitOverrides, ListFilter,
    Organization, Page, SigningKeyRecord, StoredSecret, UsageRow,
};

/// Changes to a key's or a client's descriptive fields and limits; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Each limit that is `Some` replaces the key's.
    pub limits: LimitOverrides,
    /// Limits to return to the configured default, by wire name (see
    /// [`super::model::LimitField`]); checked before they reach a store.
    pub reset_limits: Vec<String>,
    /// Replaces every label.
    pub labels: Option<Labels>,
}

/// Changes to an organization; `None` leaves a field as it is. A new plan comes with its
/// active-key limit, read from config by the use case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganizationChanges {
    pub name: Option<String>,
    pub plan: Option<(String, u32)>,
}

/// A new secret for a key, and what becomes of the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub new_secret_hash: StoredSecret,
    pub previous_key_expires_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The hash the rotation replaces: if the key's hash is another by now, someone else rotated
    /// it meanwhile and this rotation must not clobber that one's grace period.
    pub replaces_hash: StoredSecret,
}

/// Which of a key's secrets a fingerprint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSlot {
    Current,
    /// The one the last rotation replaced.
    Previous,
}

/// An expired key's organization and its active-key limit: a rotation that brings the key back
/// to life must fit within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revival {
    pub organization: String,
    pub max_active: u32,
}

/// What became of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated,
    /// The key was disabled or rotated meanwhile.
    Changed,
    /// Reviving the (expired) key would exceed its organization's active-key limit.
    LimitReached,
}

/// Durable storage of organizations and keys. Writes that change a key (update, rotate,
/// disable) also announce the change to every other replica sharing the database, in the same
/// transaction, so that their verdict caches drop it. Every write takes the audit entry that
/// records it and inserts it in the same transaction: a change is never made unrecorded, and a
/// rolled-back change leaves no entry.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts an organization; `Conflict` when the slug is taken.
    async fn create_organization(&self, org: &Organization, audit: &AuditEntry) -> Result<(), StoreError>;
    async fn organization(&self, slug: &str) -> Result<Option<Organization>, StoreError>;
    /// Organizations oldest first, and how many there are.
    async fn list_organizations(&self, page: Page) -> Result<(Vec<Organization>, u64), StoreError>;
    /// The platform organization, if bootstrap has run.
    async fn platform_organization(&self) -> Result<Option<Organization>, StoreError>;
    /// Applies `changes`; the organization as changed, `None` when there is no such one. Keys
    /// already active stay so when a new plan allows fewer: the limit holds for new ones.
    async fn update_organization(
        &self,
        slug: &str,
        changes: &OrganizationChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Organization>, StoreError>;

    /// Inserts `key` unless its organization already has `max_active` keys active at `now`;
    /// atomically, so concurrent creations cannot overshoot. Returns whether it was inserted.
    async fn create_key_within_limit(
        &self,
        key: &ApiKeyRecord,
        max_active: u32,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    async fn key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// The id of every key, whatever its state (see [`crate::known_ids`]).
    async fn key_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Keys of one organization that pass `filter`, newest first (`search` matches the name,
    /// description or a label value, case-insensitively); and how many match in all.
    async fn list_keys(
        &self,
        organization: &str,
        filter: &ListFilter,
        page: Page,
    ) -> Result<(Vec<ApiKeyRecord>, u64), StoreError>;
    /// Applies `changes` unless the key is disabled. Returns whether a row changed.
    async fn update_key(
        &self,
        key_id: &str,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Replaces the secret, keeping the old hash as the previous one, unless the key is disabled or
    /// its hash is no longer `rotation.replaces_hash`. With `revival`, the key (expired now) is
    /// only rotated while its organization has fewer active keys, counted atomically.
    async fn rotate_key(
        &self,
        key_id: &str,
        rotation: &Rotation,
        revival: Option<&Revival>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<RotateOutcome, StoreError>;
    /// Disables the key and ends any grace period, unless it is already disabled.
    async fn disable_key(&self, key_id: &str, now: DateTime<Utc>, audit: &AuditEntry) -> Result<bool, StoreError>;
    /// Records last use times; a time never moves backwards.
    async fn touch_keys(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError>;
    /// Stores the fingerprint of one of a key's secrets (one stored without, or with a key no
    /// longer current), while that secret's hash is still `phc`: a rotation meanwhile wins.
    async fn record_key_fingerprint(
        &self,
        key_id: &str,
        slot: SecretSlot,
        phc: &str,
        fingerprint: Fingerprint,
    ) -> Result<(), StoreError>;
}

/// What disabling a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableOutcome {
    /// The client was disabled (and, when asked, its tokens revoked) now.
    Disabled,
    /// The client was already disabled; when asked, its tokens are revoked now.
    TokensRevoked,
    /// Nothing left to do.
    Unchanged,
}

/// Durable storage of OAuth2 clients. Changes are announced like key changes, under the client id,
/// and recorded by the audit entry each write takes, in the same transaction.
#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
    /// Inserts a client; `Conflict` when the client id is taken.
    async fn create_client(&self, client: &ApiClientRecord, audit: &AuditEntry) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<ApiClientRecord>, StoreError>;
    /// The id of every client, whatever its state (see [`crate::known_ids`]).
    async fn client_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Clients of one organization that pass `filter`, newest first (`search` matches the id,
    /// name, description or a label value, case-insensitively); and how many match in all.
    async fn list_clients(
        &self,
        organization: &str,
        filter: &ListFilter,
        page: Page,
    ) -> Result<(Vec<ApiClientRecord>, u64), StoreError>;
    /// Applies `changes` unless the client is disabled. Returns whether a row changed.
    async fn update_client(
        &self,
        client_id: &str,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Replaces the secret's hash unless the client is disabled; with `revoke_tokens`, raises its
    /// token generation too, so that every token issued before stops working. Returns whether it
    /// did.
    async fn replace_client_secret(
        &self,
        client_id: &str,
        secret_hash: &StoredSecret,
        revoke_tokens: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Disables the client (kept disabled for good); with `revoke_tokens`, its tokens issued up to
    /// `now` stop working too, also when it was disabled before.
    async fn disable_client(
        &self,
        client_id: &str,
        revoke_tokens: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<DisableOutcome, StoreError>;
    /// Records last use times; a time never moves backwards.
    async fn touch_clients(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError>;
    /// Stores the fingerprint of the client's secret while its hash is still `phc`.
    async fn record_client_fingerprint(
        &self,
        client_id: &str,
        phc: &str,
        fingerprint: Fingerprint,
    ) -> Result<(), StoreError>;
}

/// Durable storage of the keys keygate signs tokens with, shared by every replica.
#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    /// Every stored signing key, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Adds `key` and retires every other key not yet retired, at `key.created_at`; announced to
    /// every replica. An admin's rotation is recorded by `audit` in the same transaction; a key
    /// generated at start-up has none.
    async fn add_signing_key(&self, key: &SigningKeyRecord, audit: Option<&AuditEntry>) -> Result<(), StoreError>;
    /// Replaces the stored private key of `kid` by `sealed` while it is still `plain`, so that
    /// replicas sealing at the same time write it once. Returns whether this call replaced it.
    async fn seal_signing_key(&self, kid: &str, plain: &str, sealed: &str) -> Result<bool, StoreError>;
}

/// The audit log: appended to and read, never updated or deleted (there is no method for it).
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends an entry on its own, for a change that was refused before any write.
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Entries matching `query`, newest first, and how many match in all.
    async fn audit_events(&self, query: &AuditQuery, page: Page) -> Result<(Vec<AuditEntry>, u64), StoreError>;
}

/// Durable quota usage: each replica writes its own totals per subject and month.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Units recorded for `subject` in the month starting at `window_start` by every replica
    /// other than `replica` (earlier lives of this process included: each has its own name).
    async fn usage_by_others(
        &self,
        subject: &str,
        window_start: DateTime<Utc>,
        replica: &str,
    ) -> Result<u64, StoreError>;
    /// Sets `replica`'s totals to `rows`: totals, so that writing them twice counts them once.
    async fn record_usage(&self, replica: &str, rows: &[UsageRow], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Adds `rows` to the credentials' daily counts (increments: every replica adds its own),
    /// and when `forget_before` is set forgets the days before it, so that the table stays
    /// bounded.
    async fn add_daily_uses(&self, rows: &[DailyUses], forget_before: Option<NaiveDate>) -> Result<(), StoreError>;
    /// One credential's daily counts from `since` on, oldest first; days without use are absent.
    async fn daily_uses(&self, credential: &str, since: NaiveDate) -> Result<Vec<DailyUses>, StoreError>;
}

/// Why the counters could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    #[error("rate-limit counters unavailable: {0}")]
    Unavailable(String),
}

impl From<CounterError> for CoreError {
    fn from(err: CounterError) -> Self {
        let CounterError::Unavailable(detail) = err;
        // Debug only: a backend logs its outage once when it starts, not once per request.
        tracing::debug!(error = %detail, "rate-limit counters unavailable");
        CoreError::Unavailable("the rate-limit counters are unavailable".into())
    }
}

/// Where counters live: one process's memory, or a store every replica shares. Implementations
/// must check and charge a [`Charge`] atomically.
#[async_trait]
pub trait Counters: Send + Sync + 'static {
    /// Checks every limit in `charge`; charges all of them only when all have room.
    async fn admit(&self, charge: &Charge<'_>) -> Result<Admission, CounterError>;
    /// The usage counted in `window` for `subject`, or `None` when there is no counter yet.
    async fn quota_used(&self, subject: &str, window: QuotaWindow) -> Result<Option<u64>, CounterError>;
    /// Releases `slot_id` of `subject`; `false` when it was not held (released or expired).
    async fn release_slot(&self, subject: &str, slot_id: &str) -> Result<bool, CounterError>;
    /// Whether the backend answers; for health.
    async fn ping(&self) -> Result<(), CounterError>;
    /// Forgets what no longer limits anything at `now_micros` (idle subjects, ended leases, past
    /// months), for backends whose memory does not expire by itself.
    fn sweep(&self, _now_micros: i64, _current: QuotaWindow) {}
}

/// Where an issuer's JWK Set document comes from (an HTTPS URL or a file).
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// The document's text.
    async fn fetch(&self) -> Result<String, String>;
    /// Where it comes from, for logs.
    fn describe(&self) -> String;
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time, truncated to milliseconds so that it survives every database round trip.
    fn now(&self) -> DateTime<Utc>;
}
