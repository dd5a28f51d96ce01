//! `last_used_at` of keys and clients, and their daily use counts, without a database write per
//! request: uses are remembered in memory and written in one batch per flush interval (and at
//! shutdown).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::error::StoreError;
use super::model::{DailyUses, PrincipalKind};
use super::ports::{ClientStore, Store, UsageStore};

/// Daily counts older than this many days are forgotten.
pub const KEEP_DAYS: i64 = 90;

/// The uses of one credential since the last flush.
#[derive(Debug, Clone, Copy)]
struct Uses {
    last: DateTime<Utc>,
    /// Counted on the day of `last`: a batch spans one flush interval (seconds), so at most
    /// one interval's uses land on the next day at midnight.
    count: u64,
}

/// Keyed by ids keygate issued, noted on every request: a fast seeded hasher, not SipHash.
type Pending = Mutex<HashMap<String, Uses, foldhash::fast::RandomState>>;

/// Pending uses, newest time and count per key and per client.
#[derive(Debug, Default)]
pub struct LastUsedRecorder {
    keys: Pending,
    clients: Pending,
    /// The day whose older counts were last forgotten.
    forgotten_for: Mutex<Option<NaiveDate>>,
}

fn note(pending: &Pending, id: &str, at: DateTime<Utc>, count: u64) {
    let mut pending = pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match pending.get_mut(id) {
        Some(uses) => {
            uses.last = uses.last.max(at);
            uses.count = uses.count.saturating_add(count);
        }
        None => {
            pending.insert(id.to_owned(), Uses { last: at, count });
        }
    }
}

fn drain(pending: &Pending) -> Vec<(String, Uses)> {
    pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).drain().collect()
}

/// The daily-count rows of a batch, under the credentials' names (`api_key:ID`, `client:ID`).
fn daily_rows(kind: PrincipalKind, batch: &[(String, Uses)]) -> Vec<DailyUses> {
    let row = |(id, uses): &(String, Uses)| DailyUses {
        credential: kind.credential_name(id),
        day: uses.last.date_naive(),
        uses: uses.count,
    };
    batch.iter().map(row).collect()
}

impl LastUsedRecorder {
    /// Notes that the key `key_id` was used at `at`.
    pub fn record_key(&self, key_id: &str, at: DateTime<Utc>) {
        note(&self.keys, key_id, at, 1);
    }

    /// Notes that the client `client_id` was used (got or presented a token) at `at`.
    pub fn record_client(&self, client_id: &str, at: DateTime<Utc>) {
        note(&self.clients, client_id, at, 1);
    }

    /// Writes what is pending: last-use times, then daily counts (forgetting, once a day, the
    /// counts older than [`KEEP_DAYS`] before `now`). On failure the uses are put back, to be
    /// retried next flush.
    pub async fn flush(
        &self,
        keys: &dyn Store,
        clients: &dyn ClientStore,
        usage: &dyn UsageStore,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let key_batch = drain(&self.keys);
        let client_batch = drain(&self.clients);
        // Nothing is counted until every write succeeded; writing a time again is harmless.
        let put_back = || {
            key_batch.iter().for_each(|(id, uses)| note(&self.keys, id, uses.last, uses.count));
            client_batch.iter().for_each(|(id, uses)| note(&self.clients, id, uses.last, uses.count));
        };
        let times = |batch: &[(String, Uses)]| -> Vec<(String, DateTime<Utc>)> {
            batch.iter().map(|(id, uses)| (id.clone(), uses.last)).collect()
        };
        if !key_batch.is_empty()
            && let Err(err) = keys.touch_keys(&times(&key_batch)).await
        {
            put_back();
            return Err(err);
        }
        if !client_batch.is_empty()
            && let Err(err) = clients.touch_clients(&times(&client_batch)).await
        {
            put_back();
            return Err(err);
        }
        let today = now.date_naive();
        let forget = {
            let forgotten_for = self.forgotten_for.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            (*forgotten_for != Some(today)).then(|| today - Duration::days(KEEP_DAYS))
        };
        let mut rows = daily_rows(PrincipalKind::ApiKey, &key_batch);
        rows.extend(daily_rows(PrincipalKind::Client, &client_batch));
        if !rows.is_empty() || forget.is_some() {
            if let Err(err) = usage.add_daily_uses(&rows, forget).await {
                put_back();
                return Err(err);
            }
            *self.forgotten_for.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(today);
        }
        Ok(key_batch.len() + client_batch.len())
    }
}
