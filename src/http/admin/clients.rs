//! `/api/admin/api-clients`: OAuth2 client-credentials clients: create, list, read, update,
//! regenerate the secret, disable.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::wire::{CLIENT_STATUSES, Changes, ClientListParams, Limits, Query, listing, optional_time, time, total};
use super::{AdminRest, Call, Id};
use keygate_core::admin::clients::NewClient;
use keygate_core::model::{ApiClientRecord, ClientStatus, Labels};

/// A client's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It can obtain tokens.
    Active,
    /// Disabled for good: no new tokens.
    Disabled,
}

/// An API client as admins see it: never its secret or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiClient {
    /// The client's stable id (keygate has no other; the same as `client_id`).
    pub id: String,
    #[schema(example = "xsoar-production-3f9a2c")]
    pub client_id: String,
    pub name: String,
    pub description: String,
    pub status: Status,
    pub scopes: Vec<String>,
    pub organization: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub disabled_at: Option<String>,
    /// Tokens issued up to this time no longer work.
    #[schema(format = DateTime)]
    pub tokens_revoked_at: Option<String>,
    #[schema(format = DateTime)]
    pub secret_regenerated_at: Option<String>,
    /// The limits of its tokens.
    pub limits: Limits,
    pub labels: Labels,
}

impl From<ApiClientRecord> for ApiClient {
    fn from(client: ApiClientRecord) -> Self {
        let status = match client.status() {
            ClientStatus::Active => Status::Active,
            ClientStatus::Disabled => Status::Disabled,
        };
        Self {
            id: client.client_id.clone(),
            client_id: client.client_id,
            name: client.name,
            description: client.description,
            status,
            scopes: client.scopes,
            organization: client.organization,
            created_by: client.created_by,
            created_at: time(client.created_at),
            updated_at: time(client.updated_at),
            last_used_at: optional_time(client.last_used_at),
            disabled_at: optional_time(client.disabled_at),
            tokens_revoked_at: optional_time(client.tokens_revoked_at),
            secret_regenerated_at: optional_time(client.secret_regenerated_at),
            limits: client.limits.into(),
            labels: client.labels,
        }
    }
}

/// A new client.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CreateClient {
    /// Required; at most 100 characters.
    #[schema(required = true, value_type = String, min_length = 1, max_length = 100, example = "XSOAR Production")]
    pub name: Option<String>,
    pub description: Option<String>,
    /// Required: scopes from the registry, validated now.
    #[schema(required = true, value_type = Vec<String>, min_items = 1)]
    pub scopes: Option<Vec<String>>,
    #[serde(deserialize_with = "super::wire::object")]
    pub limits: Option<Limits>,
    /// The organization to create it in, for platform admins.
    pub organization: Option<String>,
    /// Free-form labels (at most 20): names of lowercase letters, digits and `._/-`.
    pub labels: Option<Labels>,
}

impl From<CreateClient> for NewClient {
    fn from(body: CreateClient) -> Self {
        Self {
            name: body.name.unwrap_or_default(),
            description: body.description.unwrap_or_default(),
            scopes: body.scopes.unwrap_or_default(),
            organization: body.organization.unwrap_or_default(),
            limits: body.limits.unwrap_or_default().into(),
            labels: body.labels.unwrap_or_default(),
        }
    }
}

/// A created client: its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    pub id: String,
    pub client_id: String,
    /// keygate keeps only its hash: copy it now.
    pub client_secret: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Where the client gets tokens (`grant_type=client_credentials`).
    pub token_endpoint: String,
    /// The client as lists show it.
    pub client: ApiClient,
}

/// The clients of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ApiClient>,
    pub total: i64,
}

/// A regeneration of the secret.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RegenerateSecret {
    /// Whether the tokens issued with the old secret stop working too: `true` when unset,
    /// since a secret is usually regenerated because it leaked.
    pub revoke_tokens: Option<bool>,
}

/// A new secret, shown this once; the old one stopped working at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegeneratedSecret {
    pub client_id: String,
    pub client_secret: String,
    /// Whether the old secret's tokens were revoked.
    pub tokens_revoked: bool,
}

/// Creates an API client.
#[utoipa::path(post, path = "/api/admin/api-clients", tag = "api-clients", request_body = CreateClient,
    responses((status = 201, description = "Created; the secret is in `client_secret`, shown once", body = CreatedClient)))]
