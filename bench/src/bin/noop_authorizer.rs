//! The baseline: a gRPC AuthService, and Envoy's `envoy.service.auth.v3.Authorization`, that allow
//! everything without looking, served like keygate (tonic, same request and response types), so
//! that keygate's cost can be stated as a ratio.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use envoy::authorization_server::{Authorization, AuthorizationServer};
use keygate::config::{Config, EnvoyConfig, LogConfig, LogFormat};
use keygate::grpc::convert;
use keygate::proto::envoy_auth as envoy;
use keygate::proto::keygate_v1 as pb;
use keygate_core::gateway::GatewayDecision;
use keygate_core::model::{Decision, Principal, PrincipalKind, Reason};
use pb::auth_service_server::{AuthService, AuthServiceServer};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Answers with a constant allow; `shaped` makes it the size and shape of keygate's answer to
/// the benchmark's key (a principal, the request id in the message and in metadata), to tell the
/// cost of what keygate says from the cost of deciding it.
struct Noop {
    shaped: bool,
    /// Busy work before each answer (`--spin-us=N`; none by default). A server that answers at
    /// once can lose more to small writes and wake-ups in a closed loop than a few microseconds of
    /// work cost; this shows how much.
    spin: Duration,
    /// The `Check` answer when shaped (see [`shaped_check`]).
    check_shape: Option<envoy::CheckResponse>,
}

impl Noop {
    fn work(&self) {
        // Without a spin, nothing at all: not even a clock read.
        if self.spin.is_zero() {
            return;
        }
        let until = Instant::now() + self.spin;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

/// A constant principal as long as the benchmark key's.
fn constant_principal() -> pb::Principal {
    pb::Principal {
        r#type: pb::principal::Type::ApiKey.into(),
        key_id: "k_000000000000".into(),
        organization: "platform".into(),
        scopes: vec!["graph:read".into()],
        name: "bench".into(),
        expires_at: Some(prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 }),
    }
}

#[tonic::async_trait]
impl AuthService for Noop {
    async fn authenticate(
        &self,
        _request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Ok(Response::new(pb::AuthenticateResponse::default()))
    }

    async fn authorize(
        &self,
        _request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        self.work();
        let decision = pb::Decision {
            allowed: true,
            reason: pb::DecisionReason::Allowed.into(),
            http_status: 200,
            ..Default::default()
        };
        if !self.shaped {
            return Ok(Response::new(pb::AuthorizeResponse { decision: Some(decision), ..Default::default() }));
        }
        let request_id = "00000000-0000-4000-8000-000000000000";
        let message = pb::AuthorizeResponse {
            decision: Some(decision),
            principal: Some(constant_principal()),
            request_id: request_id.into(),
            ..Default::default()
        };
        let mut response = Response::new(message);
        let mut value = tonic::metadata::MetadataValue::from_static(request_id);
        value.set_sensitive(true);
        response.metadata_mut().insert("x-request-id", value);
        Ok(response)
    }

    async fn issue_token(
        &self,
        _request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        Err(Status::unimplemented("the no-op authorizer issues no tokens"))
    }

    async fn get_quota(
        &self,
        _request: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::GetQuotaResponse>, Status> {
        Ok(Response::new(pb::GetQuotaResponse { unlimited: true, ..Default::default() }))
    }

    async fn acquire_slot(
        &self,
        _request: Request<pb::AcquireSlotRequest>,
    ) -> Result<Response<pb::AcquireSlotResponse>, Status> {
        Err(Status::unimplemented("the no-op authorizer holds no slots"))
    }

    async fn release_slot(
        &self,
        _request: Request<pb::ReleaseSlotRequest>,
    ) -> Result<Response<pb::ReleaseSlotResponse>, Status> {
        Err(Status::unimplemented("the no-op authorizer holds no slots"))
    }
}

/// What a shaped `Check` answers: keygate's own answer to the benchmark's key, encoded by
/// keygate's encoder (principal headers set, credentials removed, the decision as dynamic
/// metadata unless `--no-metadata`), so that Envoy's cost of each part can be told apart.
fn shaped_check(dynamic_metadata: bool) -> envoy::CheckResponse {
    let principal = Principal {
        kind: PrincipalKind::ApiKey,
        id: "k_000000000000".into(),
        organization: "platform".into(),
        scopes: vec!["graph:read".into()],
        name: "bench".into(),
        expires_at: chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap_or_default(),
        limits: Default::default(),
        creations_may_outlive: false,
    };
    let decision = Decision::new(true, Reason::Allowed, String::new(), Some(principal));
    let outcome = GatewayDecision { decision, route: Some("all".into()), cost: 1 };
    let config = EnvoyConfig { dynamic_metadata, ..Config::default().envoy };
    convert::check_response(outcome, "00000000-0000-4000-8000-000000000000", &config, Vec::new())
}

#[tonic::async_trait]
impl Authorization for Noop {
    async fn check(&self, _request: Request<envoy::CheckRequest>) -> Result<Response<envoy::CheckResponse>, Status> {
        self.work();
        if let Some(shape) = &self.check_shape {
            return Ok(Response::new(shape.clone()));
        }
        let ok = envoy::check_response::HttpResponse::OkResponse(envoy::OkHttpResponse::default());
        Ok(Response::new(envoy::CheckResponse {
            status: Some(envoy::RpcStatus::default()),
            http_response: Some(ok),
            ..Default::default()
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The subscriber keygate runs with under the benchmark (JSON at info): without one, tracing
    // hands every span of tonic and h2 to the `log` crate instead, which costs the baseline more
    // than keygate pays.
    keygate::observability::telemetry::init(&LogConfig { format: LogFormat::Json, level: "info".into() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let shaped = std::env::args().any(|arg| arg == "--shaped");
    let spin_us = std::env::args().find_map(|arg| arg.strip_prefix("--spin-us=").and_then(|n| n.parse().ok()));
    let spin = Duration::from_micros(spin_us.unwrap_or(0));
    let dynamic_metadata = !std::env::args().any(|arg| arg == "--no-metadata");
    let check_shape = shaped.then(|| shaped_check(dynamic_metadata));
    let noop = || Noop { shaped, spin, check_shape: check_shape.clone() };
    tonic::transport::Server::builder()
        .add_service(AuthServiceServer::new(noop()))
        .add_service(AuthorizationServer::new(noop()))
        // As keygate: no Nagle delay.
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}
