//! The API keys and organizations: `Store` on SQLite and PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::SqlStore;
use super::audit;
use super::entities::{api_key, organization};
use super::plumbing::{
    announce, announce_created, carries_label, contains_pattern, fingerprint_column, join_scopes, labels_column,
    labels_from_column, limit_assignments, limit_columns, limits_from_columns, map_err, search_text, stored_secret,
};
use keygate_core::error::StoreError;
use keygate_core::model::{ApiKeyRecord, AuditEntry, Fingerprint, KeyStatus, ListFilter, Organization, Page};
use keygate_core::ports::{KeyChanges, OrganizationChanges, Revival, RotateOutcome, Rotation, SecretSlot, Store};

/// Writes the organization row to take its lock (a row lock on PostgreSQL, the write lock on
/// SQLite), so that concurrent counts of its active keys happen one after another.
async fn lock_organization<C: ConnectionTrait>(conn: &C, slug: &str) -> Result<(), StoreError> {
    organization::Entity::update_many()
        .col_expr(organization::Column::UpdatedAt, Expr::col(organization::Column::UpdatedAt))
        .filter(organization::Column::Slug.eq(slug))
        .exec(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Keys of `organization` neither disabled nor expired at `now`.
async fn count_active<C: ConnectionTrait>(conn: &C, organization: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    api_key::Entity::find()
        .filter(api_key::Column::Organization.eq(organization))
        .filter(api_key::Column::DisabledAt.is_null())
        .filter(api_key::Column::ExpiresAt.gt(now))
        .count(conn)
        .await
        .map_err(map_err)
}

/// The row of `key_id`, unless it is disabled: every key change is conditional on this.
fn enabled_key(key_id: &str) -> Condition {
    Condition::all().add(api_key::Column::KeyId.eq(key_id)).add(api_key::Column::DisabledAt.is_null())
}

fn to_org(model: organization::Model) -> Organization {
    Organization {
        slug: model.slug,
        name: model.name,
        plan: model.plan,
        max_active_keys: u32::try_from(model.max_active_keys).unwrap_or(0),
        platform: model.platform,
        created_at: model.created_at,
        updated_at: model.updated_at,
    }
}

/// The condition of a listing: its organization and every filter set.
fn key_filter(backend: DbBackend, organization: &str, listing: &ListFilter) -> Condition {
    let now = listing.now;
    let mut filter = Condition::all().add(api_key::Column::Organization.eq(organization));
    if !listing.search.is_empty() {
        filter = filter.add(api_key::Column::SearchText.like(contains_pattern(&listing.search)));
    }
    let live = || Condition::all().add(api_key::Column::DisabledAt.is_null()).add(api_key::Column::ExpiresAt.gt(now));
    filter = match listing.status {
        None => filter,
        Some(KeyStatus::Active) => filter.add(live()),
        Some(KeyStatus::Expired) => {
            filter.add(api_key::Column::DisabledAt.is_null()).add(api_key::Column::ExpiresAt.lte(now))
        }
        Some(KeyStatus::Disabled) => filter.add(api_key::Column::DisabledAt.is_not_null()),
    };
    if let Some(before) = listing.expires_before {
        filter = filter.add(live()).add(api_key::Column::ExpiresAt.lt(before));
    }
    if let Some(since) = listing.unused_since {
        let unused =
            Condition::any().add(api_key::Column::LastUsedAt.is_null()).add(api_key::Column::LastUsedAt.lt(since));
        filter = filter.add(unused);
    }
    for (name, value) in &listing.labels {
        filter = filter.add(carries_label(backend, name, value));
    }
    filter
}

fn to_key(model: api_key::Model) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: model.key_id,
        key_prefix: model.key_prefix,
        organization: model.organization,
        name: model.name,
        description: model.description,
        scopes: model.scopes.split_whitespace().map(str::to_owned).collect(),
        secret_hash: stored_secret(model.secret_hash, model.secret_fingerprint.as_deref()),
        previous_secret_hash: model
            .previous_secret_hash
            .map(|phc| stored_secret(phc, model.previous_secret_fingerprint.as_deref())),
        previous_key_expires_at: model.previous_key_expires_at,
        created_by: model.created_by,
        created_at: model.created_at,
        updated_at: model.updated_at,
        expires_at: model.expires_at,
        disabled_at: model.disabled_at,
        last_used_at: model.last_used_at,
        last_rotated_at: model.last_rotated_at,
        limits: limits_from_columns(
            model.rate_limit_per_minute,
            model.rate_limit_burst,
            model.max_quota,
            model.max_concurrency,
        ),
        labels: labels_from_column(&model.labels),
    }
}

