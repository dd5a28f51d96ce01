//! Listens for key, client and signing-key changes announced by other replicas (PostgreSQL
//! LISTEN/NOTIFY): drops the affected verdicts, or reloads the signing keys. After a lost
//! connection it listens again first and then clears the whole cache and reloads the keys, since
//! changes announced meanwhile were missed.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::{oneshot, watch};

use super::sql::{KEY_CHANGES_CHANNEL, SIGNING_KEYS_CHANGED};
use crate::core::signing::Keyring;
use crate::core::verdicts::VerdictCache;

const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs until `stop` changes, keeping `verdicts` in step with changes made by any replica.
/// `listening` is told once the first LISTEN is in place (and the cache cleared), so that the
/// server reports SERVING only when no change can slip by unnoticed.
pub async fn follow_key_changes(
    url: String,
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
        reload_keys(&keyring).await;
        tracing::info!(channel = KEY_CHANGES_CHANNEL, "listening for key changes");
        if let Some(listening) = listening.take() {
            let _ = listening.send(());
        }
        loop {
            let received = tokio::select! {
                _ = stop.changed() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => apply(&verdicts, &keyring, notification.payload()).await,
                Ok(None) => {
                    tracing::warn!("lost the key-change connection; reconnecting");
                    break;
                }
                Err(err) => {
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
    if key_id == SIGNING_KEYS_CHANGED {
        reload_keys(keyring).await;
    } else {
        verdicts.invalidate_key(key_id);
    }
    let delay_us = sent.parse::<i64>().ok().map(|sent| Utc::now().timestamp_micros() - sent);
    if let Some(delay) = delay_us.and_then(|us| u64::try_from(us).ok()) {
        verdicts.record_propagation(Duration::from_micros(delay));
    }
    tracing::debug!(key_id, propagation_delay_us = delay_us, "key change applied");
}
