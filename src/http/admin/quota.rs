//! `GET /quota`: a credential's own monthly quota, as Socket's API serves it; the same answer as
//! `GetQuota`, and it costs no quota.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::wire::time;
use super::{AdminRest, Call};
use keygate_core::error::CoreError;
use keygate_core::model::QuotaState;

/// Where a credential reads its own quota.
pub const QUOTA_PATH: &str = "/quota";

/// A credential's quota this month (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct Quota {
    /// Units left this month; 0 when `unlimited`.
    pub quota: u64,
    /// The monthly quota; 0 when `unlimited`.
    pub max_quota: u64,
    /// When the next month's quota starts; `null` when `unlimited`.
    #[schema(format = DateTime)]
    pub next_window_refresh: Option<String>,
    /// The credential has no monthly quota.
    pub unlimited: bool,
}

impl From<Option<QuotaState>> for Quota {
    fn from(state: Option<QuotaState>) -> Self {
        match state {
            Some(state) => Self {
                quota: state.remaining,
                max_quota: state.max_quota,
                next_window_refresh: Some(time(state.refresh_at)),
                unlimited: false,
            },
            None => Self { quota: 0, max_quota: 0, next_window_refresh: None, unlimited: true },
        }
    }
}

/// Reads the calling credential's own quota; any valid credential may, no scope needed.
#[utoipa::path(get, path = "/quota", tag = "quota",
    responses((status = 200, description = "The caller's quota this month", body = Quota)))]
pub async fn get(State(rest): State<Arc<AdminRest>>, call: Call) -> Response {
    let result = async { Ok(rest.engine.quota(&call.ctx.credentials).await?.map_err(CoreError::Unauthenticated)?) };
    call.reply(StatusCode::OK, result.await, Quota::from)
}
