//! The REST admin API's one error shape, mapped from the core's code table, and the decoding of
//! request bodies and query strings into it: every bad field named at once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use keygate_core::error::{CoreError, ErrorCode, FieldViolation};

/// Every error the admin API answers with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, safe to show; never a secret.
    #[schema(example = "API key does not have the required scope: admin:keys:write")]
    pub detail: String,
    /// A stable lowercase code: `invalid_argument`, `validation_failed`, `missing_api_key`,
    /// `invalid_api_key`, `expired_api_key`, `permission_denied`, `not_found`, `conflict`, …
    #[schema(example = "permission_denied")]
    pub code: String,
    /// keygate's id of this request, as in its logs and the audit log.
    pub request_id: String,
    /// Each bad field, when the request had any.
    pub errors: Vec<FieldError>,
}

/// One bad field of a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The field as the request spelled it, e.g. `scopes[1]`, `limits.max_quota` or `offset`.
    pub field: String,
    pub message: String,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    detail: String,
    errors: Vec<FieldViolation>,
}

impl ApiError {
    fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { status, code: code.into(), detail: detail.into(), errors: Vec::new() }
    }

    /// 422: the body did not have the documented shape (a field of the wrong type, an unknown
    /// field, JSON that is not an object).
    fn unprocessable(errors: Vec<FieldViolation>) -> Self {
        let detail = describe(&errors);
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, code: "validation_failed".into(), detail, errors }
    }

    /// 400: a parameter the request cannot have (a query or path value, or a body that is not
    /// JSON at all).
    pub fn bad_request(errors: Vec<FieldViolation>) -> Self {
        let detail = describe(&errors);
        Self { status: StatusCode::BAD_REQUEST, code: "invalid_argument".into(), detail, errors }
    }

    /// 404 for a path the API does not have.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// 405 for a method the path does not take.
    pub fn no_method() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
    }

    /// 415 for a body that is not `application/json`.
    pub fn not_json() -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "the body must be application/json")
    }

    /// 413 for a body over the limit.
    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is too large")
    }

    /// The response, carrying keygate's id of the request.
    pub fn respond(self, request_id: &str) -> Response {
        let unauthenticated = self.status == StatusCode::UNAUTHORIZED;
        let errors = self.errors.into_iter().map(|v| FieldError { field: v.field, message: v.description }).collect();
        let body = ErrorBody { detail: self.detail, code: self.code, request_id: request_id.to_owned(), errors };
        let mut response = (self.status, Json(body)).into_response();
        if unauthenticated {
            // RFC 9110 §15.5.2: a 401 names the scheme the caller can use.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"keygate\""));
        }
        response
    }
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> Self {
        let code = err.code();
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let detail = err.to_string();
        match err {
            CoreError::InvalidArgument(errors) => Self { status, code: "invalid_argument".into(), detail, errors },
            CoreError::Unauthenticated(failure) => Self::new(status, failure.reason.error_code(), detail),
            _ => Self::new(status, name(code), detail),
        }
    }
}

/// The lowercase code of a table entry.
fn name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "invalid_argument",
        ErrorCode::Unauthenticated => "unauthenticated",
        ErrorCode::PermissionDenied => "permission_denied",
        ErrorCode::NotFound => "not_found",
        ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition | ErrorCode::Aborted => "conflict",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
    }
}

fn describe(errors: &[FieldViolation]) -> String {
    let parts: Vec<String> = errors.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
    parts.join("; ")
}

/// Decodes a JSON object body into `T`, whose fields are all optional (`#[serde(default)]`) and
/// unknown ones refused: an empty body (or `null`) is `T::default()`; anything that is not JSON is 400; each
/// field that does not fit is named, all of them in one 422.
pub fn decode_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(vec![FieldViolation::new("body", format!("not valid JSON: {err}"))]))?;
    if value.is_null() {
        // The document allows `null` wherever a body is optional: the same as no body.
        return Ok(T::default());
    }
    let Value::Object(fields) = value else {
        return Err(ApiError::unprocessable(vec![FieldViolation::new("body", "must be a JSON object")]));
    };
    let whole = Value::Object(fields.clone());
    match serde_path_to_error::deserialize::<_, T>(whole) {
        Ok(decoded) => Ok(decoded),
        Err(first) => {
            // Each field on its own, so that every bad one is named, not just the first.
            let mut errors = Vec::new();
            for (name, value) in fields {
                let alone = Value::Object(Map::from_iter([(name.clone(), value)]));
                if let Err(err) = serde_path_to_error::deserialize::<_, T>(alone) {
                    errors.push(violation(&err));
                }
            }
            if errors.is_empty() {
                errors.push(violation(&first));
            }
            Err(ApiError::unprocessable(errors))
        }
    }
}

fn violation(err: &serde_path_to_error::Error<serde_json::Error>) -> FieldViolation {
    // The path names the field itself, an unknown one too (`limits.colour`).
    let field = err.path().to_string();
    let message = err.inner().to_string();
    FieldViolation::new(field, without_position(&message))
}

/// serde_json's "… at line 1 column 9" says nothing to the caller of a decoded value.
fn without_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}
