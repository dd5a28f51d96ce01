//! `keygate healthcheck`: a grpc.health.v1 check of the local server, for exec probes and
//! Docker's `HEALTHCHECK` in an image with no shell and no grpcurl, and for Kubernetes probes when
//! TLS is on (native gRPC probes cannot speak TLS).
//!
//! Over TLS the server must present exactly the certificate in `tls.cert_file`: the check talks
//! to its own process, so pinning that certificate replaces a CA (and a name) it may not have.
//! With client certificates required (mTLS), the server's own certificate and key are presented,
//! which works when the client CA also signed the server's certificate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::{Config, TlsConfig};

/// Asks the server at `addr` (else the configured `grpc_addr`; an unspecified address means
/// this host's loopback) for the status of `service` (`""`: the server as a whole).
pub async fn check(
    config: &Config,
    addr: Option<SocketAddr>,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, String> {
    let target = local(addr.unwrap_or(config.grpc_addr));
    let endpoint = Endpoint::from_shared(format!("http://{target}"))
        .map_err(|e| format!("{target}: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = match config.tls.cert_file {
        None => endpoint.connect().await,
        Some(_) => {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&config.tls)?));
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let connector = connector.clone();
                    async move {
                        let tcp = tokio::net::TcpStream::connect(target).await?;
                        let name = ServerName::from(target.ip());
                        Ok::<_, std::io::Error>(TokioIo::new(connector.connect(name, tcp).await?))
                    }
                }))
                .await
        }
    }
    .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    ask(channel, service).await.map_err(|e| format!("{target}: {e}"))
}

async fn ask(channel: Channel, service: &str) -> Result<ServingStatus, String> {
    let request = HealthCheckRequest { service: service.to_owned() };
    match HealthClient::new(channel).check(request).await {
        Ok(response) => Ok(response.into_inner().status()),
        Err(status) if status.code() == tonic::Code::NotFound => Err(format!("no service named {service:?}")),
        Err(status) => Err(format!("{}: {}", status.code(), status.message())),
    }
}

/// `0.0.0.0` and `::` listen everywhere; a check connects to the loopback.
fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port()),
        _ => addr,
    }
}

/// A client that accepts the configured certificate alone, offering HTTP/2.
fn client_config(tls: &TlsConfig) -> Result<ClientConfig, String> {
    let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) else {
        return Err("tls.cert_file and tls.key_file are both needed".to_owned());
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    let leaf = chain.first().cloned().ok_or_else(|| format!("{}: holds no certificate", cert_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { leaf, provider }));
    let mut config = match tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(_) => {
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("{}: {e}", cert_file.display()))?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts one certificate, byte for byte, with signatures checked as usual.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::General("the server's certificate is not the one in tls.cert_file".to_owned()))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_mean_the_loopback() {
        let v4: SocketAddr = "0.0.0.0:50051".parse().expect("addr");
        let v6: SocketAddr = "[::]:50051".parse().expect("addr");
        let given: SocketAddr = "10.1.2.3:7".parse().expect("addr");
        assert_eq!(local(v4), "127.0.0.1:50051".parse().expect("addr"));
        assert_eq!(local(v6), "[::1]:50051".parse().expect("addr"));
        assert_eq!(local(given), given);
    }
}
