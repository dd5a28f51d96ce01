//! `/api/admin/api-keys/{key_id}/usage` and `/api/admin/api-clients/{client_id}/usage`: a
//! credential's requests per day over the last days and its quota this month, the figures the
//! console charts.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::quota::Quota;
use super::{AdminRest, Call, Id};
use keygate_core::admin::usage::CredentialUsage;

/// One day's requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct Day {
    /// The day (UTC), e.g. `2026-12-01`.
    #[schema(format = Date)]
    pub day: String,
    /// Requests authenticated with the credential that day (tokens issued, for a client).
    pub requests: u64,
}

/// A credential's recent use.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// The last 14 days, oldest first, today included; today's count trails by up to the
    /// last-use flush interval.
    pub days: Vec<Day>,
    /// Its quota this month.
    pub quota: Quota,
}

impl From<CredentialUsage> for Usage {
    fn from(usage: CredentialUsage) -> Self {
        let days = usage.days.into_iter().map(|(day, requests)| Day { day: day.to_string(), requests }).collect();
        Self { days, quota: usage.quota.into() }
    }
}

/// Reads a key's recent use.
#[utoipa::path(get, path = "/api/admin/api-keys/{key_id}/usage", tag = "api-keys",
    params(("key_id" = String, Path, pattern = "^k_[a-z0-9]{12}$", description = "The key's id")),
    responses((status = 200, description = "Requests per day and the quota", body = Usage),
        (status = 404, description = "No such key", body = super::error::ErrorBody)))]
pub async fn of_key(State(rest): State<Arc<AdminRest>>, call: Call, Id(key_id): Id) -> Response {
    let result = rest.admin.key_usage(&call.ctx, &key_id).await.map_err(ApiError::from);
    call.reply(StatusCode::OK, result, Usage::from)
}

/// Reads a client's recent use.
#[utoipa::path(get, path = "/api/admin/api-clients/{client_id}/usage", tag = "api-clients",
    params(("client_id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,99}$", description = "The client's id")),
    responses((status = 200, description = "Tokens issued per day and the quota", body = Usage),
        (status = 404, description = "No such client", body = super::error::ErrorBody)))]
pub async fn of_client(State(rest): State<Arc<AdminRest>>, call: Call, Id(client_id): Id) -> Response {
    let result = rest.admin.client_usage(&call.ctx, &client_id).await.map_err(ApiError::from);
    call.reply(StatusCode::OK, result, Usage::from)
}
