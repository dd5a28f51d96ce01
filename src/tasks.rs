//! What every periodic background task waits on: its next turn, or the signal to stop; and the
//! one loop that follows files on disk ([`follow`]). Every task is spawned and owned by `app`,
//! which sends the stop signal and then waits for it.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Waits `every`; `false` as soon as `stop` changes (or its sender is gone) instead.
pub async fn next_turn(every: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.changed() => false,
        () = tokio::time::sleep(every) => true,
    }
}

/// Something built from files and rebuilt when they change: the TLS certificates, the route
/// policy. See [`follow`].
pub trait Followed {
    /// What the files hold, compared to notice a change.
    type Contents: PartialEq;
    type Built;
    type Error: std::fmt::Display;

    fn read(&self) -> Result<Self::Contents, Self::Error>;
    fn build(&self, contents: &Self::Contents) -> Result<Self::Built, Self::Error>;
    /// Puts a newly built one in force (and says so); `forced` when [`Self::forced`] asked.
    fn publish(&self, built: Self::Built, forced: bool);
    /// Says that the files were rejected: the one in force stays.
    fn reject(&self, problem: &str);
    /// Resolves when a reload is asked for whether or not the files changed (SIGHUP); never,
    /// by default.
    fn forced(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// Reads `followed` every `every` (and whenever it is forced), and publishes what its files
/// build each time they hold something new, until `stop` changes. `loaded` is what the one in
/// force was built from. A problem is reported once while it stays the same (every time when
/// forced), not on every turn.
pub async fn follow<F: Followed>(
    mut followed: F,
    mut loaded: Option<F::Contents>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut reported: Option<String> = None;
    loop {
        let forced = tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every) => false,
            () = followed.forced() => true,
        };
        let outcome = followed.read().and_then(|contents| {
            if loaded.as_ref() == Some(&contents) && !forced {
                return Ok(None);
            }
            let built = followed.build(&contents)?;
            Ok(Some((built, contents)))
        });
        match outcome {
            Ok(None) => {}
            Ok(Some((built, contents))) => {
                followed.publish(built, forced);
                loaded = Some(contents);
                reported = None;
            }
            Err(err) => {
                let problem = err.to_string();
                if forced || reported.as_ref() != Some(&problem) {
                    followed.reject(&problem);
                    reported = Some(problem);
                }
            }
        }
    }
}
