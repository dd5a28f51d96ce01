//! A tower layer around the gRPC server that counts every call by RPC and status and times it.
//! tonic puts an error's `grpc-status` in the response headers (a trailers-only response); a
//! unary success carries it in the trailers, so a response without one in its headers is OK.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::Code;
use tower::{Layer, Service};

use crate::observability::metrics::{Edge, Metrics};

/// The services whose methods are labelled by name; any other path is `other`, so that
/// made-up paths cannot grow the label set.
const KNOWN_SERVICES: &[&str] = &[
    "/keygate.v1.",
    "/envoy.service.auth.v3.",
    "/grpc.health.v1.",
    "/grpc.reflection.v1.",
    "/grpc.reflection.v1alpha.",
];

/// Wraps services in [`Metered`].
#[derive(Clone)]
pub struct MeteredLayer(pub Arc<Metrics>);

impl<S> Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered { inner, metrics: self.0.clone() }
    }
}

/// Counts and times each call of the wrapped service.
#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<http::Request<B>> for Metered<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = MeteredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // A `Uri` clone shares its bytes; the label is read from it once the call has ended.
        let record = Some((self.metrics.clone(), request.uri().clone(), Instant::now()));
        MeteredFuture { answer: self.inner.call(request), record }
    }
}

pin_project_lite::pin_project! {
    /// A call being counted: the wrapped service's future, then what to record when it ends.
    /// (A struct rather than a boxed `async` block: no allocation and no copy per call.)
    pub struct MeteredFuture<F> {
        #[pin]
        answer: F,
        record: Option<(Arc<Metrics>, http::Uri, Instant)>,
    }
}

impl<F, R, E> Future for MeteredFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.answer.poll(cx));
        if let Some((metrics, uri, started)) = this.record.take() {
            let code = result.as_ref().map_or(Code::Unknown, response_code);
            metrics.request(Edge::Grpc, answered_label(uri.path(), code), code_label(code).into(), started.elapsed());
        }
        Poll::Ready(result)
    }
}

/// The path of a call to one of keygate's known services, else `other`.
pub(crate) fn rpc_label(path: &str) -> &str {
    if KNOWN_SERVICES.iter().any(|prefix| path.starts_with(prefix)) { path } else { "other" }
}

/// The label of an answered call: [`rpc_label`], except that a method no service has (answered
/// UNIMPLEMENTED) is `other` too, so that made-up method names cannot grow the label set either.
fn answered_label(path: &str, code: Code) -> &str {
    if code == Code::Unimplemented { "other" } else { rpc_label(path) }
}

/// A status code's name, as its `Debug` form spells it, without formatting one per call.
fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The `grpc-status` header's name, built once: looked up by text, a name is parsed again on
/// every response, and both this layer and `undecodable` look at every response.
pub(crate) const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The status of a response: its `grpc-status` header, else OK (a unary success carries it in
/// the trailers).
pub(crate) fn response_code<R>(response: &http::Response<R>) -> Code {
    response
        .headers()
        .get(&GRPC_STATUS)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_methods_are_labelled() {
        let authorize = "/keygate.v1.AuthService/Authorize";
        assert_eq!(answered_label(authorize, Code::Ok), authorize);
        assert_eq!(answered_label(authorize, Code::InvalidArgument), authorize);
        assert_eq!(answered_label("/keygate.v1.AuthService/Made-up-1", Code::Unimplemented), "other");
        assert_eq!(answered_label("/some.Service/Method", Code::Ok), "other");
    }

    #[test]
    fn code_labels_are_the_debug_names() {
        for number in 0..=16 {
            let code = Code::from_i32(number);
            assert_eq!(code_label(code), format!("{code:?}"), "code {number}");
        }
    }
}
