//! The core's error enum and the one code table that both gRPC and HTTP map from.

use super::model::AuthFailure;

/// A problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's name as the wire knows it, e.g. `scopes[2]` or `limit`.
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// Everything a core operation can fail with. Messages are safe to show to the caller: they
/// never contain a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CoreError {
    /// The request is malformed; every problem found is listed.
    #[error("{}", describe_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The caller's own credential did not authenticate (admin RPCs, `Authenticate`).
    #[error("{}", .0.message)]
    Unauthenticated(AuthFailure),
    /// An OAuth2 token request was refused with an RFC 6749 §5.2 error.
    #[error("{}", .0.description)]
    OAuth(OAuthError),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change got there first; reading again and retrying may succeed.
    #[error("{0}")]
    Aborted(String),
    /// keygate could not decide: a dependency (the database) is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected state; details are logged, not returned.
    #[error("{0}")]
    Internal(String),
}

fn describe_violations(violations: &[FieldViolation]) -> String {
    let parts: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
    parts.join("; ")
}

impl CoreError {
    /// A single-field INVALID_ARGUMENT.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        CoreError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// This error's entry in the code table.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            CoreError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            CoreError::OAuth(err) => err.kind.code(),
            CoreError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            CoreError::NotFound(_) => ErrorCode::NotFound,
            CoreError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            CoreError::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            CoreError::Aborted(_) => ErrorCode::Aborted,
            CoreError::Unavailable(_) => ErrorCode::Unavailable,
            CoreError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// The RFC 6749 §5.2 error codes keygate answers token requests with (`invalid_request` is
/// [`CoreError::InvalidArgument`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    /// Unknown client, wrong secret or no client authentication: 401 with `WWW-Authenticate`.
    InvalidClient,
    /// The client is known and authenticated but may not use this grant (it is disabled).
    UnauthorizedClient,
    InvalidScope,
    UnsupportedGrantType,
}

impl OAuthErrorKind {
    /// The `error` value of the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorKind::InvalidClient => "invalid_client",
            OAuthErrorKind::UnauthorizedClient => "unauthorized_client",
            OAuthErrorKind::InvalidScope => "invalid_scope",
            OAuthErrorKind::UnsupportedGrantType => "unsupported_grant_type",
        }
    }

    /// This error's entry in the code table; its HTTP status is RFC 6749's (401 or 400).
    pub fn code(self) -> ErrorCode {
        match self {
            OAuthErrorKind::InvalidClient => ErrorCode::Unauthenticated,
            OAuthErrorKind::UnauthorizedClient => ErrorCode::PermissionDenied,
            OAuthErrorKind::InvalidScope | OAuthErrorKind::UnsupportedGrantType => ErrorCode::InvalidArgument,
        }
    }

    /// RFC 6749 answers every token error with 400 but `invalid_client`'s 401.
    pub fn http_status(self) -> u16 {
        if self == OAuthErrorKind::InvalidClient { 401 } else { 400 }
    }
}

/// An OAuth2 error: its code, the request field it is about, and a description safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub kind: OAuthErrorKind,
    pub field: Option<&'static str>,
    pub description: String,
}

impl OAuthError {
    /// The refusal as a core error.
    pub fn refuse(kind: OAuthErrorKind, field: Option<&'static str>, description: impl Into<String>) -> CoreError {
        CoreError::OAuth(Self { kind, field, description: description.into() })
    }
}

/// The small table of error kinds. The gRPC edge maps it to `tonic::Code`, the HTTP edge uses
/// [`ErrorCode::http_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Aborted,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The gRPC name of this kind, e.g. `PERMISSION_DENIED`, as audit entries record it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::Aborted => "ABORTED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// The HTTP status for this kind, following the reference's status table (409 for invalid
    /// state transitions and duplicates).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition | ErrorCode::Aborted => 409,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// Errors a storage adapter reports to the core.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<StoreError> for CoreError {
    /// The database's own words are logged here and never returned to a caller.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                CoreError::Unavailable("the database is unavailable".into())
            }
            StoreError::Conflict(detail) => {
                tracing::info!(error = %detail, "unique constraint violated");
                CoreError::AlreadyExists("the resource already exists".into())
            }
            StoreError::Internal(detail) => {
                tracing::error!(error = %detail, "database error");
                CoreError::Internal("internal error".into())
            }
        }
    }
}
