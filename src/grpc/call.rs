//! What every AuthService call needs around its use case: the request id (the caller's when
//! sensible, echoed in the response), the exported span that records it and the decision, a
//! debug span for the logs, and the one error mapping. A handler is decode, [`Call::run`], encode.

use std::future::Future;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::context::{request_id, request_span, respond};
use super::status::to_status;
use crate::observability::denials;
use crate::observability::telemetry::RequestSpan;
use keygate_core::error::CoreError;
use keygate_core::model::{Decision, Reason};

/// One call in progress.
pub struct Call {
    request_id: String,
    traced: RequestSpan,
}

impl Call {
    /// Starts a call: takes its request id and records it on the call's exported span.
    pub fn start<T>(request: &Request<T>) -> Self {
        let request_id = request_id(request.metadata());
        let traced = request_span(request);
        traced.record_request_id(&request_id);
        Self { request_id, traced }
    }

    /// The id the response carries.
    pub fn id(&self) -> &str {
        &self.request_id
    }

    /// Records a decision on the exported span and logs it: allowed at debug, denied at info,
    /// one line per denial up to [`denials::LINES_PER_SECOND`].
    pub fn decided(&self, decision: &Decision) {
        self.traced.record_decision(decision.allowed, decision.reason.as_str());
        let principal = decision.principal.as_ref().map(|p| p.id.as_str()).unwrap_or_default();
        if decision.allowed {
            tracing::debug!(principal, "allowed");
        } else if denials::may_log() {
            tracing::info!(principal, reason = decision.reason.as_str(), "denied");
        }
    }

    /// Records an authentication's outcome on the exported span: allowed exactly when `reason`
    /// is [`Reason::Allowed`].
    pub fn authenticated(&self, reason: Reason) {
        self.traced.record_decision(reason == Reason::Allowed, reason.as_str());
    }

    /// Runs the use case in `span` and answers with its message, or with its error mapped to a
    /// status; the request id goes with either.
    pub async fn run<T>(
        &self,
        span: tracing::Span,
        use_case: impl Future<Output = Result<T, CoreError>>,
    ) -> Result<Response<T>, Status> {
        // Mapped inside the span, so that what the mapping logs carries the request id.
        let answer = async {
            match use_case.await {
                Ok(message) => Ok(respond(message, &self.request_id)),
                Err(err) => Err(to_status(&err, &self.request_id)),
            }
        };
        answer.instrument(span).await
    }
}
