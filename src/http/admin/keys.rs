//! `/api/admin/api-keys`: create, list, read, update, rotate and disable API keys.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::wire::{Changes, KEY_STATUSES, KeyListParams, Limits, listing, optional_time, time, total};
use super::{AdminRest, Call, Id};
use keygate_core::admin::{KeyView, NewKey, RotateKey};
use keygate_core::model::{KeyStatus, Labels};

/// The header a key is sent in, as the reference tells its creator.
const HEADER_NAME: &str = "X-API-Key";

/// A key's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Valid and usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Disabled by an admin; never enabled again.
    Disabled,
}

impl From<KeyStatus> for Status {
    fn from(status: KeyStatus) -> Self {
        match status {
            KeyStatus::Active => Self::Active,
            KeyStatus::Expired => Self::Expired,
            KeyStatus::Disabled => Self::Disabled,
        }
    }
}

/// An API key as admins see it: never its secret or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    /// The key's stable id (keygate has no other; the same as `key_id`).
    #[schema(example = "k_abc123def456")]
    pub id: String,
    #[schema(example = "k_abc123def456")]
    pub key_id: String,
    /// The first part of the key, safe to show: the configured prefix and the key id.
    #[schema(example = "sk_live_k_abc123def456")]
    pub key_prefix: String,
    pub name: String,
    pub description: String,
    pub status: Status,
    pub scopes: Vec<String>,
    pub organization: String,
    /// Who created it: the creating credential's principal id.
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_rotated_at: Option<String>,
    /// Until when the secret the last rotation replaced still works, while it does.
    #[schema(format = DateTime)]
    pub previous_key_expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub disabled_at: Option<String>,
    pub limits: Limits,
    pub labels: Labels,
}

impl From<KeyView> for ApiKey {
    fn from(view: KeyView) -> Self {
        let key = view.key;
        Self {
            id: key.key_id.clone(),
            key_id: key.key_id,
            key_prefix: key.key_prefix,
            name: key.name,
            description: key.description,
            status: view.status.into(),
            scopes: key.scopes,
            organization: key.organization,
            created_by: key.created_by,
            created_at: time(key.created_at),
            updated_at: time(key.updated_at),
            expires_at: time(key.expires_at),
            last_used_at: optional_time(key.last_used_at),
            last_rotated_at: optional_time(key.last_rotated_at),
            previous_key_expires_at: optional_time(view.previous_key_expires_at),
            disabled_at: optional_time(key.disabled_at),
            limits: key.limits.into(),
            labels: key.labels,
        }
    }
}

/// A new key.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CreateKey {
    /// Required; at most 100 characters.
    #[schema(required = true, value_type = String, min_length = 1, max_length = 100, example = "SOAR Integration")]
    pub name: Option<String>,
    /// At most 1,000 characters.
    pub description: Option<String>,
    /// Required: scopes from the registry; an organization admin grants only scopes it holds.
    #[schema(required = true, value_type = Vec<String>, min_items = 1, example = json!(["investigations:read", "incidents:read"]))]
    pub scopes: Option<Vec<String>>,
    /// Days until it expires: the configured default when unset, at most the configured maximum.
    #[schema(minimum = 1, example = 365)]
    pub expires_in_days: Option<i64>,
    #[serde(deserialize_with = "super::wire::object")]
    pub limits: Option<Limits>,
    /// The organization to create it in, for platform admins; others create in their own.
    pub organization: Option<String>,
    /// Free-form labels (at most 20): names of lowercase letters, digits and `._/-`.
    #[schema(example = json!({"owner": "secops", "env": "prod"}))]
    pub labels: Option<Labels>,
}

impl From<CreateKey> for NewKey {
    fn from(body: CreateKey) -> Self {
        Self {
            name: body.name.unwrap_or_default(),
            description: body.description.unwrap_or_default(),
            scopes: body.scopes.unwrap_or_default(),
            expires_in_days: body.expires_in_days,
            organization: body.organization.unwrap_or_default(),
            limits: body.limits.unwrap_or_default().into(),
            labels: body.labels.unwrap_or_default(),
        }
    }
}

/// A created key: the full key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: String,
    pub key_id: String,
    /// The full key. keygate keeps only its hash: copy it now.
    pub api_key: String,
    pub name: String,
    pub scopes: Vec<String>,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// The header to send it in.
    #[schema(example = "X-API-Key")]
    pub header_name: String,
    /// The key as lists show it.
    pub key: ApiKey,
}

/// The keys of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub api_keys: Vec<ApiKey>,
    /// How many match, in all pages.
    pub total: i64,
}

/// A rotation.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RotateKeyBody {
    /// Days the replaced secret keeps working: 7 when unset, 0 ends it at once.
    #[schema(minimum = 0, example = 7)]
    pub grace_period_days: Option<i64>,
    /// A new expiry in days from now; the key's own expiry when unset.
    #[schema(minimum = 1, example = 365)]
    pub expires_in_days: Option<i64>,
}

/// A rotated key: the new full key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    pub key_id: String,
    pub api_key: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Until when the replaced secret keeps working.
    #[schema(format = DateTime)]
    pub previous_key_expires_at: Option<String>,
}

