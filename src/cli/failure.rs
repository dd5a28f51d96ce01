//! Why a command failed, and the exit code that tells the caller's mistake from the server's.

use std::fmt;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A failed command: what to print on stderr (after `keygate: `) and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// The families of failure, one exit code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A problem on this side before anything was sent, or a check that found problems: 1.
    Local,
    /// The server refused the request: the caller's mistake or lack of rights: 3.
    Refused,
    /// The server or the network failed: 4.
    Server,
}

impl Failure {
    pub fn local(message: impl Into<String>) -> Self {
        Self { kind: FailureKind::Local, message: message.into() }
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self { kind: FailureKind::Server, message: message.into() }
    }

    /// The process exit code (2, a usage error, is clap's own).
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            FailureKind::Local => 1,
            FailureKind::Refused => 3,
            FailureKind::Server => 4,
        }
    }

    /// A gRPC status as `<CODE>: <message>`, with every field a `BadRequest` detail names that
    /// the message does not already.
    pub fn from_status(status: &Status) -> Self {
        let mut message = format!("{}: {}", code_name(status.code()), status.message());
        if let Some(bad_request) = status.get_error_details().bad_request() {
            for violation in &bad_request.field_violations {
                if !status.message().contains(&violation.field) {
                    message.push_str(&format!("; {}: {}", violation.field, violation.description));
                }
            }
        }
        Self { kind: kind_of(status.code()), message }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Which side a status code blames.
pub fn kind_of(code: Code) -> FailureKind {
    match code {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::ResourceExhausted => FailureKind::Refused,
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::Unimplemented
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => FailureKind::Server,
    }
}

/// The code as the gRPC spec spells it, e.g. `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, FieldViolation};

    #[test]
    fn the_caller_s_mistakes_exit_3_and_the_server_s_exit_4() {
        for code in [Code::InvalidArgument, Code::NotFound, Code::PermissionDenied, Code::Unauthenticated] {
            assert_eq!(Failure::from_status(&Status::new(code, "no")).exit_code(), 3, "{code:?}");
        }
        for code in [Code::Unavailable, Code::Internal, Code::DeadlineExceeded, Code::Unknown] {
            assert_eq!(Failure::from_status(&Status::new(code, "no")).exit_code(), 4, "{code:?}");
        }
    }

    #[test]
    fn a_field_the_message_does_not_name_is_added() {
        let details = ErrorDetails::with_bad_request(vec![FieldViolation::new("expires_in_days", "at least 1")]);
        let status = Status::with_error_details(Code::InvalidArgument, "invalid argument", details);
        let failure = Failure::from_status(&status);
        assert_eq!(failure.message, "INVALID_ARGUMENT: invalid argument; expires_in_days: at least 1");
    }
}
