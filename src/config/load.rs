//! Loading: the defaults, then the TOML file, the OpenTelemetry and `KEYGATE_` variables and the
//! flags, each applied through the settings' declarations, every problem collected; then the
//! checks of the whole ([`Config::load`]). [`from_process`] reads the real environment.

use std::fmt;
use std::path::{Path, PathBuf};

use super::raw::Raw;
use super::settings::Setting;
use super::{
    CLIENT_ENV, CONFIG_FILE_ENV, Config, ENV_PREFIX, ISSUER_SETTINGS, ISSUERS_PATH, OTEL_SETTINGS, PLAN_SETTINGS,
    PLANS_PATH, SETTINGS, env_name, issuer_fields, plan_fields, setting_paths,
};

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