pub async fn create(State(rest): State<Arc<AdminRest>>, call: Call, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: CreateClient = call.body(body)?;
        Ok(rest.admin.create_client(&call.ctx, body.into()).await?)
    };
    call.reply(StatusCode::CREATED, result.await, |issued| {
        let client = ApiClient::from(issued.client);
        CreatedClient {
            id: client.id.clone(),
            client_id: client.client_id.clone(),
            client_secret: issued.client_secret,
            name: client.name.clone(),
            scopes: client.scopes.clone(),
            token_endpoint: rest.token_endpoint.clone(),
            client,
        }
    })
}

/// Lists API clients, newest first.
#[utoipa::path(get, path = "/api/admin/api-clients", tag = "api-clients", params(ClientListParams),
    responses((status = 200, description = "A page of clients", body = ClientList)))]
pub async fn list(State(rest): State<Arc<AdminRest>>, call: Call, RawQuery(query): RawQuery) -> Response {
    let result = async {
        let listing = listing(query.as_deref(), CLIENT_STATUSES)?;
        Ok(rest.admin.list_clients(&call.ctx, &listing).await?)
    };
    call.reply(StatusCode::OK, result.await, |(clients, count)| ClientList {
        clients: clients.into_iter().map(ApiClient::from).collect(),
        total: total(count),
    })
}

/// Reads an API client.
#[utoipa::path(get, path = "/api/admin/api-clients/{client_id}", tag = "api-clients",
    params(("client_id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,99}$", description = "The client's id")),
    responses((status = 200, description = "The client", body = ApiClient),
        (status = 404, description = "No such client", body = ErrorBody)))]
pub async fn get(State(rest): State<Arc<AdminRest>>, call: Call, Id(client_id): Id) -> Response {
    let result = rest.admin.get_client(&call.ctx, &client_id).await.map_err(ApiError::from);
    call.reply(StatusCode::OK, result, ApiClient::from)
}

/// Changes a client's name, description, scopes or limits; its outstanding tokens follow at once.
#[utoipa::path(patch, path = "/api/admin/api-clients/{client_id}", tag = "api-clients",
    request_body(content = Option<Changes>, description = "Optional: no body changes nothing"),
    params(("client_id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,99}$", description = "The client's id")),
    responses((status = 200, description = "The client as changed", body = ApiClient),
        (status = 404, description = "No such client", body = ErrorBody),
        (status = 409, description = "The client is disabled", body = ErrorBody)))]
pub async fn update(
    State(rest): State<Arc<AdminRest>>,
    call: Call,
    Id(client_id): Id,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body: Changes = call.body(body)?;
        Ok(rest.admin.update_client(&call.ctx, &client_id, body.into()).await?)
    };
    call.reply(StatusCode::OK, result.await, ApiClient::from)
}

/// Gives a client a new secret; the old one stops working at once.
#[utoipa::path(post, path = "/api/admin/api-clients/{client_id}/regenerate-secret", tag = "api-clients",
    request_body(content = Option<RegenerateSecret>, description = "Optional"),
    params(("client_id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,99}$", description = "The client's id")),
    responses((status = 200, description = "The new secret, shown once", body = RegeneratedSecret),
        (status = 404, description = "No such client", body = ErrorBody),
        (status = 409, description = "The client is disabled", body = ErrorBody)))]
pub async fn regenerate_secret(
    State(rest): State<Arc<AdminRest>>,
    call: Call,
    Id(client_id): Id,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body: RegenerateSecret = call.body(body)?;
        let revoke_tokens = body.revoke_tokens.unwrap_or(true);
        let issued = rest.admin.regenerate_client_secret(&call.ctx, &client_id, revoke_tokens).await?;
        Ok((issued, revoke_tokens))
    };
    call.reply(StatusCode::OK, result.await, |(issued, tokens_revoked)| RegeneratedSecret {
        client_id: issued.client.client_id,
        client_secret: issued.client_secret,
        tokens_revoked,
    })
}

/// Disables a client for good: it gets no new tokens; its tokens keep working until they
/// expire unless `revoke_tokens=true`.
#[utoipa::path(delete, path = "/api/admin/api-clients/{client_id}", tag = "api-clients",
    params(("client_id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,99}$", description = "The client's id"),
        ("revoke_tokens" = Option<bool>, Query, description = "Whether its tokens stop working at once too")),
    responses((status = 204, description = "Disabled (or already disabled)"),
        (status = 404, description = "No such client", body = ErrorBody)))]
pub async fn disable(
    State(rest): State<Arc<AdminRest>>,
    call: Call,
    Id(client_id): Id,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let mut query = Query::parse(query.as_deref());
        let revoke_tokens = query.flag("revoke_tokens");
        query.finish()?;
        Ok(rest.admin.disable_client(&call.ctx, &client_id, revoke_tokens).await?)
    };
    call.reply_empty(result.await)
}
