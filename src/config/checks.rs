//! The checks of the loaded configuration as a whole: what one setting's bounds cannot say, such
//! as a default above its maximum, a plan that is not configured, or TLS files given by halves.

use keygate_core::credentials::api_key::is_valid_prefix;
use keygate_core::credentials::scopes::is_well_formed;

use super::{Config, ISSUERS_PATH, IssuerConfig, LimitsBackend, PLANS_PATH};

impl Config {
    /// Adds every problem of the whole to `problems`.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
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

/// A header name Envoy passes as is: letters, digits and `-`, not a pseudo-header.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
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
