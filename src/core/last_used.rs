//! `last_used_at` without a database write per request: uses are remembered in memory and written
//! in one batch per flush interval (and at shutdown).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::error::StoreError;
use super::ports::Store;

/// Pending last-use times, newest per key.
#[derive(Debug, Default)]
pub struct LastUsedRecorder {
    pending: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl LastUsedRecorder {
    /// Notes that `key_id` was used at `at`.
    pub fn record(&self, key_id: &str, at: DateTime<Utc>) {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match pending.get_mut(key_id) {
            Some(existing) if *existing >= at => {}
            Some(existing) => *existing = at,
            None => {
                pending.insert(key_id.to_owned(), at);
            }
        }
    }

    /// Writes what is pending. On failure the uses are put back, to be retried next flush.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let batch: Vec<(String, DateTime<Utc>)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(err) = store.touch_keys(&batch).await {
            for (key_id, at) in &batch {
                self.record(key_id, *at);
            }
            return Err(err);
        }
        Ok(batch.len())
    }
}
