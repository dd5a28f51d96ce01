//! The audit log: one entry per admin change, written in the same transaction as the change (or,
//! for a refused change, on its own), and read back through `ListAuditEvents`. Entries are never
//! updated or deleted, and never hold a secret.

use chrono::{DateTime, Utc};

use super::error::CoreError;
use super::model::Principal;

/// The outcome of a change that was made.
pub const SUCCESS: &str = "success";

/// One admin change: who, what, when, from where, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store; 0 until stored.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The acting principal's id (key id, client id or user id), or `bootstrap`.
    pub actor: String,
    /// `api_key`, `client`, `user` or `bootstrap`.
    pub actor_kind: String,
    /// The organization the change happened in: whose admins may read the entry.
    pub organization: String,
    /// What was done, e.g. `api_key.create`.
    pub action: String,
    /// What it was done to: a key id, client id, organization slug or signing key id.
    pub target: String,
    /// [`SUCCESS`] or the error code the change was refused with, e.g. `PERMISSION_DENIED`.
    pub outcome: String,
    pub request_id: String,
    /// The caller's address as the server saw it; empty when unknown.
    pub peer: String,
}

impl AuditEntry {
    /// A successful `action` by `principal`, to be completed with its target and organization.
    pub fn by(principal: &Principal, action: &str, at: DateTime<Utc>, request: &RequestOrigin) -> Self {
        Self {
            id: 0,
            at,
            actor: principal.id.clone(),
            actor_kind: principal.kind.as_str().to_owned(),
            organization: principal.organization.clone(),
            action: action.to_owned(),
            target: String::new(),
            outcome: SUCCESS.to_owned(),
            request_id: request.request_id.clone(),
            peer: request.peer.clone(),
        }
    }

    /// The same entry about `target` in `organization`.
    pub fn about(&self, target: &str, organization: &str) -> Self {
        Self { target: target.to_owned(), organization: organization.to_owned(), ..self.clone() }
    }

    /// The same entry, refused with `err`.
    pub fn refused(&self, err: &CoreError) -> Self {
        Self { outcome: err.code().as_str().to_owned(), ..self.clone() }
    }
}

/// Where a request came from, as the edge saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    pub request_id: String,
    /// `ip:port`; empty when unknown.
    pub peer: String,
}

/// Which entries `ListAuditEvents` asks for; empty strings and `None` match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub organization: String,
    /// Inclusive.
    pub start: Option<DateTime<Utc>>,
    /// Exclusive.
    pub end: Option<DateTime<Utc>>,
    pub actor: String,
    pub action: String,
    pub target: String,
}
