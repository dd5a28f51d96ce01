//! Conversions between generated protobuf types and the core's types, all in one place.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::context::REQUEST_ID_HEADER;
use crate::config::{EnvoyConfig, EnvoyHeaders};
use crate::proto::envoy_auth as envoy;
use crate::proto::keygate_v1 as pb;
use keygate_core::admin::audit::AuditListing;
use keygate_core::admin::clients::NewClient;
use keygate_core::admin::usage::CredentialUsage;
use keygate_core::admin::{KeyView, ListRequest, NewKey, NewOrganization, OrganizationUpdate, RotateKey};
use keygate_core::engine::AuthorizeInput;
use keygate_core::error::CoreError;
use keygate_core::gateway::{GatewayDecision, HttpRequest};
use keygate_core::model::{
    ApiClientRecord, AuditEntry, ClientStatus, Credentials, Decision, KeyStatus, Labels, LimitOverrides, LimitState,
    Organization, Principal, PrincipalKind, QuotaState, RateState, Reason, ScopeMatch,
};
use keygate_core::oauth::TokenRequest;
use keygate_core::ports::KeyChanges;
use keygate_core::tokens::AccessToken;

/// What an action costs when the request does not say.
const DEFAULT_COST: u64 = 1;

/// What `Authorize` and `AcquireSlot` ask, borrowed from the request.
pub fn authorize_input<'a>(
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

pub fn authenticate_response(principal: Principal, request_id: String) -> pb::AuthenticateResponse {
    pb::AuthenticateResponse { principal: Some(self::principal(principal)), request_id }
}

pub fn token_request(request: pb::IssueTokenRequest) -> TokenRequest {
    TokenRequest {
        grant_type: request.grant_type,
        client_id: request.client_id,
        client_secret: request.client_secret,
        scope: request.scope,
    }
}

pub fn new_key(request: pb::CreateApiKeyRequest) -> NewKey {
    NewKey {
        name: request.name,
        description: request.description,
        scopes: request.scopes,
        expires_in_days: request.expires_in_days.map(i64::from),
        organization: request.organization,
        limits: limits(request.limits),
        labels: request.labels,
    }
}

/// What `ListApiKeys` asks for; an unknown status or a bad time is INVALID_ARGUMENT naming it.
pub fn key_listing(request: pb::ListApiKeysRequest) -> Result<ListRequest, CoreError> {
    let status = match pb::api_key::Status::try_from(request.status) {
        Ok(pb::api_key::Status::Unspecified) => None,
        Ok(pb::api_key::Status::Active) => Some(KeyStatus::Active),
        Ok(pb::api_key::Status::Expired) => Some(KeyStatus::Expired),
        Ok(pb::api_key::Status::Disabled) => Some(KeyStatus::Disabled),
        Err(_) => return Err(CoreError::invalid("status", "is not a key status")),
    };
    let page = (request.search, request.offset, request.limit, request.organization);
    let listing = list_request(page, request.unused_since, request.labels)?;
    Ok(ListRequest { status, expiring_within_days: request.expiring_within_days.map(i64::from), ..listing })
}

/// What `ListApiClients` asks for; an unknown status or a bad time is INVALID_ARGUMENT naming it.
pub fn client_listing(request: pb::ListApiClientsRequest) -> Result<ListRequest, CoreError> {
    let status = match pb::api_client::Status::try_from(request.status) {
        Ok(pb::api_client::Status::Unspecified) => None,
        Ok(pb::api_client::Status::Active) => Some(KeyStatus::Active),
        Ok(pb::api_client::Status::Disabled) => Some(KeyStatus::Disabled),
        Err(_) => return Err(CoreError::invalid("status", "is not a client status")),
    };
    let page = (request.search, request.offset, request.limit, request.organization);
    Ok(ListRequest { status, ..list_request(page, request.unused_since, request.labels)? })
}

/// What both lists share: (search, offset, limit, organization) and two filters.
fn list_request(
    (search, offset, limit, organization): (String, i32, i32, String),
    unused_since: Option<prost_types::Timestamp>,
    labels: Labels,
) -> Result<ListRequest, CoreError> {
    Ok(ListRequest {
        search,
        offset: i64::from(offset),
        limit: i64::from(limit),
        organization,
        unused_since: datetime(unused_since, "unused_since")?,
        labels,
        ..ListRequest::default()
    })
}

