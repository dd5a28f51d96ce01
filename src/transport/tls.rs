//! TLS for the gRPC and HTTP listeners (rustls, ring), with optional client certificates (mTLS).
//! The certificate, key and client CA files are loaded at start (a bad set stops start-up), then
//! read again every `tls.reload_poll_secs`; a changed, valid set is used for every new connection
//! from then on, a bad one is logged and the set in force stays.
//!
//! Handshakes run concurrently inside the accept stream ([`TlsIncoming`]), not in spawned tasks,
//! so a slow client never holds up the others and nothing outlives the server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FuturesUnordered, Stream, StreamExt};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::TlsConfig;

/// How long a client gets to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most handshakes in progress on one listener. Beyond it, connections wait in the kernel's
/// accept queue: clients that open connections and never finish a handshake cannot make keygate
/// hold unbounded memory and timers, only delay new connections by up to [`HANDSHAKE_TIMEOUT`].
const MAX_HANDSHAKES: usize = 1024;
/// The pause after a failed accept (e.g. out of file descriptors) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The files of a TLS setup, and what they held when last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

/// The bytes of every file, to notice changes.
type Contents = Vec<Vec<u8>>;

impl Files {
    fn of(config: &TlsConfig) -> Option<Self> {
        Some(Self {
            cert: config.cert_file.clone()?,
            key: config.key_file.clone()?,
            client_ca: config.client_ca_file.clone(),
        })
    }

    fn read(&self) -> Result<Contents, TlsError> {
        let read =
            |path: &Path| std::fs::read(path).map_err(|source| TlsError::Unreadable { path: path.to_owned(), source });
        let mut contents = vec![read(&self.cert)?, read(&self.key)?];
        if let Some(ca) = &self.client_ca {
            contents.push(read(ca)?);
        }
        Ok(contents)
    }

