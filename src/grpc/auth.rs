//! `keygate.v1.AuthService`: decode, ask the engine, encode. [`Call`] gives each handler its
//! request id, spans and error mapping.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use super::convert;
use crate::proto::keygate_v1 as pb;
use crate::proto::keygate_v1::auth_service_server::AuthService;
use keygate_core::engine::Engine;
use keygate_core::error::CoreError;
use keygate_core::model::Reason;
use keygate_core::oauth::OAuth;

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
        let call = Call::start(&request);
        let span = tracing::debug_span!("authenticate", request_id = %call.id());
        let credentials = convert::credentials(request.into_inner().credentials);
        call.run(span, async {
            match self.engine.authenticate(&credentials).await? {
                Ok(principal) => {
                    tracing::debug!(principal = %principal.id, "authenticated");
                    call.authenticated(Reason::Allowed);
                    Ok(convert::authenticate_response(principal, call.id().to_owned()))
                }
                Err(failure) => {
                    tracing::info!(reason = failure.reason.as_str(), "authentication failed");
                    call.authenticated(failure.reason);
                    Err(CoreError::Unauthenticated(failure))
                }
            }
        })
        .await
    }

    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let call = Call::start(&request);
        let span = tracing::debug_span!("authorize", request_id = %call.id());
        let request = request.into_inner();
        let credentials = convert::credentials(request.credentials);
        let input =
            convert::authorize_input(&credentials, &request.required_scopes, &request.organization, request.cost);
        call.run(span, async {
            let decision = self.engine.authorize(&input).await?;
            call.decided(&decision);
            Ok(convert::authorize_response(decision, call.id().to_owned()))
        })
        .await
    }

    async fn get_quota(&self, request: Request<pb::GetQuotaRequest>) -> Result<Response<pb::GetQuotaResponse>, Status> {
        let call = Call::start(&request);
        let span = tracing::debug_span!("get_quota", request_id = %call.id());
        let credentials = convert::credentials(request.into_inner().credentials);
        call.run(span, async {
            let quota = self.engine.quota(&credentials).await?.map_err(CoreError::Unauthenticated)?;
            Ok(convert::get_quota_response(quota, call.id().to_owned()))
        })
        .await
    }

    async fn acquire_slot(
        &self,
        request: Request<pb::AcquireSlotRequest>,
    ) -> Result<Response<pb::AcquireSlotResponse>, Status> {
        let call = Call::start(&request);
        let span = tracing::debug_span!("acquire_slot", request_id = %call.id());
        let request = request.into_inner();
        let credentials = convert::credentials(request.credentials);
        let input =
            convert::authorize_input(&credentials, &request.required_scopes, &request.organization, request.cost);
        call.run(span, async {
            let decision = self.engine.acquire_slot(&input, request.lease_seconds).await?;
            call.decided(&decision);
            Ok(convert::acquire_slot_response(decision, call.id().to_owned()))
        })
        .await
    }

    async fn release_slot(
        &self,
        request: Request<pb::ReleaseSlotRequest>,
    ) -> Result<Response<pb::ReleaseSlotResponse>, Status> {
        let call = Call::start(&request);
        let span = tracing::debug_span!("release_slot", request_id = %call.id());
        let request = request.into_inner();
        let credentials = convert::credentials(request.credentials);
        call.run(span, async {
            if request.slot_id.is_empty() {
                return Err(CoreError::invalid("slot_id", "is required"));
            }
            let released =
                self.engine.release_slot(&credentials, &request.slot_id).await?.map_err(CoreError::Unauthenticated)?;
            Ok(pb::ReleaseSlotResponse { released, request_id: call.id().to_owned() })
        })
        .await
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let call = Call::start(&request);
        let token_request = convert::token_request(request.into_inner());
        let span = tracing::debug_span!("issue_token", request_id = %call.id(), client_id = %token_request.client_id);
        call.run(span, async {
            let token = self.oauth.issue_token(&token_request).await.inspect_err(|err| {
                tracing::info!(code = ?err.code(), error = %err, "token refused");
            })?;
            Ok(convert::issue_token_response(token))
        })
        .await
    }
}
