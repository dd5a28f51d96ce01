//! The periodic background tasks: the health probe, the signing-key refresh, SQLite's relearning
//! of ids, and the `last_used_at` and quota usage flushers. `serve` spawns them and stops them.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::adapters::sql::SqlStore;
use crate::grpc::{HealthState, Readiness};
use crate::tasks;
use keygate_core::last_used::LastUsedRecorder;
use keygate_core::limits::Limiter;
use keygate_core::ports::{Clock, Store};
use keygate_core::tokens::signing::Keyring;
use keygate_core::verdicts::VerdictCache;

/// How often the signing keys are read again, so that a rotation made elsewhere (the
/// `rotate-signing-key` command, a lost notification) reaches this replica.
pub(super) const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// How often SQLite's key and client ids are read again (see `relearn_ids`).
pub(super) const SQLITE_RELEARN_INTERVAL: Duration = Duration::from_secs(10);
/// How often the rate-limit counters are pinged: how soon an outage of Redis shows in health, and
/// how soon the counters find Redis again after one (never sooner, so a down Redis is not hammered).
const COUNTERS_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Pings the database every `every` and the rate-limit counters every
/// [`COUNTERS_PROBE_INTERVAL`] (how Redis counters find Redis again), and reports what this
/// replica can do: decide while the counters can (a database outage leaves cached credentials
/// decidable), administer while the database answers. Runs until told to stop.
pub(super) async fn probe_health(
    store: Arc<SqlStore>,
    limiter: Arc<Limiter>,
    mut readiness: Readiness,
    health: Arc<HealthState>,
    database_up: Gauge,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let first = |period: Duration| tokio::time::Instant::now() + period;
    let mut database_tick = tokio::time::interval_at(first(every), every);
    let mut counters_tick = tokio::time::interval_at(first(COUNTERS_PROBE_INTERVAL), COUNTERS_PROBE_INTERVAL);
    // A slow ping delays the next one instead of bunching the missed ones up.
    database_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    counters_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let before = readiness;
        tokio::select! {
            _ = stop.changed() => return,
            _ = database_tick.tick() => {
                readiness.admin = store.ping().await.is_ok();
                database_up.set(i64::from(readiness.admin));
                if readiness.admin != before.admin {
                    if readiness.admin {
                        tracing::info!("database reachable again");
                    } else {
                        tracing::warn!("database unreachable; deciding cached credentials only, admin calls unavailable");
                    }
                }
            }
            // The counters log their own outages, once each.
            _ = counters_tick.tick() => readiness.decide = limiter.ping().await.is_ok(),
        }
        if readiness != before {
            health.set(readiness).await;
        }
    }
}

/// Reads the signing keys again every `every`, until told to stop.
pub(super) async fn refresh_signing_keys(keyring: Arc<Keyring>, every: Duration, mut stop: watch::Receiver<bool>) {
    while tasks::next_turn(every, &mut stop).await {
        if let Err(err) = keyring.reload().await {
            tracing::warn!(error = %err, "signing keys could not be reloaded; will retry");
        }
    }
}

/// Reads every key and client id into the known ids, so that made-up ids cost no database read.
pub(super) async fn learn_ids(store: &SqlStore, verdicts: &VerdictCache) {
    match verdicts.known().learn_all(store, store).await {
        Ok(known) => tracing::debug!(known, "key and client ids read"),
        Err(err) => tracing::warn!(error = %err, "cannot read the key and client ids; will retry"),
    }
}

/// On SQLite, every `every` until told to stop: reads the ids again, for keys another process
/// added to the file (`keygate bootstrap` beside a running server), which no one announces.
pub(super) async fn relearn_ids(
    store: Arc<SqlStore>,
    verdicts: Arc<VerdictCache>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    while tasks::next_turn(every, &mut stop).await {
        learn_ids(&store, &verdicts).await;
    }
}

/// Writes batched `last_used_at` times and daily use counts every `every`, until told to stop.
pub(super) async fn flush_last_used(
    recorder: Arc<LastUsedRecorder>,
    store: Arc<SqlStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    while tasks::next_turn(every, &mut stop).await {
        let store = store.as_ref();
        match recorder.flush(store, store, store, clock.now()).await {
            Ok(0) => {}
            Ok(written) => tracing::debug!(written, "last_used_at flushed"),
            Err(err) => tracing::warn!(error = %err, "last_used_at flush failed; will retry"),
        }
    }
}

/// Writes quota usage every `every` and lets idle counters go, until told to stop.
pub(super) async fn flush_usage(
    limiter: Arc<Limiter>,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_sweep = clock.now();
    while tasks::next_turn(every, &mut stop).await {
        let now = clock.now();
        match limiter.flush(now).await {
            Ok(0) => {}
            Ok(written) => tracing::debug!(written, "quota usage flushed"),
            Err(err) => tracing::warn!(error = %err, "quota usage flush failed; will retry"),
        }
        // A sweep walks every counter: once a minute is enough to keep memory to active subjects.
        if now - last_sweep >= chrono::Duration::minutes(1) {
            limiter.sweep(now);
            last_sweep = now;
        }
    }
}
