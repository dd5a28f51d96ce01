//! What the settings land in: `Config` and its sections, each a component's settings or close to
//! them, and their defaults (the declarations in `settings.rs` document the same defaults, and a
//! test holds the two together).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keygate_core::admin::Plan;
use keygate_core::credentials::hashing::HashParams;
use keygate_core::credentials::scopes::DEFAULT_SCOPES;
use keygate_core::gateway::UnmatchedAction;
use keygate_core::limits::{KindDefaults, LeaseSettings, LimitDefaults};
use keygate_core::model::LimitOverrides;
use keygate_core::tokens::sealing::KeyEncryptionKey;
use keygate_core::tokens::signing::Algorithm;

use super::DEFAULT_DATABASE_URL;
use super::traces::TracesConfig;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// keygate's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where `/metrics` is served on its own; `None` serves it on `http_addr` beside the public
    /// OAuth endpoints.
    pub metrics_addr: Option<SocketAddr>,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub keys: KeysConfig,
    /// The application scopes keygate knows (its admin scopes are always added).
    pub scopes: Vec<String>,
    pub organizations: OrganizationsConfig,
    pub hashing: HashingConfig,
    pub cache: CacheConfig,
    pub oauth: OAuthConfig,
    pub envoy: EnvoyConfig,
    pub limits: LimitsConfig,
    pub traces: TracesConfig,
    pub shutdown: ShutdownConfig,
    pub tls: TlsConfig,
    pub console: ConsoleConfig,
    /// Environment variables skipped as Kubernetes service links, for one debug line once
    /// logging is up.
    pub ignored_env: Vec<String>,
}

/// Where rate-limit, quota and concurrency counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsBackend {
    /// In this process: exact for one replica.
    Memory,
    /// In Redis, shared by every replica.
    Redis,
}

/// What the Redis backend does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailureMode {
    /// Count in this process's memory (each replica then admits up to the limit on its own).
    Open,
    /// Refuse to decide: UNAVAILABLE, so that Envoy's failure mode applies.
    Closed,
}

/// Rate limits, monthly quotas and concurrency slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    pub backend: LimitsBackend,
    /// `redis://` or `rediss://` (TLS); it may hold a password, so no error prints it.
    pub redis_url: String,
    /// PEM CA certificates for `rediss://`, instead of the system's roots.
    pub redis_ca_file: Option<PathBuf>,
    pub redis_failure: RedisFailureMode,
    /// How long one Redis call (or connection attempt) may take before Redis counts as down.
    pub redis_timeout: Duration,
    /// How often quota usage is written to the database: the most usage a crash can lose.
    pub flush_interval: Duration,
    /// A concurrency slot's lease when `AcquireSlot` does not ask for one, and the most it may
    /// ask: the limiter's own settings.
    pub lease: LeaseSettings,
    pub defaults: LimitDefaults,
    /// The loosest limits an organization's own admins may give a key or client, where its plan
    /// sets none; an unset field falls back to the default of the credential's kind, 0 is no
    /// ceiling. Platform admins are not bound.
    pub ceiling: LimitOverrides,
}

/// What happens on SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// Time between reporting NOT_SERVING and closing the listeners, for load balancers to
    /// notice (0: close at once).
    pub drain_delay: Duration,
    /// Time in-flight requests get to finish once the listeners are closed; connections still
    /// open after that are cut.
    pub grace: Duration,
}

/// The admin console at `/console` on the HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub enabled: bool,
    /// How long a console session lasts without a request.
    pub session_idle: Duration,
    /// How long a console session lasts at most, in use or not.
    pub session_max: Duration,
}

/// TLS for the gRPC and HTTP listeners (both or neither), with optional client certificates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first; TLS is on when this is set.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, every client must present a certificate they signed (mTLS).
    pub client_ca_file: Option<PathBuf>,
    /// Time between checks of the files for changes; a changed set is loaded for new
    /// connections.
    pub reload_poll: Duration,
}

/// Envoy's external authorizer (`envoy.service.auth.v3.Authorization/Check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyConfig {
    /// The route policy (TOML); without one every request is unmatched.
    pub policy_file: Option<PathBuf>,
    /// What happens to requests no route matches.
    pub default_action: UnmatchedAction,
    /// Time between checks of the policy file for changes (SIGHUP reloads at once).
    pub policy_poll: Duration,
    /// Whether the credential headers are removed before the request reaches the upstream.
    pub strip_credentials: bool,
    /// Whether the answer carries the decision as dynamic metadata.
    pub dynamic_metadata: bool,
    pub headers: EnvoyHeaders,
}

/// Header names, lower case: where credentials are read and where the principal is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyHeaders {
    pub authorization: String,
    pub api_key: String,
    pub principal_type: String,
    pub principal_id: String,
    pub organization: String,
    pub scopes: String,
}

