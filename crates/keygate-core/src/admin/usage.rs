//! What a key or client has used: its requests per day over the last days and its monthly
//! quota as it stands, for admins who would rather look than read.

use chrono::{Duration, NaiveDate};

use super::{Admin, AdminContext};
use crate::error::CoreError;
use crate::model::{LimitOverrides, Principal, PrincipalKind, QuotaState};

/// How many days a usage covers, today included.
pub const USAGE_DAYS: i64 = 14;

/// A credential's recent use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUsage {
    /// Every day of the last [`USAGE_DAYS`], oldest first, with its count (0 when unused).
    /// Counts reach the database with each last-use flush, so today's lags by that interval.
    pub days: Vec<(NaiveDate, u64)>,
    /// Its monthly quota, when it has one.
    pub quota: Option<QuotaState>,
}

impl Admin {
    /// A key's recent use; the same visibility as reading the key.
    pub async fn key_usage(&self, ctx: &AdminContext, key_id: &str) -> Result<CredentialUsage, CoreError> {
        let caller = self.caller(ctx, "admin:keys:read").await?;
        let key = self.visible_key(&caller, key_id).await?;
        self.usage_of(PrincipalKind::ApiKey, key.key_id, key.organization, key.limits).await
    }

    /// A client's recent use; the same visibility as reading the client.
    pub async fn client_usage(&self, ctx: &AdminContext, client_id: &str) -> Result<CredentialUsage, CoreError> {
        let caller = self.caller(ctx, "admin:clients:read").await?;
        let client = self.visible_client(&caller, client_id).await?;
        self.usage_of(PrincipalKind::Client, client.client_id, client.organization, client.limits).await
    }

    async fn usage_of(
        &self,
        kind: PrincipalKind,
        id: String,
        organization: String,
        limits: LimitOverrides,
    ) -> Result<CredentialUsage, CoreError> {
        let now = self.clock.now();
        let first = now.date_naive() - Duration::days(USAGE_DAYS - 1);
        let counted = self.usage.daily_uses(&kind.credential_name(&id), first).await?;
        let days = (0..USAGE_DAYS)
            .map(|offset| first + Duration::days(offset))
            .map(|day| (day, counted.iter().filter(|row| row.day == day).map(|row| row.uses).sum()))
            .collect();
        // The quota is the limiter's, as the credential itself would read it.
        let principal = Principal {
            kind,
            id,
            organization,
            scopes: Vec::new(),
            name: String::new(),
            expires_at: now,
            limits,
            creations_may_outlive: false,
        };
        let quota = self.engine.quota_of(&principal).await?;
        Ok(CredentialUsage { days, quota })
    }
}
