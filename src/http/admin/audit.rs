//! `/api/admin/audit-events`: an organization's audit log, newest first, filtered.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::wire::{Query, time, total};
use super::{AdminRest, Call};
use keygate_core::admin::audit::AuditListing;
use keygate_core::model::AuditEntry;

/// One admin change, or one refused attempt. Never holds a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Increasing in the order events were written.
    pub id: i64,
    #[schema(format = DateTime)]
    pub time: String,
    /// The acting principal's id (key id, client id or user id), or `bootstrap` / `cli`.
    pub actor: String,
    /// `api_key`, `client`, `user` or `operator`.
    pub actor_kind: String,
    pub organization: String,
    /// What was done, e.g. `api_key.rotate`.
    #[schema(example = "api_key.rotate")]
    pub action: String,
    /// What it was done to: a key id, client id, organization slug or signing key id.
    pub target: String,
    /// `success`, or the code the attempt was refused with, e.g. `PERMISSION_DENIED`.
    #[schema(example = "success")]
    pub outcome: String,
    /// keygate's own id of the request (also its `X-Request-Id`), never the caller's.
    pub request_id: String,
    /// The `X-Request-Id` the caller sent, when it was a well-formed one.
    pub client_request_id: String,
    /// The caller's address as keygate saw it.
    pub peer: String,
}

impl From<AuditEntry> for AuditEvent {
    fn from(entry: AuditEntry) -> Self {
        Self {
            id: entry.id,
            time: time(entry.at),
            actor: entry.actor,
            actor_kind: entry.actor_kind,
            organization: entry.organization,
            action: entry.action,
            target: entry.target,
            outcome: entry.outcome,
            request_id: entry.request_id,
            client_request_id: entry.client_request_id,
            peer: entry.peer,
        }
    }
}

/// The events of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    pub events: Vec<AuditEvent>,
    pub total: i64,
}

/// The filters of the audit log, as the document describes them (the handler reads the query).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[allow(dead_code, reason = "read by the OpenAPI document only; the handler reads the query")]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub start_time: Option<String>,
    /// Events before this time (RFC 3339); after `start_time`.
    #[param(format = DateTime)]
    pub end_time: Option<String>,
    /// Only events by this principal, exactly.
    pub actor: Option<String>,
    /// Only events of this action, e.g. `api_key.rotate`.
    pub action: Option<String>,
    /// Only events about this target.
    pub target: Option<String>,
    /// The organization whose log to read, for platform admins; others read their own.
    pub organization: Option<String>,
    #[param(value_type = Option<u64>, minimum = 0, maximum = 4_294_967_295_u32)]
    pub offset: Option<u32>,
    /// 20 when unset or 0, at most 100.
    #[param(minimum = 0, maximum = 100)]
    pub limit: Option<u32>,
}

/// Lists audit events, newest first.
#[utoipa::path(get, path = "/api/admin/audit-events", tag = "audit", params(AuditParams),
    responses((status = 200, description = "A page of events", body = AuditEventList)))]
pub async fn list(State(rest): State<Arc<AdminRest>>, call: Call, RawQuery(query): RawQuery) -> Response {
    let result = async {
        let mut query = Query::parse(query.as_deref());
        let listing = AuditListing {
            start: query.time("start_time"),
            end: query.time("end_time"),
            actor: query.text("actor"),
            action: query.text("action"),
            target: query.text("target"),
            organization: query.text("organization"),
            offset: query.number("offset"),
            limit: query.number("limit"),
        };
        query.finish()?;
        Ok(rest.admin.list_audit_events(&call.ctx, listing).await?)
    };
    call.reply(StatusCode::OK, result.await, |(events, count)| AuditEventList {
        events: events.into_iter().map(AuditEvent::from).collect(),
        total: total(count),
    })
}
