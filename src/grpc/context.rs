//! Per-request context taken from gRPC metadata: the request id and the admin's credential.

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response};

use crate::observability::telemetry::RequestSpan;
pub use crate::transport::request_id::{REQUEST_ID_HEADER, request_id_from};
use crate::transport::request_id::{client_request_id, new_request_id};
use keygate_core::admin::AdminContext;
use keygate_core::model::{Credentials, RequestOrigin};

/// The caller's `x-request-id` when it is sensible, otherwise a new UUID (see
/// [`request_id_from`]).
pub fn request_id(metadata: &MetadataMap) -> String {
    request_id_from(metadata.get(REQUEST_ID_HEADER).and_then(|value| value.to_str().ok()))
}

/// The admin's own credential from metadata: `x-api-key` or `authorization`.
pub fn caller_credentials<T>(request: &Request<T>) -> Credentials {
    let text =
        |name: &str| request.metadata().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    Credentials { authorization: text("authorization"), api_key: text("x-api-key") }
}

/// An admin request's context: the caller's credential, the request ids and the peer
/// address, for the audit log. The request id is always keygate's own, never the caller's
/// `x-request-id`, which the audit log keeps apart: a caller must not be able to pass its
/// entries off as another request's.
pub fn admin_context<T>(request: &Request<T>) -> AdminContext {
    let peer = request.remote_addr().map(|addr| addr.to_string()).unwrap_or_default();
    let given = request.metadata().get(REQUEST_ID_HEADER).and_then(|value| value.to_str().ok());
    let client_request_id = client_request_id(given);
    let origin = RequestOrigin { request_id: new_request_id(), client_request_id, peer };
    AdminContext { credentials: caller_credentials(request), origin }
}

/// The call's span (see [`crate::observability::telemetry`]), or a disabled one when traces are off.
pub fn request_span<T>(request: &Request<T>) -> RequestSpan {
    request.extensions().get::<RequestSpan>().cloned().unwrap_or_else(|| RequestSpan(tracing::Span::none()))
}

/// Wraps a message in a response that echoes the request id in metadata.
pub fn respond<T>(message: T, request_id: &str) -> Response<T> {
    let mut response = Response::new(message);
    if let Ok(mut value) = MetadataValue::try_from(request_id) {
        // Never indexed by HPACK: every id is new, so adding it to the connection's header table
        // costs a table update per response and evicts the entries that do repeat.
        value.set_sensitive(true);
        response.metadata_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
