//! A tower layer around the gRPC server that opens one span per call (see
//! [`crate::observability::telemetry`]), joined to the caller's trace, with the final status code; handlers find
//! the span in the request's extensions to record their decision. Off, it only runs a call whose
//! caller sent `traceparent` in the caller's trace, for the log lines' trace id.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::Either;
use opentelemetry::context::FutureExt as _;
use tower::{Layer, Service};
use tracing::Instrument;

use super::metered::{response_code, rpc_label};
use crate::observability::telemetry::{self, RequestSpan};

/// Wraps services in [`Traced`]; `enabled` is whether spans are exported at all.
#[derive(Clone, Copy)]
pub struct TracedLayer {
    pub enabled: bool,
}

impl<S> Layer<S> for TracedLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner, enabled: self.enabled }
    }
}

/// Runs each call of the wrapped service in its own span.
#[derive(Clone)]
pub struct Traced<S> {
    inner: S,
    enabled: bool,
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Traced<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Boxed<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if !self.enabled {
            let Some(caller) = telemetry::caller_context(request.headers()) else {
                return Either::Left(self.inner.call(request));
            };
            let answer = {
                let _attached = caller.clone().attach();
                self.inner.call(request)
            };
            return Either::Right(Box::pin(answer.with_context(caller)));
        }
        let label = rpc_label(request.uri().path());
        let (service, method) = label.trim_start_matches('/').split_once('/').unwrap_or((label, ""));
        let span = telemetry::grpc_span(request.headers(), service, method);
        request.extensions_mut().insert(RequestSpan(span.clone()));
        let answer = span.in_scope(|| self.inner.call(request));
        let recorded = span.clone();
        Either::Right(Box::pin(
            async move {
                let result = answer.await;
                let code = result.as_ref().map_or(tonic::Code::Unknown, response_code);
                telemetry::record_grpc_status(&recorded, code);
                result
            }
            .instrument(span),
        ))
    }
}
