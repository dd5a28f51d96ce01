//! Who an admin is, for a surface that signs admins in (the console): the credential's
//! principal, its organization, and the registered scopes it may grant.

use chrono::{DateTime, Utc};

use super::{Admin, AdminContext};
use crate::credentials::scopes::any_grants;
use crate::error::CoreError;
use crate::model::{AuditEntry, Principal};

/// The action a sign-in is recorded under.
pub const SIGN_IN: &str = "admin.sign_in";

/// An authenticated admin, as a console shows and bounds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminIdentity {
    /// The key id, client id or user id.
    pub id: String,
    pub name: String,
    pub organization: String,
    /// Whether the organization is the platform's: its admins act in every organization.
    pub platform: bool,
    pub scopes: Vec<String>,
    /// The registered scopes this admin may grant: those its own scopes cover.
    pub grantable: Vec<String>,
    /// When the credential stops working; a session must end by then.
    pub expires_at: DateTime<Utc>,
}

impl AdminIdentity {
    /// Whether this admin holds `scope` (or a parent of it).
    pub fn holds(&self, scope: &str) -> bool {
        any_grants(&self.scopes, scope)
    }
}

impl Admin {
    /// Authenticates an admin signing in (any admin scope will do) and records the sign-in in
    /// its organization's audit log.
    pub async fn sign_in(&self, ctx: &AdminContext) -> Result<AdminIdentity, CoreError> {
        let principal = self.any_admin(ctx).await?;
        let entry = AuditEntry::by(&principal, SIGN_IN, self.clock.now(), &ctx.origin);
        self.audit.record(&entry.about(&principal.id, &principal.organization)).await?;
        self.identity_of(principal).await
    }

    /// The admin a credential is, unrecorded: for each request of a signed-in session, so that
    /// a disabled or expired credential ends its sessions at once.
    pub async fn identity(&self, ctx: &AdminContext) -> Result<AdminIdentity, CoreError> {
        let principal = self.any_admin(ctx).await?;
        self.identity_of(principal).await
    }

    /// The configured plans, by name, with the active keys each allows.
    pub fn plans(&self) -> Vec<(String, u32)> {
        self.settings.plans.iter().map(|(name, plan)| (name.clone(), plan.max_active_keys)).collect()
    }

    async fn any_admin(&self, ctx: &AdminContext) -> Result<Principal, CoreError> {
        self.admin_principal(ctx, "admin:keys:read").await.map_err(|err| match err {
            CoreError::PermissionDenied(_) => {
                CoreError::PermissionDenied("this credential holds no admin scope".to_owned())
            }
            other => other,
        })
    }

    async fn identity_of(&self, principal: Principal) -> Result<AdminIdentity, CoreError> {
        let platform = self.store.organization(&principal.organization).await?.is_some_and(|org| org.platform);
        let grantable =
            self.scopes.known().filter(|scope| any_grants(&principal.scopes, scope)).map(str::to_owned).collect();
        Ok(AdminIdentity {
            id: principal.id,
            name: principal.name,
            organization: principal.organization,
            platform,
            scopes: principal.scopes,
            grantable,
            expires_at: principal.expires_at,
        })
    }
}
