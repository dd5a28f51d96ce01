//! `last_used_at` of keys and clients without a database write per request: uses are remembered
//! in memory and written in one batch per flush interval (and at shutdown).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::error::StoreError;
use super::ports::{ClientStore, Store};

/// Keyed by ids keygate issued, noted on every request: a fast seeded hasher, not SipHash.
type Pending = Mutex<HashMap<String, DateTime<Utc>, foldhash::fast::RandomState>>;

/// Pending last-use times, newest per key and per client.
#[derive(Debug, Default)]
pub struct LastUsedRecorder {
    keys: Pending,
    clients: Pending,
}

fn note(pending: &Pending, id: &str, at: DateTime<Utc>) {
    let mut pending = pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match pending.get_mut(id) {
        Some(existing) if *existing >= at => {}
        Some(existing) => *existing = at,
        None => {
            pending.insert(id.to_owned(), at);
        }
    }
}

fn drain(pending: &Pending) -> Vec<(String, DateTime<Utc>)> {
    pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).drain().collect()
}

impl LastUsedRecorder {
    /// Notes that the key `key_id` was used at `at`.
    pub fn record_key(&self, key_id: &str, at: DateTime<Utc>) {
        note(&self.keys, key_id, at);
    }

    /// Notes that the client `client_id` was used (got or presented a token) at `at`.
    pub fn record_client(&self, client_id: &str, at: DateTime<Utc>) {
        note(&self.clients, client_id, at);
    }

    /// Writes what is pending. On failure the uses are put back, to be retried next flush.
    pub async fn flush(&self, keys: &dyn Store, clients: &dyn ClientStore) -> Result<usize, StoreError> {
        let key_batch = drain(&self.keys);
        let client_batch = drain(&self.clients);
        let mut failure = None;
        if !key_batch.is_empty()
            && let Err(err) = keys.touch_keys(&key_batch).await
        {
            key_batch.iter().for_each(|(id, at)| self.record_key(id, *at));
            failure = Some(err);
        }
        if !client_batch.is_empty()
            && let Err(err) = clients.touch_clients(&client_batch).await
        {
            client_batch.iter().for_each(|(id, at)| self.record_client(id, *at));
            failure = Some(err);
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(key_batch.len() + client_batch.len()),
        }
    }
}
