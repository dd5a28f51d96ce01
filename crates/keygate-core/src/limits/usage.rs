//! This replica's own tally of quota usage, written to the database in batches.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::model::{QuotaWindow, UsageRow};

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    used: u64,
    flushed: u64,
}

/// Units this replica admitted per subject and window, and how much of it is written.
#[derive(Debug)]
pub struct UsageTally {
    replica: String,
    counts: Mutex<HashMap<(String, DateTime<Utc>), Counts>>,
}

impl UsageTally {
    pub fn new(replica: String) -> Self {
        Self { replica, counts: Mutex::new(HashMap::new()) }
    }

    /// The name of this replica's rows.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn add(&self, subject: &str, window: QuotaWindow, cost: u64) {
        let mut counts = self.lock();
        let entry = counts.entry((subject.to_owned(), window.start)).or_default();
        entry.used = entry.used.saturating_add(cost);
    }

    /// What this replica counted for `subject` in `window`.
    pub fn used(&self, subject: &str, window: QuotaWindow) -> u64 {
        self.lock().get(&(subject.to_owned(), window.start)).map_or(0, |counts| counts.used)
    }

    /// Rows whose total changed since they were last written.
    pub fn pending(&self) -> Vec<UsageRow> {
        self.lock()
            .iter()
            .filter(|(_, counts)| counts.used != counts.flushed)
            .map(|((subject, window_start), counts)| UsageRow {
                subject: subject.clone(),
                window_start: *window_start,
                used: counts.used,
            })
            .collect()
    }

    /// Marks `rows` written, and forgets windows older than the previous one once they are.
    /// The previous month is kept: a clock stepped back into it (NTP correcting a host that ran
    /// ahead over the turn of the month) must find this replica's count there. Without it the
    /// month would be counted again from zero, admitting its quota twice, and the next flush
    /// would write that smaller total over the one in the database.
    pub fn flushed(&self, rows: &[UsageRow], current: QuotaWindow) {
        let mut counts = self.lock();
        for row in rows {
            if let Some(entry) = counts.get_mut(&(row.subject.clone(), row.window_start)) {
                entry.flushed = entry.flushed.max(row.used);
            }
        }
        let previous = QuotaWindow::containing(current.start - chrono::Duration::microseconds(1)).start;
        counts.retain(|(_, window_start), counts| *window_start >= previous || counts.used != counts.flushed);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, DateTime<Utc>), Counts>> {
        // The map holds plain counts: a panic while holding the lock leaves no broken invariant.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
