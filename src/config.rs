//! Typed, strict, layered configuration: defaults, then a TOML file, then `KEYGATE_` environment
//! variables, then command-line flags. Unknown keys are errors, and every problem is reported at
//! once. The process environment is read here and nowhere else ([`from_process`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keygate_core::admin::Plan;
use keygate_core::credentials::api_key::is_valid_prefix;
use keygate_core::credentials::hashing::HashParams;
use keygate_core::credentials::scopes::{DEFAULT_SCOPES, is_well_formed};
use keygate_core::gateway::UnmatchedAction;
use keygate_core::limits::{KindDefaults, LeaseSettings, LimitDefaults};
use keygate_core::model::LimitOverrides;
use keygate_core::tokens::sealing::KeyEncryptionKey;
use keygate_core::tokens::signing::Algorithm;

mod components;
mod raw;
mod reference;
mod settings;
mod traces;

pub(crate) use components::chrono_duration;
use raw::Raw;
pub use reference::settings_table;
pub use settings::{DefaultIs, Kind, Setting, Unit};
use settings::{ISSUER_SETTINGS, PLAN_SETTINGS, SETTINGS};
pub use traces::{
    DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT, OtlpHeaders, OtlpProtocol, Ratio, TracesConfig, TracesExporter,
    TracesSampler,
};

/// The default gRPC listen address.
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
/// The default HTTP listen address (token endpoint, JWKS, metrics).
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// The embedded default store: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://keygate.db?mode=rwc";
const ENV_PREFIX: &str = "KEYGATE_";
const PLANS_PATH: &str = "organizations.plans.";
const ISSUERS_PATH: &str = "oauth.issuers.";
/// How the docs name a map's entries.
const PLANS_PATH_NAMED: &str = "organizations.plans.NAME.";
const ISSUERS_PATH_NAMED: &str = "oauth.issuers.NAME.";

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

/// Every problem found while loading, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where configuration comes from; injectable so that tests need no real environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A TOML file's path and contents.
    pub file: Option<(PathBuf, String)>,
    /// Environment variables; only those starting with `KEYGATE_` and the OpenTelemetry ones of
    /// [`OTEL_SETTINGS`] are read.
    pub env: Vec<(String, String)>,
    /// Command-line flags, as (setting path, value).
    pub flags: Vec<(&'static str, String)>,
}

/// The dotted path of every fixed setting, in the order of the settings table. The maps are not
/// listed: plans (`organizations.plans.NAME.` + [`plan_fields`]) and issuers
/// (`oauth.issuers.NAME.` + [`issuer_fields`]).
pub fn setting_paths() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|setting| setting.path)
}

/// The settings of one trusted issuer, under `oauth.issuers.NAME.`.
pub fn issuer_fields() -> impl Iterator<Item = &'static str> {
    ISSUER_SETTINGS.iter().map(|setting| setting.path)
}

/// The settings of one plan, under `organizations.plans.NAME.`.
pub fn plan_fields() -> impl Iterator<Item = &'static str> {
    PLAN_SETTINGS.iter().map(|setting| setting.path)
}

/// One declared setting, a map's fields under `organizations.plans.NAME.` and
/// `oauth.issuers.NAME.`.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub path: String,
    pub kind: Kind,
    pub default: DefaultIs,
    pub doc: &'static str,
}

/// Every setting as declared, in the order of the docs' table; a map's fields close the section
/// the map is in.
pub fn declared() -> Vec<Declared> {
    fn fields<T>(prefix: &str, table: &'static [Setting<T>]) -> Vec<Declared> {
        table.iter().map(|setting| setting.declared(prefix)).collect()
    }
    let maps = [
        ("organizations.", fields(PLANS_PATH_NAMED, PLAN_SETTINGS)),
        ("oauth.", fields(ISSUERS_PATH_NAMED, ISSUER_SETTINGS)),
    ];
    let mut all = Vec::new();
    for (at, setting) in SETTINGS.iter().enumerate() {
        all.push(setting.declared(""));
        let next = SETTINGS.get(at + 1).map_or("", |next| next.path);
        for (section, fields) in &maps {
            if setting.path.starts_with(section) && !next.starts_with(section) {
                all.extend(fields.iter().cloned());
            }
        }
    }
    all
}

/// The standard OpenTelemetry variables keygate reads, and the setting each sets. They are
/// applied in this order (a signal's own variable over the general one), after the file and
/// before `KEYGATE_` variables; an empty one counts as unset, as the specification says. Other
/// `OTEL_` variables are left alone, and the exporter is configured from these settings only.
pub const OTEL_SETTINGS: &[(&str, &str)] = &[
    ("OTEL_SDK_DISABLED", "traces.disabled"),
    ("OTEL_TRACES_EXPORTER", "traces.exporter"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "traces.base_endpoint"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "traces.endpoint"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "traces.protocol"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "traces.protocol"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "traces.certificate"),
    ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "traces.certificate"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "traces.headers"),
    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "traces.headers"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "traces.timeout_ms"),
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "traces.timeout_ms"),
    ("OTEL_TRACES_SAMPLER", "traces.sampler"),
    ("OTEL_TRACES_SAMPLER_ARG", "traces.sampler_arg"),
    ("OTEL_SERVICE_NAME", "traces.service_name"),
    ("OTEL_RESOURCE_ATTRIBUTES", "traces.resource_attributes"),
    ("OTEL_BSP_SCHEDULE_DELAY", "traces.schedule_delay_ms"),
];

/// The environment variable naming the config file (the `--config` flag's twin).
pub const CONFIG_FILE_ENV: &str = "KEYGATE_CONFIG";

/// The admin CLI's own variables (`keygate keys …` as a client of a server), not settings: an
/// admin's shell that exports them can still run `serve` and `config check`.
pub const CLIENT_ENV: &[&str] = &["KEYGATE_SERVER", "KEYGATE_CA_FILE", "KEYGATE_ADMIN_KEY", "KEYGATE_ADMIN_KEY_FILE"];

fn env_name(path: &str) -> String {
    format!("{ENV_PREFIX}{}", path.replace('.', "_").to_ascii_uppercase())
}

