//! Counters in this process's memory: exact for one replica. Subjects are spread over shards,
//! each a mutex held only for the arithmetic of one admission, so every admission is atomic.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::gcra::{self, RateOutcome};
use crate::model::RateState;
use crate::model::{Admission, Charge, QuotaWindow};
use crate::ports::{CounterError, Counters};

const SHARDS: usize = 32;

/// One subject's counters.
#[derive(Debug, Default)]
struct SubjectCounters {
    /// The GCRA theoretical arrival time, in microseconds; 0 when never limited.
    tat: i64,
    /// The month's usage, under the month's first instant (microseconds).
    quota: Option<(i64, u64)>,
    /// Held slots and when their leases end (microseconds).
    slots: Vec<(String, i64)>,
}

impl SubjectCounters {
    /// Checks every limit of `charge` against these counters, and charges all only if all fit.
    fn admit(&mut self, charge: &Charge<'_>) -> Admission {
        let now = charge.now_micros;
        let rate = match charge.rate {
            None => None,
            Some(limit) => match gcra::decide(limit, self.tat, now) {
                RateOutcome::Limited { retry_after_micros } => {
                    return Admission::RateLimited { retry_after: micros(retry_after_micros), limit: limit.per_minute };
                }
                RateOutcome::Admitted { tat, remaining, reset_after_micros } => Some((
                    tat,
                    RateState { limit: limit.per_minute, remaining, reset_after: micros(reset_after_micros) },
                )),
            },
        };
        let mut quota_used = None;
        if let Some(quota) = charge.quota {
            let window = quota.window.start.timestamp_micros();
            let used = match (self.quota, quota.seed) {
                (Some((start, used)), _) if start == window => used,
                (_, Some(seed)) => seed,
                (_, None) => return Admission::NeedsSeed,
            };
            if used.saturating_add(quota.cost) > quota.max {
                return Admission::QuotaExceeded { used };
            }
            quota_used = Some((window, used.saturating_add(quota.cost)));
        }
        if let Some(slot) = charge.slot {
            self.slots.retain(|(_, expires)| *expires > now);
            if self.slots.len() >= slot.max as usize {
                let soonest = self.slots.iter().map(|(_, expires)| *expires).min().unwrap_or(now);
                return Admission::ConcurrencyLimit { retry_after: micros(soonest - now) };
            }
        }
        // Every limit has room: charge them all.
        if let Some((tat, _)) = rate {
            self.tat = tat;
        }
        if let Some(used) = quota_used {
            self.quota = Some(used);
        }
        if let Some(slot) = charge.slot {
            self.slots.push((slot.id.to_owned(), slot.expires_micros));
        }
        Admission::Admitted { rate: rate.map(|(_, state)| state), quota_used: quota_used.map(|(_, used)| used) }
    }
}

/// Counters in memory.
#[derive(Debug)]
pub struct MemoryCounters {
    shards: Vec<Mutex<HashMap<String, SubjectCounters>>>,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

impl MemoryCounters {
    /// Checks and charges `charge`, synchronously; the fallback of shared backends uses it too.
    pub fn admit_now(&self, charge: &Charge<'_>) -> Admission {
        let mut shard = self.shard(charge.subject);
        // Look up before inserting: a known subject (the usual case) costs no allocation.
        if let Some(counters) = shard.get_mut(charge.subject) {
            return counters.admit(charge);
        }
        shard.entry(charge.subject.to_owned()).or_default().admit(charge)
    }

    /// Forgets subjects whose counters say nothing any more at `now_micros` (the rate limit is
    /// whole again, no slot is held, and the month is over), so memory follows the active subjects.
    pub fn forget_idle(&self, now_micros: i64, current: QuotaWindow) {
        let month = current.start.timestamp_micros();
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain(|_, counters| {
                counters.slots.retain(|(_, expires)| *expires > now_micros);
                counters.tat > now_micros
                    || !counters.slots.is_empty()
                    || counters.quota.is_some_and(|(start, _)| start >= month)
            });
        }
    }

    /// Forgets every subject: a shared backend's fallback starts each outage from nothing, so
    /// that what it counted in an earlier outage (since charged in the shared store too) is not
    /// counted twice.
    pub fn clear(&self) {
        for shard in &self.shards {
            lock(shard).clear();
        }
    }

    fn shard(&self, subject: &str) -> MutexGuard<'_, HashMap<String, SubjectCounters>> {
        let mut hasher = DefaultHasher::new();
        subject.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % SHARDS as u64).unwrap_or(0);
        lock(&self.shards[index % self.shards.len()])
    }
}

#[async_trait]
impl Counters for MemoryCounters {
    async fn admit(&self, charge: &Charge<'_>) -> Result<Admission, CounterError> {
        Ok(self.admit_now(charge))
    }

    async fn quota_used(&self, subject: &str, window: QuotaWindow) -> Result<Option<u64>, CounterError> {
        let start = window.start.timestamp_micros();
        Ok(self
            .shard(subject)
            .get(subject)
            .and_then(|counters| counters.quota)
            .filter(|(s, _)| *s == start)
            .map(|(_, used)| used))
    }

    async fn release_slot(&self, subject: &str, slot_id: &str) -> Result<bool, CounterError> {
        let mut shard = self.shard(subject);
        let Some(counters) = shard.get_mut(subject) else {
            return Ok(false);
        };
        let before = counters.slots.len();
        counters.slots.retain(|(id, _)| id != slot_id);
        Ok(counters.slots.len() < before)
    }

    async fn ping(&self) -> Result<(), CounterError> {
        Ok(())
    }

    fn sweep(&self, now_micros: i64, current: QuotaWindow) {
        self.forget_idle(now_micros, current);
    }
}

fn lock(shard: &Mutex<HashMap<String, SubjectCounters>>) -> MutexGuard<'_, HashMap<String, SubjectCounters>> {
    // Plain counters: a panic while holding the lock leaves nothing half-changed worth refusing.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}
