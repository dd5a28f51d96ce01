//! The admin command line: `keys`, `clients`, `orgs` and `audit` over gRPC to a running server,
//! `config check` and `policy check` for CI, shell completions and the man page.
//!
//! Exit codes (see [`Failure::exit_code`]): 0 done; 1 a problem on this side before anything was
//! sent (no credential, an unreadable file, a check that found problems); 2 a usage error (clap);
//! 3 the server refused the request (the caller's mistake: bad argument, not found, not allowed,
//! conflict); 4 the server or the network failed (unavailable, internal, deadline, no connection).

pub mod audit;
pub mod checks;
pub mod clients;
pub mod connect;
pub mod docs;
pub mod failure;
pub mod keys;
pub mod orgs;
pub mod output;

use std::path::PathBuf;

use clap::Args;

pub use failure::Failure;

use crate::config::{self, Config};

/// The config file and database URL every server command reads, as `serve` loads them.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// TOML config file [env: KEYGATE_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// sqlite://PATH?mode=rwc or postgres://USER@HOST:PORT/DB [env: KEYGATE_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

impl Common {
    /// The file, then the `KEYGATE_` environment, then `flags`: every problem at once.
    pub fn load(self, mut flags: Vec<(&'static str, String)>) -> Result<Config, config::ConfigErrors> {
        if let Some(url) = self.database_url {
            flags.push(("database.url", url));
        }
        config::from_process(self.config, flags)
    }
}

/// The flags of an update of a key or a client: what is not given stays as it is.
#[derive(Debug, Clone, Default, Args)]
pub struct ChangesArgs {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Replaces every scope; repeat for more.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub limits: LimitsArgs,
    /// Return a limit to the configured default; repeat for more.
    #[arg(long = "reset-limit", value_name = "LIMIT", value_parser = [
        "rate_limit_per_minute", "rate_limit_burst", "max_quota", "max_concurrency"
    ])]
    pub reset_limits: Vec<String>,
    /// Replaces every label with these; repeat for more.
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Removes every label.
    #[arg(long, conflicts_with = "labels")]
    pub clear_labels: bool,
}

impl ChangesArgs {
    /// The scopes to set, when any were given.
    pub fn scope_list(&self) -> Option<crate::proto::keygate_v1::ScopeList> {
        (!self.scopes.is_empty()).then(|| crate::proto::keygate_v1::ScopeList { values: self.scopes.clone() })
    }

    /// The labels to set, when any were given or all are cleared.
    pub fn label_map(&self) -> Option<crate::proto::keygate_v1::LabelMap> {
        let set = !self.labels.is_empty() || self.clear_labels;
        set.then(|| crate::proto::keygate_v1::LabelMap { values: self.labels.iter().cloned().collect() })
    }
}

/// The page and filters of a list of keys or clients, beside their status.
#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    /// Case-insensitive part of the name, description or a label value (a client's id too).
    #[arg(long, default_value = "")]
    pub search: String,
    /// How many to skip.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub offset: i32,
    /// How many to show (the server's default: 20, at most 100).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub limit: i32,
    /// The organization (slug) to list [default: the caller's].
    #[arg(long, value_name = "SLUG", default_value = "")]
    pub organization: String,
    /// Only those not used since this time (RFC 3339), never-used ones included.
    #[arg(long, value_name = "TIME")]
    pub unused_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only those carrying this label; repeat for more, all must match.
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

impl ListArgs {
    pub fn unused_since(&self) -> Option<prost_types::Timestamp> {
        self.unused_since.map(crate::grpc::convert::timestamp)
    }

    pub fn label_map(&self) -> std::collections::BTreeMap<String, String> {
        self.labels.iter().cloned().collect()
    }
}

/// `NAME=VALUE`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

/// The limits flags of a create or an update: each one set replaces the credential's.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitsArgs {
    /// Requests per minute at the steady rate (0: no limit).
    #[arg(long, value_name = "N")]
    pub rate_limit_per_minute: Option<u32>,
    /// Requests that may arrive at once after a quiet spell (0: a whole minute's allowance).
    #[arg(long, value_name = "N")]
    pub rate_limit_burst: Option<u32>,
    /// Quota units per calendar month, UTC (0: no limit).
    #[arg(long, value_name = "N")]
    pub max_quota: Option<u64>,
    /// Concurrency slots held at once (0: no limit).
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u32>,
}

impl LimitsArgs {
    /// The proto limits, or none when no flag was given.
    pub fn to_proto(&self) -> Option<crate::proto::keygate_v1::Limits> {
        let limits = crate::proto::keygate_v1::Limits {
            rate_limit_per_minute: self.rate_limit_per_minute,
            rate_limit_burst: self.rate_limit_burst,
            max_quota: self.max_quota,
            max_concurrency: self.max_concurrency,
        };
        let none = limits.rate_limit_per_minute.is_none()
            && limits.rate_limit_burst.is_none()
            && limits.max_quota.is_none()
            && limits.max_concurrency.is_none();
        (!none).then_some(limits)
    }
}
