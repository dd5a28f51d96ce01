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