/// The key an update names, and the changes it asks for.
pub fn key_changes(r: pb::UpdateApiKeyRequest) -> (String, KeyChanges) {
    (r.key_id, changes(r.name, r.description, r.scopes, r.limits, r.reset_limits, r.labels))
}

/// The client an update names, and the changes it asks for.
pub fn client_changes(r: pb::UpdateApiClientRequest) -> (String, KeyChanges) {
    (r.client_id, changes(r.name, r.description, r.scopes, r.limits, r.reset_limits, r.labels))
}

/// The changes of an update: a key's and a client's have the same fields.
fn changes(
    name: Option<String>,
    description: Option<String>,
    scopes: Option<pb::ScopeList>,
    limits_set: Option<pb::Limits>,
    reset_limits: Vec<String>,
    labels: Option<pb::LabelMap>,
) -> KeyChanges {
    KeyChanges {
        name,
        description,
        scopes: scopes.map(|s| s.values),
        limits: limits(limits_set),
        reset_limits,
        labels: labels.map(|l| l.values),
    }
}

pub fn rotate_key(request: pb::RotateApiKeyRequest) -> RotateKey {
    RotateKey {
        key_id: request.key_id,
        grace_period_days: request.grace_period_days.map(i64::from),
        expires_in_days: request.expires_in_days.map(i64::from),
    }
}

pub fn new_organization(request: pb::CreateOrganizationRequest) -> NewOrganization {
    NewOrganization { slug: request.slug, name: request.name, plan: request.plan }
}

pub fn organization_update(request: pb::UpdateOrganizationRequest) -> OrganizationUpdate {
    OrganizationUpdate { slug: request.slug, name: request.name, plan: request.plan }
}

pub fn new_client(request: pb::CreateApiClientRequest) -> NewClient {
    NewClient {
        name: request.name,
        description: request.description,
        scopes: request.scopes,
        organization: request.organization,
        limits: limits(request.limits),
        labels: request.labels,
    }
}

/// A total for a list response.
pub fn total(total: u64) -> i64 {
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// A protobuf timestamp for a core time.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0) }
}

fn optional_timestamp(at: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    at.map(timestamp)
}

/// A core time for an optional protobuf timestamp from field `field`; INVALID_ARGUMENT when it is
/// out of range.
fn datetime(at: Option<prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, CoreError> {
    let Some(at) = at else { return Ok(None) };
    let nanos = u32::try_from(at.nanos).ok().filter(|n| *n < 1_000_000_000);
    nanos
        .and_then(|nanos| DateTime::from_timestamp(at.seconds, nanos))
        .map(Some)
        .ok_or_else(|| CoreError::invalid(field, "is not a valid timestamp"))
}

/// What `ListAuditEvents` asks for.
pub fn audit_listing(request: pb::ListAuditEventsRequest) -> Result<AuditListing, CoreError> {
    let start = datetime(request.start_time, "start_time");
    let end = datetime(request.end_time, "end_time");
    let (start, end) = match (start, end) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(CoreError::InvalidArgument(mut first)), Err(CoreError::InvalidArgument(second))) => {
            first.extend(second);
            return Err(CoreError::InvalidArgument(first));
        }
        (Err(err), _) | (_, Err(err)) => return Err(err),
    };
    Ok(AuditListing {
        start,
        end,
        actor: request.actor,
        action: request.action,
        target: request.target,
        organization: request.organization,
        offset: i64::from(request.offset),
        limit: i64::from(request.limit),
    })
}

/// An audit entry as `ListAuditEvents` shows it.
pub fn audit_event(entry: AuditEntry) -> pb::AuditEvent {
    pb::AuditEvent {
        id: entry.id,
        time: Some(timestamp(entry.at)),
        actor: entry.actor,
        actor_kind: entry.actor_kind,
        organization: entry.organization,
        action: entry.action,
        target: entry.target,
        outcome: entry.outcome,
        request_id: entry.request_id,
        peer: entry.peer,
        client_request_id: entry.client_request_id,
    }
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
        Reason::RouteNotAllowed => pb::DecisionReason::RouteNotAllowed,
        Reason::RateLimited => pb::DecisionReason::RateLimited,
        Reason::QuotaExceeded => pb::DecisionReason::QuotaExceeded,
        Reason::ConcurrencyLimit => pb::DecisionReason::ConcurrencyLimit,
        Reason::InsufficientMaxQuota => pb::DecisionReason::InsufficientMaxQuota,
        Reason::UntrustedOrganization => pb::DecisionReason::UntrustedOrganization,
        Reason::InvalidPath => pb::DecisionReason::InvalidPath,
    }
}

