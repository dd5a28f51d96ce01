//! `keygate.v1.AuthService`: decode, ask the engine, encode.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::context::{request_id, respond};
use super::convert;
use super::status::to_status;
use crate::core::engine::{AuthorizeInput, Engine};
use crate::core::error::CoreError;
use crate::core::model::ScopeMatch;
use crate::proto::keygate_v1 as pb;
use crate::proto::keygate_v1::auth_service_server::AuthService;

/// The AuthService implementation.
pub struct AuthApi {
    engine: Arc<Engine>,
}

impl AuthApi {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let request_id = request_id(request.metadata());
        let span = tracing::debug_span!("authenticate", request_id = %request_id);
        let credentials = convert::credentials(request.into_inner().credentials);
        async {
            match self.engine.authenticate(&credentials).await {
                Ok(Ok(principal)) => {
                    tracing::debug!(key_id = %principal.id, "authenticated");
                    let message = pb::AuthenticateResponse {
                        principal: Some(convert::principal(principal)),
                        request_id: request_id.clone(),
                    };
                    Ok(respond(message, &request_id))
                }
                Ok(Err(failure)) => {
                    tracing::info!(reason = failure.reason.as_str(), "authentication failed");
                    Err(to_status(&CoreError::Unauthenticated(failure), &request_id))
                }
                Err(err) => Err(to_status(&err, &request_id)),
            }
        }
        .instrument(span)
        .await
    }

    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let request_id = request_id(request.metadata());
        let span = tracing::debug_span!("authorize", request_id = %request_id);
        let request = request.into_inner();
        let input = AuthorizeInput {
            credentials: convert::credentials(request.credentials),
            required_scopes: request.required_scopes,
            organization: request.organization,
            scope_match: ScopeMatch::All,
        };
        async {
            let decision = self.engine.authorize(&input).await.map_err(|err| to_status(&err, &request_id))?;
            let key_id = decision.principal.as_ref().map(|p| p.id.as_str()).unwrap_or_default();
            if decision.allowed {
                tracing::debug!(key_id, "allowed");
            } else {
                tracing::info!(key_id, reason = decision.reason.as_str(), "denied");
            }
            Ok(respond(convert::authorize_response(decision, request_id.clone()), &request_id))
        }
        .instrument(span)
        .await
    }
}