impl EnvoyHeaders {
    /// Each header keygate reads or writes, by its setting's name.
    pub fn named(&self) -> [(&'static str, &str); 6] {
        [
            ("authorization", &self.authorization),
            ("api_key", &self.api_key),
            ("principal_type", &self.principal_type),
            ("principal_id", &self.principal_id),
            ("organization", &self.organization),
            ("scopes", &self.scopes),
        ]
    }
}

/// keygate as an OAuth2 authorization server, and the outside issuers it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// `iss` of keygate's tokens; empty means `http://{http_addr}` (`https://` with TLS). Set it
    /// to the public URL.
    pub issuer: String,
    /// `aud` of keygate's tokens.
    pub audience: Vec<String>,
    /// The lifetime of keygate's access tokens.
    pub token_ttl: Duration,
    /// Tolerated clock skew for `exp` and `nbf`.
    pub leeway: Duration,
    /// The algorithm of generated signing keys.
    pub algorithm: Algorithm,
    /// PEM private keys to sign with instead of generated ones; the first signs.
    pub signing_key_files: Vec<PathBuf>,
    /// The key-encryption key (32 bytes), from the environment (never the config file, which is
    /// often a ConfigMap): seals the signing keys stored in the database and keys the secrets'
    /// fingerprints. `Debug` shows only its id.
    pub signing_key_encryption_key: Option<KeyEncryptionKey>,
    /// A file holding the key-encryption key (a mounted Secret), read at start; instead of
    /// `signing_key_encryption_key`.
    pub signing_key_encryption_key_file: Option<PathBuf>,
    /// Trusted outside issuers of user tokens, by name.
    pub issuers: BTreeMap<String, IssuerConfig>,
}

/// One trusted outside identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Exactly one of `jwks_url` and `jwks_file`.
    pub jwks_url: String,
    pub jwks_file: Option<PathBuf>,
    pub user_claim: String,
    /// `scope` (space-separated), `scp`, or a roles claim (an array).
    pub scope_claim: String,
    /// The claim naming the organization: required with `organizations`; with `organization`, a
    /// token naming another one in it is refused.
    pub organization_claim: String,
    /// A fixed organization for every user of this issuer. Exactly one of `organization` and
    /// `organizations` binds an issuer.
    pub organization: String,
    /// The organizations this issuer's tokens may name in `organization_claim` (an allow-list).
    pub organizations: Vec<String>,
    /// The operator's mark that this issuer's users may act for the platform organization (and be
    /// platform admins); needs a fixed `organization`. Off by default.
    pub platform: bool,
    pub algorithms: Vec<Algorithm>,
    /// How long a fetched JWKS is used before it is fetched again.
    pub refresh: Duration,
    /// The least time between two fetches caused by unknown key ids.
    pub min_refetch: Duration,
    /// Whether the provider's tokens may carry keygate's admin scopes and `*`.
    pub allow_admin_scopes: bool,
    /// Whether `jwks_url` may be plain `http://`: anyone on the path could then swap the keys.
    pub allow_http: bool,
    /// The `typ` header a token must carry (e.g. `at+jwt`, RFC 9068), so that ID tokens cannot
    /// pass as access tokens; empty accepts any.
    pub typ: String,
    /// Whether this issuer's admins may create keys and client secrets that outlive their token
    /// (up to the configured maximum lifetime); needs `allow_admin_scopes`. Off by default.
    pub lasting_credentials: bool,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audiences: Vec::new(),
            jwks_url: String::new(),
            jwks_file: None,
            user_claim: "sub".to_owned(),
            scope_claim: "scope".to_owned(),
            organization_claim: "org".to_owned(),
            organization: String::new(),
            organizations: Vec::new(),
            platform: false,
            algorithms: vec![Algorithm::Rs256, Algorithm::Es256],
            refresh: Duration::from_secs(300),
            min_refetch: Duration::from_secs(10),
            allow_admin_scopes: false,
            allow_http: false,
            typ: String::new(),
            lasting_credentials: false,
        }
    }
}

impl Config {
    /// `iss` of keygate's own tokens.
    pub fn token_issuer(&self) -> String {
        let scheme = if self.tls.cert_file.is_some() { "https" } else { "http" };
        if self.oauth.issuer.is_empty() { format!("{scheme}://{}", self.http_addr) } else { self.oauth.issuer.clone() }
    }
}