/// Whole seconds, rounded up: waiting a fraction less than asked would be refused again.
fn whole_seconds(duration: Duration) -> u32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(seconds).unwrap_or(u32::MAX)
}

/// A credential's limits from an admin request.
pub fn limits(limits: Option<pb::Limits>) -> LimitOverrides {
    let limits = limits.unwrap_or_default();
    LimitOverrides {
        rate_per_minute: limits.rate_limit_per_minute,
        rate_burst: limits.rate_limit_burst,
        max_quota: limits.max_quota,
        max_concurrency: limits.max_concurrency,
    }
}

fn limits_message(limits: LimitOverrides) -> pb::Limits {
    pb::Limits {
        rate_limit_per_minute: limits.rate_per_minute,
        rate_limit_burst: limits.rate_burst,
        max_quota: limits.max_quota,
        max_concurrency: limits.max_concurrency,
    }
}

fn rate_limit(state: RateState) -> pb::RateLimit {
    pb::RateLimit { limit: state.limit, remaining: state.remaining, reset_seconds: whole_seconds(state.reset_after) }
}

/// A quota's state; the wire's `quota` is what is left.
/// A credential's recent use.
pub fn usage(usage: CredentialUsage) -> pb::CredentialUsage {
    let day = |(day, requests): (chrono::NaiveDate, u64)| pb::DailyUsage { day: day.to_string(), requests };
    pb::CredentialUsage { days: usage.days.into_iter().map(day).collect(), quota: usage.quota.map(quota) }
}

fn quota(state: QuotaState) -> pb::Quota {
    pb::Quota {
        quota: state.remaining,
        max_quota: state.max_quota,
        next_window_refresh: Some(timestamp(state.refresh_at)),
    }
}

fn decision_message(decision: &mut Decision) -> pb::Decision {
    pb::Decision {
        allowed: decision.allowed,
        reason: reason(decision.reason).into(),
        http_status: i32::from(decision.reason.http_status()),
        error_code: decision.reason.error_code().to_owned(),
        message: std::mem::take(&mut decision.message),
        retry_after_seconds: decision.retry_after.map(whole_seconds).unwrap_or_default(),
    }
}

/// `GetQuota`'s answer: the quota, or that there is none.
pub fn get_quota_response(state: Option<QuotaState>, request_id: String) -> pb::GetQuotaResponse {
    match state.map(quota) {
        Some(pb::Quota { quota, max_quota, next_window_refresh }) => {
            pb::GetQuotaResponse { quota, max_quota, next_window_refresh, unlimited: false, request_id }
        }
        None => pb::GetQuotaResponse { unlimited: true, request_id, ..Default::default() },
    }
}

pub fn acquire_slot_response(mut decision: Decision, request_id: String) -> pb::AcquireSlotResponse {
    let LimitState { rate, quota: quota_state } = decision.limits;
    let slot = decision.slot.take();
    pb::AcquireSlotResponse {
        decision: Some(decision_message(&mut decision)),
        principal: decision.principal.map(principal),
        slot_id: slot.as_ref().map(|slot| slot.id.clone()).unwrap_or_default(),
        lease_expires_at: slot.map(|slot| timestamp(slot.expires_at)),
        rate_limit: rate.map(rate_limit),
        quota: quota_state.map(quota),
        request_id,
    }
}

