//! What every periodic background task waits on: its next turn, or the signal to stop. Every
//! task is spawned and owned by `app`, which sends the stop signal and then waits for it.

use std::time::Duration;

use tokio::sync::watch;

/// Waits `every`; `false` as soon as `stop` changes (or its sender is gone) instead.
pub async fn next_turn(every: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.changed() => false,
        () = tokio::time::sleep(every) => true,
    }
}
