//! `keygate_core::ports::UsageStore` on SQLite and PostgreSQL: each replica's monthly quota
//! usage, and each credential's daily uses.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};

use super::SqlStore;
use super::entities::{daily_uses, quota_usage};
use super::plumbing::map_err;
use keygate_core::error::StoreError;
use keygate_core::model::{DailyUses, UsageRow};
use keygate_core::ports::UsageStore;

#[async_trait]
impl UsageStore for SqlStore {
    async fn usage_by_others(
        &self,
        subject: &str,
        window_start: DateTime<Utc>,
        replica: &str,
    ) -> Result<u64, StoreError> {
        // PostgreSQL sums BIGINT as NUMERIC: cast back so both databases answer an integer.
        let total: Option<i64> = quota_usage::Entity::find()
            .select_only()
            .column_as(Expr::cust("CAST(COALESCE(SUM(used), 0) AS BIGINT)"), "total")
            .filter(quota_usage::Column::Subject.eq(subject))
            .filter(quota_usage::Column::WindowStart.eq(window_start))
            .filter(quota_usage::Column::Replica.ne(replica))
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(map_err)?;
        Ok(total.map_or(0, |sum| u64::try_from(sum).unwrap_or(0)))
    }

    async fn record_usage(&self, replica: &str, rows: &[UsageRow], now: DateTime<Utc>) -> Result<(), StoreError> {
        let txn = self.connection().begin().await.map_err(map_err)?;
        for row in rows {
            let model = quota_usage::ActiveModel {
                subject: ActiveValue::Set(row.subject.clone()),
                window_start: ActiveValue::Set(row.window_start),
                replica: ActiveValue::Set(replica.to_owned()),
                used: ActiveValue::Set(i64::try_from(row.used).unwrap_or(i64::MAX)),
                updated_at: ActiveValue::Set(now),
            };
            let upsert = OnConflict::columns([
                quota_usage::Column::Subject,
                quota_usage::Column::WindowStart,
                quota_usage::Column::Replica,
            ])
            .update_columns([quota_usage::Column::Used, quota_usage::Column::UpdatedAt])
            .to_owned();
            quota_usage::Entity::insert(model).on_conflict(upsert).exec(&txn).await.map_err(map_err)?;
        }
        txn.commit().await.map_err(map_err)
    }

    async fn add_daily_uses(&self, rows: &[DailyUses], forget_before: Option<NaiveDate>) -> Result<(), StoreError> {
        let txn = self.connection().begin().await.map_err(map_err)?;
        for row in rows {
            let model = daily_uses::ActiveModel {
                credential: ActiveValue::Set(row.credential.clone()),
                day: ActiveValue::Set(day_text(row.day)),
                uses: ActiveValue::Set(i64::try_from(row.uses).unwrap_or(i64::MAX)),
            };
            // An increment: each replica adds what it counted; saturating, as a 64-bit sum
            // would otherwise fail (PostgreSQL) or turn into a float (SQLite).
            let sum = "CASE WHEN daily_uses.uses > 9223372036854775807 - excluded.uses \
                       THEN 9223372036854775807 ELSE daily_uses.uses + excluded.uses END";
            let add = OnConflict::columns([daily_uses::Column::Credential, daily_uses::Column::Day])
                .value(daily_uses::Column::Uses, Expr::cust(sum))
                .to_owned();
            daily_uses::Entity::insert(model).on_conflict(add).exec(&txn).await.map_err(map_err)?;
        }
        if let Some(before) = forget_before {
            let old = daily_uses::Entity::delete_many().filter(daily_uses::Column::Day.lt(day_text(before)));
            old.exec(&txn).await.map_err(map_err)?;
        }
        txn.commit().await.map_err(map_err)
    }

    async fn daily_uses(&self, credential: &str, since: NaiveDate) -> Result<Vec<DailyUses>, StoreError> {
        let rows = daily_uses::Entity::find()
            .filter(daily_uses::Column::Credential.eq(credential))
            .filter(daily_uses::Column::Day.gte(day_text(since)))
            .order_by_asc(daily_uses::Column::Day)
            .all(self.connection())
            .await
            .map_err(map_err)?;
        let read = |row: daily_uses::Model| {
            let day = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d").ok()?;
            Some(DailyUses { credential: row.credential, day, uses: u64::try_from(row.uses).unwrap_or(0) })
        };
        Ok(rows.into_iter().filter_map(read).collect())
    }
}

/// A day as the table keeps it.
fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}