    /// A server configuration from the files' `contents` (as [`Files::read`] returns them).
    fn build(&self, contents: &Contents) -> Result<ServerConfig, TlsError> {
        let invalid = |path: &Path, problem: String| TlsError::Invalid { path: path.to_owned(), problem };
        let certs = CertificateDer::pem_slice_iter(&contents[0])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&self.cert, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(invalid(&self.cert, "holds no certificate".to_owned()));
        }
        let key = PrivateKeyDer::from_pem_slice(&contents[1])
            .map_err(|e| invalid(&self.key, format!("not a PEM private key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let builder = match (&self.client_ca, contents.get(2)) {
            (Some(path), Some(pem)) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| invalid(path, format!("not PEM certificates: {e}")))?;
                    roots.add(cert).map_err(|e| invalid(path, format!("not a CA certificate: {e}")))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| invalid(path, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| invalid(&self.cert, e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The server configuration in force, replaced when the files change.
pub type CurrentConfig = watch::Receiver<Arc<ServerConfig>>;
/// Where [`follow`] publishes reloaded configurations.
pub type ConfigUpdates = watch::Sender<Arc<ServerConfig>>;

/// Loads the configured files; `None` when TLS is off. A bad set is an error (start-up stops).
pub fn load(config: &TlsConfig) -> Result<Option<(ConfigUpdates, CurrentConfig)>, TlsError> {
    let Some(files) = Files::of(config) else { return Ok(None) };
    let server = files.build(&files.read()?)?;
    Ok(Some(watch::channel(Arc::new(server))))
}

/// Reads the files every `every` and publishes each valid new set on `current`, until `stop`
/// changes.
pub async fn follow(config: TlsConfig, current: ConfigUpdates, every: Duration, stop: watch::Receiver<bool>) {
    let Some(files) = Files::of(&config) else { return };
    let loaded = files.read().ok();
    crate::tasks::follow(Followed { files, current }, loaded, every, stop).await;
}

/// The TLS files as [`crate::tasks::follow`] follows them.
struct Followed {
    files: Files,
    current: ConfigUpdates,
}

impl crate::tasks::Followed for Followed {
    type Contents = Contents;
    type Built = ServerConfig;
    type Error = TlsError;

    fn read(&self) -> Result<Contents, TlsError> {
        self.files.read()
    }

    fn build(&self, contents: &Contents) -> Result<ServerConfig, TlsError> {
        self.files.build(contents)
    }

    fn publish(&self, built: ServerConfig, _forced: bool) {
        tracing::info!(cert = %self.files.cert.display(), "tls certificates reloaded");
        self.current.send_replace(Arc::new(built));
    }

    fn reject(&self, problem: &str) {
        tracing::warn!(error = %problem, "tls files rejected; the certificates in force stay");
    }
}

/// An accepted TLS connection and its addresses.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    local: Option<SocketAddr>,
    remote: SocketAddr,
}

impl Connected for TlsConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo { local_addr: self.local, remote_addr: Some(self.remote) }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

type Handshake = Pin<Box<dyn Future<Output = Option<TlsConn>> + Send>>;

/// Accepted TCP connections after their TLS handshake, with the configuration in force when
/// each connection came. Failed handshakes are logged at debug and skipped.
pub struct TlsIncoming {
    listener: TcpListener,
    config: CurrentConfig,
    handshakes: FuturesUnordered<Handshake>,
    max_handshakes: usize,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TlsIncoming {
    pub fn new(listener: TcpListener, config: CurrentConfig) -> Self {
        Self::with_limit(listener, config, MAX_HANDSHAKES)
    }

    /// At most `max_handshakes` handshakes at once.
    fn with_limit(listener: TcpListener, config: CurrentConfig, max_handshakes: usize) -> Self {
        Self { listener, config, handshakes: FuturesUnordered::new(), max_handshakes, backoff: None }
    }

    fn handshake(&self, tcp: TcpStream, remote: SocketAddr) -> Handshake {
        let acceptor = TlsAcceptor::from(self.config.borrow().clone());
        Box::pin(async move {
            // No Nagle delay: gRPC's frames are small separate writes.
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().ok();
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some(TlsConn { stream, local, remote }),
                Ok(Err(err)) => {
                    tracing::debug!(peer = %remote, error = %err, "tls handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(peer = %remote, "tls handshake timed out");
                    None
                }
            }
        })
    }
}

impl Stream for TlsIncoming {
    type Item = io::Result<TlsConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(backoff) = &mut this.backoff
                && backoff.as_mut().poll(cx).is_ready()
            {
                this.backoff = None;
            }
            // With every slot taken nothing is accepted: a finished handshake wakes this again.
            while this.backoff.is_none() && this.handshakes.len() < this.max_handshakes {
                match this.listener.poll_accept(cx) {
                    Poll::Ready(Ok((tcp, remote))) => {
                        let handshake = this.handshake(tcp, remote);
                        this.handshakes.push(handshake);
                    }
                    Poll::Ready(Err(err)) => {
                        tracing::warn!(error = %err, "cannot accept a connection");
                        let mut backoff = Box::pin(tokio::time::sleep(ACCEPT_BACKOFF));
                        // Registers the wake-up.
                        let _ = backoff.as_mut().poll(cx);
                        this.backoff = Some(backoff);
                    }
                    Poll::Pending => break,
                }
            }
            match this.handshakes.poll_next_unpin(cx) {
                Poll::Ready(Some(Some(conn))) => return Poll::Ready(Some(Ok(conn))),
                // A failed handshake freed a slot: accept again.
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// [`TlsIncoming`] as an axum listener.
pub struct TlsListener {
    incoming: TlsIncoming,
    local: io::Result<SocketAddr>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: CurrentConfig) -> Self {
        let local = listener.local_addr();
        Self { incoming: TlsIncoming::new(listener, config), local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
        loop {
            // The stream never ends and skips failures; an `Err` was logged already.
            if let Some(Ok(conn)) = self.incoming.next().await {
                let remote = conn.remote;
                return (conn, remote);
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::pki_types::ServerName;
    use tokio::io::AsyncWriteExt;

    /// A server configuration for a fresh self-signed certificate, and that certificate.
    fn server() -> (Arc<ServerConfig>, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let der = cert.der().clone();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key"),
            )
            .expect("config");
        (Arc::new(config), der)
    }

    async fn client_handshake(addr: SocketAddr, cert: CertificateDer<'static>) -> io::Result<()> {
        let mut roots = RootCertStore::empty();
        roots.add(cert).map_err(io::Error::other)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
        tls.shutdown().await
    }

    /// Connections that never start their handshake hold every slot: no further connection is
    /// taken up until they go, then it is.
    #[tokio::test]
    async fn idle_handshakes_are_bounded() {
        let (config, cert) = server();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_updates, current) = watch::channel(config);
        let mut incoming = TlsIncoming::with_limit(listener, current, 2);
        let served = tokio::spawn(async move {
            let mut accepted = 0;
            while let Some(conn) = incoming.next().await {
                drop(conn);
                accepted += 1;
                if accepted == 1 {
                    return accepted;
                }
            }
            accepted
        });
        let idle = [TcpStream::connect(addr).await.expect("idle"), TcpStream::connect(addr).await.expect("idle")];
        tokio::time::sleep(Duration::from_millis(200)).await;
        let client = tokio::spawn(client_handshake(addr, cert));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!client.is_finished(), "a third handshake ran while two were in progress");
        drop(idle);
        let finished = tokio::time::timeout(Duration::from_secs(5), client).await;
        assert!(matches!(finished, Ok(Ok(Ok(())))), "the waiting client got through once a slot freed: {finished:?}");
        assert_eq!(served.await.expect("served"), 1);
    }
}