impl Config {
    /// Applies the sources over the defaults, then checks the result as a whole.
    pub fn load(sources: &Sources) -> Result<Self, ConfigErrors> {
        let mut config = Config::default();
        let mut problems = Vec::new();
        if let Some((path, text)) = &sources.file {
            config.apply_file(path, text, &mut problems);
        }
        config.apply_otel_env(&sources.env, &mut problems);
        config.apply_env(&sources.env, &mut problems);
        for (path, value) in &sources.flags {
            if let Err(problem) = config.apply(path, &Raw::Text(value)) {
                problems.push(format!("flag for {path}: {problem}"));
            }
        }
        config.check(&mut problems);
        if problems.is_empty() { Ok(config) } else { Err(ConfigErrors(problems)) }
    }

    fn apply(&mut self, path: &str, value: &Raw<'_>) -> Result<(), String> {
        if let Some(rest) = path.strip_prefix(PLANS_PATH) {
            let Some((plan, field)) = rest.split_once('.') else {
                return Err(format!("unknown setting (a plan is a table of {})", field_names(PLAN_SETTINGS)));
            };
            let plan = self.organizations.plans.entry(plan.to_owned()).or_default();
            return apply_field(PLAN_SETTINGS, plan, field, value, "plans");
        }
        if let Some(rest) = path.strip_prefix(ISSUERS_PATH) {
            let Some((name, field)) = rest.split_once('.') else {
                return Err("unknown setting (an issuer is a table of settings)".to_owned());
            };
            let issuer = self.oauth.issuers.entry(name.to_owned()).or_default();
            return apply_field(ISSUER_SETTINGS, issuer, field, value, "issuers");
        }
        let setting = SETTINGS.iter().find(|setting| setting.path == path).ok_or("unknown setting")?;
        setting.apply_to(self, value)
    }

    fn apply_file(&mut self, path: &Path, text: &str, problems: &mut Vec<String>) {
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(err) => {
                problems.push(format!("{}: not valid TOML: {err}", path.display()));
                return;
            }
        };
        let mut leaves = Vec::new();
        flatten("", &table, &mut leaves);
        for (key, value) in leaves {
            if let Err(problem) = self.apply(&key, &Raw::Toml(value)) {
                problems.push(format!("{}: {key}: {problem}", path.display()));
            }
        }
    }

    fn apply_otel_env(&mut self, env: &[(String, String)], problems: &mut Vec<String>) {
        for (name, path) in OTEL_SETTINGS {
            for (_, value) in env.iter().filter(|(given, value)| given == name && !value.trim().is_empty()) {
                if let Err(problem) = self.apply(path, &Raw::Text(value)) {
                    problems.push(format!("environment variable {name}: {problem}"));
                }
            }
        }
    }

    fn apply_env(&mut self, env: &[(String, String)], problems: &mut Vec<String>) {
        for (name, value) in env {
            if !name.starts_with(ENV_PREFIX) || name == CONFIG_FILE_ENV || CLIENT_ENV.contains(&name.as_str()) {
                continue;
            }
            let path = setting_paths().find(|path| env_name(path) == *name);
            let result = match path {
                Some(path) => self.apply(path, &Raw::Text(value)),
                None => match (plan_from_env(name), issuer_from_env(name)) {
                    (Some((plan, field)), _) => self.apply(&format!("{PLANS_PATH}{plan}.{field}"), &Raw::Text(value)),
                    (None, Some((issuer, field))) => {
                        self.apply(&format!("{ISSUERS_PATH}{issuer}.{field}"), &Raw::Text(value))
                    }
                    (None, None) if is_service_link(name) => {
                        self.ignored_env.push(name.clone());
                        Ok(())
                    }
                    (None, None) => Err("unknown setting".to_owned()),
                },
            };
            if let Err(problem) = result {
                problems.push(format!("environment variable {name}: {problem}"));
            }
        }
    }

    fn check(&self, problems: &mut Vec<String>) {
        if !is_valid_prefix(&self.keys.prefix) {
            problems.push(format!(
                "keys.prefix: {:?} must be 1 to 32 lowercase letters, digits or '_', ending in '_'",
                self.keys.prefix
            ));
        }
        if self.limits.lease.default > self.limits.lease.max {
            problems.push("limits.default_lease_secs must not exceed limits.max_lease_secs".to_owned());
        }
        let redis_scheme = self.limits.redis_url.split_once("://").map_or("", |(scheme, _)| scheme);
        if self.limits.backend == LimitsBackend::Redis && !matches!(redis_scheme, "redis" | "rediss") {
            // The URL itself may hold a password: only its scheme is named.
            problems.push(format!(
                "limits.redis_url must be a redis:// or rediss:// (TLS) URL, got {}",
                if redis_scheme.is_empty() { "no scheme".to_owned() } else { format!("scheme {redis_scheme:?}") }
            ));
        }
        if self.limits.backend == LimitsBackend::Redis
            && self.limits.redis_ca_file.is_some()
            && redis_scheme != "rediss"
        {
            problems.push("limits.redis_ca_file needs a rediss:// limits.redis_url".to_owned());
        }
        if self.keys.default_expires_in_days > self.keys.max_expires_in_days {
            problems.push("keys.default_expires_in_days must not exceed keys.max_expires_in_days".to_owned());
        }
        if self.keys.default_grace_period_days > self.keys.max_grace_period_days {
            problems.push("keys.default_grace_period_days must not exceed keys.max_grace_period_days".to_owned());
        }
        for plan in [&self.organizations.default_plan, &self.organizations.bootstrap_plan] {
            if !self.organizations.plans.contains_key(plan) {
                problems.push(format!("organizations: plan {plan:?} is not among organizations.plans"));
            }
        }
        for (name, plan) in &self.organizations.plans {
            if plan.max_active_keys == 0 {
                problems.push(format!("{PLANS_PATH}{name}.max_active_keys is required (1 to 1000000)"));
            }
        }
        for scope in &self.scopes {
            if scope == "*" || !is_well_formed(scope) {
                problems.push(format!("scopes.registry: {scope:?} is not a resource:action scope"));
            }
        }
        if self.hashing.memory_kib < 8 * self.hashing.lanes {
            problems.push("hashing.memory_kib must be at least 8 times hashing.lanes".to_owned());
        }
        if log_filter(&self.log.level).is_none() {
            problems.push(format!("log.level: {:?} is not a tracing filter", self.log.level));
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres")) {
            problems.push("database.url must start with sqlite: or postgres://".to_owned());
        }
        self.check_oauth(problems);
        self.check_traces_and_tls(problems);
        let named = self.envoy.headers.named();
        for (i, (setting, name)) in named.iter().enumerate() {
            if !is_header_name(name) {
                problems.push(format!("envoy.headers.{setting}: {name:?} is not an HTTP header name"));
            } else if named[..i].iter().any(|(_, earlier)| earlier == name) {
                problems.push(format!("envoy.headers.{setting}: {name:?} is used by another envoy.headers setting"));
            }
        }
    }

    fn check_traces_and_tls(&self, problems: &mut Vec<String>) {
        self.traces.check(problems);
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => problems.push("tls.key_file is required with tls.cert_file".to_owned()),
            (None, Some(_)) => problems.push("tls.cert_file is required with tls.key_file".to_owned()),
            _ => {}
        }
        if self.tls.client_ca_file.is_some() && self.tls.cert_file.is_none() {
            problems.push("tls.client_ca_file needs tls.cert_file and tls.key_file (mTLS is TLS)".to_owned());
        }
    }

    fn check_oauth(&self, problems: &mut Vec<String>) {
        if self.oauth.audience.is_empty() {
            problems.push("oauth.audience must name at least one audience".to_owned());
        }
        if self.oauth.signing_key_encryption_key.is_some() && self.oauth.signing_key_encryption_key_file.is_some() {
            problems.push(
                "set oauth.signing_key_encryption_key (KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY) or \
                 oauth.signing_key_encryption_key_file, not both"
                    .to_owned(),
            );
        }
        let own = self.token_issuer();
        for (name, issuer) in &self.oauth.issuers {
            let at = format!("{ISSUERS_PATH}{name}");
            if issuer.issuer.is_empty() {
                problems.push(format!("{at}.issuer is required"));
            } else if issuer.issuer == own {
                problems.push(format!("{at}.issuer must differ from keygate's own issuer {own:?}"));
            }
            if issuer.audiences.is_empty() {
                problems.push(format!("{at}.audiences must name at least one audience"));
            }
            match (issuer.jwks_url.is_empty(), issuer.jwks_file.is_none()) {
                (true, true) | (false, false) => {
                    problems.push(format!("{at}: set exactly one of jwks_url and jwks_file"))
                }
                _ => {}
            }
            if issuer.jwks_url.starts_with("http://") && !issuer.allow_http {
                // Whoever can change the keys in transit can mint any user of this issuer.
                problems.push(format!(
                    "{at}.jwks_url must be https:// (set {at}.allow_http = true to accept plain http, e.g. a sidecar on \
                     the loopback)"
                ));
            } else if !issuer.jwks_url.is_empty()
                && !issuer.jwks_url.starts_with("https://")
                && !issuer.jwks_url.starts_with("http://")
            {
                problems.push(format!("{at}.jwks_url must be an https:// URL"));
            }
            if issuer.algorithms.is_empty() {
                problems.push(format!("{at}.algorithms must name at least one algorithm"));
            }
            check_issuer_binding(&at, issuer, problems);
        }
    }
}

