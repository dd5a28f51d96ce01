//! `keygate_core::ports::ClientStore` on SQLite and PostgreSQL. Changes are announced on the same
//! channel as key changes, under the client id, in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use super::SqlStore;
use super::audit;
use super::entities::api_client;
use super::plumbing::{
    announce, announce_created, carries_label, contains_pattern, fingerprint_column, join_scopes, labels_column,
    labels_from_column, limit_assignments, limit_columns, limits_from_columns, map_err, search_text, stored_secret,
};
use keygate_core::error::StoreError;
use keygate_core::model::{
    ApiClientRecord, AuditEntry, Fingerprint, KeyStatus, Labels, ListFilter, Page, StoredSecret,
};
use keygate_core::ports::{ClientStore, DisableOutcome, KeyChanges};

/// What a client search matches: the id too, as admins know clients by it.
fn client_search_text(client_id: &str, name: &str, description: &str, labels: &Labels) -> String {
    format!("{client_id}\n{}", search_text(name, description, labels))
}

/// The condition of a listing: its organization and every filter set (clients never expire:
/// the use case refuses those filters).
fn client_filter(backend: DbBackend, organization: &str, listing: &ListFilter) -> Condition {
    let mut filter = Condition::all().add(api_client::Column::Organization.eq(organization));
    if !listing.search.is_empty() {
        filter = filter.add(api_client::Column::SearchText.like(contains_pattern(&listing.search)));
    }
    filter = match listing.status {
        None => filter,
        Some(KeyStatus::Active) => filter.add(api_client::Column::DisabledAt.is_null()),
        Some(KeyStatus::Disabled) => filter.add(api_client::Column::DisabledAt.is_not_null()),
        // Nothing: no client is ever expired.
        Some(KeyStatus::Expired) => filter.add(Expr::value(false)),
    };
    if let Some(since) = listing.unused_since {
        let unused = Condition::any()
            .add(api_client::Column::LastUsedAt.is_null())
            .add(api_client::Column::LastUsedAt.lt(since));
        filter = filter.add(unused);
    }
    for (name, value) in &listing.labels {
        filter = filter.add(carries_label(backend, name, value));
    }
    filter
}

fn to_client(model: api_client::Model) -> ApiClientRecord {
    ApiClientRecord {
        client_id: model.client_id,
        organization: model.organization,
        name: model.name,
        description: model.description,
        scopes: model.scopes.split_whitespace().map(str::to_owned).collect(),
        secret_hash: stored_secret(model.secret_hash, model.secret_fingerprint.as_deref()),
        created_by: model.created_by,
        created_at: model.created_at,
        updated_at: model.updated_at,
        disabled_at: model.disabled_at,
        tokens_revoked_at: model.tokens_revoked_at,
        last_used_at: model.last_used_at,
        secret_regenerated_at: model.secret_regenerated_at,
        token_generation: model.token_generation,
        limits: limits_from_columns(
            model.rate_limit_per_minute,
            model.rate_limit_burst,
            model.max_quota,
            model.max_concurrency,
        ),
        labels: labels_from_column(&model.labels),
    }
}

