//! What both edges listen with: TLS (certificates followed on disk) and plain TCP.

pub mod tls;

/// How a listener is served, by either edge.
pub struct Transport {
    /// TLS when set (see [`tls`]), else plain text (HTTP/2 for gRPC, HTTP/1.1 or 2 for HTTP).
    pub tls: Option<tls::CurrentConfig>,
    /// Whether each request gets an exported span (see [`crate::observability::telemetry`]).
    pub traced: bool,
}
