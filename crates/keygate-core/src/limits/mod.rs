//! Rate limits, monthly quotas and concurrency slots: what a principal may spend, and the one
//! place that charges it. Every limit that applies to a request is checked and charged together by
//! one call to the [`Counters`] backend (in memory, or Redis for several replicas): all or none.
//! Quota usage is also tallied here per replica and written to the database in batches
//! ([`Limiter::flush`]), so that it survives restarts.

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod gcra;
pub mod grants;
pub mod memory;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use usage::UsageTally;

use super::error::CoreError;
use super::model::{
    Admission, Charge, LimitField, LimitOverrides, LimitState, Principal, PrincipalKind, QuotaCharge, QuotaState,
    QuotaWindow, RateLimit, RateState, Slot, SlotCharge,
};
use super::ports::{Counters, UsageStore};
use super::validate::Violations;

/// The most a credential's own limits may say.
const MAX_RATE_PER_MINUTE: u32 = 60_000_000;
const MAX_QUOTA: u64 = 1_000_000_000_000;
const MAX_CONCURRENCY: u32 = 100_000;

/// Adds a violation for each of `overrides`' limits out of range, under its wire field name.
pub fn check_overrides(overrides: &LimitOverrides, violations: &mut Violations) {
    if overrides.rate_per_minute.is_some_and(|n| n > MAX_RATE_PER_MINUTE) {
        violations.add("rate_limit_per_minute", format!("must be at most {MAX_RATE_PER_MINUTE} (0: no rate limit)"));
    }
    if overrides.rate_burst.is_some_and(|n| n > MAX_RATE_PER_MINUTE) {
        violations.add("rate_limit_burst", format!("must be at most {MAX_RATE_PER_MINUTE} (0: a minute's worth)"));
    }
    if overrides.max_quota.is_some_and(|n| n > MAX_QUOTA) {
        violations.add("max_quota", format!("must be at most {MAX_QUOTA} (0: no quota)"));
    }
    if overrides.max_concurrency.is_some_and(|n| n > MAX_CONCURRENCY) {
        violations.add("max_concurrency", format!("must be at most {MAX_CONCURRENCY} (0: no limit)"));
    }
}

/// Checks the names of limits to reset (field `field`): each a known limit, listed once, and not
/// also set in `overrides`.
pub fn check_resets(field: &str, names: &[String], overrides: &LimitOverrides, violations: &mut Violations) {
    for (i, name) in names.iter().enumerate() {
        let at = format!("{field}[{i}]");
        match LimitField::from_name(name) {
            None => {
                let known: Vec<&str> = LimitField::ALL.iter().map(|f| f.name()).collect();
                violations.add(at, format!("is not a limit (one of {})", known.join(", ")));
            }
            Some(_) if names[..i].contains(name) => violations.add(at, format!("{name} is listed twice")),
            Some(limit) if limit.is_set_in(overrides) => {
                violations.add(at, format!("{name} is also set in limits: set it or reset it"));
            }
            Some(_) => {}
        }
    }
}

/// The configured limits of one kind of principal; 0 means no limit of that sort (for the burst:
/// a whole minute's allowance).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindDefaults {
    pub rate_per_minute: u32,
    pub rate_burst: u32,
    pub max_quota: u64,
    pub max_concurrency: u32,
}

/// The configured limits by kind of principal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitDefaults {
    pub api_keys: KindDefaults,
    pub clients: KindDefaults,
    pub users: KindDefaults,
}

/// The limits in force for one principal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub rate: Option<RateLimit>,
    pub max_quota: Option<u64>,
    pub max_concurrency: Option<u32>,
}

impl Limits {
    /// One limit in force; `None` when there is no limit of that sort (the burst: when there is
    /// no rate limit).
    pub fn value(&self, field: LimitField) -> Option<u64> {
        match field {
            LimitField::RatePerMinute => self.rate.map(|rate| u64::from(rate.per_minute)),
            LimitField::RateBurst => self.rate.map(|rate| u64::from(rate.burst)),
            LimitField::MaxQuota => self.max_quota,
            LimitField::MaxConcurrency => self.max_concurrency.map(u64::from),
        }
    }
}

impl LimitDefaults {
    /// The configured limits of `kind`.
    pub fn of(&self, kind: PrincipalKind) -> &KindDefaults {
        match kind {
            PrincipalKind::ApiKey => &self.api_keys,
            PrincipalKind::Client => &self.clients,
            PrincipalKind::User => &self.users,
        }
    }