#[async_trait]
impl ClientStore for SqlStore {
    async fn create_client(&self, client: &ApiClientRecord, audit: &AuditEntry) -> Result<(), StoreError> {
        let (per_minute, burst, max_quota, max_concurrency) = limit_columns(&client.limits);
        let model = api_client::ActiveModel {
            client_id: ActiveValue::Set(client.client_id.clone()),
            organization: ActiveValue::Set(client.organization.clone()),
            name: ActiveValue::Set(client.name.clone()),
            description: ActiveValue::Set(client.description.clone()),
            search_text: ActiveValue::Set(client_search_text(
                &client.client_id,
                &client.name,
                &client.description,
                &client.labels,
            )),
            labels: ActiveValue::Set(labels_column(&client.labels)),
            scopes: ActiveValue::Set(join_scopes(&client.scopes)),
            secret_hash: ActiveValue::Set(client.secret_hash.phc.clone()),
            secret_fingerprint: ActiveValue::Set(fingerprint_column(&client.secret_hash)),
            created_by: ActiveValue::Set(client.created_by.clone()),
            created_at: ActiveValue::Set(client.created_at),
            updated_at: ActiveValue::Set(client.updated_at),
            disabled_at: ActiveValue::Set(client.disabled_at),
            tokens_revoked_at: ActiveValue::Set(client.tokens_revoked_at),
            last_used_at: ActiveValue::Set(client.last_used_at),
            secret_regenerated_at: ActiveValue::Set(client.secret_regenerated_at),
            rate_limit_per_minute: ActiveValue::Set(per_minute),
            rate_limit_burst: ActiveValue::Set(burst),
            max_quota: ActiveValue::Set(max_quota),
            max_concurrency: ActiveValue::Set(max_concurrency),
            token_generation: ActiveValue::Set(client.token_generation),
        };
        let txn = self.connection().begin().await.map_err(map_err)?;
        api_client::Entity::insert(model).exec_without_returning(&txn).await.map_err(map_err)?;
        audit::insert(&txn, audit).await.map_err(map_err)?;
        announce_created(&txn, &client.client_id).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)
    }

    async fn client(&self, client_id: &str) -> Result<Option<ApiClientRecord>, StoreError> {
        let lookup = api_client::Entity::find_by_id(client_id.to_owned()).one(self.connection());
        let found = self.within_timeout(lookup).await?.map_err(map_err)?;
        Ok(found.map(to_client))
    }

    async fn client_ids(&self) -> Result<Vec<String>, StoreError> {
        let ids = api_client::Entity::find()
            .select_only()
            .column(api_client::Column::ClientId)
            .into_tuple()
            .all(self.connection());
        self.within_timeout(ids).await?.map_err(map_err)
    }

    async fn list_clients(
        &self,
        organization: &str,
        listing: &ListFilter,
        page: Page,
    ) -> Result<(Vec<ApiClientRecord>, u64), StoreError> {
        let db = self.connection();
        let filter = client_filter(db.get_database_backend(), organization, listing);
        let total = api_client::Entity::find().filter(filter.clone()).count(db).await.map_err(map_err)?;
        let items = api_client::Entity::find()
            .filter(filter)
            .order_by_desc(api_client::Column::CreatedAt)
            .order_by_desc(api_client::Column::ClientId)
            .offset(page.offset)
            .limit(page.limit)
            .all(db)
            .await
            .map_err(map_err)?;
        Ok((items.into_iter().map(to_client).collect(), total))
    }

    async fn update_client(
        &self,
        client_id: &str,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let txn = self.connection().begin().await.map_err(map_err)?;
        let enabled = || {
            Condition::all()
                .add(api_client::Column::ClientId.eq(client_id))
                .add(api_client::Column::DisabledAt.is_null())
        };
        // Write first, as for keys: the lock it takes keeps a concurrent change from being lost
        // between the read below and the write after it.
        let locked = api_client::Entity::update_many()
            .col_expr(api_client::Column::UpdatedAt, Expr::value(now))
            .filter(enabled())
            .exec(&txn)
            .await
            .map_err(map_err)?;
        let current = api_client::Entity::find_by_id(client_id.to_owned()).one(&txn).await.map_err(map_err)?;
        let Some(current) = current.filter(|_| locked.rows_affected == 1) else {
            txn.rollback().await.map_err(map_err)?;
            return Ok(false);
        };
        let name = changes.name.clone().unwrap_or(current.name);
        let description = changes.description.clone().unwrap_or(current.description);
        let labels = changes.labels.clone().unwrap_or_else(|| labels_from_column(&current.labels));
        let searched = client_search_text(client_id, &name, &description, &labels);
        let mut update = api_client::Entity::update_many()
            .col_expr(api_client::Column::SearchText, Expr::value(searched))
            .col_expr(api_client::Column::Labels, Expr::value(labels_column(&labels)))
            .col_expr(api_client::Column::Name, Expr::value(name))
            .col_expr(api_client::Column::Description, Expr::value(description));
        if let Some(scopes) = &changes.scopes {
            update = update.col_expr(api_client::Column::Scopes, Expr::value(join_scopes(scopes)));
        }
        for (column, value) in limit_assignments(&changes.limits, &changes.reset_limits) {
            update = update.col_expr(column, Expr::value(value));
        }
        update.filter(api_client::Column::ClientId.eq(client_id)).exec(&txn).await.map_err(map_err)?;
        audit::insert(&txn, audit).await.map_err(map_err)?;
        announce(&txn, client_id).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
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
        let txn = self.connection().begin().await.map_err(map_err)?;
        let mut update = api_client::Entity::update_many()
            .col_expr(api_client::Column::SecretHash, Expr::value(secret_hash.phc.as_str()))
            .col_expr(api_client::Column::SecretFingerprint, Expr::value(fingerprint_column(secret_hash)))
            .col_expr(api_client::Column::SecretRegeneratedAt, Expr::value(now))
            .col_expr(api_client::Column::UpdatedAt, Expr::value(now));
        if revoke_tokens {
            // In the database, not from what was read: two regenerations racing both revoke.
            update = update
                .col_expr(api_client::Column::TokenGeneration, Expr::col(api_client::Column::TokenGeneration).add(1));
        }
        let result = update
            .filter(api_client::Column::ClientId.eq(client_id))
            .filter(api_client::Column::DisabledAt.is_null())
            .exec(&txn)
            .await
            .map_err(map_err)?;
        if result.rows_affected != 1 {
            // Nothing changed (the client is disabled): the caller records the refusal.
            txn.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        audit::insert(&txn, audit).await.map_err(map_err)?;
        announce(&txn, client_id).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn disable_client(
        &self,
        client_id: &str,
        revoke_tokens: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<DisableOutcome, StoreError> {
        let txn = self.connection().begin().await.map_err(map_err)?;
        let id = api_client::Column::ClientId.eq(client_id);
        let disabled = api_client::Entity::update_many()
            .col_expr(api_client::Column::DisabledAt, Expr::value(now))
            .col_expr(api_client::Column::UpdatedAt, Expr::value(now))
            .filter(id.clone())
            .filter(api_client::Column::DisabledAt.is_null())
            .exec(&txn)
            .await
            .map_err(map_err)?
            .rows_affected
            == 1;
        let revoked = revoke_tokens
            && api_client::Entity::update_many()
                .col_expr(api_client::Column::TokensRevokedAt, Expr::value(now))
                .col_expr(api_client::Column::UpdatedAt, Expr::value(now))
                .filter(id)
                .filter(api_client::Column::TokensRevokedAt.is_null())
                .exec(&txn)
                .await
                .map_err(map_err)?
                .rows_affected
                == 1;
        audit::insert(&txn, audit).await.map_err(map_err)?;
        announce(&txn, client_id).await.map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(match (disabled, revoked) {
            (true, _) => DisableOutcome::Disabled,
            (false, true) => DisableOutcome::TokensRevoked,
            (false, false) => DisableOutcome::Unchanged,
        })
    }

    async fn touch_clients(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        let txn = self.connection().begin().await.map_err(map_err)?;
        for (client_id, at) in uses {
            api_client::Entity::update_many()
                .col_expr(api_client::Column::LastUsedAt, Expr::value(*at))
                .filter(api_client::Column::ClientId.eq(client_id.as_str()))
                .filter(
                    Condition::any()
                        .add(api_client::Column::LastUsedAt.is_null())
                        .add(api_client::Column::LastUsedAt.lt(*at)),
                )
                .exec(&txn)
                .await
                .map_err(map_err)?;
        }
        txn.commit().await.map_err(map_err)
    }

    async fn record_client_fingerprint(
        &self,
        client_id: &str,
        phc: &str,
        fingerprint: Fingerprint,
    ) -> Result<(), StoreError> {
        let write = api_client::Entity::update_many()
            .col_expr(api_client::Column::SecretFingerprint, Expr::value(fingerprint.to_column()))
            .filter(api_client::Column::ClientId.eq(client_id))
            .filter(api_client::Column::SecretHash.eq(phc))
            .exec(self.connection());
        self.within_timeout(write).await?.map_err(map_err)?;
        Ok(())
    }
}
