//! Listens for key, client and signing-key changes announced by other replicas (PostgreSQL
//! LISTEN/NOTIFY): drops the affected verdicts, learns the ids of new keys and clients, or reloads
//! the signing keys. After a lost connection it listens again first and then clears the whole
//! cache, re-reads every key and client id and reloads the signing keys, since changes announced
//! meanwhile were missed.
//!
//! A connection can also die silently (a NAT or firewall forgets it, a peer vanishes): nothing
//! arrives and nothing fails, and revoked keys would stay usable for the cache TTL. So the
//! listener notifies itself every [`HEARTBEAT_EVERY`] on its own connection and must hear itself
//! within [`HEARTBEAT_DEADLINE`]; otherwise it reconnects and clears, as after a lost connection.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::{oneshot, watch};

use super::SqlStore;
use super::plumbing::{CREATED, KEY_CHANGES_CHANNEL, SIGNING_KEYS_CHANGED};
use keygate_core::tokens::signing::Keyring;
use keygate_core::verdicts::VerdictCache;

const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often the listener checks that its connection still delivers.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// How long its own heartbeat may take to come back before the connection counts as dead: a
/// silent failure is noticed within `HEARTBEAT_EVERY + HEARTBEAT_DEADLINE`.
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(3);
/// The payload prefix of heartbeats, which no key, client or signing-key change starts with.
const HEARTBEAT: &str = "@heartbeat";

/// What woke the listener.
enum Event {
    Stop,
    Beat,
    Late,
    Received(Result<Option<sea_orm::sqlx::postgres::PgNotification>, sea_orm::sqlx::Error>),
}

/// Runs until `stop` changes, keeping `verdicts` in step with changes made by any replica to
/// `store`.
/// `listening` is told once the first LISTEN is in place (and the cache cleared), so that the
/// server reports SERVING only when no change can slip by unnoticed.
pub async fn follow_key_changes(
    url: String,
    store: Arc<SqlStore>,
    verdicts: Arc<VerdictCache>,
    keyring: Arc<Keyring>,
    listening: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut listening = Some(listening);
    loop {
        let mut listener = match listen(&url).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for key changes; retrying");
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(RETRY_AFTER) => continue,
                }
            }
        };
        verdicts.clear();
        // Creations announced while no one listened were missed too. Until the ids are read,
        // an id unknown here could be a new key's: listen again rather than refuse it.
        if let Err(err) = verdicts.known().learn_all(store.as_ref(), store.as_ref()).await {
            tracing::warn!(error = %err, "cannot read the key and client ids; listening again");
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(RETRY_AFTER) => continue,
            }
        }
        reload_keys(&keyring).await;
        tracing::info!(channel = KEY_CHANGES_CHANNEL, "listening for key changes");
        if let Some(listening) = listening.take() {
            let _ = listening.send(());
        }
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT_EVERY, HEARTBEAT_EVERY);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The heartbeat awaited, and by when.
        let mut awaited: Option<(String, tokio::time::Instant)> = None;
        loop {
            let deadline = awaited.as_ref().map(|(_, deadline)| *deadline);
            let late = async move {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                _ = stop.changed() => Event::Stop,
                _ = beats.tick(), if awaited.is_none() => Event::Beat,
                () = late => Event::Late,
                received = listener.try_recv() => Event::Received(received),
            };
            match event {
                Event::Stop => return,
                Event::Beat => {
                    let nonce = format!("{HEARTBEAT} {}", uuid::Uuid::new_v4().simple());
                    let sent = sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(KEY_CHANGES_CHANNEL)
                        .bind(&nonce)
                        .execute(&mut listener);
                    match tokio::time::timeout(HEARTBEAT_DEADLINE, sent).await {
                        Ok(Ok(_)) => awaited = Some((nonce, tokio::time::Instant::now() + HEARTBEAT_DEADLINE)),
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "key-change connection failed its heartbeat; reconnecting");
                            break;
                        }
                        Err(_) => {
                            tracing::warn!("key-change connection does not answer; reconnecting");
                            break;
                        }
                    }
                }
                Event::Late => {
                    tracing::warn!("key-change connection stopped delivering; reconnecting");
                    break;
                }
                Event::Received(Ok(Some(notification))) => {
                    let payload = notification.payload();
                    if !payload.starts_with(HEARTBEAT) {
                        apply(&verdicts, &keyring, payload).await;
                    } else if awaited.as_ref().is_some_and(|(nonce, _)| nonce == payload) {
                        awaited = None;
                    }
                }
                Event::Received(Ok(None)) => {
                    tracing::warn!("lost the key-change connection; reconnecting");
                    break;
                }
                Event::Received(Err(err)) => {
                    tracing::warn!(error = %err, "key-change listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn listen(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(KEY_CHANGES_CHANNEL).await?;
    Ok(listener)
}

async fn reload_keys(keyring: &Keyring) {
    if let Err(err) = keyring.reload().await {
        tracing::warn!(error = %err, "signing keys could not be reloaded; tokens with a new kid reload them");
    }
}

async fn apply(verdicts: &VerdictCache, keyring: &Keyring, payload: &str) {
    let (key_id, sent) = payload.split_once(' ').unwrap_or((payload, ""));
    let (key_id, sent) = match key_id {
        CREATED => {
            let (created, sent) = sent.split_once(' ').unwrap_or((sent, ""));
            verdicts.known().add(created);
            (created, sent)
        }
        SIGNING_KEYS_CHANGED => {
            reload_keys(keyring).await;
            (key_id, sent)
        }
        _ => {
            verdicts.invalidate_key(key_id).await;
            (key_id, sent)
        }
    };
    let delay_us = sent.parse::<i64>().ok().map(|sent| Utc::now().timestamp_micros() - sent);
    if let Some(delay) = delay_us.and_then(|us| u64::try_from(us).ok()) {
        verdicts.record_propagation(Duration::from_micros(delay));
    }
    tracing::debug!(key_id, propagation_delay_us = delay_us, "key change applied");
}