/// Which organizations an issuer may speak for: one fixed organization or an allow-list, never
/// whatever its tokens say; the platform's only when the operator says so.
fn check_issuer_binding(at: &str, issuer: &IssuerConfig, problems: &mut Vec<String>) {
    let slug = keygate_core::validate::is_valid_slug;
    match (issuer.organization.is_empty(), issuer.organizations.is_empty()) {
        (true, true) => problems.push(format!(
            "{at}: set {at}.organization (every user of the issuer in one organization) or {at}.organizations \
             (at least one that its tokens may name in {:?}); an issuer's tokens never choose their organization freely{}",
            issuer.organization_claim,
            if issuer.allow_admin_scopes { ", least of all with allow_admin_scopes" } else { "" },
        )),
        (false, false) => problems.push(format!("{at}: set organization or organizations, not both")),
        (false, true) if !slug(&issuer.organization) => {
            problems.push(format!("{at}.organization: {:?} is not an organization slug", issuer.organization));
        }
        (false, true) => {}
        (true, false) => {
            for (i, org) in issuer.organizations.iter().enumerate() {
                if !slug(org) {
                    problems.push(format!("{at}.organizations[{i}]: {org:?} is not an organization slug"));
                }
            }
            if issuer.organization_claim.is_empty() {
                problems.push(format!("{at}.organization_claim must name the claim organizations are read from"));
            }
        }
    }
    if issuer.platform && issuer.organization.is_empty() {
        problems
            .push(format!("{at}.platform needs a fixed organization (the platform organization), not an allow-list"));
    }
    if issuer.typ.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.push(format!("{at}.typ: expected a media type such as at+jwt"));
    }
    if issuer.lasting_credentials && !issuer.allow_admin_scopes {
        problems.push(format!(
            "{at}.lasting_credentials lets this issuer's admins create lasting keys: it needs {at}.allow_admin_scopes"
        ));
    }
}

/// Applies one field of a map's entry (`what`: the map, for the error naming its fields).
fn apply_field<T>(table: &[Setting<T>], entry: &mut T, field: &str, v: &Raw<'_>, what: &str) -> Result<(), String> {
    match table.iter().find(|setting| setting.path == field) {
        Some(setting) => setting.apply_to(entry, v),
        None => Err(format!("unknown setting ({what} take {})", field_names(table))),
    }
}

fn field_names<T>(table: &[Setting<T>]) -> String {
    table.iter().map(|setting| setting.path).collect::<Vec<_>>().join(", ")
}

/// `KEYGATE_OAUTH_ISSUERS_<NAME>_<FIELD>` -> the issuer's name, lowercased, and the field.
fn issuer_from_env(name: &str) -> Option<(String, &'static str)> {
    let rest = name.strip_prefix("KEYGATE_OAUTH_ISSUERS_")?;
    issuer_fields().find_map(|field| {
        let issuer = rest.strip_suffix(&field.to_ascii_uppercase())?.strip_suffix('_')?;
        (!issuer.is_empty()).then(|| (issuer.to_ascii_lowercase(), field))
    })
}

