//! The REST admin API (`/api/admin/…`), the reference's paths and fields in snake_case, over the
//! same admin use cases as `keygate.v1.AdminService`: handlers decode, call the core, encode.
//! Beside it, `GET /quota`, where any credential reads its own quota.
//! Its OpenAPI 3.1 document, generated from these handlers' types, is served at
//! [`OPENAPI_PATH`].

mod audit;
mod clients;
mod error;
mod keys;
mod openapi;
mod organizations;
mod quota;
mod usage;
mod wire;

/// The request bodies and their decoding, for the fuzz targets.
#[doc(hidden)]
pub mod bodies {
    pub use super::clients::{CreateClient, RegenerateSecret};
    pub use super::error::{ApiError, decode_body};
    pub use super::keys::{CreateKey, RotateKeyBody};
    pub use super::organizations::{CreateOrganization, UpdateOrganization};
    pub use super::wire::Changes;
}

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::transport::PeerAddr;
use crate::transport::request_id::{REQUEST_ID_HEADER, client_request_id, new_request_id};
use error::{ApiError, decode_body};
use keygate_core::admin::{Admin, AdminContext};
use keygate_core::engine::Engine;
use keygate_core::error::FieldViolation;
use keygate_core::model::{Credentials, RequestOrigin};

/// Where the OpenAPI document of the admin API is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Bodies larger than this are refused with 413; the largest real one is a few kilobytes.
const MAX_BODY: usize = 64 * 1024;

/// What the admin routes are given.
pub struct AdminRest {
    pub admin: Arc<Admin>,
    /// For a credential's own quota.
    pub engine: Arc<Engine>,
    /// Where clients get tokens, told to the creator of a client.
    pub token_endpoint: String,
}

/// The admin routes and the OpenAPI document.
pub fn router(rest: AdminRest) -> Router {
    let document = openapi::document();
    Router::new()
        .route("/api/admin/api-keys", post(keys::create).get(keys::list))
        .route("/api/admin/api-keys/{key_id}", get(keys::get).patch(keys::update).delete(keys::disable))
        .route("/api/admin/api-keys/{key_id}/rotate", post(keys::rotate))
        .route("/api/admin/api-keys/{key_id}/usage", get(usage::of_key))
        .route("/api/admin/api-clients", post(clients::create).get(clients::list))
        .route("/api/admin/api-clients/{client_id}", get(clients::get).patch(clients::update).delete(clients::disable))
        .route("/api/admin/api-clients/{client_id}/regenerate-secret", post(clients::regenerate_secret))
        .route("/api/admin/api-clients/{client_id}/usage", get(usage::of_client))
        .route("/api/admin/organizations", post(organizations::create).get(organizations::list))
        .route("/api/admin/organizations/{slug}", get(organizations::get).patch(organizations::update))
        .route("/api/admin/audit-events", get(audit::list))
        .route(quota::QUOTA_PATH, get(quota::get))
        .route(OPENAPI_PATH, get(move || async move { axum::Json(document.clone()) }))
        .fallback(|call: Call| async move { call.refuse(ApiError::no_route()) })
        .method_not_allowed_fallback(|call: Call| async move { call.refuse(ApiError::no_method()) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(rest))
}

/// An admin request's context, taken from its headers: the caller's credential (`Authorization`
/// or `X-API-Key`), keygate's new request id, the caller's `X-Request-Id` and the peer address.
pub struct Call {
    pub ctx: AdminContext,
    /// Whether the body was declared as JSON (or not declared at all).
    json: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let credentials = Credentials { authorization: text("authorization"), api_key: text("x-api-key") };
        let origin = request_origin(parts);
        Ok(Self { ctx: AdminContext { credentials, origin }, json: declares_json(headers) })
    }
}

/// Where an admin request came from, for the audit log: keygate's new request id, the caller's
/// `X-Request-Id` and the peer address. The console's pages use it too.
pub fn request_origin(parts: &Parts) -> RequestOrigin {
    let peer = parts.extensions.get::<ConnectInfo<PeerAddr>>().map(|info| info.0.0.to_string()).unwrap_or_default();
    let given = parts.headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    RequestOrigin { request_id: new_request_id(), client_request_id: client_request_id(given), peer }
}

impl Call {
    /// The body decoded as `T` (see [`decode_body`]), or the error to answer with.
    pub fn body<T: DeserializeOwned + Default>(&self, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::bad_request(vec![FieldViolation::new("body", "could not be read")])
            }
        })?;
        if !body.iter().all(u8::is_ascii_whitespace) && !self.json {
            return Err(ApiError::not_json());
        }
        decode_body(&body)
    }

    /// `value` as JSON with `status`, or the error, either way with keygate's request id.
    pub fn reply<T, U: Serialize>(
        &self,
        status: StatusCode,
        result: Result<T, ApiError>,
        encode: impl FnOnce(T) -> U,
    ) -> Response {
        let request_id = self.ctx.origin.request_id.as_str();
        let mut response = match result {
            Ok(value) => (status, axum::Json(encode(value))).into_response(),
            Err(err) => {
                tracing::info!(request_id, ?err, "admin request failed");
                err.respond(request_id)
            }
        };
        stamp(&mut response, &self.ctx.origin.request_id);
        response
    }

    /// The error, as every answer has it.
    pub fn refuse(&self, err: ApiError) -> Response {
        self.reply_empty(Err::<(), _>(err))
    }

    /// 204 with no body, or the error.
    pub fn reply_empty<T>(&self, result: Result<T, ApiError>) -> Response {
        let mut response = match result {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(err) => err.respond(&self.ctx.origin.request_id),
        };
        stamp(&mut response, &self.ctx.origin.request_id);
        response
    }
}

/// What every answer carries: keygate's request id, and no caching.
fn stamp(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    // Admin answers may carry a secret shown once: never kept by a cache on the way.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The one id in a resource's path (`{key_id}`, `{client_id}`, `{slug}`); a path that does not decode
/// (not UTF-8) is 400 in the API's error shape.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(rejection) => {
                // Named as the document names the parameter (`key_id`), as any other bad field is.
                let field = match &rejection {
                    PathRejection::FailedToDeserializePathParams(failed) => match failed.kind() {
                        ErrorKind::InvalidUtf8InPathParam { key } | ErrorKind::ParseErrorAtKey { key, .. } => {
                            key.clone()
                        }
                        _ => "path".to_owned(),
                    },
                    _ => "path".to_owned(),
                };
                let problem = FieldViolation::new(field, rejection.body_text());
                let request_id = new_request_id();
                let mut response = ApiError::bad_request(vec![problem]).respond(&request_id);
                stamp(&mut response, &request_id);
                Err(response)
            }
        }
    }
}

/// No `Content-Type`, or `application/json` (with parameters, any case).
fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return true };
    let Ok(value) = value.to_str() else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}
