//! Discovery documents: the JWK Set (RFC 7517) and the authorization server metadata (RFC 8414).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use super::{INTROSPECTION_PATH, JWKS_PATH, TOKEN_PATH};
use keygate_core::oauth::{CLIENT_CREDENTIALS, OAuth};

/// How long verifiers may cache the JWKS. Short, because a rotation publishes a new key at once;
/// verifiers that meet an unknown `kid` fetch it again anyway.
const JWKS_MAX_AGE_SECS: u32 = 60;

/// `GET /.well-known/jwks.json`: every published signing key.
pub async fn jwks(State(oauth): State<Arc<OAuth>>) -> impl IntoResponse {
    let cache = format!("public, max-age={JWKS_MAX_AGE_SECS}");
    ([(header::CACHE_CONTROL, cache)], Json(oauth.jwks()))
}

/// `GET /.well-known/oauth-authorization-server`.
pub async fn metadata(State(oauth): State<Arc<OAuth>>) -> impl IntoResponse {
    let issuer = oauth.settings().issuer.trim_end_matches('/').to_owned();
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    Json(json!({
        "issuer": oauth.settings().issuer,
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECTION_PATH}"),
        "grant_types_supported": [CLIENT_CREDENTIALS],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
    }))
}