/// A header name Envoy passes as is: letters, digits and `-`, not a pseudo-header.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether `name` is one of the variables Kubernetes gives every pod for a Service called
/// `keygate` (docker-link style): `KEYGATE_SERVICE_HOST`, `KEYGATE_SERVICE_PORT`,
/// `KEYGATE_SERVICE_PORT_<NAME>`, `KEYGATE_PORT`, and `KEYGATE_PORT_<n>_<TCP|UDP|SCTP>` with its
/// `_PROTO`, `_PORT` and `_ADDR` forms. Anyone's release may name a Service so, so these are
/// skipped rather than refused; no setting has such a name.
fn is_service_link(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else { return false };
    if rest == "SERVICE_HOST" || rest == "SERVICE_PORT" || rest == "PORT" {
        return true;
    }
    if let Some(port_name) = rest.strip_prefix("SERVICE_PORT_") {
        return !port_name.is_empty() && port_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    }
    let Some(port) = rest.strip_prefix("PORT_") else { return false };
    let Some((number, protocol)) = port.split_once('_') else { return false };
    let protocol = ["_PROTO", "_PORT", "_ADDR"].iter().find_map(|tail| protocol.strip_suffix(tail)).unwrap_or(protocol);
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && matches!(protocol, "TCP" | "UDP" | "SCTP")
}

/// `KEYGATE_ORGANIZATIONS_PLANS_<NAME>_<FIELD>` -> the plan's name, lowercased, and the field.
fn plan_from_env(name: &str) -> Option<(String, &'static str)> {
    let rest = name.strip_prefix("KEYGATE_ORGANIZATIONS_PLANS_")?;
    plan_fields().find_map(|field| {
        let plan = rest.strip_suffix(&field.to_ascii_uppercase())?.strip_suffix('_')?;
        (!plan.is_empty()).then(|| (plan.to_ascii_lowercase(), field))
    })
}

fn flatten<'a>(prefix: &str, table: &'a toml::Table, out: &mut Vec<(String, &'a toml::Value)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            leaf => out.push((path, leaf)),
        }
    }
}

/// Loads from the real process: the file named by `file` or `KEYGATE_CONFIG`, the `KEYGATE_`
/// environment, then `flags`. The only place keygate reads its environment.
pub fn from_process(file: Option<PathBuf>, flags: Vec<(&'static str, String)>) -> Result<Config, ConfigErrors> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) || OTEL_SETTINGS.iter().any(|(otel, _)| otel == name))
        .collect();
    let file =
        file.or_else(|| env.iter().find(|(name, _)| name == CONFIG_FILE_ENV).map(|(_, value)| PathBuf::from(value)));
    let (file, unreadable) = match file {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => (Some((path, text)), None),
            Err(err) => (None, Some(format!("{}: cannot read: {err}", path.display()))),
        },
        None => (None, None),
    };
    let loaded = Config::load(&Sources { file, env, flags });
    match (loaded, unreadable) {
        (loaded, None) => loaded,
        (Ok(_), Some(problem)) => Err(ConfigErrors(vec![problem])),
        (Err(ConfigErrors(mut problems)), Some(problem)) => {
            problems.insert(0, problem);
            Err(ConfigErrors(problems))
        }
    }
}

