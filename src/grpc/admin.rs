//! `keygate.v1.AdminService`: decode, call the admin use cases, encode.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::context::{admin_context, respond};
use super::convert;
use super::status::to_status;
use crate::proto::keygate_v1 as pb;
use crate::proto::keygate_v1::admin_service_server::AdminService;
use keygate_core::admin::Admin;
use keygate_core::error::CoreError;
use keygate_core::model::RequestOrigin;

/// The AdminService implementation.
pub struct AdminApi {
    admin: Arc<Admin>,
    /// Where clients get tokens, told to the creator of a client.
    token_endpoint: String,
}

impl AdminApi {
    pub fn new(admin: Arc<Admin>, token_endpoint: String) -> Self {
        Self { admin, token_endpoint }
    }
}

/// Encodes a use case's result, with keygate's request id either way.
fn reply<T, U>(
    result: Result<T, CoreError>,
    origin: &RequestOrigin,
    encode: impl FnOnce(T) -> U,
) -> Result<Response<U>, Status> {
    let request_id = origin.request_id.as_str();
    match result {
        Ok(value) => Ok(respond(encode(value), request_id)),
        Err(err) => {
            let client_request_id = origin.client_request_id.as_str();
            tracing::info!(request_id, client_request_id, code = ?err.code(), error = %err, "admin call failed");
            Err(to_status(&err, request_id))
        }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.create_key(&ctx, convert::new_key(request.into_inner())).await;
        reply(result, &ctx.origin, |issued| pb::CreateApiKeyResponse {
            api_key: issued.api_key,
            key: Some(convert::api_key(issued.view)),
            header_name: "X-API-Key".to_owned(),
        })
    }

    async fn get_api_key(&self, request: Request<pb::GetApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.get_key(&ctx, &request.into_inner().key_id).await;
        reply(result, &ctx.origin, convert::api_key)
    }

    async fn get_api_key_usage(
        &self,
        request: Request<pb::GetApiKeyUsageRequest>,
    ) -> Result<Response<pb::CredentialUsage>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.key_usage(&ctx, &request.into_inner().key_id).await;
        reply(result, &ctx.origin, convert::usage)
    }

    async fn get_api_client_usage(
        &self,
        request: Request<pb::GetApiClientUsageRequest>,
    ) -> Result<Response<pb::CredentialUsage>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.client_usage(&ctx, &request.into_inner().client_id).await;
        reply(result, &ctx.origin, convert::usage)
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let ctx = admin_context(&request);
        let result = match convert::key_listing(request.into_inner()) {
            Ok(listing) => self.admin.list_keys(&ctx, &listing).await,
            Err(err) => Err(err),
        };
        reply(result, &ctx.origin, |(keys, total)| pb::ListApiKeysResponse {
            api_keys: keys.into_iter().map(convert::api_key).collect(),
            total: convert::total(total),
        })
    }

    async fn update_api_key(&self, request: Request<pb::UpdateApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let ctx = admin_context(&request);
        let (key_id, changes) = convert::key_changes(request.into_inner());
        let result = self.admin.update_key(&ctx, &key_id, changes).await;
        reply(result, &ctx.origin, convert::api_key)
    }

    async fn rotate_api_key(
        &self,
        request: Request<pb::RotateApiKeyRequest>,
    ) -> Result<Response<pb::RotateApiKeyResponse>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.rotate_key(&ctx, convert::rotate_key(request.into_inner())).await;
        reply(result, &ctx.origin, |issued| pb::RotateApiKeyResponse {
            key_id: issued.view.key.key_id.clone(),
            api_key: issued.api_key,
            expires_at: Some(convert::timestamp(issued.view.key.expires_at)),
            previous_key_expires_at: issued.view.previous_key_expires_at.map(convert::timestamp),
            key: Some(convert::api_key(issued.view)),
        })
    }

    async fn disable_api_key(
        &self,
        request: Request<pb::DisableApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.disable_key(&ctx, &request.into_inner().key_id).await;
        reply(result, &ctx.origin, convert::api_key)
    }

    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.create_organization(&ctx, convert::new_organization(request.into_inner())).await;
        reply(result, &ctx.origin, convert::organization)
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.get_organization(&ctx, &request.into_inner().slug).await;
        reply(result, &ctx.origin, convert::organization)
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let ctx = admin_context(&request);
        let r = request.into_inner();
        let result = self.admin.list_organizations(&ctx, i64::from(r.offset), i64::from(r.limit)).await;
        reply(result, &ctx.origin, |(orgs, total)| pb::ListOrganizationsResponse {
            organizations: orgs.into_iter().map(convert::organization).collect(),
            total: convert::total(total),
        })
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.update_organization(&ctx, convert::organization_update(request.into_inner())).await;
        reply(result, &ctx.origin, convert::organization)
    }

    async fn create_api_client(
        &self,
        request: Request<pb::CreateApiClientRequest>,
    ) -> Result<Response<pb::CreateApiClientResponse>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.create_client(&ctx, convert::new_client(request.into_inner())).await;
        reply(result, &ctx.origin, |issued| pb::CreateApiClientResponse {
            client_id: issued.client.client_id.clone(),
            client_secret: issued.client_secret,
            client: Some(convert::api_client(issued.client)),
            token_endpoint: self.token_endpoint.clone(),
        })
    }

    async fn get_api_client(
        &self,
        request: Request<pb::GetApiClientRequest>,
    ) -> Result<Response<pb::ApiClient>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.get_client(&ctx, &request.into_inner().client_id).await;
        reply(result, &ctx.origin, convert::api_client)
    }

    async fn list_api_clients(
        &self,
        request: Request<pb::ListApiClientsRequest>,
    ) -> Result<Response<pb::ListApiClientsResponse>, Status> {
        let ctx = admin_context(&request);
        let result = match convert::client_listing(request.into_inner()) {
            Ok(listing) => self.admin.list_clients(&ctx, &listing).await,
            Err(err) => Err(err),
        };
        reply(result, &ctx.origin, |(clients, total)| pb::ListApiClientsResponse {
            clients: clients.into_iter().map(convert::api_client).collect(),
            total: convert::total(total),
        })
    }

    async fn update_api_client(
        &self,
        request: Request<pb::UpdateApiClientRequest>,
    ) -> Result<Response<pb::ApiClient>, Status> {
        let ctx = admin_context(&request);
        let (client_id, changes) = convert::client_changes(request.into_inner());
        let result = self.admin.update_client(&ctx, &client_id, changes).await;
        reply(result, &ctx.origin, convert::api_client)
    }

    async fn regenerate_client_secret(
        &self,
        request: Request<pb::RegenerateClientSecretRequest>,
    ) -> Result<Response<pb::RegenerateClientSecretResponse>, Status> {
        let ctx = admin_context(&request);
        let r = request.into_inner();
        // Unset revokes: a secret is usually regenerated because it leaked.
        let revoke_tokens = r.revoke_tokens.unwrap_or(true);
        let result = self.admin.regenerate_client_secret(&ctx, &r.client_id, revoke_tokens).await;
        reply(result, &ctx.origin, |issued| pb::RegenerateClientSecretResponse {
            client_id: issued.client.client_id,
            client_secret: issued.client_secret,
            tokens_revoked: revoke_tokens,
        })
    }

    async fn disable_api_client(
        &self,
        request: Request<pb::DisableApiClientRequest>,
    ) -> Result<Response<pb::ApiClient>, Status> {
        let ctx = admin_context(&request);
        let r = request.into_inner();
        let result = self.admin.disable_client(&ctx, &r.client_id, r.revoke_tokens).await;
        reply(result, &ctx.origin, convert::api_client)
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let ctx = admin_context(&request);
        let result = self.admin.rotate_signing_key(&ctx).await;
        reply(result, &ctx.origin, |key| pb::RotateSigningKeyResponse { kid: key.kid, algorithm: key.algorithm })
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let ctx = admin_context(&request);
        let result = match convert::audit_listing(request.into_inner()) {
            Ok(listing) => self.admin.list_audit_events(&ctx, listing).await,
            Err(err) => Err(err),
        };
        reply(result, &ctx.origin, |(events, total)| pb::ListAuditEventsResponse {
            events: events.into_iter().map(convert::audit_event).collect(),
            total: convert::total(total),
        })
    }
}
