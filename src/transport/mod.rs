//! What both edges listen with: TLS (certificates followed on disk) and plain TCP.

pub mod request_id;
pub mod tls;

/// How a listener is served, by either edge.
pub struct Transport {
    /// TLS when set (see [`tls`]), else plain text (HTTP/2 for gRPC, HTTP/1.1 or 2 for HTTP).
    pub tls: Option<tls::CurrentConfig>,
    /// Whether each request gets an exported span (see [`crate::observability::telemetry`]).
    pub traced: bool,
}

/// The peer's address, as either listener gives it to a handler (axum's `ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}
