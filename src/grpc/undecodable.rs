//! A tower layer that turns tonic's answers to requests it could not read into the client errors
//! they are. tonic answers a message prost cannot decode (invalid UTF-8 in a `string`, a wrong
//! wire type, a truncated field, nesting past prost's recursion limit) with INTERNAL, and one over
//! the decoding size limit with OUT_OF_RANGE; both are the caller's mistake, not keygate's. Such a
//! request becomes INVALID_ARGUMENT with a `BadRequest` naming the field prost stopped at, and an
//! over-size one RESOURCE_EXHAUSTED, as gRPC's status code guide has it. Both come back before any
//! service runs, as trailers-only responses (the status in the headers), so only those headers
//! are looked at; a service's own INTERNAL ("internal error") never matches.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use super::metered::GRPC_STATUS;
use crate::transport::request_id::{REQUEST_ID_HEADER, new_request_id};

/// How prost's `DecodeError` begins; the stack of `Message.field: ` then the description follow.
const DECODE_ERROR: &str = "failed to decode Protobuf message: ";
/// How tonic's refusal of a message over `max_decoding_message_size` begins.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// Wraps services in [`Undecodable`].
#[derive(Clone, Copy, Debug, Default)]
pub struct UndecodableLayer;

impl<S> tower::Layer<S> for UndecodableLayer {
    type Service = Undecodable<S>;

    fn layer(&self, inner: S) -> Undecodable<S> {
        Undecodable { inner }
    }
}

/// Rewrites the status of undecodable and over-size requests; passes everything else through.
#[derive(Clone, Debug)]
pub struct Undecodable<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Undecodable<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = UndecodableFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        UndecodableFuture { answer: self.inner.call(request) }
    }
}

pin_project_lite::pin_project! {
    /// The wrapped service's answer, its headers rewritten when it is a refusal to decode.
    pub struct UndecodableFuture<F> {
        #[pin]
        answer: F,
    }
}

impl<F, R, E> Future for UndecodableFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut result = std::task::ready!(self.project().answer.poll(cx));
        if let Ok(response) = &mut result {
            rewrite(response.headers_mut());
        }
        Poll::Ready(result)
    }
}

/// Replaces the status in a trailers-only response's headers when tonic refused the request.
fn rewrite(headers: &mut HeaderMap) {
    // Cheap first: a success has no status in its headers, and only these two codes can match.
    let code = headers.get(&GRPC_STATUS).map(http::HeaderValue::as_bytes);
    if !matches!(code, Some(b"13" | b"11")) {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else { return };
    let replacement = match status.code() {
        Code::Internal => match status.message().strip_prefix(DECODE_ERROR) {
            Some(error) => undecodable(error),
            None => return,
        },
        Code::OutOfRange if status.message().starts_with(TOO_LARGE) => {
            tracing::info!(error = status.message(), "request message over the size limit");
            Status::resource_exhausted(status.message())
        }
        _ => return,
    };
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if let Err(status) = replacement.add_header(headers) {
        // Only a message that cannot be a header value fails; the code alone still goes out.
        tracing::warn!(?status, "could not encode a decoding refusal");
        headers.insert(GRPC_STATUS, http::HeaderValue::from(Code::InvalidArgument as i32));
    }
}

/// INVALID_ARGUMENT for prost's `error` (what follows [`DECODE_ERROR`]), naming the field.
fn undecodable(error: &str) -> Status {
    let (field, description) = field_path(error);
    let request_id = new_request_id();
    tracing::info!(request_id, field, description, "undecodable request message");
    let mut details = ErrorDetails::new();
    details.set_request_info(&request_id, "");
    let field = if field.is_empty() { "body".to_owned() } else { field };
    details.set_bad_request(vec![FieldViolation::new(&field, description)]);
    let mut status = Status::with_error_details(Code::InvalidArgument, format!("{field}: {description}"), details);
    if let Ok(value) = MetadataValue::try_from(request_id.as_str()) {
        status.metadata_mut().insert(REQUEST_ID_HEADER, value);
    }
    status
}

/// The dotted field path (outermost first) and the description of prost's error text, whose
/// stack runs innermost first: `Credentials.authorization: AuthorizeRequest.credentials: invalid
/// string value: data is not UTF-8 encoded` is `credentials.authorization`. An error with no
/// field (a bad tag at the top level) has an empty path.
fn field_path(error: &str) -> (String, &str) {
    let mut fields = Vec::new();
    let mut rest = error;
    while let Some((part, after)) = rest.split_once(": ") {
        let Some((message, field)) = part.split_once('.') else { break };
        let field = field.strip_prefix("r#").unwrap_or(field);
        if !is_identifier(message) || !is_identifier(field) {
            break;
        }
        fields.push(field);
        rest = after;
    }
    fields.reverse();
    (fields.join("."), rest)
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_path_runs_outermost_first() {
        let error =
            "Credentials.authorization: AuthorizeRequest.credentials: invalid string value: data is not UTF-8 encoded";
        let (field, description) = field_path(error);
        assert_eq!(field, "credentials.authorization");
        assert_eq!(description, "invalid string value: data is not UTF-8 encoded");
        assert_eq!(field_path("invalid tag value: 0"), (String::new(), "invalid tag value: 0"));
        assert_eq!(field_path("Principal.r#type: invalid").0, "type");
    }

    #[test]
    fn undecodable_and_over_size_requests_are_client_errors() {
        let mut headers = HeaderMap::new();
        let internal = Status::internal(format!("{DECODE_ERROR}GetApiKeyRequest.key_id: invalid string value"));
        internal.add_header(&mut headers).expect("headers");
        rewrite(&mut headers);
        let status = Status::from_header_map(&headers).expect("a status");
        assert_eq!(status.code(), Code::InvalidArgument);
        let violations = status.get_error_details().bad_request().cloned().expect("BadRequest").field_violations;
        assert_eq!(violations[0].field, "key_id");

        let mut headers = HeaderMap::new();
        Status::out_of_range(format!("{TOO_LARGE}: found 5 bytes")).add_header(&mut headers).expect("headers");
        rewrite(&mut headers);
        assert_eq!(Status::from_header_map(&headers).expect("a status").code(), Code::ResourceExhausted);

        // keygate's own internal errors stay what they are.
        let mut headers = HeaderMap::new();
        Status::internal("internal error").add_header(&mut headers).expect("headers");
        rewrite(&mut headers);
        assert_eq!(Status::from_header_map(&headers).expect("a status").code(), Code::Internal);
    }
}
