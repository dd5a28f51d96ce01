//! The gRPC edge: services that decode, call the core and encode; and the server assembly.

pub mod admin;
pub mod auth;
mod call;
pub mod context;
pub mod convert;
pub mod envoy;
pub mod metered;
pub mod status;
pub mod traced;
pub mod undecodable;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;

use crate::observability::metrics::Metrics;
use crate::proto::{self, keygate_v1 as pb};
use crate::transport::Transport;
use crate::transport::tls::TlsIncoming;
use keygate_core::admin::Admin;
use keygate_core::engine::Engine;
use keygate_core::oauth::OAuth;

/// The services that decide, as health reports them: readiness probes and Envoy's health checks
/// name one of these.
pub const DECISION_SERVICES: &[&str] = &["keygate.v1.AuthService", envoy::SERVICE_NAME];
/// The admin service, as health reports it.
pub const ADMIN_SERVICE: &str = "keygate.v1.AdminService";

/// Errors assembling or running the gRPC server.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The use cases the gRPC services call.
pub struct Services {
    pub engine: Arc<Engine>,
    pub admin: Arc<Admin>,
    pub oauth: Arc<OAuth>,
    /// Envoy's `Check`, over the same engine.
    pub envoy_authz: envoy::EnvoyAuthz,
    /// The token endpoint's URL, which `CreateApiClient` tells new clients.
    pub token_endpoint: String,
}

/// Serves AuthService, AdminService, Envoy's Authorization, health and reflection (v1 and
/// v1alpha; keygate's own services) on `listener` until `shutdown` completes, then lets in-flight
/// calls finish.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    metrics: Arc<Metrics>,
    transport: Transport,
    health: tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let Services { engine, admin, oauth, envoy_authz, token_endpoint } = services;
    let mut routes = Routes::builder();
    routes
        .add_service(pb::auth_service_server::AuthServiceServer::new(auth::AuthApi::new(engine, oauth)))
        .add_service(pb::admin_service_server::AdminServiceServer::new(admin::AdminApi::new(admin, token_endpoint)))
        .add_service(proto::envoy_auth::authorization_server::AuthorizationServer::new(envoy_authz))
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    let server = Server::builder()
        .layer(traced::TracedLayer { enabled: transport.traced })
        .layer(metered::MeteredLayer(metrics))
        // Innermost, so that metrics and traces see the rewritten status.
        .layer(undecodable::UndecodableLayer)
        .add_routes(routes.routes());
    match transport.tls {
        // No Nagle delay: a response's headers, message and trailers are small separate writes.
        None => {
            server.serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown).await?
        }
        Some(tls) => server.serve_with_incoming_shutdown(TlsIncoming::new(listener, tls), shutdown).await?,
    }
    Ok(())
}

/// What this replica can do, as grpc.health.v1 reports it per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Whether the process serves at all: the server-wide status (`""`), which liveness probes
    /// read. It never depends on the database or Redis, so an outage restarts nothing.
    pub alive: bool,
    /// Whether decisions can be made: `keygate.v1.AuthService` and Envoy's Authorization. A
    /// database outage leaves them serving (cached credentials are decided, uncached ones answer
    /// UNAVAILABLE); draining and refusing counters (Redis down, failing closed) do not.
    pub decide: bool,
    /// Whether the admin use cases can run: `keygate.v1.AdminService`, which needs the database.
    pub admin: bool,
}

impl Readiness {
    /// From SIGTERM on: alive (liveness passes through the drain), nothing else.
    pub const DRAINING: Self = Self { alive: true, decide: false, admin: false };
}

/// The health reporter, and whether this replica is draining: once it is, nothing reports it
/// ready again (a probe finishing late cannot undo a SIGTERM).
pub struct HealthState {
    reporter: HealthReporter,
    draining: tokio::sync::Mutex<bool>,
}

impl HealthState {
    pub fn new(reporter: HealthReporter) -> Self {
        Self { reporter, draining: tokio::sync::Mutex::new(false) }
    }

    /// Reports `readiness`, unless draining has begun.
    pub async fn set(&self, readiness: Readiness) {
        let draining = self.draining.lock().await;
        if !*draining {
            report(&self.reporter, readiness).await;
        }
    }

    /// Reports [`Readiness::DRAINING`] from now on.
    pub async fn drain(&self) {
        let mut draining = self.draining.lock().await;
        *draining = true;
        report(&self.reporter, Readiness::DRAINING).await;
    }
}

/// Reports `readiness` for the server as a whole and each of keygate's services.
pub async fn report(reporter: &HealthReporter, readiness: Readiness) {
    let status = |serving: bool| {
        if serving { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing }
    };
    reporter.set_service_status("", status(readiness.alive)).await;
    for name in DECISION_SERVICES {
        reporter.set_service_status(*name, status(readiness.decide)).await;
    }
    reporter.set_service_status(ADMIN_SERVICE, status(readiness.admin)).await;
}