/// `log.level` as a tracing filter, or `None` when it is not one. Only ASCII is taken:
/// tracing-subscriber 0.3 panics on leading whitespace followed by other text (it slices the
/// untrimmed value at the trimmed one's offsets), and no directive needs more than ASCII.
pub fn log_filter(level: &str) -> Option<tracing_subscriber::EnvFilter> {
    if !level.is_ascii() {
        return None;
    }
    tracing_subscriber::EnvFilter::try_new(level.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(file: &str, env: &[(&str, &str)]) -> Sources {
        Sources {
            file: Some((PathBuf::from("keygate.toml"), file.to_owned())),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            flags: Vec::new(),
        }
    }

    #[test]
    fn defaults_load() {
        let config = Config::load(&Sources::default()).expect("defaults are valid");
        assert_eq!(config.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
        assert_eq!(config.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(config.database.url, DEFAULT_DATABASE_URL);
    }

    #[test]
    fn a_log_level_that_is_not_ascii_is_a_problem_not_a_panic() {
        // Found by the config fuzz target: tracing-subscriber panicked on this.
        for level in [" \u{e9}", "\u{a0}info", "info,\u{1f600}=debug"] {
            let err = Config::load(&sources("", &[("KEYGATE_LOG_LEVEL", level)])).expect_err("refused");
            assert!(err.to_string().contains("log.level"), "{err}");
        }
        assert!(log_filter("  info,keygate=debug ").is_some(), "surrounding whitespace is fine");
    }

    #[test]
    fn layers_apply_in_order() {
        let mut s = sources(
            "grpc_addr = \"0.0.0.0:1\"\n[database]\nurl = \"sqlite://file.db\"\n[keys]\nprefix = \"kg_\"\n\
             [organizations.plans.team]\nmax_active_keys = 10\n",
            &[("KEYGATE_GRPC_ADDR", "0.0.0.0:2"), ("KEYGATE_ORGANIZATIONS_PLANS_GOLD_MAX_ACTIVE_KEYS", "7")],
        );
        s.flags.push(("grpc_addr", "0.0.0.0:3".to_owned()));
        let config = Config::load(&s).expect("valid");
        assert_eq!(config.grpc_addr.port(), 3);
        assert_eq!(config.database.url, "sqlite://file.db");
        assert_eq!(config.keys.prefix, "kg_");
        assert_eq!(config.organizations.plans.get("team"), Some(&Plan::with_keys(10)));
        assert_eq!(config.organizations.plans.get("gold"), Some(&Plan::with_keys(7)));
    }

    #[test]
    fn plans_and_the_global_ceiling_bound_what_organization_admins_grant() {
        let s = sources(
            "[limits.ceiling]\nrate_per_minute = 1000\nmax_quota = 0\n\
             [organizations.plans.free]\nrate_per_minute = 60\nmax_concurrency = 2\n\
             [organizations.plans.team]\nmax_active_keys = 10\nrate_burst = 5\n",
            &[
                ("KEYGATE_ORGANIZATIONS_PLANS_GOLD_MAX_ACTIVE_KEYS", "7"),
                ("KEYGATE_ORGANIZATIONS_PLANS_GOLD_MAX_QUOTA", "500"),
            ],
        );
        let config = Config::load(&s).expect("valid");
        let ceiling = LimitOverrides { rate_per_minute: Some(1000), max_quota: Some(0), ..LimitOverrides::default() };
        assert_eq!(config.limits.ceiling, ceiling);
        let free = config.organizations.plans.get("free").copied().expect("free");
        let free_ceiling =
            LimitOverrides { rate_per_minute: Some(60), max_concurrency: Some(2), ..LimitOverrides::default() };
        assert_eq!((free.max_active_keys, free.ceiling), (3, free_ceiling), "the default plan keeps its key limit");
        assert_eq!(config.organizations.plans.get("team").map(|p| p.ceiling.rate_burst), Some(Some(5)));
        let gold = config.organizations.plans.get("gold").copied().expect("gold");
        assert_eq!((gold.max_active_keys, gold.ceiling.max_quota), (7, Some(500)));

        // A new plan needs its key limit; unknown plan fields and out-of-range ceilings are named.
        let s = sources(
            "[organizations.plans.bare]\nrate_per_minute = 5\n[organizations.plans.odd]\nmax_active_keys = 1\nspeed = 1\n\
             [limits.ceiling]\nmax_concurrency = 100001\nfoo = 1\n",
            &[],
        );
        let text = Config::load(&s).expect_err("invalid").to_string();
        for needle in [
            "organizations.plans.bare.max_active_keys is required",
            "organizations.plans.odd.speed: unknown setting (plans take max_active_keys, rate_per_minute",
            "limits.ceiling.max_concurrency: must be between 0 and 100000",
            "limits.ceiling.foo: unknown setting",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let s = sources(
            "bogus = 1\ngrpc_addr = \"nowhere\"\n[keys]\nprefix = \"Bad\"\ndefault_expires_in_days = \"x\"\n",
            &[("KEYGATE_NOT_A_THING", "1"), ("KEYGATE_DATABASE_RUN_MIGRATIONS", "maybe"), ("OTHER", "ignored")],
        );
        let errors = Config::load(&s).expect_err("invalid");
        let text = errors.to_string();
        for needle in
            ["bogus", "grpc_addr", "keys.prefix", "default_expires_in_days", "KEYGATE_NOT_A_THING", "RUN_MIGRATIONS"]
        {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(errors.0.len(), 6, "{text}");
    }

    #[test]
    fn kubernetes_service_links_are_skipped_and_other_unknowns_refused() {
        let links = [
            ("KEYGATE_SERVICE_HOST", "10.96.0.10"),
            ("KEYGATE_SERVICE_PORT", "50051"),
            ("KEYGATE_SERVICE_PORT_GRPC", "50051"),
            ("KEYGATE_SERVICE_PORT_HTTP_METRICS", "9090"),
            ("KEYGATE_PORT", "tcp://10.96.0.10:50051"),
            ("KEYGATE_PORT_50051_TCP", "tcp://10.96.0.10:50051"),
            ("KEYGATE_PORT_50051_TCP_PROTO", "tcp"),
            ("KEYGATE_PORT_50051_TCP_PORT", "50051"),
            ("KEYGATE_PORT_50051_TCP_ADDR", "10.96.0.10"),
            ("KEYGATE_PORT_53_UDP_ADDR", "10.96.0.10"),
            ("KEYGATE_PORT_9_SCTP", "sctp://10.96.0.10:9"),
        ];
        let config = Config::load(&sources("", &links)).expect("service links are not settings");
        assert_eq!(config.ignored_env.len(), links.len());
        let unknown = [
            ("KEYGATE_PORTS", "1"),
            ("KEYGATE_PORT_X_TCP", "tcp://x"),
            ("KEYGATE_PORT_50051_HTTP", "1"),
            ("KEYGATE_PORT_50051_TCP_HOST", "1"),
            ("KEYGATE_SERVICE_HOSTS", "1"),
            ("KEYGATE_SERVICE_PORT_", "1"),
            ("KEYGATE_REDIS_PORT", "6379"),
            ("KEYGATE_METRICS_SERVICE_HOST", "10.0.0.1"),
        ];
        let errors = Config::load(&sources("", &unknown)).expect_err("not service links");
        assert_eq!(errors.0.len(), unknown.len(), "{errors}");
    }

    #[test]
    fn the_admin_cli_s_variables_are_not_settings() {
        let client = [
            ("KEYGATE_SERVER", "https://keygate.example.com:50051"),
            ("KEYGATE_CA_FILE", "/etc/ca.pem"),
            ("KEYGATE_ADMIN_KEY", "sk_live_x"),
            ("KEYGATE_ADMIN_KEY_FILE", "/run/key"),
        ];
        assert_eq!(client.len(), CLIENT_ENV.len());
        Config::load(&sources("", &client)).expect("the CLI's variables are skipped");
    }

    #[test]
    fn redis_urls_are_checked_without_printing_them() {
        let tls = sources(
            "[limits]\nbackend = \"redis\"\nredis_url = \"rediss://:pw@redis:6380\"\nredis_ca_file = \"ca.pem\"\n",
            &[],
        );
        assert_eq!(Config::load(&tls).expect("valid").limits.redis_ca_file, Some(PathBuf::from("ca.pem")));
        let bad = sources(
            "[limits]\nbackend = \"redis\"\nredis_url = \"http://:s3cret@redis:6379\"\nredis_ca_file = \"ca.pem\"\n",
            &[],
        );
        let text = Config::load(&bad).expect_err("invalid").to_string();
        assert!(
            text.contains("limits.redis_url") && text.contains("\"http\"") && text.contains("redis_ca_file"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "the password is never printed: {text}");
    }

    #[test]
    fn the_key_encryption_key_comes_from_the_environment_or_a_file() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let from_env = Config::load(&sources("", &[("KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY", key)])).expect("valid");
        let kek = from_env.oauth.signing_key_encryption_key.clone().expect("set");
        assert!(!format!("{from_env:?}").contains(key), "Debug never shows the key");
        assert_eq!(kek, KeyEncryptionKey::parse(key).expect("valid"));
        let file = sources("[oauth]\nsigning_key_encryption_key_file = \"/run/secrets/kek\"\n", &[]);
        let from_file = Config::load(&file).expect("valid");
        assert_eq!(from_file.oauth.signing_key_encryption_key_file, Some(PathBuf::from("/run/secrets/kek")));
        assert_eq!(Config::load(&Sources::default()).expect("valid").oauth.signing_key_encryption_key, None);

        let bad = sources(
            &format!("[oauth]\nsigning_key_encryption_key = \"{key}\"\nsigning_key_encryption_key_file = \"k\"\n"),
            &[("KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY", "not-32-bytes-s3cret")],
        );
        let errors = Config::load(&bad).expect_err("invalid");
        let text = errors.to_string();
        for needle in ["does not belong in the config file", "KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY: must be 32"] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(errors.0.len(), 2, "{text}");
        assert!(!text.contains("s3cret") && !text.contains(key), "no error repeats a key: {text}");
        let both = sources(
            "[oauth]\nsigning_key_encryption_key_file = \"k\"\n",
            &[("KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY", key)],
        );
        let text = Config::load(&both).expect_err("both").to_string();
        assert!(text.contains("not both"), "{text}");
    }

    #[test]
    fn metrics_addr_is_optional() {
        assert_eq!(Config::load(&Sources::default()).expect("valid").metrics_addr, None);
        let set = sources("metrics_addr = \"0.0.0.0:9090\"\n", &[]);
        assert_eq!(Config::load(&set).expect("valid").metrics_addr, Some("0.0.0.0:9090".parse().expect("addr")));
        let bad = sources("", &[("KEYGATE_METRICS_ADDR", "localhost:9090")]);
        assert!(Config::load(&bad).expect_err("invalid").to_string().contains("KEYGATE_METRICS_ADDR"));
    }

    #[test]
    fn trusted_issuers_load_from_file_and_environment() {
        let s = sources(
            "[oauth]\nalgorithm = \"ES256\"\n[oauth.issuers.corp]\nissuer = \"https://idp.example\"\n\
             audiences = [\"api\"]\njwks_url = \"https://idp.example/jwks\"\nscope_claim = \"scp\"\n",
            &[
                ("KEYGATE_OAUTH_ISSUERS_CORP_ORGANIZATION", "acme"),
                ("KEYGATE_OAUTH_ISSUERS_CORP_MIN_REFETCH_SECS", "1"),
            ],
        );
        let config = Config::load(&s).expect("valid");
        assert_eq!(config.oauth.algorithm, Algorithm::Es256);
        let corp = &config.oauth.issuers["corp"];
        assert_eq!(corp.scope_claim, "scp");
        assert_eq!(corp.organization, "acme");
        assert_eq!(corp.min_refetch, Duration::from_secs(1));
        assert_eq!(config.token_issuer(), format!("http://{DEFAULT_HTTP_ADDR}"));
    }

    #[test]
    fn issuer_problems_are_reported() {
        let s = sources("[oauth.issuers.bad]\nbogus = 1\nalgorithms = [\"HS256\"]\n", &[]);
        let text = Config::load(&s).expect_err("invalid").to_string();
        for needle in [
            "bogus",
            "HS256",
            "bad.issuer is required",
            "exactly one of jwks_url",
            "bad.audiences",
            "set oauth.issuers.bad.organization",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn plain_http_jwks_needs_the_operators_word() {
        let issuer = |extra: &str| {
            let text = format!(
                "[oauth.issuers.corp]\nissuer = \"https://idp.example\"\naudiences = [\"api\"]\n\
                 organization = \"acme\"\njwks_url = \"http://idp.example/jwks\"\n{extra}"
            );
            Config::load(&sources(&text, &[])).map_err(|errors| errors.to_string())
        };
        let refused = issuer("").expect_err("plain http");
        assert!(refused.contains("oauth.issuers.corp.jwks_url must be https://"), "{refused}");
        assert!(issuer("allow_http = true\n").expect("allowed").oauth.issuers["corp"].allow_http);
    }

    #[test]
    fn every_issuer_is_bound_to_its_organizations() {
        let issuer = |extra: &str| {
            let text = format!(
                "[oauth.issuers.corp]\nissuer = \"https://idp.example\"\naudiences = [\"api\"]\n\
                 jwks_url = \"https://idp.example/jwks\"\n{extra}"
            );
            Config::load(&sources(&text, &[])).map_err(|errors| errors.to_string())
        };
        let unbound = issuer("allow_admin_scopes = true\n").expect_err("unbound");
        assert!(
            unbound.contains("set oauth.issuers.corp.organization") && unbound.contains("allow_admin_scopes"),
            "{unbound}"
        );
        for (extra, problem) in [
            ("organization = \"acme\"\norganizations = [\"acme\"]\n", "not both"),
            ("organization = \"Acme Inc\"\n", "organization: \"Acme Inc\" is not an organization slug"),
            ("organizations = [\"acme\", \"no way\"]\n", "organizations[1]: \"no way\" is not an organization slug"),
            ("organizations = [\"acme\"]\norganization_claim = \"\"\n", "organization_claim must name"),
            ("organizations = [\"acme\", \"platform\"]\nplatform = true\n", "platform needs a fixed organization"),
            ("organization = \"acme\"\ntyp = \"at jwt\"\n", "typ: expected a media type"),
            ("organization = \"acme\"\nlasting_credentials = true\n", "it needs oauth.issuers.corp.allow_admin_scopes"),
        ] {
            let errors = issuer(extra).expect_err(extra);
            assert!(errors.contains(problem), "{problem:?} missing from:\n{errors}");
        }
        let listed = issuer("organizations = [\"acme\", \"globex\"]\nallow_admin_scopes = true\ntyp = \"at+jwt\"\n");
        let listed = listed.expect("an allow-list binds");
        let corp = &listed.oauth.issuers["corp"];
        assert_eq!(
            (corp.organizations.as_slice(), corp.typ.as_str()),
            (["acme".to_owned(), "globex".to_owned()].as_slice(), "at+jwt")
        );
        let platform = issuer("organization = \"platform\"\nplatform = true\n").expect("a platform issuer");
        assert!(platform.oauth.issuers["corp"].platform);
        let from_env = Config::load(&sources(
            "[oauth.issuers.corp]\nissuer = \"https://idp.example\"\naudiences = [\"api\"]\njwks_url = \"https://idp.example/jwks\"\n",
            &[("KEYGATE_OAUTH_ISSUERS_CORP_ORGANIZATIONS", "acme, globex"), ("KEYGATE_OAUTH_ISSUERS_CORP_TYP", "at+jwt")],
        ))
        .expect("valid");
        assert_eq!(from_env.oauth.issuers["corp"].organizations, ["acme", "globex"]);
    }

    #[test]
    fn opentelemetry_variables() {
        let off = Config::load(&Sources::default()).expect("valid");
        assert_eq!(off.traces.export_endpoint(), None);
        let s = sources(
            "[traces]\nservice_name = \"from-file\"\n",
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317"),
                ("OTEL_SERVICE_NAME", "keygate-eu"),
                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod, k8s.pod.name=kg-1"),
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
                ("OTEL_UNRELATED", "ignored"),
            ],
        );
        let config = Config::load(&s).expect("valid");
        assert_eq!(config.traces.export_endpoint().as_deref(), Some("http://collector:4317"));
        assert_eq!(config.traces.service_name, "keygate-eu");
        assert_eq!(config.traces.schedule_delay, Duration::from_millis(200));
        assert_eq!(config.traces.resource_attributes.len(), 2);
        let none = sources("", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_TRACES_EXPORTER", "none")]);
        assert_eq!(Config::load(&none).expect("valid").traces.export_endpoint(), None);
        let named = sources("", &[("OTEL_TRACES_EXPORTER", "otlp")]);
        let named = Config::load(&named).expect("valid");
        assert_eq!(named.traces.export_endpoint().as_deref(), Some(DEFAULT_GRPC_ENDPOINT));
        let bad = sources(
            "",
            &[
                ("OTEL_TRACES_EXPORTER", "zipkin"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ],
        );
        let errors = Config::load(&bad).expect_err("invalid");
        assert_eq!(errors.0.len(), 3, "{errors}");
        assert!(errors.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL: http/json is not supported"), "{errors}");
    }

    fn traces(file: &str, env: &[(&str, &str)]) -> TracesConfig {
        Config::load(&sources(file, env)).expect("valid").traces
    }

    fn traces_errors(env: &[(&str, &str)]) -> String {
        Config::load(&sources("", env)).expect_err("invalid").to_string()
    }

    #[test]
    fn otlp_endpoints_follow_the_specification() {
        let endpoint = |env: &[(&str, &str)]| traces("", env).export_endpoint();
        // gRPC: either endpoint as is.
        let grpc = endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317")]);
        assert_eq!(grpc.as_deref(), Some("https://collector:4317"));
        // HTTP: the base endpoint gets /v1/traces, the traces endpoint is used as is.
        let http = ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        for (base, url) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            ("https://otlp.example/otlp", "https://otlp.example/otlp/v1/traces"),
        ] {
            assert_eq!(endpoint(&[http, ("OTEL_EXPORTER_OTLP_ENDPOINT", base)]).as_deref(), Some(url), "{base}");
        }
        let own = [
            http,
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:9/in"),
        ];
        assert_eq!(endpoint(&own).as_deref(), Some("http://c:9/in"));
        // The defaults of each protocol, when the exporter is named without an endpoint.
        let named = ("OTEL_TRACES_EXPORTER", "otlp");
        assert_eq!(endpoint(&[named]).as_deref(), Some(DEFAULT_GRPC_ENDPOINT));
        assert_eq!(endpoint(&[named, http]).as_deref(), Some(DEFAULT_HTTP_ENDPOINT));
        assert_eq!(DEFAULT_HTTP_ENDPOINT, "http://localhost:4318/v1/traces");
        // The signal's own protocol wins; names are case-insensitive; an empty variable is unset.
        let both = [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP/Protobuf")];
        assert_eq!(traces("", &both).protocol, OtlpProtocol::HttpProtobuf);
        let empty = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4317"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", " ")];
        assert_eq!(endpoint(&empty).as_deref(), Some("http://base:4317"));
        assert!(!traces("", &[("OTEL_SDK_DISABLED", "")]).disabled, "an empty OTEL_ variable is unset");
        // A traces endpoint (from any layer) wins over a base endpoint, as the signal's own
        // variable does; KEYGATE_ variables override both.
        let file = "[traces]\nendpoint = \"http://file:4317\"\nprotocol = \"http/protobuf\"\n";
        let from_file = traces(file, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")]);
        assert_eq!(from_file.export_endpoint().as_deref(), Some("http://file:4317"));
        let overridden = traces(file, &[("KEYGATE_TRACES_ENDPOINT", "http://kg:4318/v1/traces")]);
        assert_eq!(overridden.export_endpoint().as_deref(), Some("http://kg:4318/v1/traces"));
        // Off means off, whatever the endpoints say.
        let off = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_SDK_DISABLED", "true")];
        assert_eq!(endpoint(&off), None);
    }

    #[test]
    fn bad_otlp_endpoints_are_named_and_credentials_never_shown() {
        let text = traces_errors(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:hunter2@collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector:21"),
        ]);
        assert!(text.contains("traces.base_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): the URL must not carry"), "{text}");
        assert!(
            text.contains("traces.endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): \"ftp://collector:21\""),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let text = traces_errors(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]);
        assert!(text.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{text}");
        // A CA to verify the collector with, and a plain-text endpoint: the user meant TLS.
        let text = traces_errors(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
        ]);
        assert!(text.contains("traces.certificate (OTEL_EXPORTER_OTLP_CERTIFICATE)"), "{text}");
        let tls = traces(
            "",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/general.pem"),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/otel/ca.pem"),
            ],
        );
        assert_eq!(tls.certificate, Some(PathBuf::from("/etc/otel/ca.pem")));
    }

    #[test]
    fn samplers_and_their_argument() {
        let default = traces("", &[]);
        assert_eq!((default.sampler, default.ratio()), (TracesSampler::ParentBasedAlwaysOn, 1.0));
        for (name, sampler) in [
            ("always_on", TracesSampler::AlwaysOn),
            ("always_off", TracesSampler::AlwaysOff),
            ("traceidratio", TracesSampler::TraceIdRatio),
            ("parentbased_always_on", TracesSampler::ParentBasedAlwaysOn),
            ("PARENTBASED_ALWAYS_OFF", TracesSampler::ParentBasedAlwaysOff),
            ("parentbased_traceidratio", TracesSampler::ParentBasedTraceIdRatio),
        ] {
            assert_eq!(traces("", &[("OTEL_TRACES_SAMPLER", name)]).sampler, sampler, "{name}");
            assert_eq!(sampler.as_str(), name.to_ascii_lowercase());
        }
        let ratio = traces("", &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")]);
        assert_eq!(ratio.ratio(), 0.25);
        let file = traces("[traces]\nsampler = \"parentbased_traceidratio\"\nsampler_arg = 0\n", &[]);
        assert_eq!((file.sampler, file.ratio()), (TracesSampler::ParentBasedTraceIdRatio, 0.0));
        let file = traces("[traces]\nsampler_arg = 0.5\n", &[("KEYGATE_TRACES_SAMPLER", "always_off")]);
        assert_eq!((file.sampler, file.ratio()), (TracesSampler::AlwaysOff, 0.5));
        let overridden = traces("", &[("OTEL_TRACES_SAMPLER", "always_on"), ("KEYGATE_TRACES_SAMPLER", "always_off")]);
        assert_eq!(overridden.sampler, TracesSampler::AlwaysOff);

        let errors = Config::load(&sources(
            "[traces]\nsampler_arg = \"most\"\n",
            &[
                ("OTEL_TRACES_SAMPLER", "sometimes"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ("KEYGATE_TRACES_SAMPLER", "xray"),
            ],
        ))
        .expect_err("invalid");
        let text = errors.to_string();
        assert_eq!(errors.0.len(), 4, "{text}");
        for needle in [
            "traces.sampler_arg: expected a number, got string",
            "OTEL_TRACES_SAMPLER: expected one of always_on",
            "OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1, got 1.5",
            "KEYGATE_TRACES_SAMPLER: \"xray\" is not supported",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert!(traces_errors(&[("OTEL_TRACES_SAMPLER_ARG", "NaN")]).contains("from 0 to 1"));
        assert!(traces_errors(&[("OTEL_TRACES_SAMPLER_ARG", "-0.1")]).contains("from 0 to 1"));
    }

    #[test]
    fn otlp_headers_are_parsed_and_never_shown() {
        let config = Config::load(&sources(
            "",
            &[
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-general=1"),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-api-key=abc%20d%3Def, X-Tenant = acme ,x-tenant=globex"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
            ],
        ))
        .expect("valid");
        let headers = &config.traces.headers.0;
        let expected = [("x-api-key", "abc d=ef"), ("x-tenant", "globex")];
        assert_eq!(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect::<Vec<_>>(), expected);
        assert_eq!(config.traces.timeout, Duration::from_millis(2500));
        assert_eq!(traces("", &[]).timeout, Duration::from_secs(10));
        let debug = format!("{config:?}");
        assert!(debug.contains("x-api-key") && !debug.contains("abc d=ef"), "{debug}");

        for (value, needle) in [
            ("Authorization: Bearer hunter2", "entry 1 is not name=value"),
            ("x-a=1,Authorization Bearer=hunter2", "entry 2: the name is not an HTTP header name"),
            ("x-api-key=", "header \"x-api-key\": the value is empty"),
            ("x-api-key=hunter2%0a", "header \"x-api-key\": the value is empty or holds characters"),
            ("x-api-key=%ff", "header \"x-api-key\": the value is not UTF-8"),
            ("Content-Type=text/plain", "entry 1: \"content-type\" is set by the exporter itself"),
            ("grpc-timeout=1S", "entry 1: \"grpc-timeout\" is set by the exporter itself"),
        ] {
            let text = traces_errors(&[("OTEL_EXPORTER_OTLP_HEADERS", value)]);
            assert!(
                text.contains(&format!("environment variable OTEL_EXPORTER_OTLP_HEADERS: {needle}")),
                "{value}: {text}"
            );
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn tls_and_shutdown_settings() {
        let s = sources(
            "[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n[shutdown]\ngrace_secs = 5\n",
            &[("KEYGATE_TLS_CLIENT_CA_FILE", "ca.pem"), ("KEYGATE_SHUTDOWN_DRAIN_DELAY_SECS", "2")],
        );
        let config = Config::load(&s).expect("valid");
        assert_eq!(config.tls.client_ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(
            (config.shutdown.grace, config.shutdown.drain_delay),
            (Duration::from_secs(5), Duration::from_secs(2))
        );
        let half = sources("[tls]\nclient_ca_file = \"ca.pem\"\nkey_file = \"key.pem\"\n", &[]);
        let text = Config::load(&half).expect_err("invalid").to_string();
        assert!(text.contains("tls.cert_file is required") && text.contains("tls.client_ca_file"), "{text}");
    }

    #[test]
    fn envoy_settings() {
        let s = sources(
            "[envoy]\npolicy_file = \"routes.toml\"\ndefault_action = \"allow\"\n[envoy.headers]\nscopes = \"X-Scopes\"\n",
            &[("KEYGATE_ENVOY_STRIP_CREDENTIALS", "false"), ("KEYGATE_ENVOY_HEADERS_API_KEY", "x-token")],
        );
        let config = Config::load(&s).expect("valid");
        assert_eq!(config.envoy.policy_file, Some(PathBuf::from("routes.toml")));
        assert_eq!(config.envoy.default_action, UnmatchedAction::Allow);
        assert!(!config.envoy.strip_credentials);
        assert_eq!(
            (config.envoy.headers.scopes.as_str(), config.envoy.headers.api_key.as_str()),
            ("x-scopes", "x-token")
        );

        let bad = sources(
            "[envoy]\ndefault_action = \"maybe\"\n[envoy.headers]\nscopes = \"x scopes\"\norganization = \"x-api-key\"\n",
            &[],
        );
        let text = Config::load(&bad).expect_err("invalid").to_string();
        for needle in ["envoy.default_action", "envoy.headers.scopes", "envoy.headers.organization"] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
