//! One page of a listing, and what a listing of keys or clients is narrowed to.

use chrono::{DateTime, Utc};

use super::records::{KeyStatus, Labels};

/// One page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
}

/// What a listing of one organization's keys or clients is narrowed to; each filter set must
/// hold. Built by the admin use cases from checked input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Case-insensitive part of the name, description, a label value (or a client's id); any
    /// when empty.
    pub search: String,
    /// The status at `now` (clients are never `Expired`).
    pub status: Option<KeyStatus>,
    /// Only keys active at `now` that expire before this time.
    pub expires_before: Option<DateTime<Utc>>,
    /// Only credentials not used since this time, never-used ones included.
    pub unused_since: Option<DateTime<Utc>>,
    /// Only credentials carrying every one of these labels, with these values.
    pub labels: Labels,
    /// When statuses and expiries are judged.
    pub now: DateTime<Utc>,
}

impl ListFilter {
    /// No filter but `search`, judged at `now`.
    pub fn search(search: &str, now: DateTime<Utc>) -> Self {
        Self {
            search: search.to_owned(),
            status: None,
            expires_before: None,
            unused_since: None,
            labels: Labels::new(),
            now,
        }
    }

    /// Whether a credential with these facts passes every filter but `search` (which the
    /// store matches on its own text).
    pub fn admits(
        &self,
        status: KeyStatus,
        expires_at: Option<DateTime<Utc>>,
        last_used_at: Option<DateTime<Utc>>,
        labels: &Labels,
    ) -> bool {
        self.status.is_none_or(|wanted| wanted == status)
            && self
                .expires_before
                .is_none_or(|before| status == KeyStatus::Active && expires_at.is_some_and(|at| at < before))
            && self.unused_since.is_none_or(|since| last_used_at.is_none_or(|used| used < since))
            && self.labels.iter().all(|(name, value)| labels.get(name) == Some(value))
    }
}