/// Creates an API key.
#[utoipa::path(post, path = "/api/admin/api-keys", tag = "api-keys", request_body = CreateKey,
    responses((status = 201, description = "Created; the full key is in `api_key`, shown once", body = CreatedKey),
        (status = 409, description = "The organization's plan allows no more active keys", body = ErrorBody)))]
pub async fn create(State(rest): State<Arc<AdminRest>>, call: Call, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body: CreateKey = call.body(body)?;
        Ok(rest.admin.create_key(&call.ctx, body.into()).await?)
    };
    call.reply(StatusCode::CREATED, result.await, |issued| {
        let key = ApiKey::from(issued.view);
        CreatedKey {
            id: key.id.clone(),
            key_id: key.key_id.clone(),
            api_key: issued.api_key,
            name: key.name.clone(),
            scopes: key.scopes.clone(),
            expires_at: key.expires_at.clone(),
            header_name: HEADER_NAME.to_owned(),
            key,
        }
    })
}

/// Lists API keys, newest first.
#[utoipa::path(get, path = "/api/admin/api-keys", tag = "api-keys", params(KeyListParams),
    responses((status = 200, description = "A page of keys", body = KeyList)))]
pub async fn list(State(rest): State<Arc<AdminRest>>, call: Call, RawQuery(query): RawQuery) -> Response {
    let result = async {
        let listing = listing(query.as_deref(), KEY_STATUSES)?;
        Ok(rest.admin.list_keys(&call.ctx, &listing).await?)
    };
    call.reply(StatusCode::OK, result.await, |(keys, count)| KeyList {
        api_keys: keys.into_iter().map(ApiKey::from).collect(),
        total: total(count),
    })
}

/// Reads an API key.
#[utoipa::path(get, path = "/api/admin/api-keys/{key_id}", tag = "api-keys",
    params(("key_id" = String, Path, pattern = "^k_[a-z0-9]{12}$", description = "The key's id, e.g. `k_abc123def456`")),
    responses((status = 200, description = "The key", body = ApiKey),
        (status = 404, description = "No such key", body = ErrorBody)))]
pub async fn get(State(rest): State<Arc<AdminRest>>, call: Call, Id(key_id): Id) -> Response {
    let result = rest.admin.get_key(&call.ctx, &key_id).await.map_err(ApiError::from);
    call.reply(StatusCode::OK, result, ApiKey::from)
}

/// Changes a key's name, description, scopes or limits.
#[utoipa::path(patch, path = "/api/admin/api-keys/{key_id}", tag = "api-keys",
    request_body(content = Option<Changes>, description = "Optional: no body changes nothing"),
    params(("key_id" = String, Path, pattern = "^k_[a-z0-9]{12}$", description = "The key's id")),
    responses((status = 200, description = "The key as changed", body = ApiKey),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The key is disabled", body = ErrorBody)))]
pub async fn update(
    State(rest): State<Arc<AdminRest>>,
    call: Call,
    Id(key_id): Id,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body: Changes = call.body(body)?;
        Ok(rest.admin.update_key(&call.ctx, &key_id, body.into()).await?)
    };
    call.reply(StatusCode::OK, result.await, ApiKey::from)
}

/// Gives a key a new secret; the old one keeps working for the grace period.
#[utoipa::path(post, path = "/api/admin/api-keys/{key_id}/rotate", tag = "api-keys",
    request_body(content = Option<RotateKeyBody>, description = "Optional: every field has a default"),
    params(("key_id" = String, Path, pattern = "^k_[a-z0-9]{12}$", description = "The key's id")),
    responses((status = 200, description = "Rotated; the new full key is in `api_key`, shown once", body = RotatedKey),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The key is disabled or expired", body = ErrorBody)))]
pub async fn rotate(
    State(rest): State<Arc<AdminRest>>,
    call: Call,
    Id(key_id): Id,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body: RotateKeyBody = call.body(body)?;
        let request =
            RotateKey { key_id, grace_period_days: body.grace_period_days, expires_in_days: body.expires_in_days };
        Ok(rest.admin.rotate_key(&call.ctx, request).await?)
    };
    call.reply(StatusCode::OK, result.await, |issued| RotatedKey {
        key_id: issued.view.key.key_id,
        api_key: issued.api_key,
        expires_at: time(issued.view.key.expires_at),
        previous_key_expires_at: optional_time(issued.view.previous_key_expires_at),
    })
}

/// Disables a key and its grace-period secret, for good.
#[utoipa::path(delete, path = "/api/admin/api-keys/{key_id}", tag = "api-keys",
    params(("key_id" = String, Path, pattern = "^k_[a-z0-9]{12}$", description = "The key's id")),
    responses((status = 204, description = "Disabled (or already disabled)"),
        (status = 404, description = "No such key", body = ErrorBody)))]
pub async fn disable(State(rest): State<Arc<AdminRest>>, call: Call, Id(key_id): Id) -> Response {
    let result = rest.admin.disable_key(&call.ctx, &key_id).await.map_err(ApiError::from);
    call.reply_empty(result)
}
