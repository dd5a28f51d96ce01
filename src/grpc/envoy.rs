//! `envoy.service.auth.v3.Authorization`: Envoy's external authorizer. Decodes the HTTP request
//! Envoy describes, asks the gateway decision (route policy, then the engine), encodes the answer.

use std::sync::Arc;

use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::context::{request_id_from, request_span, respond};
use super::convert;
use super::status::to_status;
use crate::config::EnvoyConfig;
use crate::observability::denials;
use crate::proto::envoy_auth as envoy;
use crate::proto::envoy_auth::authorization_server::Authorization;
use keygate_core::engine::Engine;
use keygate_core::gateway;
use keygate_core::policy::Policy;

/// The fully qualified name of Envoy's authorization service, as health reports it.
pub const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// The `Check` implementation; the current route policy comes from a watch channel, so that a
/// reload takes effect on the next request.
pub struct EnvoyAuthz {
    engine: Arc<Engine>,
    policy: watch::Receiver<Arc<Policy>>,
    config: EnvoyConfig,
}

impl EnvoyAuthz {
    pub fn new(engine: Arc<Engine>, policy: watch::Receiver<Arc<Policy>>, config: EnvoyConfig) -> Self {
        Self { engine, policy, config }
    }
}

#[tonic::async_trait]
impl Authorization for EnvoyAuthz {
    async fn check(&self, request: Request<envoy::CheckRequest>) -> Result<Response<envoy::CheckResponse>, Status> {
        let traced = request_span(&request);
        let convert::EnvoyRequest { http, request_id: given_id, lookalikes } =
            convert::envoy_request(request.into_inner(), &self.config.headers);
        let request_id = request_id_from(given_id.as_deref());
        traced.record_request_id(&request_id);
        let policy = self.policy.borrow().clone();
        let span = tracing::debug_span!("check", request_id = %request_id);
        async {
            let outcome = gateway::decide(&self.engine, &policy, self.config.default_action, &http)
                .await
                .map_err(|err| to_status(&err, &request_id))?;
            let decision = &outcome.decision;
            let key_id = decision.principal.as_ref().map(|p| p.id.as_str()).unwrap_or_default();
            let route = outcome.route.as_deref().unwrap_or_default();
            traced.record_decision(decision.allowed, decision.reason.as_str());
            if decision.allowed {
                tracing::debug!(key_id, route, "allowed");
            } else if denials::may_log() {
                // The path without its query, which may carry anything.
                let path = http.path.split(['?', '#']).next().unwrap_or_default();
                tracing::info!(key_id, route, method = %http.method, path, reason = decision.reason.as_str(), "denied");
            }
            Ok(respond(convert::check_response(outcome, &request_id, &self.config, lookalikes), &request_id))
        }
        .instrument(span)
        .await
    }
}
