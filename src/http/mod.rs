//! The HTTP edge, for OAuth2 clients and token verifiers: the token endpoint, introspection, the
//! JWK Set and the authorization server metadata. Handlers decode, call the core, encode.

mod discovery;
mod oauth;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::core::oauth::OAuth;

/// Where clients get tokens.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Where resource servers ask whether a token is active (RFC 7662).
pub const INTROSPECTION_PATH: &str = "/oauth/introspect";
/// The JWK Set of keygate's signing keys (RFC 7517).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The authorization server metadata (RFC 8414).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// The routes, over the OAuth use cases.
pub fn router(oauth: Arc<OAuth>) -> Router {
    Router::new()
        .route(TOKEN_PATH, post(oauth::token))
        .route(INTROSPECTION_PATH, post(oauth::introspect))
        .route(JWKS_PATH, get(discovery::jwks))
        .route(METADATA_PATH, get(discovery::metadata))
        .with_state(oauth)
}

/// Serves the routes on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    oauth: Arc<OAuth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(oauth)).with_graceful_shutdown(shutdown).await
}
