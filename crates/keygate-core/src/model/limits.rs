//! What a credential may spend and what it has left: its own limits, a decision's limit state, slots and usage rows.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use super::quota::QuotaWindow;

/// A credential's own limits, stored with it. `None` takes the configured default for its kind;
/// `Some(0)` means no limit of that sort.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub rate_per_minute: Option<u32>,
    pub rate_burst: Option<u32>,
    pub max_quota: Option<u64>,
    pub max_concurrency: Option<u32>,
}

impl LimitOverrides {
    /// Whether any limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// These limits, with `fallback`'s where these leave one unset.
    pub fn or(self, fallback: Self) -> Self {
        Self {
            rate_per_minute: self.rate_per_minute.or(fallback.rate_per_minute),
            rate_burst: self.rate_burst.or(fallback.rate_burst),
            max_quota: self.max_quota.or(fallback.max_quota),
            max_concurrency: self.max_concurrency.or(fallback.max_concurrency),
        }
    }

    /// One limit as set (0: no limit of that sort); `None` when unset.
    pub fn get(&self, field: LimitField) -> Option<u64> {
        match field {
            LimitField::RatePerMinute => self.rate_per_minute.map(u64::from),
            LimitField::RateBurst => self.rate_burst.map(u64::from),
            LimitField::MaxQuota => self.max_quota,
            LimitField::MaxConcurrency => self.max_concurrency.map(u64::from),
        }
    }

    /// Sets (`Some`) or unsets (`None`) one limit; values beyond a field's type saturate.
    pub fn set(&mut self, field: LimitField, value: Option<u64>) {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        match field {
            LimitField::RatePerMinute => self.rate_per_minute = value.map(narrow),
            LimitField::RateBurst => self.rate_burst = value.map(narrow),
            LimitField::MaxQuota => self.max_quota = value,
            LimitField::MaxConcurrency => self.max_concurrency = value.map(narrow),
        }
    }
}

/// One of a credential's own limits, by its wire name (a field of the `Limits` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitField {
    RatePerMinute,
    RateBurst,
    MaxQuota,
    MaxConcurrency,
}

impl LimitField {
    pub const ALL: [LimitField; 4] = [Self::RatePerMinute, Self::RateBurst, Self::MaxQuota, Self::MaxConcurrency];

    /// The field's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::RatePerMinute => "rate_limit_per_minute",
            Self::RateBurst => "rate_limit_burst",
            Self::MaxQuota => "max_quota",
            Self::MaxConcurrency => "max_concurrency",
        }
    }

    /// The field named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.name() == name)
    }

    /// Whether `overrides` sets this limit.
    pub fn is_set_in(self, overrides: &LimitOverrides) -> bool {
        match self {
            Self::RatePerMinute => overrides.rate_per_minute.is_some(),
            Self::RateBurst => overrides.rate_burst.is_some(),
            Self::MaxQuota => overrides.max_quota.is_some(),
            Self::MaxConcurrency => overrides.max_concurrency.is_some(),
        }
    }
}

/// A slot a long-running request holds, until released or until its lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Random and unguessable; only the principal that holds it can release it.
    pub id: String,
    pub expires_at: DateTime<Utc>,
}

/// A rate limit's state after a decision, for `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// The steady rate, in requests a minute.
    pub limit: u32,
    /// Requests that may be sent right now.
    pub remaining: u32,
    /// Until the allowance is whole again.
    pub reset_after: Duration,
}

/// What a caller learns about its limits with a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitState {
    pub rate: Option<RateState>,
    pub quota: Option<QuotaState>,
}

/// A monthly quota's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    pub max_quota: u64,
    /// Units left this month.
    pub remaining: u64,
    /// When the next month's quota starts.
    pub refresh_at: DateTime<Utc>,
}

/// One replica's total usage of one subject in one month, as written to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub subject: String,
    pub window_start: DateTime<Utc>,
    /// Everything this replica admitted in the window (a total, not an increment).
    pub used: u64,
}

/// How often one credential was used on one day (UTC), as the console charts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUses {
    /// `api_key:ID` or `client:ID`.
    pub credential: String,
    pub day: NaiveDate,
    pub uses: u64,
}

/// A steady rate with a burst allowance (GCRA; see `limits::gcra`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a minute at the steady rate (at least 1).
    pub per_minute: u32,
    /// Requests that may arrive at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// What one admission asks the counters to check and charge, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge<'a> {
    /// Whose counters: e.g. `api_key:k_abc123`.
    pub subject: &'a str,
    /// Microseconds since the Unix epoch, from the caller's clock (never the backend's).
    pub now_micros: i64,
    pub rate: Option<RateLimit>,
    pub quota: Option<QuotaCharge>,
    pub slot: Option<SlotCharge<'a>>,
}

/// The quota part of a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaCharge {
    pub max: u64,
    pub cost: u64,
    pub window: QuotaWindow,
    /// The usage to start from when the backend holds no counter for this window yet (it
    /// answers [`Admission::NeedsSeed`] without it).
    pub seed: Option<u64>,
}

/// The concurrency part of a charge: take slot `id` until `expires_micros` if fewer than `max`
/// unexpired slots are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCharge<'a> {
    pub max: u32,
    pub id: &'a str,
    pub expires_micros: i64,
}

/// What the counters decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every limit had room and all were charged.
    Admitted {
        rate: Option<RateState>,
        quota_used: Option<u64>,
    },
    RateLimited {
        retry_after: Duration,
        limit: u32,
    },
    QuotaExceeded {
        used: u64,
    },
    ConcurrencyLimit {
        retry_after: Duration,
    },
    /// The quota counter for the window is missing: charge again with a seed.
    NeedsSeed,
}
