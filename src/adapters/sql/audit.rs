//! `keygate_core::ports::AuditStore` on SQLite and PostgreSQL, and the insert every write of the other
//! ports makes with its own transaction. Nothing here updates or deletes an entry.

use async_trait::async_trait;
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::SqlStore;
use super::entities::audit_event;
use super::plumbing::map_err;
use keygate_core::error::StoreError;
use keygate_core::model::{AuditEntry, AuditQuery, Page};
use keygate_core::ports::AuditStore;

/// Inserts `entry` through `conn`: inside a change's transaction, so that both commit or neither.
pub(super) async fn insert<C: ConnectionTrait>(conn: &C, entry: &AuditEntry) -> Result<(), DbErr> {
    let model = audit_event::ActiveModel {
        id: ActiveValue::NotSet,
        at: ActiveValue::Set(entry.at),
        actor: ActiveValue::Set(entry.actor.clone()),
        actor_kind: ActiveValue::Set(entry.actor_kind.clone()),
        organization: ActiveValue::Set(entry.organization.clone()),
        action: ActiveValue::Set(entry.action.clone()),
        target: ActiveValue::Set(entry.target.clone()),
        outcome: ActiveValue::Set(entry.outcome.clone()),
        request_id: ActiveValue::Set(entry.request_id.clone()),
        peer: ActiveValue::Set(entry.peer.clone()),
        client_request_id: ActiveValue::Set(entry.client_request_id.clone()),
    };
    audit_event::Entity::insert(model).exec_without_returning(conn).await?;
    Ok(())
}

fn to_entry(model: audit_event::Model) -> AuditEntry {
    AuditEntry {
        id: model.id,
        at: model.at,
        actor: model.actor,
        actor_kind: model.actor_kind,
        organization: model.organization,
        action: model.action,
        target: model.target,
        outcome: model.outcome,
        request_id: model.request_id,
        client_request_id: model.client_request_id,
        peer: model.peer,
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        insert(self.connection(), entry).await.map_err(map_err)
    }

    async fn audit_events(&self, query: &AuditQuery, page: Page) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        let mut filter = Condition::all().add(audit_event::Column::Organization.eq(query.organization.as_str()));
        if let Some(start) = query.start {
            filter = filter.add(audit_event::Column::At.gte(start));
        }
        if let Some(end) = query.end {
            filter = filter.add(audit_event::Column::At.lt(end));
        }
        for (column, value) in [
            (audit_event::Column::Actor, &query.actor),
            (audit_event::Column::Action, &query.action),
            (audit_event::Column::Target, &query.target),
        ] {
            if !value.is_empty() {
                filter = filter.add(column.eq(value.as_str()));
            }
        }
        let db = self.connection();
        let total = audit_event::Entity::find().filter(filter.clone()).count(db).await.map_err(map_err)?;
        let items = audit_event::Entity::find()
            .filter(filter)
            .order_by_desc(audit_event::Column::At)
            .order_by_desc(audit_event::Column::Id)
            .offset(page.offset)
            .limit(page.limit)
            .all(db)
            .await
            .map_err(map_err)?;
        Ok((items.into_iter().map(to_entry).collect(), total))
    }
}
