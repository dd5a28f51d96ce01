//! The one mapping from core errors to gRPC statuses, with rich error details.

use std::collections::HashMap;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use keygate_core::error::{CoreError, ErrorCode};

/// The domain of keygate's `google.rpc.ErrorInfo` details.
pub const ERROR_DOMAIN: &str = "keygate";

fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::Aborted => Code::Aborted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

/// Turns a core error into a Status carrying the request id (metadata and `RequestInfo`), an
/// `ErrorInfo` for authentication failures and a `BadRequest` for invalid arguments. Internal
/// details are logged, never returned.
pub fn to_status(err: &CoreError, request_id: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_request_info(request_id, "");
    match err {
        CoreError::InvalidArgument(violations) => {
            let violations: Vec<FieldViolation> =
                violations.iter().map(|v| FieldViolation::new(&v.field, &v.description)).collect();
            details.set_bad_request(violations);
        }
        CoreError::Unauthenticated(failure) => {
            let metadata = HashMap::from([("request_id".to_owned(), request_id.to_owned())]);
            details.set_error_info(failure.reason.as_str(), ERROR_DOMAIN, metadata);
        }
        CoreError::OAuth(oauth) => {
            let metadata = HashMap::from([("request_id".to_owned(), request_id.to_owned())]);
            details.set_error_info(oauth.kind.as_str().to_ascii_uppercase(), ERROR_DOMAIN, metadata);
            if let Some(field) = oauth.field.filter(|_| oauth.kind.code() == ErrorCode::InvalidArgument) {
                details.set_bad_request(vec![FieldViolation::new(field, &oauth.description)]);
            }
        }
        _ => {}
    }
    let message = match err {
        CoreError::Internal(detail) => {
            tracing::error!(request_id, error = %detail, "internal error");
            "internal error".to_owned()
        }
        CoreError::Unavailable(detail) => {
            tracing::warn!(request_id, error = %detail, "cannot decide: dependency unavailable");
            detail.clone()
        }
        other => other.to_string(),
    };
    let mut metadata = MetadataMap::new();
    if let Ok(value) = MetadataValue::try_from(request_id) {
        metadata.insert(super::context::REQUEST_ID_HEADER, value);
    }
    Status::with_error_details_and_metadata(grpc_code(err.code()), message, details, metadata)
}
