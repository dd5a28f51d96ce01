//! Every setting, declared once: its path, kind (type and bounds), default and one line of
//! documentation, and how a value is applied. The loader validates with these bounds, the docs'
//! settings table is generated from them (`tests/it/settings_table.rs`), and the chart's schema
//! is held to them (`tests/it/helm.rs`), so none of them can drift from the others.

use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use keygate_core::admin::Plan;
use keygate_core::gateway::UnmatchedAction;
use keygate_core::tokens::sealing::KeyEncryptionKey;

use super::raw::Raw;
use super::traces::{OtlpHeaders, OtlpProtocol, Ratio, TracesExporter, TracesSampler};
use super::{Config, Declared, IssuerConfig, LimitsBackend, LogFormat, RedisFailureMode};

/// What a setting holds: its type and, for numbers, the bounds the loader enforces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Any text.
    Text,
    /// A whole number from `min` to `max`, counted in `unit`.
    Int {
        min: i64,
        max: i64,
        unit: Unit,
    },
    /// A number from `min` to `max`.
    Number {
        min: f64,
        max: f64,
    },
    Bool,
    /// `HOST:PORT` with an IP address.
    Addr,
    /// A file's path.
    Path,
    /// Strings: a TOML array, comma-separated in the environment.
    List,
    /// One of these names.
    Choice(&'static [&'static str]),
    /// Some of these names, as a list.
    Choices(&'static [&'static str]),
    /// `key=value` pairs separated by commas.
    Pairs,
}

/// What an integer setting counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Kib,
    Millis,
    Seconds,
    Minutes,
    Hours,
    Days,
}

/// A setting's default, as its documentation states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultIs {
    /// The text that, applied as a variable's value, gives the default (checked in a test).
    Value(&'static str),
    /// Nothing is set; the text says what that means.
    Unset(&'static str),
}

/// Applies a value to the part of the configuration a setting lives in.
type Apply<T> = fn(&mut T, &Given<'_>) -> Result<(), String>;

/// One setting of `T`: [`Config`] for the fixed ones, [`Plan`] and [`IssuerConfig`] for the
/// fields of a map's entries (the path is then the field's name).
pub struct Setting<T: 'static> {
    pub path: &'static str,
    pub kind: Kind,
    pub default: DefaultIs,
    pub doc: &'static str,
    apply: Apply<T>,
}

impl<T> Setting<T> {
    /// Its declaration, under `prefix` (a map's entry).
    pub(super) fn declared(&self, prefix: &str) -> Declared {
        Declared { path: format!("{prefix}{}", self.path), kind: self.kind, default: self.default, doc: self.doc }
    }

    pub(super) fn apply_to(&self, target: &mut T, raw: &Raw<'_>) -> Result<(), String> {
        (self.apply)(target, &Given { raw, kind: self.kind })
    }
}

/// A raw value with the kind of the setting it is for, so that bounds and choices come from the
/// declaration rather than being written again in the apply function.
pub(super) struct Given<'a> {
    raw: &'a Raw<'a>,
    kind: Kind,
}

impl<'a> Deref for Given<'a> {
    type Target = Raw<'a>;

    fn deref(&self) -> &Raw<'a> {
        self.raw
    }
}

impl Given<'_> {
    /// An integer within the declared bounds.
    fn int<T: TryFrom<i64>>(&self) -> Result<T, String> {
        match self.kind {
            Kind::Int { min, max, .. } => self.raw.ranged(min, max),
            _ => Err("not an integer setting".to_owned()),
        }
    }

    /// A duration within the declared bounds, counted in the declared unit.
    fn duration(&self) -> Result<Duration, String> {
        let count: u64 = self.int()?;
        let seconds = |per: u64| Duration::from_secs(count.saturating_mul(per));
        match self.kind {
            Kind::Int { unit: Unit::Millis, .. } => Ok(Duration::from_millis(count)),
            Kind::Int { unit: Unit::Seconds, .. } => Ok(seconds(1)),
            Kind::Int { unit: Unit::Minutes, .. } => Ok(seconds(60)),
            Kind::Int { unit: Unit::Hours, .. } => Ok(seconds(3600)),
            _ => Err("not a duration".to_owned()),
        }
    }

    /// The value of `values` at the position of the declared choice named.
    fn choice<T: Copy>(&self, values: &[T]) -> Result<T, String> {
        let Kind::Choice(names) = self.kind else { return Err("not a choice".to_owned()) };
        let given = self.raw.string()?;
        let found = names.iter().position(|name| *name == given).and_then(|at| values.get(at)).copied();
        found.ok_or_else(|| {
            let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
            let (last, rest) = quoted.split_last().map_or((String::new(), &[][..]), |(l, r)| (l.clone(), r));
            let choices = if rest.is_empty() { last } else { format!("{} or {last}", rest.join(", ")) };
            format!("expected {choices}, got {given:?}")
        })
    }
}

