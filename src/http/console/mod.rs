//! The admin console at `/console`: server-rendered pages over the same admin use cases as the
//! REST and gRPC admin APIs, for people rather than programs. An admin signs in with their
//! credential and gets an opaque session cookie ([`sessions`]); every page then calls the use
//! cases with that credential, so scopes, organizations and revocation apply exactly as they do
//! to the APIs. Forms post back with a per-session CSRF token; pages work without JavaScript,
//! which only adds a copy button; confirmations are pages. Every asset is built into the binary.

mod assets;
mod audit;
mod clients;
mod form;
mod keys;
mod organizations;
mod page;
pub mod sessions;
mod sign_in;
mod usage;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::admin::request_origin;
use keygate_core::admin::identity::AdminIdentity;
use keygate_core::admin::{Admin, AdminContext};
use keygate_core::error::CoreError;
use keygate_core::ports::Clock;
use sessions::{Session, Sessions};

/// Where the console is served.
pub const CONSOLE_PATH: &str = "/console";
/// The session cookie's name.
const COOKIE: &str = "keygate_console";
/// Bodies larger than this are refused; the largest form is a few kilobytes.
const MAX_FORM: usize = 64 * 1024;

/// What the console's pages are given.
pub struct Console {
    pub admin: Arc<Admin>,
    pub sessions: Sessions,
    pub clock: Arc<dyn Clock>,
    /// Whether the HTTP listener speaks TLS: the cookie is then `Secure`.
    pub secure: bool,
    /// Where clients get tokens, told to the creator of a client.
    pub token_endpoint: String,
}

/// The console's routes, every answer with the console's security headers.
pub fn router(console: Console) -> Router {
    Router::new()
        .route(CONSOLE_PATH, get(|| async { Redirect::to("/console/keys") }))
        .route("/console/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/console/sign-out", axum::routing::post(sign_in::sign_out))
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/new", get(keys::new))
        .route("/console/keys/{key_id}", get(keys::show).post(keys::update))
        .route("/console/keys/{key_id}/rotate", axum::routing::post(keys::rotate))
        .route("/console/keys/{key_id}/disable", get(keys::confirm_disable).post(keys::disable))
        .route("/console/clients", get(clients::list).post(clients::create))
        .route("/console/clients/new", get(clients::new))
        .route("/console/clients/{client_id}", get(clients::show).post(clients::update))
        .route("/console/clients/{client_id}/regenerate", get(clients::confirm_regenerate).post(clients::regenerate))
        .route("/console/clients/{client_id}/disable", get(clients::confirm_disable).post(clients::disable))
        .route("/console/organizations", get(organizations::list).post(organizations::create))
        .route("/console/organizations/{slug}", get(organizations::show).post(organizations::update))
        .route("/console/audit", get(audit::list))
        .route("/console/assets/{name}", get(assets::serve))
        // Not a fallback: the router is merged with the API's, which has its own.
        .route("/console/{*rest}", get(|| async { page::not_found() }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
        .layer(middleware::from_fn(secured))
        .with_state(Arc::new(console))
}

/// The headers every console answer carries: nothing from elsewhere runs, nothing frames the
/// page, nothing is cached (a page may show a secret once).
async fn secured(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
               form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: browsers then send `Origin: null` with the console's own forms.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The session token in a request's cookies.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

/// A request from a signed-in admin: its session, who the admin is now (read again on every
/// request, so that a disabled credential signs out at once), and the context the admin use
/// cases take. Anyone else is sent to the sign-in page.
pub struct Signed {
    pub session: Arc<Session>,
    pub identity: AdminIdentity,
    pub ctx: AdminContext,
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let Some(token) = session_token(&parts.headers) else { return Err(to_sign_in()) };
        let Some(session) = console.sessions.find(&token, console.clock.now()).await else {
            return Err(to_sign_in());
        };
        let ctx = AdminContext { credentials: session.credentials.clone(), origin: request_origin(parts) };
        match console.admin.identity(&ctx).await {
            Ok(identity) => Ok(Self { session, identity, ctx }),
            Err(CoreError::Unauthenticated(_) | CoreError::PermissionDenied(_)) => {
                // The credential was disabled, expired or lost its admin scopes: so is the session.
                console.sessions.end(&token).await;
                Err(to_sign_in())
            }
            Err(err) => Err(page::failure(&err)),
        }
    }
}

impl Signed {
    /// The refusal of a form that does not carry this session's CSRF token (403, nothing
    /// changed); `None` when it does.
    fn csrf_refusal(&self, form: &form::Form) -> Option<Response> {
        if sessions::same_token(&form.text("csrf"), &self.session.csrf) {
            return None;
        }
        Some(page::refused(
            StatusCode::FORBIDDEN,
            "This form did not come from this console session (its CSRF token is missing or wrong). Nothing was changed.",
        ))
    }
}

/// A form posted by a signed-in admin, with this session's CSRF token: the only way a console
/// handler gets a posted form, so that no state-changing page can forget the check. A form
/// without the token is refused (403) before the handler runs.
pub struct Posted {
    pub signed: Signed,
    pub form: form::Form,
}

impl FromRequest<Arc<Console>> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Arc<Console>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, console).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), console)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = form::Form::parse(&body);
        match signed.csrf_refusal(&form) {
            Some(refused) => Err(refused),
            None => Ok(Self { signed, form }),
        }
    }
}