    /// `overrides` over the defaults of `kind`.
    pub fn resolve(&self, kind: PrincipalKind, overrides: &LimitOverrides) -> Limits {
        let defaults = self.of(kind);
        let per_minute = overrides.rate_per_minute.unwrap_or(defaults.rate_per_minute);
        let burst = match overrides.rate_burst.unwrap_or(defaults.rate_burst) {
            0 => per_minute,
            burst => burst,
        };
        let positive = |n: u64| (n > 0).then_some(n);
        Limits {
            rate: (per_minute > 0).then_some(RateLimit { per_minute, burst }),
            max_quota: positive(overrides.max_quota.unwrap_or(defaults.max_quota)),
            max_concurrency: Some(overrides.max_concurrency.unwrap_or(defaults.max_concurrency)).filter(|n| *n > 0),
        }
    }
}

/// What an admission asks beyond the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmitRequest {
    /// Quota units the request costs (0 for free requests).
    pub cost: u64,
    /// Take a concurrency slot for this long.
    pub lease: Option<Duration>,
}

/// The limiter's verdict on a request whose credential and scopes were fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitVerdict {
    Admitted {
        state: LimitState,
        slot: Option<Slot>,
    },
    /// The request costs more than the whole monthly quota: it can never succeed.
    InsufficientMaxQuota {
        cost: u64,
        max_quota: u64,
    },
    RateLimited {
        state: LimitState,
        retry_after: Duration,
    },
    QuotaExceeded {
        state: LimitState,
        retry_after: Duration,
    },
    ConcurrencyLimit {
        state: LimitState,
        retry_after: Duration,
    },
}

/// How long concurrency slots are leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    pub default: Duration,
    pub max: Duration,
}

/// Checks and charges limits for the engine; tallies quota usage for the database.
pub struct Limiter {
    defaults: LimitDefaults,
    leases: LeaseSettings,
    counters: Arc<dyn Counters>,
    usage: Arc<dyn UsageStore>,
    tally: UsageTally,
}

impl Limiter {
    /// `replica` names this process's rows of quota usage; a new one per start, so that a
    /// restarted process never overwrites what its previous life recorded.
    pub fn new(
        defaults: LimitDefaults,
        leases: LeaseSettings,
        counters: Arc<dyn Counters>,
        usage: Arc<dyn UsageStore>,
        replica: String,
    ) -> Self {
        Self { defaults, leases, counters, usage, tally: UsageTally::new(replica) }
    }

    /// The lease a slot request asks for, in whole seconds (the default when unset); a violation
    /// of field `lease_seconds` when out of range.
    pub fn lease(&self, seconds: Option<u32>, violations: &mut Violations) -> Duration {
        let Some(seconds) = seconds else { return self.leases.default };
        let max = self.leases.max.as_secs();
        if seconds == 0 || u64::from(seconds) > max {
            violations.add("lease_seconds", format!("must be 1 to {max} seconds"));
        }
        Duration::from_secs(u64::from(seconds))
    }

    /// The limits in force for `principal`.
    pub fn limits(&self, principal: &Principal) -> Limits {
        self.defaults.resolve(principal.kind, &principal.limits)
    }