fn key_model(key: &ApiKeyRecord) -> api_key::ActiveModel {
    let (per_minute, burst, max_quota, max_concurrency) = limit_columns(&key.limits);
    api_key::ActiveModel {
        key_id: ActiveValue::Set(key.key_id.clone()),
        key_prefix: ActiveValue::Set(key.key_prefix.clone()),
        organization: ActiveValue::Set(key.organization.clone()),
        name: ActiveValue::Set(key.name.clone()),
        description: ActiveValue::Set(key.description.clone()),
        search_text: ActiveValue::Set(search_text(&key.name, &key.description, &key.labels)),
        labels: ActiveValue::Set(labels_column(&key.labels)),
        scopes: ActiveValue::Set(join_scopes(&key.scopes)),
        secret_hash: ActiveValue::Set(key.secret_hash.phc.clone()),
        previous_secret_hash: ActiveValue::Set(key.previous_secret_hash.as_ref().map(|p| p.phc.clone())),
        secret_fingerprint: ActiveValue::Set(fingerprint_column(&key.secret_hash)),
        previous_secret_fingerprint: ActiveValue::Set(key.previous_secret_hash.as_ref().and_then(fingerprint_column)),
        previous_key_expires_at: ActiveValue::Set(key.previous_key_expires_at),
        created_by: ActiveValue::Set(key.created_by.clone()),
        created_at: ActiveValue::Set(key.created_at),
        updated_at: ActiveValue::Set(key.updated_at),
        expires_at: ActiveValue::Set(key.expires_at),
        disabled_at: ActiveValue::Set(key.disabled_at),
        last_used_at: ActiveValue::Set(key.last_used_at),
        last_rotated_at: ActiveValue::Set(key.last_rotated_at),
        rate_limit_per_minute: ActiveValue::Set(per_minute),
        rate_limit_burst: ActiveValue::Set(burst),
        max_quota: ActiveValue::Set(max_quota),
        max_concurrency: ActiveValue::Set(max_concurrency),
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(map_err)
    }

    async fn create_organization(&self, org: &Organization, audit: &AuditEntry) -> Result<(), StoreError> {
        let model = organization::ActiveModel {
            slug: ActiveValue::Set(org.slug.clone()),
            name: ActiveValue::Set(org.name.clone()),
            plan: ActiveValue::Set(org.plan.clone()),
            max_active_keys: ActiveValue::Set(i32::try_from(org.max_active_keys).unwrap_or(i32::MAX)),
            platform: ActiveValue::Set(org.platform),
            created_at: ActiveValue::Set(org.created_at),
            updated_at: ActiveValue::Set(org.updated_at),
        };
        let txn = self.db.begin().await.map_err(map_err)?;
        organization::Entity::insert(model).exec_without_returning(&txn).await.map_err(map_err)?;
        audit::insert(&txn, audit).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)
    }

    async fn organization(&self, slug: &str) -> Result<Option<Organization>, StoreError> {
        let found = organization::Entity::find_by_id(slug.to_owned()).one(&self.db).await.map_err(map_err)?;
        Ok(found.map(to_org))
    }

    async fn list_organizations(&self, page: Page) -> Result<(Vec<Organization>, u64), StoreError> {
        let total = organization::Entity::find().count(&self.db).await.map_err(map_err)?;
        let items = organization::Entity::find()
            .order_by_asc(organization::Column::CreatedAt)
            .order_by_asc(organization::Column::Slug)
            .offset(page.offset)
            .limit(page.limit)
            .all(&self.db)
            .await
            .map_err(map_err)?;
        Ok((items.into_iter().map(to_org).collect(), total))
    }

    async fn platform_organization(&self) -> Result<Option<Organization>, StoreError> {
        let found = organization::Entity::find()
            .filter(organization::Column::Platform.eq(true))
            .order_by_asc(organization::Column::CreatedAt)
            .one(&self.db)
            .await
            .map_err(map_err)?;
        Ok(found.map(to_org))
    }

    async fn update_organization(
        &self,
        slug: &str,
        changes: &OrganizationChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Organization>, StoreError> {
        let mut update =
            organization::Entity::update_many().col_expr(organization::Column::UpdatedAt, Expr::value(now));
        if let Some(name) = &changes.name {
            update = update.col_expr(organization::Column::Name, Expr::value(name.clone()));
        }
        if let Some((plan, max_active_keys)) = &changes.plan {
            update = update.col_expr(organization::Column::Plan, Expr::value(plan.clone())).col_expr(
                organization::Column::MaxActiveKeys,
                Expr::value(i32::try_from(*max_active_keys).unwrap_or(i32::MAX)),
            );
        }
        let txn = self.db.begin().await.map_err(map_err)?;
        let changed = update.filter(organization::Column::Slug.eq(slug)).exec(&txn).await.map_err(map_err)?;
        if changed.rows_affected != 1 {
            txn.rollback().await.map_err(map_err)?;
            return Ok(None);
        }
        let found = organization::Entity::find_by_id(slug.to_owned()).one(&txn).await.map_err(map_err)?;
        audit::insert(&txn, audit).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(found.map(to_org))
    }

    async fn create_key_within_limit(
        &self,
        key: &ApiKeyRecord,
        max_active: u32,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin().await.map_err(map_err)?;
        lock_organization(&txn, &key.organization).await?;
        if count_active(&txn, &key.organization, now).await? >= u64::from(max_active) {
            txn.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        api_key::Entity::insert(key_model(key)).exec_without_returning(&txn).await.map_err(map_err)?;
        audit::insert(&txn, audit).await.map_err(map_err)?;
        announce_created(&txn, &key.key_id).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let lookup = api_key::Entity::find_by_id(key_id.to_owned()).one(&self.db);
        let found = self.within_timeout(lookup).await?.map_err(map_err)?;
        Ok(found.map(to_key))
    }

    async fn key_ids(&self) -> Result<Vec<String>, StoreError> {
        let ids = api_key::Entity::find().select_only().column(api_key::Column::KeyId).into_tuple().all(&self.db);
        self.within_timeout(ids).await?.map_err(map_err)
    }

    async fn list_keys(
        &self,
        organization: &str,
        listing: &ListFilter,
        page: Page,
    ) -> Result<(Vec<ApiKeyRecord>, u64), StoreError> {
        let filter = key_filter(self.db.get_database_backend(), organization, listing);
        let total = api_key::Entity::find().filter(filter.clone()).count(&self.db).await.map_err(map_err)?;
        let items = api_key::Entity::find()
            .filter(filter)
            .order_by_desc(api_key::Column::CreatedAt)
            .order_by_desc(api_key::Column::KeyId)
            .offset(page.offset)
            .limit(page.limit)
            .all(&self.db)
            .await
            .map_err(map_err)?;
        Ok((items.into_iter().map(to_key).collect(), total))
    }

    async fn update_key(
        &self,
        key_id: &str,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin().await.map_err(map_err)?;
        // Write first: it takes the row lock (PostgreSQL) or the write lock (SQLite), so that the
        // read below cannot be overtaken by a concurrent update whose change would then be lost.
        let locked = api_key::Entity::update_many()
            .col_expr(api_key::Column::UpdatedAt, Expr::value(now))
            .filter(enabled_key(key_id))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        if locked.rows_affected != 1 {
            txn.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        let Some(current) = api_key::Entity::find_by_id(key_id.to_owned()).one(&txn).await.map_err(map_err)? else {
            return Ok(false);
        };
        let name = changes.name.clone().unwrap_or(current.name);
        let description = changes.description.clone().unwrap_or(current.description);
        let labels = changes.labels.clone().unwrap_or_else(|| labels_from_column(&current.labels));
        let mut update = api_key::Entity::update_many()
            .col_expr(api_key::Column::SearchText, Expr::value(search_text(&name, &description, &labels)))
            .col_expr(api_key::Column::Labels, Expr::value(labels_column(&labels)))
            .col_expr(api_key::Column::Name, Expr::value(name))
            .col_expr(api_key::Column::Description, Expr::value(description))
            .col_expr(api_key::Column::UpdatedAt, Expr::value(now));
        if let Some(scopes) = &changes.scopes {
            update = update.col_expr(api_key::Column::Scopes, Expr::value(join_scopes(scopes)));
        }
        for (column, value) in limit_assignments(&changes.limits, &changes.reset_limits) {
            update = update.col_expr(column, Expr::value(value));
        }
        update.filter(api_key::Column::KeyId.eq(key_id)).exec(&txn).await.map_err(map_err)?;
        audit::insert(&txn, audit).await.map_err(map_err)?;
        announce(&txn, key_id).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
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
        let txn = self.db.begin().await.map_err(map_err)?;
        // The organization first, in the same order as key creation takes its locks.
        if let Some(revival) = revival {
            lock_organization(&txn, &revival.organization).await?;
        }
        // `previous_secret_hash = secret_hash` reads the old value: both backends evaluate SET
        // expressions against the row as it was. The hash condition makes a concurrent rotation
        // lose cleanly instead of replacing the other's grace-period secret.
        let result = api_key::Entity::update_many()
            .col_expr(api_key::Column::PreviousSecretHash, Expr::col(api_key::Column::SecretHash))
            .col_expr(api_key::Column::PreviousSecretFingerprint, Expr::col(api_key::Column::SecretFingerprint))
            .col_expr(api_key::Column::SecretHash, Expr::value(rotation.new_secret_hash.phc.clone()))
            .col_expr(api_key::Column::SecretFingerprint, Expr::value(fingerprint_column(&rotation.new_secret_hash)))
            .col_expr(api_key::Column::PreviousKeyExpiresAt, Expr::value(rotation.previous_key_expires_at))
            .col_expr(api_key::Column::ExpiresAt, Expr::value(rotation.expires_at))
            .col_expr(api_key::Column::LastRotatedAt, Expr::value(now))
            .col_expr(api_key::Column::UpdatedAt, Expr::value(now))
            .filter(enabled_key(key_id))
            .filter(api_key::Column::SecretHash.eq(rotation.replaces_hash.phc.as_str()))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        if result.rows_affected != 1 {
            txn.rollback().await.map_err(map_err)?;
            return Ok(RotateOutcome::Changed);
        }
        if let Some(revival) = revival {
            // The revived key is among the active ones now, so more than the limit means too many.
            if count_active(&txn, &revival.organization, now).await? > u64::from(revival.max_active) {
                txn.rollback().await.map_err(map_err)?;
                return Ok(RotateOutcome::LimitReached);
            }
        }
        audit::insert(&txn, audit).await.map_err(map_err)?;
        announce(&txn, key_id).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(RotateOutcome::Rotated)
    }

    async fn disable_key(&self, key_id: &str, now: DateTime<Utc>, audit: &AuditEntry) -> Result<bool, StoreError> {
        let txn = self.db.begin().await.map_err(map_err)?;
        let result = api_key::Entity::update_many()
            .col_expr(api_key::Column::DisabledAt, Expr::value(now))
            .col_expr(api_key::Column::UpdatedAt, Expr::value(now))
            .filter(enabled_key(key_id))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        audit::insert(&txn, audit).await.map_err(map_err)?;
        announce(&txn, key_id).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(result.rows_affected == 1)
    }

    async fn touch_keys(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(map_err)?;
        for (key_id, at) in uses {
            api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(*at))
                .filter(api_key::Column::KeyId.eq(key_id.as_str()))
                .filter(
                    Condition::any()
                        .add(api_key::Column::LastUsedAt.is_null())
                        .add(api_key::Column::LastUsedAt.lt(*at)),
                )
                .exec(&txn)
                .await
                .map_err(map_err)?;
        }
        txn.commit().await.map_err(map_err)
    }

    async fn record_key_fingerprint(
        &self,
        key_id: &str,
        slot: SecretSlot,
        phc: &str,
        fingerprint: Fingerprint,
    ) -> Result<(), StoreError> {
        let (hash, column) = match slot {
            SecretSlot::Current => (api_key::Column::SecretHash, api_key::Column::SecretFingerprint),
            SecretSlot::Previous => (api_key::Column::PreviousSecretHash, api_key::Column::PreviousSecretFingerprint),
        };
        // No announcement: cached verdicts hold no fingerprint, and nothing they say changes.
        let write = api_key::Entity::update_many()
            .col_expr(column, Expr::value(fingerprint.to_column()))
            .filter(api_key::Column::KeyId.eq(key_id))
            .filter(hash.eq(phc))
            .exec(&self.db);
        self.within_timeout(write).await?.map_err(map_err)?;
        Ok(())
    }
}
