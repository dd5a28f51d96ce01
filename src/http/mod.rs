//! The HTTP edge, for OAuth2 clients and token verifiers: the token endpoint, introspection, the
//! JWK Set and the authorization server metadata; the REST admin API ([`admin`]); and `/metrics`
//! for Prometheus; the admin console ([`console`]). Handlers decode, call the core, encode.

pub mod admin;
pub mod console;
mod discovery;
mod oauth;

#[doc(hidden)]
pub use oauth::{introspection_request, token_request};

use std::future::Future;
use std::sync::Arc;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry::context::FutureExt as _;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::observability::metrics::{Edge, Metrics};
use crate::observability::telemetry;
use crate::transport::tls::TlsListener;
use crate::transport::{PeerAddr, Transport};
use admin::AdminRest;
use console::Console;
use keygate_core::oauth::OAuth;

/// Where clients get tokens.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Where resource servers ask whether a token is active (RFC 7662).
pub const INTROSPECTION_PATH: &str = "/oauth/introspect";
/// The JWK Set of keygate's signing keys (RFC 7517).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The authorization server metadata (RFC 8414).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Prometheus metrics in the OpenMetrics text format.
pub const METRICS_PATH: &str = "/metrics";

/// What the public routes are given.
pub struct Edges {
    pub oauth: Arc<OAuth>,
    pub rest: AdminRest,
    /// `None` when the console is turned off.
    pub console: Option<Console>,
    pub metrics: Arc<Metrics>,
    /// Whether `/metrics` is served here, having no listener of its own.
    pub with_metrics: bool,
}

/// The public routes, over the OAuth and admin use cases, the console when on, and `/metrics`
/// unless it has a listener of its own; every request counted and timed.
pub fn router(edges: Edges) -> Router {
    let Edges { oauth, rest, console, metrics, with_metrics } = edges;
    let mut oauth_routes = Router::new()
        .route(TOKEN_PATH, post(oauth::token))
        .route(INTROSPECTION_PATH, post(oauth::introspect))
        .route(JWKS_PATH, get(discovery::jwks))
        .route(METADATA_PATH, get(discovery::metadata))
        .with_state(oauth)
        .merge(admin::router(rest));
    if let Some(console) = console {
        oauth_routes = oauth_routes.merge(console::router(console));
    }
    let routes = if with_metrics { metrics_router(metrics.clone()).merge(oauth_routes) } else { oauth_routes };
    routes.layer(middleware::from_fn_with_state(metrics, metered)).layer(middleware::map_response(closes_unread))
}

/// A 413 leaves the rest of its body unread on the connection, so hyper closes it after the
/// answer; saying so (`Connection: close`) keeps a client from sending its next request on a
/// connection about to close, which it would see dropped without an answer.
async fn closes_unread(mut response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(METRICS_PATH, get(render_metrics)).with_state(metrics)
}

/// `GET /metrics`.
async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], metrics.render())
}

/// Counts and times a request by its route (unknown paths are one label, `other`).
async fn metered(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("other", MatchedPath::as_str).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.request(Edge::Http, &route, response.status().as_str().to_owned().into(), started.elapsed());
    response
}

/// Runs a request in its own span (see [`crate::observability::telemetry`]), joined to the caller's trace.
async fn traced(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("other", MatchedPath::as_str);
    let span = telemetry::http_span(request.headers(), request.method(), route);
    let response = next.run(request).instrument(span.clone()).await;
    telemetry::record_http_status(&span, response.status());
    response
}

/// When spans are not exported: runs a request whose caller sent `traceparent` in the caller's
/// trace, for the log lines' trace id.
async fn in_callers_trace(request: Request, next: Next) -> Response {
    match telemetry::caller_context(request.headers()) {
        Some(caller) => next.run(request).with_context(caller).await,
        None => next.run(request).await,
    }
}

/// Serves `/metrics` alone on `listener` (`metrics_addr`), in plain HTTP: a private port for
/// the scraper, kept apart from the public token endpoint; until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let routes = metrics_router(metrics.clone()).layer(middleware::from_fn_with_state(metrics, metered));
    axum::serve(listener, routes).with_graceful_shutdown(shutdown).await
}

/// Serves the public routes on `listener` (over TLS when `transport` says so) until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    edges: Edges,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut routes = router(edges);
    routes = if transport.traced {
        routes.layer(middleware::from_fn(self::traced))
    } else {
        routes.layer(middleware::from_fn(self::in_callers_trace))
    };
    match transport.tls {
        // The peer's address reaches the admin API's audit entries.
        None => {
            let routes = routes.into_make_service_with_connect_info::<PeerAddr>();
            axum::serve(listener, routes).with_graceful_shutdown(shutdown).await
        }
        Some(tls) => {
            let routes = routes.into_make_service_with_connect_info::<PeerAddr>();
            axum::serve(TlsListener::new(listener, tls), routes).with_graceful_shutdown(shutdown).await
        }
    }
}