    /// Checks and charges the request's limits at `now`: every one, or none.
    pub async fn admit(
        &self,
        principal: &Principal,
        request: AdmitRequest,
        now: DateTime<Utc>,
    ) -> Result<LimitVerdict, CoreError> {
        let limits = self.limits(principal);
        if let Some(max_quota) = limits.max_quota
            && request.cost > max_quota
        {
            return Ok(LimitVerdict::InsufficientMaxQuota { cost: request.cost, max_quota });
        }
        // Without a concurrency limit a slot is still handed out (the caller releases it as
        // usual), but nothing counts it.
        let slot = request.lease.map(|lease| new_slot(now, lease));
        let counted_slot = slot.is_some() && limits.max_concurrency.is_some();
        if limits.rate.is_none() && limits.max_quota.is_none() && !counted_slot {
            // Nothing to count: no counter is touched, and nothing is allocated.
            return Ok(LimitVerdict::Admitted { state: LimitState::default(), slot });
        }
        let window = QuotaWindow::containing(now);
        let subject = subject(principal);
        let mut charge = Charge {
            subject: &subject,
            now_micros: now.timestamp_micros(),
            rate: limits.rate,
            quota: limits.max_quota.map(|max| QuotaCharge { max, cost: request.cost, window, seed: None }),
            slot: slot.as_ref().zip(limits.max_concurrency).map(|(slot, max)| SlotCharge {
                max,
                id: &slot.id,
                expires_micros: slot.expires_at.timestamp_micros(),
            }),
        };
        let mut admission = self.counters.admit(&charge).await?;
        if admission == Admission::NeedsSeed
            && let Some(quota) = charge.quota.as_mut()
        {
            quota.seed = Some(self.seed(&subject, window).await?);
            admission = self.counters.admit(&charge).await?;
        }
        let quota_state = |used: u64| {
            limits.max_quota.map(|max_quota| QuotaState {
                max_quota,
                remaining: max_quota.saturating_sub(used),
                refresh_at: window.end,
            })
        };
        Ok(match admission {
            Admission::Admitted { rate, quota_used } => {
                if limits.max_quota.is_some() && request.cost > 0 {
                    self.tally.add(&subject, window, request.cost);
                }
                let state = LimitState { rate, quota: quota_used.and_then(quota_state) };
                LimitVerdict::Admitted { state, slot }
            }
            Admission::RateLimited { retry_after, limit } => LimitVerdict::RateLimited {
                state: LimitState {
                    rate: Some(RateState { limit, remaining: 0, reset_after: retry_after }),
                    quota: None,
                },
                retry_after,
            },
            Admission::QuotaExceeded { used } => LimitVerdict::QuotaExceeded {
                state: LimitState { rate: None, quota: quota_state(used) },
                retry_after: (window.end - now).to_std().unwrap_or_default(),
            },
            Admission::ConcurrencyLimit { retry_after } => {
                LimitVerdict::ConcurrencyLimit { state: LimitState::default(), retry_after }
            }
            Admission::NeedsSeed => {
                return Err(CoreError::Internal("the counters asked for a seed twice".into()));
            }
        })
    }

    /// The principal's monthly quota at `now`, without charging anything; `None` when it has none.
    pub async fn quota(&self, principal: &Principal, now: DateTime<Utc>) -> Result<Option<QuotaState>, CoreError> {
        let Some(max_quota) = self.limits(principal).max_quota else {
            return Ok(None);
        };
        let subject = subject(principal);
        let window = QuotaWindow::containing(now);
        let used = match self.counters.quota_used(&subject, window).await? {
            Some(used) => used,
            None => self.seed(&subject, window).await?,
        };
        Ok(Some(QuotaState { max_quota, remaining: max_quota.saturating_sub(used), refresh_at: window.end }))
    }

    /// Releases a slot the principal holds; `false` when it held no such slot.
    pub async fn release(&self, principal: &Principal, slot_id: &str) -> Result<bool, CoreError> {
        Ok(self.counters.release_slot(&subject(principal), slot_id).await?)
    }

    /// Writes this replica's quota usage that the database does not have yet. The rows hold
    /// totals, not increments, so a write that is retried after an unknown outcome never counts
    /// twice.
    pub async fn flush(&self, now: DateTime<Utc>) -> Result<usize, CoreError> {
        let rows = self.tally.pending();
        if rows.is_empty() {
            return Ok(0);
        }
        self.usage.record_usage(self.tally.replica(), &rows, now).await?;
        self.tally.flushed(&rows, QuotaWindow::containing(now));
        Ok(rows.len())
    }

    /// Lets the counters forget what no longer limits anything.
    pub fn sweep(&self, now: DateTime<Utc>) {
        self.counters.sweep(now.timestamp_micros(), QuotaWindow::containing(now));
    }

    /// Whether the counters answer.
    pub async fn ping(&self) -> Result<(), CoreError> {
        Ok(self.counters.ping().await?)
    }

    /// Where a window's counter starts when the counters have none: what every other replica
    /// (and every earlier life of this one) recorded, plus all this replica counted itself.
    async fn seed(&self, subject: &str, window: QuotaWindow) -> Result<u64, CoreError> {
        let others = self.usage.usage_by_others(subject, window.start, self.tally.replica()).await?;
        Ok(others.saturating_add(self.tally.used(subject, window)))
    }
}

/// Whose counters a principal's requests charge.
fn subject(principal: &Principal) -> String {
    match principal.kind {
        // Users come from outside identity providers: two providers may name different people
        // alike, so the organization is part of the name.
        PrincipalKind::User => format!("user:{}:{}", principal.organization, principal.id),
        kind => kind.credential_name(&principal.id),
    }
}

fn new_slot(now: DateTime<Utc>, lease: Duration) -> Slot {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::zero());
    Slot { id: format!("slot_{}", uuid::Uuid::new_v4().simple()), expires_at: now + lease }
}
