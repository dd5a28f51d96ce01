//! The `ListAuditEvents` use case: an organization's audit log, for admins holding
//! `admin:audit:read`. Platform admins may read any organization's; others only their own.

use chrono::{DateTime, Utc};

use super::{Admin, AdminContext, MAX_SEARCH};
use crate::error::CoreError;
use crate::model::{AuditEntry, AuditQuery};
use crate::validate::{Violations, is_valid_slug};

/// What `ListAuditEvents` asks for; empty filters match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditListing {
    /// Inclusive.
    pub start: Option<DateTime<Utc>>,
    /// Exclusive.
    pub end: Option<DateTime<Utc>>,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The organization's slug; the caller's own when empty.
    pub organization: String,
    pub offset: i64,
    pub limit: i64,
}

impl Admin {
    /// Lists one organization's audit entries, newest first, and how many match in all.
    pub async fn list_audit_events(
        &self,
        ctx: &AdminContext,
        listing: AuditListing,
    ) -> Result<(Vec<AuditEntry>, u64), CoreError> {
        let caller = self.caller(ctx, "admin:audit:read").await?;
        let mut violations = Violations::default();
        let page = violations.page(listing.offset, listing.limit);
        if let (Some(start), Some(end)) = (listing.start, listing.end)
            && end <= start
        {
            violations.add("end_time", "must be after start_time");
        }
        for (field, value) in [("actor", &listing.actor), ("action", &listing.action), ("target", &listing.target)] {
            violations.optional_text(field, value, MAX_SEARCH);
        }
        if !listing.organization.is_empty() && !is_valid_slug(&listing.organization) {
            violations.add("organization", "is not an organization slug");
        }
        violations.finish()?;
        let org = self.target_organization(&caller, &listing.organization).await?;
        let query = AuditQuery {
            organization: org.slug,
            start: listing.start,
            end: listing.end,
            actor: listing.actor.trim().to_owned(),
            action: listing.action.trim().to_owned(),
            target: listing.target.trim().to_owned(),
        };
        Ok(self.audit.audit_events(&query, page).await?)
    }
}