const fn int(min: i64, max: i64, unit: Unit) -> Kind {
    Kind::Int { min, max, unit }
}
const fn count(min: i64, max: i64) -> Kind {
    int(min, max, Unit::Count)
}
const fn secs(min: i64, max: i64) -> Kind {
    int(min, max, Unit::Seconds)
}
const fn millis(min: i64, max: i64) -> Kind {
    int(min, max, Unit::Millis)
}
const fn days(min: i64, max: i64) -> Kind {
    int(min, max, Unit::Days)
}

/// The ranges of the limits, shared by the kinds' defaults, the ceiling and the plans.
const RATE_PER_MINUTE: Kind = count(0, 60_000_000);
const RATE_BURST: Kind = count(0, 60_000_000);
const MAX_QUOTA: Kind = count(0, 1_000_000_000_000);
const MAX_CONCURRENCY: Kind = count(0, 100_000);
const ALGORITHMS: &[&str] = &["RS256", "ES256", "EdDSA"];
const SAMPLERS: &[&str] = &[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// One declaration. `|c, v| place = value` sets a field from `v`, a [`Given`]; the default is
/// the text that gives the default value, or `unset "what that means"`.
macro_rules! setting {
    ($path:literal, $kind:expr, unset $why:literal, $doc:literal, |$c:ident, $v:ident| $set:expr) => {
        Setting {
            path: $path,
            kind: $kind,
            default: DefaultIs::Unset($why),
            doc: $doc,
            apply: |$c, $v| {
                $set;
                Ok(())
            },
        }
    };
    ($path:literal, $kind:expr, $default:literal, $doc:literal, |$c:ident, $v:ident| $set:expr) => {
        Setting {
            path: $path,
            kind: $kind,
            default: DefaultIs::Value($default),
            doc: $doc,
            apply: |$c, $v| {
                $set;
                Ok(())
            },
        }
    };
}

/// Every fixed setting: its dotted path is the file's key, and `KEYGATE_` + the path in capitals
/// with `.` as `_` the environment's name. In the order of the docs' table.
pub(super) const SETTINGS: &[Setting<Config>] = &[
    setting! {
        "grpc_addr", Kind::Addr, "127.0.0.1:50051",
        "gRPC listen address (`--grpc-addr`)",
        |c, v| c.grpc_addr = v.addr()?
    },
    setting! {
        "http_addr", Kind::Addr, "127.0.0.1:8080",
        "HTTP listen address: token endpoint, introspection, JWKS, metadata, `/metrics` (`--http-addr`)",
        |c, v| c.http_addr = v.addr()?
    },
    setting! {
        "metrics_addr", Kind::Addr, "",
        "when set, `/metrics` is served here alone, in plain HTTP, and no longer on `http_addr` (`--metrics-addr`)",
        |c, v| c.metrics_addr = v.optional_addr()?
    },
    setting! {
        "database.url", Kind::Text, "sqlite://keygate.db?mode=rwc",
        "`sqlite://PATH?mode=rwc` or `postgres://USER[:PASSWORD]@HOST:PORT/DB` (`--database-url`)",
        |c, v| c.database.url = v.string()?
    },
    setting! {
        "database.max_connections", count(1, 1000), "10",
        "connection pool size",
        |c, v| c.database.max_connections = v.int()?
    },
    setting! {
        "database.timeout_secs", secs(1, 300), "5",
        "wait for a connection, a key look-up or (PostgreSQL) a statement before answering `UNAVAILABLE`",
        |c, v| c.database.timeout = v.duration()?
    },
    setting! {
        "database.run_migrations", Kind::Bool, "true",
        "`serve` migrates at start",
        |c, v| c.database.run_migrations = v.boolean()?
    },
    setting! {
        "database.health_interval_secs", secs(1, 3600), "5",
        "database health probe interval",
        |c, v| c.database.health_interval = v.duration()?
    },
    setting! {
        "log.format", Kind::Choice(&["text", "json"]), "text",
        "log lines on standard error",
        |c, v| c.log.format = v.choice(&[LogFormat::Text, LogFormat::Json])?
    },
    setting! {
        "log.level", Kind::Text, "info",
        "a `tracing` filter, e.g. `debug` or `keygate=debug,info`",
        |c, v| c.log.level = v.string()?
    },
    setting! {
        "keys.prefix", Kind::Text, "sk_live_",
        "start of new keys: 1 to 32 lowercase letters, digits, `_`, ending in `_`",
        |c, v| c.keys.prefix = v.string()?
    },
    setting! {
        "keys.default_expires_in_days", days(1, 36500), "365",
        "expiry when `expires_in_days` is unset",
        |c, v| c.keys.default_expires_in_days = v.int()?
    },
    setting! {
        "keys.max_expires_in_days", days(1, 36500), "3650",
        "the most `expires_in_days` may ask",
        |c, v| c.keys.max_expires_in_days = v.int()?
    },
    setting! {
        "keys.default_grace_period_days", days(0, 365), "7",
        "rotation grace when unset",
        |c, v| c.keys.default_grace_period_days = v.int()?
    },
    setting! {
        "keys.max_grace_period_days", days(0, 365), "90",
        "the most `grace_period_days` may ask",
        |c, v| c.keys.max_grace_period_days = v.int()?
    },
    setting! {
        "keys.last_used_flush_secs", secs(1, 3600), "10",
        "how far `last_used_at` may lag",
        |c, v| c.keys.last_used_flush = v.duration()?
    },
    setting! {
        "scopes.registry", Kind::List, "investigations:read,investigations:write,incidents:read,search:read,graph:read",
        "application scopes keygate knows (see [Scopes](concepts.md#scopes)); `admin:keys:read`, `admin:keys:write`, \
         `admin:clients:read`, `admin:clients:write`, `admin:orgs:read`, `admin:orgs:write`, `admin:signing:write`, \
         `admin:audit:read` are always added",
        |c, v| c.scopes = v.list()?
    },
    setting! {
        "organizations.default_plan", Kind::Text, "free",
        "plan of organizations created without one",
        |c, v| c.organizations.default_plan = v.string()?
    },
    setting! {
        "organizations.bootstrap_plan", Kind::Text, "enterprise",
        "plan of the platform organization `keygate bootstrap` creates",
        |c, v| c.organizations.bootstrap_plan = v.string()?
    },
    setting! {
        "hashing.memory_kib", int(8, 4 * 1024 * 1024, Unit::Kib), "19456",
        "argon2id memory cost for new hashes (OWASP's recommendation); at least 8 times `hashing.lanes`",
        |c, v| c.hashing.memory_kib = v.int()?
    },
    setting! {
        "hashing.iterations", count(1, 100), "2",
        "argon2id time cost for new hashes",
        |c, v| c.hashing.iterations = v.int()?
    },
    setting! {
        "hashing.lanes", count(1, 64), "1",
        "argon2id parallelism for new hashes",
        |c, v| c.hashing.lanes = v.int()?
    },
    setting! {
        "hashing.max_concurrent", count(0, 1024), "0",
        "argon2 computations at once, each on a worker thread of its own off the async executor, so that the \
         other cores keep serving cached traffic; 0: half the cores, at least 1",
        |c, v| c.hashing.max_concurrent = v.int()?
    },
    setting! {
        "hashing.nice", count(0, 19), "19",
        "the argon2 threads' `nice` (Linux): when the CPU is busy, cached traffic gets it first and new \
         credentials are verified with what is left (in `scripts/bench` on 2 cores saturated by cached traffic, \
         argon2 still ran about 10 verifications a second at 19, 15 at 10); 0 gives argon2 the same priority as \
         everything else",
        |c, v| c.hashing.nice = v.int()?
    },
    setting! {
        "hashing.max_waiting", count(0, 100_000), "32",
        "verifications that may wait for a turn; beyond that an uncached credential gets `UNAVAILABLE` at once \
         instead of a growing queue",
        |c, v| c.hashing.max_waiting = v.int()?
    },
    setting! {
        "cache.max_entries", count(0, 100_000_000), "1000000",
        "verdicts kept",
        |c, v| c.cache.max_entries = v.int()?
    },
    setting! {
        "cache.ttl_secs", secs(1, 86_400), "300",
        "the most a verdict can lag a change if every notification is lost",
        |c, v| c.cache.ttl = v.duration()?
    },
    setting! {
        "cache.negative_ttl_secs", secs(1, 86_400), "30",
        "how long a rejected key is remembered",
        |c, v| c.cache.negative_ttl = v.duration()?
    },
    setting! {
        "oauth.issuer", Kind::Text, "",
        "`iss` of keygate's tokens; empty: `http://{http_addr}` (`https://` with TLS). Set it to the public URL",
        |c, v| c.oauth.issuer = v.string()?
    },
    setting! {
        "oauth.audience", Kind::List, "keygate",
        "`aud` of keygate's tokens; at least one",
        |c, v| c.oauth.audience = v.list()?
    },
    setting! {
        "oauth.token_ttl_secs", secs(60, 86_400), "1800",
        "access token lifetime",
        |c, v| c.oauth.token_ttl = v.duration()?
    },
    setting! {
        "oauth.leeway_secs", secs(0, 600), "30",
        "clock skew tolerated on `exp` and `nbf`",
        |c, v| c.oauth.leeway = v.duration()?
    },
    setting! {
        "oauth.algorithm", Kind::Choice(ALGORITHMS), "RS256",
        "the algorithm of generated signing keys; changing it rotates",
        |c, v| c.oauth.algorithm = v.algorithm()?
    },
    setting! {
        "oauth.signing_key_files", Kind::List, "",
        "PEM private keys to use instead of generated ones; the first signs",
        |c, v| c.oauth.signing_key_files = v.list()?.into_iter().map(PathBuf::from).collect()
    },
    setting! {
        "oauth.signing_key_encryption_key", Kind::Text, "",
        "the key-encryption key, 32 bytes in base64 or hex: encrypts the signing keys stored in the database and \
         keys the secrets' fingerprints. Only from the environment (`KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY`); the \
         config file is refused. Never printed: logs and errors name it by a short id",
        |c, v| c.oauth.signing_key_encryption_key = encryption_key(v)?
    },
    setting! {
        "oauth.signing_key_encryption_key_file", Kind::Path, "",
        "a file holding the key-encryption key (surrounding whitespace ignored), read at start; instead of the \
         variable, not with it",
        |c, v| c.oauth.signing_key_encryption_key_file = optional_path(v)?
    },
    setting! {
        "limits.backend", Kind::Choice(&["memory", "redis"]), "memory",
        "where rate, quota and slot counters live: `memory` (one replica) or `redis`",
        |c, v| c.limits.backend = v.choice(&[LimitsBackend::Memory, LimitsBackend::Redis])?
    },
    setting! {
        "limits.redis_url", Kind::Text, "redis://127.0.0.1:6379",
        "the Redis server of the `redis` backend; `rediss://` for TLS",
        |c, v| c.limits.redis_url = v.string()?
    },
    setting! {
        "limits.redis_ca_file", Kind::Path, "",
        "with a `rediss://` URL: the PEM file of the CA that signed Redis's certificate, instead of the system's roots",
        |c, v| c.limits.redis_ca_file = optional_path(v)?
    },
    setting! {
        "limits.redis_failure", Kind::Choice(&["open", "closed"]), "open",
        "while Redis is unreachable: `open` counts in memory, `closed` answers `UNAVAILABLE` (see \
         [Rate limits across replicas](limits.md#when-redis-is-unreachable))",
        |c, v| c.limits.redis_failure = v.choice(&[RedisFailureMode::Open, RedisFailureMode::Closed])?
    },
    setting! {
        "limits.redis_timeout_ms", millis(10, 60_000), "500",
        "the longest a Redis call or connection attempt may take before Redis counts as unreachable",
        |c, v| c.limits.redis_timeout = v.duration()?
    },
    setting! {
        "limits.flush_interval_ms", millis(50, 600_000), "1000",
        "how often quota usage is written to the database: the most a crash can lose",
        |c, v| c.limits.flush_interval = v.duration()?
    },
    setting! {
        "limits.default_lease_secs", secs(1, 604_800), "300",
        "a concurrency slot's lease when `lease_seconds` is unset; at most `limits.max_lease_secs`",
        |c, v| c.limits.lease.default = v.duration()?
    },
    setting! {
        "limits.max_lease_secs", secs(1, 604_800), "86400",
        "the most `lease_seconds` may ask",
        |c, v| c.limits.lease.max = v.duration()?
    },
    setting! {
        "limits.api_keys.rate_per_minute", RATE_PER_MINUTE, "0",
        "requests a minute of API keys that set no limit of their own (0: no rate limit)",
        |c, v| c.limits.defaults.api_keys.rate_per_minute = v.int()?
    },
    setting! {
        "limits.api_keys.rate_burst", RATE_BURST, "0",
        "their burst (0: a minute's worth)",
        |c, v| c.limits.defaults.api_keys.rate_burst = v.int()?
    },
    setting! {
        "limits.api_keys.max_quota", MAX_QUOTA, "0",
        "their monthly quota (0: none)",
        |c, v| c.limits.defaults.api_keys.max_quota = v.int()?
    },
    setting! {
        "limits.api_keys.max_concurrency", MAX_CONCURRENCY, "5",
        "their concurrency slots (0: no limit)",
        |c, v| c.limits.defaults.api_keys.max_concurrency = v.int()?
    },
    setting! {
        "limits.clients.rate_per_minute", RATE_PER_MINUTE, "200",
        "requests a minute of OAuth2 clients that set no limit of their own (0: no rate limit)",
        |c, v| c.limits.defaults.clients.rate_per_minute = v.int()?
    },
    setting! {
        "limits.clients.rate_burst", RATE_BURST, "0",
        "their burst (0: a minute's worth)",
        |c, v| c.limits.defaults.clients.rate_burst = v.int()?
    },
    setting! {
        "limits.clients.max_quota", MAX_QUOTA, "0",
        "their monthly quota (0: none)",
        |c, v| c.limits.defaults.clients.max_quota = v.int()?
    },
    setting! {
        "limits.clients.max_concurrency", MAX_CONCURRENCY, "5",
        "their concurrency slots (0: no limit)",
        |c, v| c.limits.defaults.clients.max_concurrency = v.int()?
    },
    setting! {
        "limits.users.rate_per_minute", RATE_PER_MINUTE, "100",
        "requests a minute of users (outside issuers' tokens) (0: no rate limit)",
        |c, v| c.limits.defaults.users.rate_per_minute = v.int()?
    },
    setting! {
        "limits.users.rate_burst", RATE_BURST, "0",
        "their burst (0: a minute's worth)",
        |c, v| c.limits.defaults.users.rate_burst = v.int()?
    },
    setting! {
        "limits.users.max_quota", MAX_QUOTA, "0",
        "their monthly quota (0: none)",
        |c, v| c.limits.defaults.users.max_quota = v.int()?
    },
    setting! {
        "limits.users.max_concurrency", MAX_CONCURRENCY, "5",
        "their concurrency slots (0: no limit)",
        |c, v| c.limits.defaults.users.max_concurrency = v.int()?
    },
    setting! {
        "limits.ceiling.rate_per_minute", RATE_PER_MINUTE, unset "none (the kind's default bounds)",
        "the most requests a minute organization admins may give a key or client where their plan sets none \
         (0: no ceiling); platform admins are not bound (see \
         [Who may grant which limits](limits.md#who-may-grant-which-limits))",
        |c, v| c.limits.ceiling.rate_per_minute = Some(v.int()?)
    },
    setting! {
        "limits.ceiling.rate_burst", RATE_BURST, unset "none (the kind's default bounds)",
        "the same ceiling for the burst",
        |c, v| c.limits.ceiling.rate_burst = Some(v.int()?)
    },
    setting! {
        "limits.ceiling.max_quota", MAX_QUOTA, unset "none (the kind's default bounds)",
        "the same ceiling for the monthly quota",
        |c, v| c.limits.ceiling.max_quota = Some(v.int()?)
    },
    setting! {
        "limits.ceiling.max_concurrency", MAX_CONCURRENCY, unset "none (the kind's default bounds)",
        "the same ceiling for concurrency slots",
        |c, v| c.limits.ceiling.max_concurrency = Some(v.int()?)
    },
    setting! {
        "envoy.policy_file", Kind::Path, "",
        "the route policy for Envoy's `Check` (see [Running behind Envoy](envoy.md)); without one every request is \
         unmatched",
        |c, v| c.envoy.policy_file = policy_file(v)?
    },
    setting! {
        "envoy.default_action", Kind::Choice(&["deny", "allow"]), "deny",
        "for requests no route matches: `deny` (403 `route_not_allowed`) or `allow` (as a public route)",
        |c, v| c.envoy.default_action = v.choice(&[UnmatchedAction::Deny, UnmatchedAction::Allow])?
    },
    setting! {
        "envoy.policy_poll_secs", secs(1, 3600), "2",
        "how often the policy file is checked for changes (SIGHUP reloads at once)",
        |c, v| c.envoy.policy_poll = v.duration()?
    },
    setting! {
        "envoy.strip_credentials", Kind::Bool, "true",
        "remove the credential headers before the request reaches the upstream",
        |c, v| c.envoy.strip_credentials = v.boolean()?
    },
    setting! {
        "envoy.dynamic_metadata", Kind::Bool, "true",
        "send the decision as the ext_authz filter's dynamic metadata (for access logs and later filters); \
         `false` saves Envoy the work when nothing reads it",
        |c, v| c.envoy.dynamic_metadata = v.boolean()?
    },
    setting! {
        "envoy.headers.authorization", Kind::Text, "authorization",
        "where bearer credentials are read",
        |c, v| c.envoy.headers.authorization = header(v)?
    },
    setting! {
        "envoy.headers.api_key", Kind::Text, "x-api-key",
        "where API keys are read",
        |c, v| c.envoy.headers.api_key = header(v)?
    },
    setting! {
        "envoy.headers.principal_type", Kind::Text, "x-keygate-principal-type",
        "the header the upstream gets the principal's type in",
        |c, v| c.envoy.headers.principal_type = header(v)?
    },
    setting! {
        "envoy.headers.principal_id", Kind::Text, "x-keygate-principal-id",
        "the header the upstream gets the principal's id in",
        |c, v| c.envoy.headers.principal_id = header(v)?
    },
    setting! {
        "envoy.headers.organization", Kind::Text, "x-keygate-organization",
        "the header the upstream gets the organization in",
        |c, v| c.envoy.headers.organization = header(v)?
    },
    setting! {
        "envoy.headers.scopes", Kind::Text, "x-keygate-scopes",
        "the header the upstream gets the scopes in",
        |c, v| c.envoy.headers.scopes = header(v)?
    },
    setting! {
        "shutdown.drain_delay_secs", secs(0, 600), "0",
        "after SIGTERM, how long keygate keeps accepting while reporting `NOT_SERVING`, for load balancers to \
         notice (the Helm chart sets 5)",
        |c, v| c.shutdown.drain_delay = v.duration()?
    },
    setting! {
        "shutdown.grace_secs", secs(0, 3600), "30",
        "how long in-flight requests get once the listeners are closed; connections still open then are cut",
        |c, v| c.shutdown.grace = v.duration()?
    },
    setting! {
        "console.enabled", Kind::Bool, "true",
        "serve the admin console at `/console` on `http_addr` ([docs/console.md](console.md)); `false` leaves only \
         the APIs",
        |c, v| c.console.enabled = v.boolean()?
    },
    setting! {
        "console.session_idle_minutes", int(1, 1440, Unit::Minutes), "30",
        "a console session ends after this long without a request",
        |c, v| c.console.session_idle = v.duration()?
    },
    setting! {
        "console.session_max_hours", int(1, 168, Unit::Hours), "8",
        "a console session ends this long after sign-in, in use or not",
        |c, v| c.console.session_max = v.duration()?
    },
    setting! {
        "tls.cert_file", Kind::Path, "",
        "PEM certificate chain, leaf first: TLS on both listeners; needs `tls.key_file`",
        |c, v| c.tls.cert_file = optional_path(v)?
    },
    setting! {
        "tls.key_file", Kind::Path, "",
        "PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls.cert_file`",
        |c, v| c.tls.key_file = optional_path(v)?
    },
    setting! {
        "tls.client_ca_file", Kind::Path, "",
        "PEM CA certificates: every caller of both listeners must present a client certificate they signed (mTLS)",
        |c, v| c.tls.client_ca_file = optional_path(v)?
    },
    setting! {
        "tls.reload_poll_secs", secs(1, 3600), "10",
        "how often the TLS files are read again; a changed, valid set is used for new connections",
        |c, v| c.tls.reload_poll = v.duration()?
    },
    setting! {
        "traces.endpoint", Kind::Text, "",
        "the URL spans are sent to, used as is; setting it (or `traces.base_endpoint`) turns export on",
        |c, v| c.traces.endpoint = v.string()?.trim().to_owned()
    },
    setting! {
        "traces.base_endpoint", Kind::Text, "",
        "the collector's base URL, used when `traces.endpoint` is unset: as is for `grpc`, with `/v1/traces` \
         appended for `http/protobuf`",
        |c, v| c.traces.base_endpoint = v.string()?.trim().to_owned()
    },
    setting! {
        "traces.protocol", Kind::Choice(&["grpc", "http/protobuf"]), "grpc",
        "how spans travel to the collector; `http/json` is refused",
        |c, v| c.traces.protocol = OtlpProtocol::parse(&v.string()?)?
    },
    setting! {
        "traces.certificate", Kind::Path, "",
        "PEM CA certificates an `https://` collector must chain to, instead of the system's roots",
        |c, v| c.traces.certificate = optional_path(v)?
    },
    setting! {
        "traces.headers", Kind::Pairs, "",
        "`name=value,…` sent with every export, values percent-decoded; never logged",
        |c, v| c.traces.headers = OtlpHeaders::parse(&v.string()?)?
    },
    setting! {
        "traces.timeout_ms", millis(1, 600_000), "10000",
        "the longest one export may take",
        |c, v| c.traces.timeout = v.duration()?
    },
    setting! {
        "traces.sampler", Kind::Choice(SAMPLERS), "parentbased_always_on",
        "which spans are recorded and exported (see [Sampling](observability.md#sampling))",
        |c, v| c.traces.sampler = TracesSampler::parse(&v.string()?)?
    },
    setting! {
        "traces.sampler_arg", Kind::Number { min: 0.0, max: 1.0 }, "",
        "the ratio of the `traceidratio` samplers; unset: 1",
        |c, v| c.traces.sampler_arg = v.number()?.map(Ratio::new).transpose()?
    },
    setting! {
        "traces.exporter", Kind::Choice(&["otlp", "none"]), "",
        "`otlp` exports (to the protocol's default endpoint unless one is set), `none` does not; unset: export when \
         an endpoint is set",
        |c, v| c.traces.exporter = exporter(v)?
    },
    setting! {
        "traces.disabled", Kind::Bool, "false",
        "`true` turns export off whatever else is set",
        |c, v| c.traces.disabled = v.boolean()?
    },
    setting! {
        "traces.service_name", Kind::Text, "keygate",
        "the exported resource's `service.name`",
        |c, v| c.traces.service_name = v.string()?
    },
    setting! {
        "traces.resource_attributes", Kind::Pairs, "",
        "further attributes of the exported resource, `key=value,…`",
        |c, v| c.traces.resource_attributes = resource_attributes(&v.string()?)?
    },
    setting! {
        "traces.schedule_delay_ms", millis(1, 3_600_000), "5000",
        "the time between batch exports",
        |c, v| c.traces.schedule_delay = v.duration()?
    },
];

/// The settings of one plan, under `organizations.plans.NAME.`: its key limit, then its ceiling
/// (the loosest limits its organizations' own admins may grant; the same four as
/// `limits.ceiling.`).
pub(super) const PLAN_SETTINGS: &[Setting<Plan>] = &[
    setting! {
        "max_active_keys", count(1, 1_000_000), unset "required for a new plan",
        "the plan's active-key limit; the default plans are `free` (3), `pro` (50) and `enterprise` (1000)",
        |p, v| p.max_active_keys = v.int()?
    },
    setting! {
        "rate_per_minute", RATE_PER_MINUTE, unset "`limits.ceiling.rate_per_minute`",
        "the most requests a minute the plan's organization admins may grant (0: no ceiling)",
        |p, v| p.ceiling.rate_per_minute = Some(v.int()?)
    },
    setting! {
        "rate_burst", RATE_BURST, unset "`limits.ceiling.rate_burst`",
        "the same ceiling for the burst",
        |p, v| p.ceiling.rate_burst = Some(v.int()?)
    },
    setting! {
        "max_quota", MAX_QUOTA, unset "`limits.ceiling.max_quota`",
        "the same ceiling for the monthly quota",
        |p, v| p.ceiling.max_quota = Some(v.int()?)
    },
    setting! {
        "max_concurrency", MAX_CONCURRENCY, unset "`limits.ceiling.max_concurrency`",
        "the same ceiling for concurrency slots",
        |p, v| p.ceiling.max_concurrency = Some(v.int()?)
    },
];

/// The settings of one trusted issuer, under `oauth.issuers.NAME.` (see
/// [OAuth2 and JWTs](oauth.md#user-tokens)).
pub(super) const ISSUER_SETTINGS: &[Setting<IssuerConfig>] = &[
    setting! {
        "issuer", Kind::Text, unset "required",
        "the `iss` its tokens carry; not keygate's own",
        |i, v| i.issuer = v.string()?
    },
    setting! {
        "audiences", Kind::List, unset "required",
        "the `aud` its tokens must carry, at least one",
        |i, v| i.audiences = v.list()?
    },
    setting! {
        "jwks_url", Kind::Text, unset "one of `jwks_url` and `jwks_file`",
        "where its keys are fetched: an `https://` URL (plain `http://` needs `allow_http`)",
        |i, v| i.jwks_url = v.string()?
    },
    setting! {
        "jwks_file", Kind::Path, unset "one of `jwks_url` and `jwks_file`",
        "a JWKS file holding its keys",
        |i, v| i.jwks_file = Some(PathBuf::from(v.string()?))
    },
    setting! {
        "user_claim", Kind::Text, "sub",
        "the claim naming the user",
        |i, v| i.user_claim = v.string()?
    },
    setting! {
        "scope_claim", Kind::Text, "scope",
        "`scope` (space-separated), `scp`, or a roles claim (an array)",
        |i, v| i.scope_claim = v.string()?
    },
    setting! {
        "organization_claim", Kind::Text, "org",
        "the claim naming the organization: required with `organizations`; with `organization`, a token naming \
         another one in it is refused",
        |i, v| i.organization_claim = v.string()?
    },
    setting! {
        "organization", Kind::Text, unset "one of `organization` and `organizations`",
        "a fixed organization for every user of this issuer",
        |i, v| i.organization = v.string()?
    },
    setting! {
        "organizations", Kind::List, unset "one of `organization` and `organizations`",
        "the organizations its tokens may name in `organization_claim` (an allow-list)",
        |i, v| i.organizations = v.list()?
    },
    setting! {
        "platform", Kind::Bool, "false",
        "its users may act for the platform organization (and be platform admins); needs a fixed `organization`",
        |i, v| i.platform = v.boolean()?
    },
    setting! {
        "algorithms", Kind::Choices(ALGORITHMS), "RS256,ES256",
        "the algorithms its tokens may be signed with",
        |i, v| i.algorithms = v.algorithms()?
    },
    setting! {
        "refresh_secs", secs(10, 86_400), "300",
        "how often its keys are fetched again",
        |i, v| i.refresh = v.duration()?
    },
    setting! {
        "min_refetch_secs", secs(1, 3600), "10",
        "the least time between fetches when a token names an unknown key",
        |i, v| i.min_refetch = v.duration()?
    },
    setting! {
        "allow_admin_scopes", Kind::Bool, "false",
        "its tokens may carry keygate's admin scopes and `*`",
        |i, v| i.allow_admin_scopes = v.boolean()?
    },
    setting! {
        "allow_http", Kind::Bool, "false",
        "`jwks_url` may be plain `http://` (anyone on the path could then swap the keys), e.g. a sidecar on the \
         loopback",
        |i, v| i.allow_http = v.boolean()?
    },
    setting! {
        "typ", Kind::Text, "",
        "the `typ` header a token must carry (e.g. `at+jwt`, RFC 9068), so that ID tokens cannot pass as access \
         tokens; empty accepts any",
        |i, v| i.typ = v.string()?
    },
    setting! {
        "lasting_credentials", Kind::Bool, "false",
        "its admins may create keys and client secrets that outlive their token (up to the configured maximum \
         lifetime); needs `allow_admin_scopes`",
        |i, v| i.lasting_credentials = v.boolean()?
    },
];

/// A path, or none for an empty string.
fn optional_path(v: &Raw<'_>) -> Result<Option<PathBuf>, String> {
    let path = v.string()?;
    Ok((!path.trim().is_empty()).then(|| PathBuf::from(path.trim())))
}

/// The policy file, or none for an empty string (taken as given, untrimmed).
fn policy_file(v: &Raw<'_>) -> Result<Option<PathBuf>, String> {
    let path = v.string()?;
    Ok((!path.is_empty()).then(|| PathBuf::from(path)))
}

/// A header name as Envoy compares it: lower case.
fn header(v: &Raw<'_>) -> Result<String, String> {
    Ok(v.string()?.to_ascii_lowercase())
}

/// The key-encryption key, from the environment only: a config file is often a ConfigMap or
/// checked in.
fn encryption_key(v: &Raw<'_>) -> Result<Option<KeyEncryptionKey>, String> {
    let Raw::Text(text) = v else {
        return Err("a key-encryption key does not belong in the config file; set \
                    KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY or oauth.signing_key_encryption_key_file"
            .to_owned());
    };
    if text.trim().is_empty() { Ok(None) } else { KeyEncryptionKey::parse(text).map(Some) }
}

/// `otlp`, `none`, or unset for an empty value.
fn exporter(v: &Raw<'_>) -> Result<Option<TracesExporter>, String> {
    match v.string()?.trim() {
        "otlp" => Ok(Some(TracesExporter::Otlp)),
        "none" => Ok(Some(TracesExporter::None)),
        "" => Ok(None),
        other => Err(format!("expected \"otlp\" or \"none\", got {other:?}")),
    }
}

/// `key=value,key=value` (W3C baggage-style, as `OTEL_RESOURCE_ATTRIBUTES`).
fn resource_attributes(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.trim().to_owned())),
            _ => Err(format!("expected key=value pairs separated by commas, got {pair:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use keygate_core::model::LimitOverrides;

    use super::*;

    /// Applies each documented default to `default`; the paths declared unset.
    fn check_defaults<T: Clone + PartialEq + Debug>(table: &[Setting<T>], default: &T) -> Vec<&'static str> {
        let mut unset = Vec::new();
        for setting in table {
            match setting.default {
                DefaultIs::Value(text) => {
                    let mut applied = default.clone();
                    setting
                        .apply_to(&mut applied, &Raw::Text(text))
                        .unwrap_or_else(|e| panic!("{}: {e}", setting.path));
                    assert_eq!(
                        &applied, default,
                        "{}: the documented default {text:?} is not the default",
                        setting.path
                    );
                }
                DefaultIs::Unset(_) => unset.push(setting.path),
            }
        }
        unset
    }

    #[test]
    fn every_documented_default_is_the_default() {
        let config = Config::default();
        let unset = check_defaults(SETTINGS, &config);
        let ceiling =
            ["rate_per_minute", "rate_burst", "max_quota", "max_concurrency"].map(|f| format!("limits.ceiling.{f}"));
        assert_eq!(unset, ceiling, "the settings documented as unset");
        assert_eq!(config.limits.ceiling, LimitOverrides::default(), "no ceiling unless configured");

        // A new plan has no key limit (it must be given) and no ceiling of its own.
        assert_eq!(check_defaults(PLAN_SETTINGS, &Plan::default()).len(), PLAN_SETTINGS.len());
        assert_eq!(Plan::default(), Plan::with_keys(0));
        let plans: Vec<(&str, u32)> =
            config.organizations.plans.iter().map(|(name, plan)| (name.as_str(), plan.max_active_keys)).collect();
        assert_eq!(plans, [("enterprise", 1000), ("free", 3), ("pro", 50)], "as max_active_keys's doc says");

        let issuer = IssuerConfig::default();
        let unset = check_defaults(ISSUER_SETTINGS, &issuer);
        assert_eq!(unset, ["issuer", "audiences", "jwks_url", "jwks_file", "organization", "organizations"]);
        assert!(issuer.issuer.is_empty() && issuer.audiences.is_empty() && issuer.jwks_url.is_empty());
        assert!(issuer.jwks_file.is_none() && issuer.organization.is_empty() && issuer.organizations.is_empty());
    }

    /// Values a kind's declaration accepts and refuses.
    fn tried(kind: Kind) -> Option<(Vec<toml::Value>, Vec<toml::Value>)> {
        let list = |name: &str| toml::Value::Array(vec![name.into()]);
        Some(match kind {
            Kind::Int { min, max, .. } => (vec![min.into(), max.into()], vec![(min - 1).into(), (max + 1).into()]),
            Kind::Number { min, max } => (vec![min.into(), max.into()], vec![(min - 0.5).into(), (max + 0.5).into()]),
            Kind::Choice(names) => (names.iter().map(|name| (*name).into()).collect(), vec!["not-a-choice".into()]),
            Kind::Choices(names) => (names.iter().map(|name| list(name)).collect(), vec![list("not-a-choice")]),
            _ => return None,
        })
    }

    fn check_bounds<T: Clone>(table: &[Setting<T>], base: &T, problems: &mut Vec<String>) {
        for setting in table {
            let Some((good, bad)) = tried(setting.kind) else { continue };
            for value in good {
                if let Err(e) = setting.apply_to(&mut base.clone(), &Raw::Toml(&value)) {
                    problems.push(format!("{} = {value}: declared as accepted, refused: {e}", setting.path));
                }
            }
            for value in bad {
                if setting.apply_to(&mut base.clone(), &Raw::Toml(&value)).is_ok() {
                    problems.push(format!("{} = {value}: declared as refused, accepted", setting.path));
                }
            }
        }
    }

    #[test]
    fn the_declared_bounds_and_choices_are_the_ones_enforced() {
        let mut problems = Vec::new();
        check_bounds(SETTINGS, &Config::default(), &mut problems);
        check_bounds(PLAN_SETTINGS, &Plan::default(), &mut problems);
        check_bounds(ISSUER_SETTINGS, &IssuerConfig::default(), &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn every_path_is_declared_once() {
        for (i, setting) in SETTINGS.iter().enumerate() {
            assert!(SETTINGS[..i].iter().all(|earlier| earlier.path != setting.path), "{} twice", setting.path);
        }
    }
}
