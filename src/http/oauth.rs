//! `POST /oauth/token` (RFC 6749 §4.4, errors as §5.2) and `POST /oauth/introspect` (RFC 7662).
//! Client authentication by form fields or HTTP Basic (RFC 6749 §2.3.1), never both.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use keygate_core::credentials::client::is_valid_client_id;
use keygate_core::error::{CoreError, ErrorCode, OAuthError, OAuthErrorKind};
use keygate_core::model::Credentials;
use keygate_core::oauth::{Introspection, IntrospectionCaller, OAuth, TokenRequest, introspection_claims};

const FORM: &str = "application/x-www-form-urlencoded";
/// The challenge sent with `invalid_client`.
const BASIC_CHALLENGE: &str = "Basic realm=\"keygate\", charset=\"UTF-8\"";

/// The challenge sent when a bearer credential failed at the introspection endpoint.
const BEARER_CHALLENGE: &str = "Bearer realm=\"keygate\", error=\"invalid_token\"";

/// An RFC 6749 §5.2 error response, challenging with `challenge` when it is a 401.
fn error_with(status: StatusCode, code: &str, description: &str, challenge: &'static str) -> Response {
    // §5.2 allows only %x20-21 / %x23-5B / %x5D-7E in error_description.
    let description: String = description
        .chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' { c } else { '?' })
        .collect();
    let body = Json(json!({ "error": code, "error_description": description }));
    let mut response = (status, no_store(), body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    response
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    error_with(status, code, description, BASIC_CHALLENGE)
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")]
}

/// The one mapping from core errors to OAuth2 error responses.
fn refuse(err: &CoreError) -> Response {
    let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match err {
        CoreError::OAuth(oauth) => error(status(oauth.kind.http_status()), oauth.kind.as_str(), &oauth.description),
        CoreError::InvalidArgument(_) => error(StatusCode::BAD_REQUEST, "invalid_request", &err.to_string()),
        other => match other.code() {
            ErrorCode::Unavailable => {
                tracing::warn!(error = %other, "token endpoint cannot decide");
                error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again later")
            }
            ErrorCode::Internal => error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error"),
            code => error(status(code.http_status()), "invalid_request", &other.to_string()),
        },
    }
}

/// The form's parameters; a repeated one is an error (RFC 6749 §3.2).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, CoreError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case(FORM) {
        return Err(CoreError::invalid("content-type", format!("must be {FORM}")));
    }
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if params.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(CoreError::invalid(name.to_string(), "must not be repeated"));
        }
    }
    Ok(params)
}

/// `Authorization: Basic` client credentials, each form-urlencoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, CoreError> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    // A failed attempt to authenticate in the Authorization header is `invalid_client` (§5.2).
    let malformed =
        || OAuthError::refuse(OAuthErrorKind::InvalidClient, None, "the Basic authorization header is malformed");
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape =
        |part: &str| form_urlencoded::parse(format!("v={part}").as_bytes()).map(|(_, v)| v.into_owned()).next();
    Ok(Some((unescape(id).unwrap_or_default(), unescape(secret).unwrap_or_default())))
}

/// The client's id and secret from exactly one of HTTP Basic and the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &mut HashMap<String, String>,
) -> Result<Option<(String, String)>, CoreError> {
    let from_form = form.remove("client_secret").map(|secret| (form.remove("client_id").unwrap_or_default(), secret));
    match (basic_credentials(headers)?, from_form) {
        (Some(_), Some(_)) => Err(CoreError::invalid(
            "client_secret",
            "use one client authentication method: HTTP Basic or form fields, not both",
        )),
        (Some((id, secret)), None) => {
            if form.remove("client_id").is_some_and(|named| named != id) {
                return Err(CoreError::invalid("client_id", "differs from the HTTP Basic client id"));
            }
            Ok(Some((id, secret)))
        }
        (None, from_form) => Ok(from_form),
    }
}