pub fn authorize_response(mut decision: Decision, request_id: String) -> pb::AuthorizeResponse {
    let LimitState { rate, quota: quota_state } = decision.limits;
    pb::AuthorizeResponse {
        decision: Some(decision_message(&mut decision)),
        principal: decision.principal.map(principal),
        request_id,
        rate_limit: rate.map(rate_limit),
        quota: quota_state.map(quota),
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
        limits: Some(limits_message(key.limits)),
        labels: key.labels,
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
        limits: Some(limits_message(client.limits)),
        labels: client.labels,
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

// --- Envoy ext_authz (`envoy.service.auth.v3`) ---

/// What keygate reads from Envoy's `CheckRequest`.
#[derive(Debug, Default)]
pub struct EnvoyRequest {
    pub http: HttpRequest,
    /// Envoy's `x-request-id`, when it sent one.
    pub request_id: Option<String>,
    /// Headers the client sent whose names differ from keygate's own (`envoy.headers.*`) only in
    /// case, `_` or `-` (`x-keygate-principal_id`): CGI/WSGI-style upstreams read them as the
    /// real ones, so they are removed before the request goes on.
    pub lookalikes: Vec<String>,
}

/// The HTTP request inside Envoy's `CheckRequest`, with the credentials read from the configured
/// headers.
pub fn envoy_request(check: envoy::CheckRequest, names: &EnvoyHeaders) -> EnvoyRequest {
    let http = check.attributes.and_then(|a| a.request).and_then(|r| r.http).unwrap_or_default();
    let mut headers = http.headers;
    // With `encode_raw_headers`, Envoy sends the headers here instead (as bytes).
    for header in http.header_map.map(|map| map.headers).unwrap_or_default() {
        let value =
            if header.raw_value.is_empty() { header.value } else { String::from_utf8_lossy(&header.raw_value).into() };
        headers.entry(header.key.to_ascii_lowercase()).or_insert(value);
    }
    let lookalikes = lookalikes(headers.keys().map(String::as_str), names);
    let mut take = |name: &str| headers.remove(name).unwrap_or_default();
    let credentials = Credentials { authorization: take(&names.authorization), api_key: take(&names.api_key) };
    let request_id = headers.remove(REQUEST_ID_HEADER);
    let http = HttpRequest { method: http.method, host: http.host, path: http.path, credentials };
    EnvoyRequest { http, request_id, lookalikes }
}

/// The names among `sent` that stand for one of keygate's headers without being it.
fn lookalikes<'a>(sent: impl Iterator<Item = &'a str>, names: &EnvoyHeaders) -> Vec<String> {
    let own = names.named().map(|(_, name)| name);
    let folded = |b: u8| if b == b'_' { b'-' } else { b.to_ascii_lowercase() };
    let same = |sent: &str, own: &str| {
        sent.len() == own.len() && sent.bytes().zip(own.bytes()).all(|(s, o)| folded(s) == folded(o))
    };
    // Names differing only in case are the same header to Envoy: overwritten or removed as such.
    sent.filter(|name| own.iter().any(|own| same(name, own) && !name.eq_ignore_ascii_case(own)))
        .map(|name| name.to_ascii_lowercase())
        .collect()
}

/// Envoy's answer: an OK response that tells the upstream who called, or a denied response with
/// the reference's JSON error body. `lookalikes` are removed from an allowed request.
pub fn check_response(
    outcome: GatewayDecision,
    request_id: &str,
    config: &EnvoyConfig,
    lookalikes: Vec<String>,
) -> envoy::CheckResponse {
    let GatewayDecision { decision, route, cost } = outcome;
    let dynamic_metadata = config.dynamic_metadata.then(|| decision_metadata(&decision, route, cost, request_id));
    let (code, http_response) = if decision.allowed {
        ok_response(decision, config, lookalikes)
    } else {
        denied_response(decision, request_id)
    };
    envoy::CheckResponse {
        status: Some(envoy::RpcStatus { code: code as i32, ..Default::default() }),
        http_response: Some(http_response),
        dynamic_metadata,
    }
}

/// The decision as the ext_authz filter's dynamic metadata, for access logs and later filters.
fn decision_metadata(decision: &Decision, route: Option<String>, cost: u32, request_id: &str) -> envoy::Struct {
    let mut metadata = vec![("cost", number(cost)), ("request_id", text(request_id))];
    if let Some(route) = route {
        metadata.push(("route", text(route)));
    }
    if let Some(principal) = &decision.principal {
        metadata.extend([
            ("principal_type", text(principal.kind.as_str())),
            ("principal_id", text(&principal.id)),
            ("organization", text(&principal.organization)),
            ("scopes", list(&principal.scopes)),
        ]);
    }
    if !decision.allowed {
        metadata.push(("error_code", text(decision.reason.error_code())));
    }
    envoy::Struct { fields: metadata.into_iter().map(|(name, value)| (name.to_owned(), value)).collect() }
}

/// `X-RateLimit-*` headers for the client's response, when a rate limit was consulted.
fn rate_limit_headers(state: &LimitState) -> Vec<envoy::HeaderValueOption> {
    let Some(rate) = state.rate else { return Vec::new() };
    vec![
        header("x-ratelimit-limit", &rate.limit.to_string()),
        header("x-ratelimit-remaining", &rate.remaining.to_string()),
        header("x-ratelimit-reset", &whole_seconds(rate.reset_after).to_string()),
    ]
}

fn ok_response(
    decision: Decision,
    config: &EnvoyConfig,
    lookalikes: Vec<String>,
) -> (tonic::Code, envoy::check_response::HttpResponse) {
    let names = &config.headers;
    let mut ok = envoy::OkHttpResponse {
        response_headers_to_add: rate_limit_headers(&decision.limits),
        headers_to_remove: lookalikes,
        ..Default::default()
    };
    if config.strip_credentials {
        ok.headers_to_remove.extend([names.authorization.clone(), names.api_key.clone()]);
    }
    match decision.principal {
        // Overwritten, never appended: a client cannot slip in a principal of its own.
        Some(principal) => {
            ok.headers = vec![
                header(&names.principal_type, principal.kind.as_str()),
                header(&names.principal_id, &principal.id),
                header(&names.organization, &principal.organization),
                header(&names.scopes, &principal.scopes.join(" ")),
            ];
        }
        // Nobody was identified (a public route): whatever principal the client sent is removed.
        None => ok.headers_to_remove.extend(
            [&names.principal_type, &names.principal_id, &names.organization, &names.scopes].map(String::clone),
        ),
    }
    (tonic::Code::Ok, envoy::check_response::HttpResponse::OkResponse(ok))
}

fn denied_response(decision: Decision, request_id: &str) -> (tonic::Code, envoy::check_response::HttpResponse) {
    let status = decision.reason.http_status();
    let body = serde_json::json!({
        "error": {"code": decision.reason.error_code(), "message": decision.message, "request_id": request_id}
    });
    let mut headers = vec![header("content-type", "application/json"), header(REQUEST_ID_HEADER, request_id)];
    // RFC 6750: every 401 challenges; a bad credential says invalid_token, a missing one nothing.
    let challenge = match decision.reason.bearer_error() {
        Some(error) if status == 401 || decision.reason == Reason::InsufficientScope => {
            Some(format!("Bearer realm=\"{BEARER_REALM}\", error=\"{error}\""))
        }
        None if status == 401 => Some(format!("Bearer realm=\"{BEARER_REALM}\"")),
        _ => None,
    };
    if let Some(challenge) = challenge {
        headers.push(header("www-authenticate", &challenge));
    }
    if let Some(retry_after) = decision.retry_after {
        headers.push(header("retry-after", &whole_seconds(retry_after).to_string()));
    }
    headers.extend(rate_limit_headers(&decision.limits));
    let denied = envoy::DeniedHttpResponse {
        status: Some(envoy::HttpStatus { code: i32::from(status) }),
        headers,
        body: body.to_string(),
    };
    let code = match status {
        400 => tonic::Code::InvalidArgument,
        401 => tonic::Code::Unauthenticated,
        429 => tonic::Code::ResourceExhausted,
        _ => tonic::Code::PermissionDenied,
    };
    (code, envoy::check_response::HttpResponse::DeniedResponse(denied))
}

/// The realm of keygate's `WWW-Authenticate` challenges.
const BEARER_REALM: &str = "keygate";

/// A header that replaces any of the same name.
fn header(name: &str, value: &str) -> envoy::HeaderValueOption {
    envoy::HeaderValueOption {
        header: Some(envoy::HeaderValue { key: name.to_owned(), value: value.to_owned(), ..Default::default() }),
        append_action: envoy::HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        ..Default::default()
    }
}

fn text(value: impl Into<String>) -> envoy::Value {
    envoy::Value { kind: Some(envoy::Kind::StringValue(value.into())) }
}

fn number(value: u32) -> envoy::Value {
    envoy::Value { kind: Some(envoy::Kind::NumberValue(f64::from(value))) }
}

fn list(values: &[String]) -> envoy::Value {
    let values = values.iter().map(text).collect();
    envoy::Value { kind: Some(envoy::Kind::ListValue(envoy::ListValue { values })) }
}
