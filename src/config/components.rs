//! The settings a component takes when it does not take its section as it is: built here, from
//! the sections, so that `app` only wires the objects.

use std::time::Duration;

use keygate_core::admin::AdminSettings;
use keygate_core::credentials::hashing::{HashLimits, HashParams};
use keygate_core::tokens::TokenSettings;
use keygate_core::tokens::issuers::{IssuerSettings, OrganizationBinding};

use super::{Config, HashingConfig, IssuerConfig};

impl Config {
    /// keygate's own tokens: `iss` ([`Config::token_issuer`]), `aud`, lifetime and leeway.
    pub fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.token_issuer(),
            audience: self.oauth.audience.clone(),
            ttl: chrono_duration(self.oauth.token_ttl),
            leeway: chrono_duration(self.oauth.leeway),
        }
    }

    /// The admin use cases': the keys' lifecycle, the plans, and the limits they grant within.
    pub fn admin_settings(&self) -> AdminSettings {
        AdminSettings {
            key_prefix: self.keys.prefix.clone(),
            default_expires_in_days: self.keys.default_expires_in_days,
            max_expires_in_days: self.keys.max_expires_in_days,
            default_grace_period_days: self.keys.default_grace_period_days,
            max_grace_period_days: self.keys.max_grace_period_days,
            plans: self.organizations.plans.clone(),
            default_plan: self.organizations.default_plan.clone(),
            bootstrap_plan: self.organizations.bootstrap_plan.clone(),
            ceiling: self.limits.ceiling,
            limit_defaults: self.limits.defaults,
        }
    }
}

impl HashingConfig {
    /// The argon2 parameters new secrets are hashed with.
    pub fn params(&self) -> HashParams {
        HashParams { memory_kib: self.memory_kib, iterations: self.iterations, lanes: self.lanes }
    }

    /// How many computations run at once (`max_concurrent` 0: half the CPU cores, at least one),
    /// how many may wait, and at what priority.
    pub fn limits(&self) -> HashLimits {
        let max_concurrent = match self.max_concurrent {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n as usize,
        };
        HashLimits { max_concurrent, max_waiting: self.max_waiting as usize, nice: self.nice as i32 }
    }
}

impl IssuerConfig {
    /// The settings of the outside issuer configured as `name`; where its keys come from
    /// (`jwks_url` or `jwks_file`) is the caller's to wire.
    pub fn settings(&self, name: &str) -> IssuerSettings {
        IssuerSettings {
            name: name.to_owned(),
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            algorithms: self.algorithms.clone(),
            user_claim: self.user_claim.clone(),
            scope_claim: self.scope_claim.clone(),
            organization_claim: self.organization_claim.clone(),
            organization: if self.organization.is_empty() {
                OrganizationBinding::AllowList(self.organizations.clone())
            } else {
                OrganizationBinding::Fixed(self.organization.clone())
            },
            platform: self.platform,
            refresh: chrono_duration(self.refresh),
            min_refetch: chrono_duration(self.min_refetch),
            allow_admin_scopes: self.allow_admin_scopes,
            typ: self.typ.clone(),
            lasting_credentials: self.lasting_credentials,
        }
    }
}

/// `duration` as the core's tokens count time. The settings' bounds keep every configured one
/// far below the most chrono holds.
pub(crate) fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
