//! Test support: fresh databases per test, an in-process server with a manual clock, clients.

pub mod certs;
pub mod db;
pub mod envoy;
pub mod hostile;
pub mod hostile_http;
pub mod http;
pub mod kubelet;
pub mod load;
pub mod own;
pub mod process;
pub mod proxy;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use keygate::app::{self, AppError};
use keygate::config::{Config, Sources};
use keygate::proto::keygate_v1 as pb;
use keygate_core::clock::ManualClock;
use pb::admin_service_client::AdminServiceClient;
use pb::auth_service_client::AuthServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

pub use db::{Backend, TestDb};

/// Runs one test body against every backend: `backend_tests!(name, ...)` makes
/// `sqlite::name` and `postgres::name` from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// The Redis the tests share: `TEST_REDIS_URL`, by default the local one.
/// A port nothing listens on now, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The fixed start of every test clock.
pub fn start_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 27, 0, 0, 0).single().expect("valid time")
}

/// A config for tests: cheap argon2id parameters, a fast last-used flush, the given database.
pub fn test_config(database_url: &str, extra: &[(&'static str, &str)]) -> Config {
    let mut flags = vec![
        ("database.url", database_url.to_owned()),
        ("hashing.memory_kib", "1024".to_owned()),
        ("hashing.iterations", "1".to_owned()),
        ("keys.last_used_flush_secs", "1".to_owned()),
        ("database.health_interval_secs", "1".to_owned()),
    ];
    flags.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Config::load(&Sources { file: None, env: Vec::new(), flags }).expect("test config is valid")
}

/// A running keygate with its own fresh database and a manual clock.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP listener (token endpoint, JWKS, metadata, introspection).
    pub http_addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    /// The platform admin key made by bootstrap (scope `*`).
    pub admin_key: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), AppError>>>,
    pub db: TestDb,
}

impl TestServer {
    /// Starts on a fresh database of `backend`, bootstrapped.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// Starts with extra config settings.
    pub async fn start_with(backend: Backend, extra: &[(&'static str, &str)]) -> Self {
        let db = TestDb::create(backend).await;
        let config = test_config(&db.url, extra);
        Self::start_on(db, config).await
    }

    /// Starts with `config` (whose database URL may differ from `db`'s, e.g. through a proxy).
    pub async fn start_on(db: TestDb, config: Config) -> Self {
        let clock = Arc::new(ManualClock::new(start_time()));
        let admin_key = app::bootstrap(&config, clock.clone(), "platform", false).await.expect("bootstrap");
        Self::serve(db, config, clock, admin_key).await
    }

    /// Stops the server (flushing what it batches) and starts a new one on the same database
    /// and clock, as a restarted process would.
    pub async fn restart(mut self, extra: &[(&'static str, &str)]) -> Self {
        self.shutdown_only().await;
        let config = test_config(&self.db.url, extra);
        Self::serve(self.db, config, self.clock, self.admin_key).await
    }

    async fn serve(db: TestDb, mut config: Config, clock: Arc<ManualClock>, admin_key: String) -> Self {
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = grpc.local_addr().expect("local addr");
        let http_addr = http.local_addr().expect("local addr");
        config.http_addr = http_addr;
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = app::Listeners { grpc, http, metrics: None };
        let task = tokio::spawn(app::serve(config.clone(), clock.clone(), listeners, async {
            let _ = rx.await;
        }));
        let server = Self { addr, http_addr, clock, admin_key, shutdown: Some(tx), task: Some(task), db };
        server.wait_serving().await;
        server
    }

    async fn wait_serving(&self) {
        for _ in 0..100 {
            if let Ok(channel) = Channel::from_shared(format!("http://{}", self.addr)).expect("uri").connect().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
                if let Ok(response) = health.check(request).await
                    && response.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("keygate did not become SERVING");
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).expect("uri").connect().await.expect("connect")
    }

    pub async fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel().await)
    }

    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    /// The URL of `path` on the HTTP listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// Advances the server's clock.
    pub fn advance_days(&self, days: i64) {
        self.clock.advance(chrono::Duration::days(days));
    }

    /// Stops the server (flushing batched writes) and drops its database.
    pub async fn stop(mut self) {
        self.shutdown_only().await;
        self.db.drop_database().await;
    }

    /// Stops the server, keeping the database for inspection.
    pub async fn shutdown_only(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stopped cleanly");
        }
    }

    /// Creates a key in the caller's organization and returns (full key, key id).
    pub async fn create_key(&self, caller: &str, name: &str, scopes: &[&str]) -> (String, String) {
        let request = pb::CreateApiKeyRequest {
            name: name.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let created =
            self.admin().await.create_api_key(as_admin(request, caller)).await.expect("create key").into_inner();
        let key_id = created.key.expect("key view").key_id;
        (created.api_key, key_id)
    }

    /// Calls Authorize with the key in `Authorization: Bearer`.
    pub async fn authorize(&self, key: &str, scopes: &[&str]) -> pb::AuthorizeResponse {
        let request = pb::AuthorizeRequest {
            credentials: Some(bearer(key)),
            required_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        self.auth().await.authorize(request).await.expect("authorize answers").into_inner()
    }

    /// The decision's reason for `key` needing `scopes`.
    pub async fn reason(&self, key: &str, scopes: &[&str]) -> pb::DecisionReason {
        let response = self.authorize(key, scopes).await;
        response.decision.expect("decision").reason()
    }
}

/// Credentials carried as `Authorization: Bearer <key>`.
pub fn bearer(key: &str) -> pb::Credentials {
    pb::Credentials { authorization: format!("Bearer {key}"), api_key: String::new() }
}

/// Wraps an admin request with the caller's key in `x-api-key` metadata.
pub fn as_admin<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-api-key", key.parse().expect("ascii key"));
    request
}

/// An in-process admin call's context: the caller's key in `x-api-key`, a fixed request id.
pub fn admin_ctx(key: &str) -> keygate_core::admin::AdminContext {
    keygate_core::admin::AdminContext {
        credentials: keygate_core::model::Credentials { authorization: String::new(), api_key: key.to_owned() },
        origin: keygate_core::model::RequestOrigin {
            request_id: "in-process".into(),
            client_request_id: String::new(),
            peer: String::new(),
        },
    }
}

/// Asserts `status` has `code`, and returns it.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status
        }
    }
}

/// The fields named by a status's `BadRequest` details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    let details = status.get_error_details();
    details.bad_request().map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect()).unwrap_or_default()
}

/// The `ErrorInfo` reason of a status.
pub fn error_reason(status: &Status) -> String {
    let info = status.get_error_details().error_info().cloned().expect("ErrorInfo details");
    assert_eq!(info.domain, "keygate");
    info.reason
}