/// The verdict cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub max_entries: u64,
    /// The most a cached verdict can lag a change should every notification be lost.
    pub ttl: Duration,
    /// How long a rejected key is remembered.
    pub negative_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `sqlite://PATH?mode=rwc` or `postgres://USER@HOST:PORT/DB`.
    pub url: String,
    pub max_connections: u32,
    /// How long to wait for a connection before a request answers UNAVAILABLE.
    pub timeout: Duration,
    /// Whether `serve` applies pending migrations at start.
    pub run_migrations: bool,
    /// Time between database health probes.
    pub health_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `keygate=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysConfig {
    /// What every new key starts with, e.g. `sk_live_`.
    pub prefix: String,
    pub default_expires_in_days: i64,
    pub max_expires_in_days: i64,
    pub default_grace_period_days: i64,
    pub max_grace_period_days: i64,
    /// Time between batched writes of `last_used_at`.
    pub last_used_flush: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationsConfig {
    /// Plan name -> its key limit and ceiling (a `max_active_keys` of 0: not configured, an
    /// error once loaded).
    pub plans: BTreeMap<String, Plan>,
    /// The plan of organizations created without one.
    pub default_plan: String,
    /// The plan of the platform organization `keygate bootstrap` creates.
    pub bootstrap_plan: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashingConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
    /// Most argon2 computations at once; 0 means half the CPU cores (at least one), leaving the
    /// rest for cached traffic.
    pub max_concurrent: u32,
    /// Most verifications waiting for a turn; beyond, UNAVAILABLE at once.
    pub max_waiting: u32,
    /// The argon2 threads' `nice` (0 to 19): cached traffic gets the CPU first.
    pub nice: u32,
}

impl Default for Config {
    fn default() -> Self {
        let hash = HashParams::default();
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_addr: None,
            database: DatabaseConfig {
                url: DEFAULT_DATABASE_URL.to_owned(),
                max_connections: 10,
                timeout: Duration::from_secs(5),
                run_migrations: true,
                health_interval: Duration::from_secs(5),
            },
            log: LogConfig { format: LogFormat::Text, level: "info".to_owned() },
            keys: KeysConfig {
                prefix: "sk_live_".to_owned(),
                default_expires_in_days: 365,
                max_expires_in_days: 3650,
                default_grace_period_days: 7,
                max_grace_period_days: 90,
                last_used_flush: Duration::from_secs(10),
            },
            scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            organizations: OrganizationsConfig {
                plans: BTreeMap::from([
                    ("free".to_owned(), Plan::with_keys(3)),
                    ("pro".to_owned(), Plan::with_keys(50)),
                    ("enterprise".to_owned(), Plan::with_keys(1000)),
                ]),
                default_plan: "free".to_owned(),
                bootstrap_plan: "enterprise".to_owned(),
            },
            hashing: HashingConfig {
                memory_kib: hash.memory_kib,
                iterations: hash.iterations,
                lanes: hash.lanes,
                max_concurrent: 0,
                max_waiting: 32,
                // The lowest priority: under a flood of made-up secrets for a real key id, cached
                // traffic kept about 0.9 of its throughput at 19 against about 0.84 at 10, and
                // argon2 still ran (10 verifications a second against 15; scripts/bench).
                nice: 19,
            },
            cache: CacheConfig {
                max_entries: 1_000_000,
                ttl: Duration::from_secs(300),
                negative_ttl: Duration::from_secs(30),
            },
            limits: LimitsConfig {
                backend: LimitsBackend::Memory,
                redis_url: "redis://127.0.0.1:6379".to_owned(),
                redis_ca_file: None,
                redis_failure: RedisFailureMode::Open,
                redis_timeout: Duration::from_millis(500),
                flush_interval: Duration::from_millis(1000),
                lease: LeaseSettings { default: Duration::from_secs(300), max: Duration::from_secs(86_400) },
                // The reference's defaults: users 100 a minute, clients 200, keys what they were
                // created with (none unless configured); 5 concurrent slots per principal.
                defaults: LimitDefaults {
                    api_keys: KindDefaults { rate_per_minute: 0, rate_burst: 0, max_quota: 0, max_concurrency: 5 },
                    clients: KindDefaults { rate_per_minute: 200, rate_burst: 0, max_quota: 0, max_concurrency: 5 },
                    users: KindDefaults { rate_per_minute: 100, rate_burst: 0, max_quota: 0, max_concurrency: 5 },
                },
                // None configured: organization admins may tighten the defaults, not loosen them.
                ceiling: LimitOverrides::default(),
            },
            oauth: OAuthConfig {
                issuer: String::new(),
                audience: vec!["keygate".to_owned()],
                token_ttl: Duration::from_secs(1800),
                leeway: Duration::from_secs(30),
                algorithm: Algorithm::Rs256,
                signing_key_files: Vec::new(),
                signing_key_encryption_key: None,
                signing_key_encryption_key_file: None,
                issuers: BTreeMap::new(),
            },
            envoy: EnvoyConfig {
                policy_file: None,
                default_action: UnmatchedAction::Deny,
                policy_poll: Duration::from_secs(2),
                strip_credentials: true,
                dynamic_metadata: true,
                headers: EnvoyHeaders {
                    authorization: "authorization".to_owned(),
                    api_key: "x-api-key".to_owned(),
                    principal_type: "x-keygate-principal-type".to_owned(),
                    principal_id: "x-keygate-principal-id".to_owned(),
                    organization: "x-keygate-organization".to_owned(),
                    scopes: "x-keygate-scopes".to_owned(),
                },
            },
            traces: TracesConfig::default(),
            shutdown: ShutdownConfig { drain_delay: Duration::ZERO, grace: Duration::from_secs(30) },
            console: ConsoleConfig {
                enabled: true,
                session_idle: Duration::from_secs(30 * 60),
                session_max: Duration::from_secs(8 * 3600),
            },
            tls: TlsConfig { reload_poll: Duration::from_secs(10), ..TlsConfig::default() },
            ignored_env: Vec::new(),
        }
    }
}
