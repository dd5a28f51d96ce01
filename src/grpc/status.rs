//! The one mapping from core errors to gRPC statuses, with rich error details.

use std::collections::HashMap;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use keygate_core::error::{CoreError, ErrorCode};

/// The domain of keygate's `google.rpc.ErrorInfo` details.
pub const ERROR_DOMAIN: &str = "keygate";

/// Bounds on what a status repeats of the request. A status travels in response headers, which
/// clients bound (grpc-java at 8 KiB, tonic's h2 at 16 KiB); a 64 KiB label name echoed whole in
/// the message and the `BadRequest` made tonic's client close the connection, failing every call
/// on it. Cut, a field still names where the problem is (`labels.xxxx…`).
const MAX_MESSAGE: usize = 512;
const MAX_FIELD: usize = 128;
const MAX_DESCRIPTION: usize = 256;
/// More violations than any request can honestly have (every field of the largest one wrong).
const MAX_VIOLATIONS: usize = 16;

/// `text`, cut to at most `max` bytes at a character boundary, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn violation(field: &str, description: &str) -> FieldViolation {
    FieldViolation::new(clip(field, MAX_FIELD), clip(description, MAX_DESCRIPTION))
}

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
                violations.iter().take(MAX_VIOLATIONS).map(|v| violation(&v.field, &v.description)).collect();
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
                details.set_bad_request(vec![violation(field, &oauth.description)]);
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
            clip(detail, MAX_MESSAGE)
        }
        other => clip(&other.to_string(), MAX_MESSAGE),
    };
    let mut metadata = MetadataMap::new();
    if let Ok(value) = MetadataValue::try_from(request_id) {
        metadata.insert(super::context::REQUEST_ID_HEADER, value);
    }
    Status::with_error_details_and_metadata(grpc_code(err.code()), message, details, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::error::FieldViolation as Violation;

    #[test]
    fn a_long_value_in_an_error_is_cut_and_still_names_the_field() {
        let key = "x".repeat(64 << 10);
        let err = CoreError::InvalidArgument(vec![Violation::new(format!("labels.{key}"), format!("bad name {key}"))]);
        let status = to_status(&err, "id");
        assert!(status.message().len() <= MAX_MESSAGE, "{}", status.message().len());
        let violations = status.get_error_details().bad_request().cloned().expect("BadRequest").field_violations;
        assert!(violations[0].field.starts_with("labels.xxx") && violations[0].field.len() <= MAX_FIELD);
        assert!(violations[0].description.len() <= MAX_DESCRIPTION);
        // Cut at a character boundary, never inside one.
        assert_eq!(clip("a\u{e9}\u{e9}\u{e9}\u{e9}", 6), "a\u{e9}…");
        assert_eq!(clip("a\u{e9}\u{e9}\u{e9}\u{e9}", 5), "a…");
        assert_eq!(clip("short", 5), "short");
    }
}
