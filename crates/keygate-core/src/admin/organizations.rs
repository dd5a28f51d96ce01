//! The organization use cases: create, read, list and change organizations (a plan change
//! included), for admins holding `admin:orgs:*`. Only platform admins create organizations or
//! move one to another plan; an organization's own admins may rename it.

use super::{Admin, AdminContext, MAX_NAME, id_or_nothing};
use crate::error::CoreError;
use crate::model::Organization;
use crate::ports::OrganizationChanges;
use crate::validate::{Violations, is_valid_slug};

/// What `CreateOrganization` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewOrganization {
    pub slug: String,
    pub name: String,
    pub plan: String,
}

/// What `UpdateOrganization` asks for; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct OrganizationUpdate {
    pub slug: String,
    pub name: Option<String>,
    pub plan: Option<String>,
}

impl Admin {
    /// Creates an organization; platform admins only.
    pub async fn create_organization(
        &self,
        ctx: &AdminContext,
        request: NewOrganization,
    ) -> Result<Organization, CoreError> {
        let (caller, entry) = self
            .changer(ctx, "admin:orgs:write", "organization.create", id_or_nothing(&request.slug, is_valid_slug))
            .await?;
        self.audited(&entry, async {
            if !caller.platform {
                return Err(CoreError::PermissionDenied("only a platform admin can create organizations".into()));
            }
            let mut violations = Violations::default();
            if !is_valid_slug(&request.slug) {
                violations.add("slug", "must be 2 to 63 lowercase letters, digits or '-', starting with a letter");
            }
            violations.required_text("name", &request.name, MAX_NAME);
            let plan = if request.plan.is_empty() { self.settings.default_plan.clone() } else { request.plan };
            if !self.settings.plans.contains_key(&plan) {
                let known: Vec<&str> = self.settings.plans.keys().map(String::as_str).collect();
                violations.add("plan", format!("unknown plan {plan:?}; configured plans: {}", known.join(", ")));
            }
            violations.finish()?;
            let org = self.new_organization(&request.slug, request.name.trim(), &plan, false)?;
            // A platform admin's act, so the platform's log holds it rather than the new organization's.
            let audit = entry.about(&org.slug, &caller.principal.organization);
            self.store.create_organization(&org, &audit).await.map_err(|err| match CoreError::from(err) {
                CoreError::AlreadyExists(_) => {
                    CoreError::AlreadyExists(format!("organization {} already exists", org.slug))
                }
                other => other,
            })?;
            tracing::info!(organization = %org.slug, plan = %org.plan, created_by = %caller.principal.id, "organization created");
            Ok(org)
        })
        .await
    }

    /// Looks up an organization: any for a platform admin, else only the caller's own.
    pub async fn get_organization(&self, ctx: &AdminContext, slug: &str) -> Result<Organization, CoreError> {
        let caller = self.caller(ctx, "admin:orgs:read").await?;
        if !is_valid_slug(slug) {
            return Err(CoreError::invalid("slug", "is not an organization slug"));
        }
        self.target_organization(&caller, slug).await
    }

    /// Lists organizations: all for a platform admin, else the caller's own.
    pub async fn list_organizations(
        &self,
        ctx: &AdminContext,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Organization>, u64), CoreError> {
        let caller = self.caller(ctx, "admin:orgs:read").await?;
        let mut violations = Violations::default();
        let page = violations.page(offset, limit);
        violations.finish()?;
        if caller.platform {
            return Ok(self.store.list_organizations(page).await?);
        }
        let own = self.target_organization(&caller, "").await?;
        let items = if page.offset == 0 { vec![own] } else { Vec::new() };
        Ok((items, 1))
    }

    pub(super) fn new_organization(
        &self,
        slug: &str,
        name: &str,
        plan: &str,
        platform: bool,
    ) -> Result<Organization, CoreError> {
        let max_active_keys = self
            .settings
            .plans
            .get(plan)
            .ok_or_else(|| CoreError::Internal(format!("plan {plan:?} is not configured")))?
            .max_active_keys;
        let now = self.clock.now();
        Ok(Organization {
            slug: slug.to_owned(),
            name: name.to_owned(),
            plan: plan.to_owned(),
            max_active_keys,
            platform,
            created_at: now,
            updated_at: now,
        })
    }

    /// Renames an organization or moves it to another plan. A plan that allows fewer active
    /// keys than the organization has leaves those keys working (revoking keys in use because
    /// of a billing change would be an outage): new keys, and revivals of expired ones, are
    /// refused until enough are disabled or expire.
    pub async fn update_organization(
        &self,
        ctx: &AdminContext,
        request: OrganizationUpdate,
    ) -> Result<Organization, CoreError> {
        let (caller, entry) = self
            .changer(ctx, "admin:orgs:write", "organization.update", id_or_nothing(&request.slug, is_valid_slug))
            .await?;
        self.audited(&entry, async {
            let mut violations = Violations::default();
            if !is_valid_slug(&request.slug) {
                violations.add("slug", "is not an organization slug");
            }
            if request.name.is_none() && request.plan.is_none() {
                violations.add("slug", "nothing to update: set name or plan");
            }
            if let Some(name) = &request.name {
                violations.required_text("name", name, MAX_NAME);
            }
            let plan = match &request.plan {
                Some(plan) => match self.settings.plans.get(plan) {
                    Some(configured) => Some((plan.clone(), configured.max_active_keys)),
                    None => {
                        let known: Vec<&str> = self.settings.plans.keys().map(String::as_str).collect();
                        violations.add("plan", format!("unknown plan {plan:?}; configured plans: {}", known.join(", ")));
                        None
                    }
                },
                None => None,
            };
            violations.finish()?;
            let org = self.target_organization(&caller, &request.slug).await?;
            if plan.is_some() && !caller.platform {
                // An organization's admins would otherwise raise their own limits.
                return Err(CoreError::PermissionDenied("only a platform admin can change an organization's plan".into()));
            }
            let changes = OrganizationChanges { name: request.name.map(|n| n.trim().to_owned()), plan };
            let audit = entry.about(&org.slug, &caller.principal.organization);
            let not_found = || CoreError::NotFound(format!("organization {} not found", org.slug));
            let changed =
                self.store.update_organization(&org.slug, &changes, self.clock.now(), &audit).await?.ok_or_else(not_found)?;
            tracing::info!(organization = %changed.slug, plan = %changed.plan, updated_by = %caller.principal.id, "organization updated");
            Ok(changed)
        })
        .await
    }
}
