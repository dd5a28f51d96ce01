//! `/api/admin/organizations`: create, list, read and change organizations (a plan change
//! included, platform admins only).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::wire::{Query, time, total};
use super::{AdminRest, Call, Id};
use keygate_core::admin::{NewOrganization, OrganizationUpdate};

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct Organization {
    /// The organization's stable id (its slug).
    #[schema(example = "acme")]
    pub id: String,
    #[schema(example = "acme")]
    pub slug: String,
    #[schema(example = "Acme Corp")]
    pub name: String,
    /// A configured plan, e.g. `free` or `pro`.
    #[schema(example = "pro")]
    pub plan: String,
    /// The most keys that may be active at once, from the plan.
    pub max_active_keys: u32,
    /// Whether its admins manage every organization.
    pub platform: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<keygate_core::model::Organization> for Organization {
    fn from(org: keygate_core::model::Organization) -> Self {
        Self {
            id: org.slug.clone(),
            slug: org.slug,
            name: org.name,
            plan: org.plan,
            max_active_keys: org.max_active_keys,
            platform: org.platform,
            created_at: time(org.created_at),
            updated_at: time(org.updated_at),
        }
    }
}

/// A new organization.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CreateOrganization {
    /// Required: 2 to 63 lowercase letters, digits or `-`, starting with a letter.
    #[schema(required = true, value_type = String, pattern = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$", example = "acme")]
    pub slug: Option<String>,
    /// Required; at most 100 characters.
    #[schema(required = true, value_type = String, min_length = 1, max_length = 100, example = "Acme Corp")]
    pub name: Option<String>,
    /// A configured plan; the configured default when unset.
    pub plan: Option<String>,
}

/// Changes to an organization: each field sent replaces its own.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateOrganization {
    pub name: Option<String>,
    /// A configured plan, for platform admins. Keys already active stay active when it allows
    /// fewer; new ones are refused (409) until the organization is back under its limit.
    pub plan: Option<String>,
}

/// The organizations of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationList {
    pub organizations: Vec<Organization>,
    pub total: i64,
}

/// A page of organizations.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[allow(dead_code, reason = "read by the OpenAPI document only; the handler reads the query")]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[param(value_type = Option<u64>, minimum = 0, maximum = 4_294_967_295_u32)]
    pub offset: Option<u32>,
    /// 20 when unset or 0, at most 100.
    #[param(minimum = 0, maximum = 100)]
    pub limit: Option<u32>,
}

/// Creates an organization; platform admins only.
#[utoipa::path(post, path = "/api/admin/organizations", tag = "organizations", request_body = CreateOrganization,
    responses((status = 201, description = "Created", body = Organization),
        (status = 409, description = "The slug is taken", body = ErrorBody)))]
pub async fn create(State(rest): State<Arc<AdminRest>>, call: Call, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: CreateOrganization = call.body(body)?;
        let request = NewOrganization {
            slug: body.slug.unwrap_or_default(),
            name: body.name.unwrap_or_default(),
            plan: body.plan.unwrap_or_default(),
        };
        Ok(rest.admin.create_organization(&call.ctx, request).await?)
    };
    call.reply(StatusCode::CREATED, result.await, Organization::from)
}

/// Lists organizations, oldest first: all for a platform admin, else the caller's own.
#[utoipa::path(get, path = "/api/admin/organizations", tag = "organizations", params(PageParams),
    responses((status = 200, description = "A page of organizations", body = OrganizationList)))]
pub async fn list(State(rest): State<Arc<AdminRest>>, call: Call, RawQuery(query): RawQuery) -> Response {
    let result = async {
        let mut query = Query::parse(query.as_deref());
        let (offset, limit) = (query.number("offset"), query.number("limit"));
        query.finish()?;
        Ok(rest.admin.list_organizations(&call.ctx, offset, limit).await?)
    };
    call.reply(StatusCode::OK, result.await, |(orgs, count)| OrganizationList {
        organizations: orgs.into_iter().map(Organization::from).collect(),
        total: total(count),
    })
}

/// Reads an organization: any for a platform admin, else only the caller's own.
#[utoipa::path(get, path = "/api/admin/organizations/{slug}", tag = "organizations",
    params(("slug" = String, Path, pattern = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$", description = "The organization's slug")),
    responses((status = 200, description = "The organization", body = Organization),
        (status = 404, description = "No such organization", body = ErrorBody)))]
pub async fn get(State(rest): State<Arc<AdminRest>>, call: Call, Id(slug): Id) -> Response {
    let result = rest.admin.get_organization(&call.ctx, &slug).await.map_err(ApiError::from);
    call.reply(StatusCode::OK, result, Organization::from)
}

/// Renames an organization or moves it to another plan.
#[utoipa::path(patch, path = "/api/admin/organizations/{slug}", tag = "organizations",
    request_body(content = Option<UpdateOrganization>, description = "Optional: no body changes nothing"),
    params(("slug" = String, Path, pattern = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$", description = "The organization's slug")),
    responses((status = 200, description = "The organization as changed", body = Organization),
        (status = 404, description = "No such organization", body = ErrorBody)))]
pub async fn update(
    State(rest): State<Arc<AdminRest>>,
    call: Call,
    Id(slug): Id,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body: UpdateOrganization = call.body(body)?;
        let request = OrganizationUpdate { slug, name: body.name, plan: body.plan };
        Ok(rest.admin.update_organization(&call.ctx, request).await?)
    };
    call.reply(StatusCode::OK, result.await, Organization::from)
}