/// The RFC 6749 error for a form body that could not be read (over the body limit): an OAuth
/// client expects `{"error": ...}` from these endpoints, not axum's plain-text refusal.
/// Like any refusal of an over-size body, it says `Connection: close` (see `closes_unread`).
fn unreadable(rejection: &BytesRejection) -> Response {
    if rejection.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "the body could not be read");
    }
    let mut response = error(StatusCode::BAD_REQUEST, "invalid_request", "the body is too large");
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `POST /oauth/token`.
pub async fn token(
    State(oauth): State<Arc<OAuth>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return unreadable(&rejection),
    };
    let request = match token_request(&headers, &body) {
        Ok(request) => request,
        Err(err) => return refuse(&err),
    };
    match oauth.issue_token(&request).await {
        Ok(token) => {
            let body = Json(json!({
                "access_token": token.token,
                "token_type": "Bearer",
                "expires_in": token.expires_in,
                "scope": token.scopes.join(" "),
            }));
            (StatusCode::OK, no_store(), body).into_response()
        }
        Err(err) => {
            // Only a well-formed id is logged: the field is the caller's, and may hold anything.
            let client_id = if is_valid_client_id(&request.client_id) { request.client_id.as_str() } else { "" };
            tracing::info!(client_id, error = %err, "token refused");
            refuse(&err)
        }
    }
}

/// The token request a form body (and the Basic header) makes; public for the fuzz targets.
#[doc(hidden)]
pub fn token_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, CoreError> {
    let mut form = parse_form(headers, body)?;
    let (client_id, client_secret) = client_credentials(headers, &mut form)?.unwrap_or_default();
    Ok(TokenRequest {
        grant_type: form.remove("grant_type").unwrap_or_default(),
        client_id: if client_id.is_empty() { form.remove("client_id").unwrap_or_default() } else { client_id },
        client_secret,
        scope: form.remove("scope").unwrap_or_default(),
    })
}

/// Who asks an introspection and about which token; public for the fuzz targets.
#[doc(hidden)]
pub fn introspection_request(headers: &HeaderMap, body: &[u8]) -> Result<(IntrospectionCaller, String), CoreError> {
    let mut form = parse_form(headers, body)?;
    let caller = match client_credentials(headers, &mut form)? {
        Some((client_id, client_secret)) => IntrospectionCaller::Client { client_id, client_secret },
        None => {
            let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or_default();
            let credentials = Credentials {
                authorization: text(header::AUTHORIZATION.as_str()).to_owned(),
                api_key: text("x-api-key").to_owned(),
            };
            IntrospectionCaller::Bearer(credentials)
        }
    };
    Ok((caller, form.remove("token").unwrap_or_default()))
}

/// `POST /oauth/introspect`: the caller authenticates as a client (Basic or form) or with a
/// bearer credential of its organization.
pub async fn introspect(
    State(oauth): State<Arc<OAuth>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return unreadable(&rejection),
    };
    let (caller, token) = match introspection_request(&headers, &body) {
        Ok(parsed) => parsed,
        Err(err) => return refuse(&err),
    };
    let bearer = matches!(caller, IntrospectionCaller::Bearer(_));
    match oauth.introspect(caller, &token).await {
        Ok(Introspection::Active(principal)) => {
            (no_store(), Json(introspection_claims(&principal, &oauth.settings().issuer))).into_response()
        }
        Ok(Introspection::Inactive) => (no_store(), Json(json!({ "active": false }))).into_response(),
        // A failed bearer credential is challenged as one (RFC 6750 §3), not as a client.
        Err(CoreError::OAuth(oauth)) if bearer && oauth.kind == OAuthErrorKind::InvalidClient => {
            error_with(StatusCode::UNAUTHORIZED, "invalid_token", &oauth.description, BEARER_CHALLENGE)
        }
        Err(err) => refuse(&err),
    }
}
