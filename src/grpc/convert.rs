//! Conversions between generated protobuf types and the core's types, all in one place.

use chrono::{DateTime, Utc};

use crate::core::admin::KeyView;
use crate::core::model::{
    ApiClientRecord, ClientStatus, Credentials, Decision, KeyStatus, Organization, Principal, PrincipalKind, Reason,
};
use crate::core::tokens::AccessToken;
use crate::proto::keygate_v1 as pb;

/// A protobuf timestamp for a core time.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0) }
}

fn optional_timestamp(at: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    at.map(timestamp)
}

pub fn credentials(credentials: Option<pb::Credentials>) -> Credentials {
    credentials.map(|c| Credentials { authorization: c.authorization, api_key: c.api_key }).unwrap_or_default()
}

pub fn principal(principal: Principal) -> pb::Principal {
    let kind = match principal.kind {
        PrincipalKind::ApiKey => pb::principal::Type::ApiKey,
        PrincipalKind::Client => pb::principal::Type::Client,
        PrincipalKind::User => pb::principal::Type::User,
    };
    pb::Principal {
        r#type: kind.into(),
        key_id: principal.id,
        organization: principal.organization,
        scopes: principal.scopes,
        name: principal.name,
        expires_at: Some(timestamp(principal.expires_at)),
    }
}

fn reason(reason: Reason) -> pb::DecisionReason {
    match reason {
        Reason::Allowed => pb::DecisionReason::Allowed,
        Reason::MissingApiKey => pb::DecisionReason::MissingApiKey,
        Reason::InvalidApiKey => pb::DecisionReason::InvalidApiKey,
        Reason::ExpiredApiKey => pb::DecisionReason::ExpiredApiKey,
        Reason::InsufficientScope => pb::DecisionReason::InsufficientScope,
        Reason::OrganizationMismatch => pb::DecisionReason::OrganizationMismatch,
        Reason::InvalidToken => pb::DecisionReason::InvalidToken,
        Reason::ExpiredToken => pb::DecisionReason::ExpiredToken,
        Reason::RevokedToken => pb::DecisionReason::RevokedToken,
        Reason::UntrustedIssuer => pb::DecisionReason::UntrustedIssuer,
        Reason::InvalidAudience => pb::DecisionReason::InvalidAudience,
    }
}

pub fn authorize_response(decision: Decision, request_id: String) -> pb::AuthorizeResponse {
    pb::AuthorizeResponse {
        decision: Some(pb::Decision {
            allowed: decision.allowed,
            reason: reason(decision.reason).into(),
            http_status: i32::from(decision.reason.http_status()),
            error_code: decision.reason.error_code().to_owned(),
            message: decision.message,
        }),
        principal: decision.principal.map(principal),
        request_id,
    }
}

fn status(status: KeyStatus) -> pb::api_key::Status {
    match status {
        KeyStatus::Active => pb::api_key::Status::Active,
        KeyStatus::Expired => pb::api_key::Status::Expired,
        KeyStatus::Disabled => pb::api_key::Status::Disabled,
    }
}

/// The admin view of a key: never its secret or hash.
pub fn api_key(view: KeyView) -> pb::ApiKey {
    let key = view.key;
    pb::ApiKey {
        key_id: key.key_id,
        key_prefix: key.key_prefix,
        name: key.name,
        description: key.description,
        status: status(view.status).into(),
        scopes: key.scopes,
        organization: key.organization,
        created_by: key.created_by,
        created_at: Some(timestamp(key.created_at)),
        updated_at: Some(timestamp(key.updated_at)),
        expires_at: Some(timestamp(key.expires_at)),
        last_used_at: optional_timestamp(key.last_used_at),
        last_rotated_at: optional_timestamp(key.last_rotated_at),
        previous_key_expires_at: optional_timestamp(view.previous_key_expires_at),
        disabled_at: optional_timestamp(key.disabled_at),
    }
}

pub fn organization(org: Organization) -> pb::Organization {
    pb::Organization {
        slug: org.slug,
        name: org.name,
        plan: org.plan,
        max_active_keys: i32::try_from(org.max_active_keys).unwrap_or(i32::MAX),
        platform: org.platform,
        created_at: Some(timestamp(org.created_at)),
        updated_at: Some(timestamp(org.updated_at)),
    }
}

/// The admin view of a client: never its secret or hash.
pub fn api_client(client: ApiClientRecord) -> pb::ApiClient {
    let status = match client.status() {
        ClientStatus::Active => pb::api_client::Status::Active,
        ClientStatus::Disabled => pb::api_client::Status::Disabled,
    };
    pb::ApiClient {
        client_id: client.client_id,
        name: client.name,
        description: client.description,
        status: status.into(),
        scopes: client.scopes,
        organization: client.organization,
        created_by: client.created_by,
        created_at: Some(timestamp(client.created_at)),
        updated_at: Some(timestamp(client.updated_at)),
        last_used_at: optional_timestamp(client.last_used_at),
        disabled_at: optional_timestamp(client.disabled_at),
        tokens_revoked_at: optional_timestamp(client.tokens_revoked_at),
        secret_regenerated_at: optional_timestamp(client.secret_regenerated_at),
    }
}

pub fn issue_token_response(token: AccessToken) -> pb::IssueTokenResponse {
    pb::IssueTokenResponse {
        access_token: token.token,
        expires_in: token.expires_in,
        token_type: "Bearer".to_owned(),
        scope: token.scopes.join(" "),
    }
}
