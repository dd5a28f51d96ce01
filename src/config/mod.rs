//! Typed, strict, layered configuration: defaults, then a TOML file, then `KEYGATE_` environment
//! variables, then command-line flags. Unknown keys are errors, and every problem is reported at
//! once. The process environment is read here and nowhere else ([`from_process`]).
//!
//! This file lists the settings that exist (from `settings.rs`, one declaration each); `sections.rs`
//! holds what they land in and their defaults, `load.rs` the layers, `checks.rs` the checks of the
//! whole, `components.rs` the settings built for the components that do not take a section as is.

mod checks;
mod components;
mod load;
mod raw;
mod reference;
mod sections;
mod settings;
#[cfg(test)]
mod tests;
mod traces;

pub use checks::log_filter;
pub(crate) use components::chrono_duration;
pub use load::{ConfigErrors, Sources, from_process};
pub use reference::settings_table;
pub use sections::{
    CacheConfig, Config, ConsoleConfig, DatabaseConfig, EnvoyConfig, EnvoyHeaders, HashingConfig, IssuerConfig,
    KeysConfig, LimitsBackend, LimitsConfig, LogConfig, LogFormat, OAuthConfig, OrganizationsConfig, RedisFailureMode,
    ShutdownConfig, TlsConfig,
};
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
