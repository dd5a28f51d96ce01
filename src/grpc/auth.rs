//! `keygate.v1.AuthService`: decode, ask the engine, encode.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::context::{request_id, request_span, respond};
use super::convert;
use super::status::to_status;
use crate::proto::keygate_v1 as pb;
use crate::proto::keygate_v1::auth_service_server::AuthService;
use keygate_core::engine::{AuthorizeInput, Engine};
use keygate_core::error::CoreError;
use keygate_core::model::{Credentials, Decision, ScopeMatch};
use keygate_core::oauth::{OAuth, TokenRequest};

/// What an action costs when the request does not say.
const DEFAULT_COST: u64 = 1;

/// What `Authorize` and `AcquireSlot` ask, borrowed from the request.
fn authorize_input<'a>(
    credentials: &'a Credentials,
    required_scopes: &'a [String],
    organization: &'a str,
    cost: Option<u32>,
) -> AuthorizeInput<'a> {
    AuthorizeInput {
        credentials,
        required_scopes,
        organization,
        scope_match: ScopeMatch::All,
        cost: cost.map_or(DEFAULT_COST, u64::from),
        lease: None,
    }
}

/// Allowed at debug, denied at info: one line per denial.
fn log_decision(decision: &Decision) {
    let principal = decision.principal.as_ref().map(|p| p.id.as_str()).unwrap_or_default();
    if decision.allowed {
        tracing::debug!(principal, "allowed");
    } else {
        tracing::info!(principal, reason = decision.reason.as_str(), "denied");
    }
}

/// The AuthService implementation.
pub struct AuthApi {
    engine: Arc<Engine>,
    oauth: Arc<OAuth>,
}

impl AuthApi {
    pub fn new(engine: Arc<Engine>, oauth: Arc<OAuth>) -> Self {
        Self { engine, oauth }
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let request_id = request_id(request.metadata());
        let traced = request_span(&request);
        traced.record_request_id(&request_id);
        let span = tracing::debug_span!("authenticate", request_id = %request_id);
        let credentials = convert::credentials(request.into_inner().credentials);
        async {
            match self.engine.authenticate(&credentials).await {
                Ok(Ok(principal)) => {
                    tracing::debug!(principal = %principal.id, "authenticated");
                    traced.record_decision(true, "ALLOWED");
                    let message = pb::AuthenticateResponse {
                        principal: Some(convert::principal(principal)),
                        request_id: request_id.clone(),
                    };
                    Ok(respond(message, &request_id))
                }
                Ok(Err(failure)) => {
                    tracing::info!(reason = failure.reason.as_str(), "authentication failed");
                    traced.record_decision(false, failure.reason.as_str());
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
        let traced = request_span(&request);
        traced.record_request_id(&request_id);
        let span = tracing::debug_span!("authorize", request_id = %request_id);
        let request = request.into_inner();
        let credentials = convert::credentials(request.credentials);
        let input = authorize_input(&credentials, &request.required_scopes, &request.organization, request.cost);
        async {
            let decision = self.engine.authorize(&input).await.map_err(|err| to_status(&err, &request_id))?;
            traced.record_decision(decision.allowed, decision.reason.as_str());
            log_decision(&decision);
            Ok(respond(convert::authorize_response(decision, request_id.clone()), &request_id))
        }
        .instrument(span)
        .await
    }

    async fn get_quota(&self, request: Request<pb::GetQuotaRequest>) -> Result<Response<pb::GetQuotaResponse>, Status> {
        let request_id = request_id(request.metadata());
        let span = tracing::debug_span!("get_quota", request_id = %request_id);
        let credentials = convert::credentials(request.into_inner().credentials);
        async {
            let quota = self.engine.quota(&credentials).await.map_err(|err| to_status(&err, &request_id))?;
            let quota = quota.map_err(|failure| to_status(&CoreError::Unauthenticated(failure), &request_id))?;
            Ok(respond(convert::get_quota_response(quota, request_id.clone()), &request_id))
        }
        .instrument(span)
        .await
    }

    async fn acquire_slot(
        &self,
        request: Request<pb::AcquireSlotRequest>,
    ) -> Result<Response<pb::AcquireSlotResponse>, Status> {
        let request_id = request_id(request.metadata());
        let traced = request_span(&request);
        traced.record_request_id(&request_id);
        let span = tracing::debug_span!("acquire_slot", request_id = %request_id);
        let request = request.into_inner();
        let credentials = convert::credentials(request.credentials);
        let input = authorize_input(&credentials, &request.required_scopes, &request.organization, request.cost);
        async {
            let decision = self
                .engine
                .acquire_slot(&input, request.lease_seconds)
                .await
                .map_err(|err| to_status(&err, &request_id))?;
            traced.record_decision(decision.allowed, decision.reason.as_str());
            log_decision(&decision);
            Ok(respond(convert::acquire_slot_response(decision, request_id.clone()), &request_id))
        }
        .instrument(span)
        .await
    }

    async fn release_slot(
        &self,
        request: Request<pb::ReleaseSlotRequest>,
    ) -> Result<Response<pb::ReleaseSlotResponse>, Status> {
        let request_id = request_id(request.metadata());
        let span = tracing::debug_span!("release_slot", request_id = %request_id);
        let request = request.into_inner();
        let credentials = convert::credentials(request.credentials);
        async {
            if request.slot_id.is_empty() {
                return Err(to_status(&CoreError::invalid("slot_id", "is required"), &request_id));
            }
            let released = self
                .engine
                .release_slot(&credentials, &request.slot_id)
                .await
                .map_err(|err| to_status(&err, &request_id))?
                .map_err(|failure| to_status(&CoreError::Unauthenticated(failure), &request_id))?;
            Ok(respond(pb::ReleaseSlotResponse { released, request_id: request_id.clone() }, &request_id))
        }
        .instrument(span)
        .await
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let request_id = request_id(request.metadata());
        let r = request.into_inner();
        let token_request = TokenRequest {
            grant_type: r.grant_type,
            client_id: r.client_id,
            client_secret: r.client_secret,
            scope: r.scope,
        };
        let span = tracing::debug_span!("issue_token", request_id = %request_id, client_id = %token_request.client_id);
        async {
            match self.oauth.issue_token(&token_request).await {
                Ok(token) => Ok(respond(convert::issue_token_response(token), &request_id)),
                Err(err) => {
                    tracing::info!(code = ?err.code(), error = %err, "token refused");
                    Err(to_status(&err, &request_id))
                }
            }
        }
        .instrument(span)
        .await
    }
}
