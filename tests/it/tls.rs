//! TLS on both listeners, with certificates made in the test: gRPC and HTTP over TLS work, plain
//! connections do not, replaced certificate files are served to new connections, and with a
//! client CA (mTLS) only callers presenting a certificate it signed get through.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keygate::app::{self, AppError};
use keygate::proto::keygate_v1 as pb;
use keygate_core::clock::ManualClock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::support::certs::Ca;
use crate::support::{Backend, TestDb, bearer, start_time, test_config};

/// keygate serving over TLS from files in a temporary directory (`cert.pem`, `key.pem`, and
/// `client-ca.pem` when `client_ca`); also the CLI's test of `https://`.
pub(crate) struct TlsServer {
    pub(crate) grpc: SocketAddr,
    http: SocketAddr,
    pub(crate) admin_key: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AppError>>,
    _db: TestDb,
}

impl TlsServer {
    pub(crate) async fn start(dir: &Path, client_ca: bool) -> Self {
        let db = TestDb::create(Backend::Sqlite).await;
        let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();
        let (cert, key, ca) = (path("cert.pem"), path("key.pem"), path("client-ca.pem"));
        let mut settings = vec![("tls.cert_file", cert.as_str()), ("tls.key_file", key.as_str())];
        settings.push(("tls.reload_poll_secs", "1"));
        if client_ca {
            settings.push(("tls.client_ca_file", ca.as_str()));
        }
        let mut config = test_config(&db.url, &settings);
        let clock = Arc::new(ManualClock::new(start_time()));
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (grpc_addr, http_addr) = (grpc.local_addr().expect("addr"), http.local_addr().expect("addr"));
        config.http_addr = http_addr;
        let admin_key = app::bootstrap(&config, clock.clone(), "platform", false).await.expect("bootstrap");
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = app::Listeners { grpc, http, metrics: None };
        let task = tokio::spawn(app::serve(config, clock, listeners, async {
            let _ = rx.await;
        }));
        Self { grpc: grpc_addr, http: http_addr, admin_key, shutdown: Some(tx), task, _db: db }
    }

    /// Authorize over TLS trusting `ca`, presenting `identity`; whether the call was answered.
    async fn authorize(&self, ca: &str, identity: Option<&(String, String)>) -> Result<bool, String> {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let endpoint = Channel::from_shared(format!("https://{}", self.grpc)).expect("uri");
        let channel =
            endpoint.tls_config(tls).map_err(|e| e.to_string())?.connect().await.map_err(|e| format!("{e:?}"))?;
        self.call(channel).await
    }

    async fn call(&self, channel: Channel) -> Result<bool, String> {
        let request = pb::AuthorizeRequest {
            cost: None,
            credentials: Some(bearer(&self.admin_key)),
            required_scopes: vec!["graph:read".into()],
            organization: String::new(),
        };
        let response = pb::auth_service_client::AuthServiceClient::new(channel).authorize(request).await;
        let response = response.map_err(|status| format!("{status:?}"))?;
        Ok(response.into_inner().decision.expect("decision").allowed)
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("server task").expect("stopped cleanly");
    }
}

fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_both_listeners_and_reloads_replaced_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first_ca, second_ca) = (Ca::new("first"), Ca::new("second"));
    let (cert, key) = first_ca.sign(&["localhost", "127.0.0.1"]);
    write(dir.path(), "cert.pem", &cert);
    write(dir.path(), "key.pem", &key);
    let server = TlsServer::start(dir.path(), false).await;

    assert_eq!(server.authorize(&first_ca.pem, None).await, Ok(true), "Authorize over TLS");
    let plain = Channel::from_shared(format!("http://{}", server.grpc)).expect("uri").connect().await;
    let plain = match plain {
        Ok(channel) => server.call(channel).await,
        Err(err) => Err(err.to_string()),
    };
    assert!(plain.is_err(), "plaintext gRPC is refused: {plain:?}");
    let distrusted = server.authorize(&second_ca.pem, None).await;
    assert!(distrusted.is_err(), "the certificate is the first CA's");

    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(first_ca.pem.as_bytes()).expect("ca"))
        .resolve("localhost", server.http)
        .build()
        .expect("client");
    let jwks = https.get(format!("https://localhost:{}/.well-known/jwks.json", server.http.port())).send().await;
    assert!(jwks.expect("jwks over https").status().is_success());
    let metadata = https
        .get(format!("https://localhost:{}/.well-known/oauth-authorization-server", server.http.port()))
        .send()
        .await
        .expect("metadata")
        .text()
        .await
        .expect("body");
    let metadata: serde_json::Value = serde_json::from_str(&metadata).expect("json");
    assert!(metadata["issuer"].as_str().is_some_and(|iss| iss.starts_with("https://")), "{metadata}");
    // Over TLS the console's session cookie is Secure.
    let console = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(first_ca.pem.as_bytes()).expect("ca"))
        .resolve("localhost", server.http)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let origin = format!("https://localhost:{}", server.http.port());
    let signed_in = console
        .post(format!("{origin}/console/sign-in"))
        .header("origin", &origin)
        .form(&[("credential", server.admin_key.as_str())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), reqwest::StatusCode::SEE_OTHER);
    let cookie = signed_in.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    let plain_http = reqwest::get(format!("http://{}/.well-known/jwks.json", server.http)).await;
    assert!(plain_http.is_err(), "plain HTTP is refused");

    // Replace the files (certificate first, so the server meets a mismatched pair on the way).
    let (cert, key) = second_ca.sign(&["localhost"]);
    write(dir.path(), "cert.pem", &cert);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write(dir.path(), "key.pem", &key);
    let mut reloaded = false;
    for _ in 0..50 {
        if server.authorize(&second_ca.pem, None).await == Ok(true) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "new connections get the replaced certificate");
    assert!(server.authorize(&first_ca.pem, None).await.is_err(), "the old certificate is no longer served");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_requires_a_client_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server_ca, client_ca, stranger_ca) = (Ca::new("server"), Ca::new("clients"), Ca::new("stranger"));
    let (cert, key) = server_ca.sign(&["localhost"]);
    write(dir.path(), "cert.pem", &cert);
    write(dir.path(), "key.pem", &key);
    write(dir.path(), "client-ca.pem", &client_ca.pem);
    let server = TlsServer::start(dir.path(), true).await;

    let anonymous = server.authorize(&server_ca.pem, None).await;
    assert!(anonymous.is_err(), "no client certificate, no call: {anonymous:?}");
    let stranger = server.authorize(&server_ca.pem, Some(&stranger_ca.sign(&["backend"]))).await;
    assert!(stranger.is_err(), "a certificate from another CA is refused: {stranger:?}");
    let client = client_ca.sign(&["backend"]);
    assert_eq!(server.authorize(&server_ca.pem, Some(&client)).await, Ok(true), "a client certificate gets through");
    server.stop().await;
}
