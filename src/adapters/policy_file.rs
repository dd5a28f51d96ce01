//! The route policy file: loaded and validated at start (a bad file stops start-up, listing every
//! problem), then reloaded when its contents change or on SIGHUP. A bad new file is rejected and
//! logged, and the policy in force stays.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use keygate_core::credentials::scopes::ScopeRegistry;
use keygate_core::policy::{Policy, PolicyErrors};

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("route policy {}: cannot read: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("route policy {}: {errors}", path.display())]
    Invalid { path: PathBuf, errors: PolicyErrors },
}

/// Reads and validates the policy at `path`; also returns the bytes it was parsed from.
pub fn load(path: &Path, registry: &ScopeRegistry) -> Result<(Policy, Vec<u8>), PolicyFileError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyFileError::Unreadable { path: path.to_owned(), source })?;
    let policy = parse(path, &bytes, registry)?;
    Ok((policy, bytes))
}

fn parse(path: &Path, bytes: &[u8], registry: &ScopeRegistry) -> Result<Policy, PolicyFileError> {
    let invalid = |errors| PolicyFileError::Invalid { path: path.to_owned(), errors };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid(PolicyErrors(vec!["is not UTF-8".to_owned()])))?;
    Policy::parse(text, registry).map_err(invalid)
}

/// Watches `path` every `every` and on SIGHUP, publishing each valid new policy on `policy`,
/// until `stop` changes. `loaded` is what the policy in force was parsed from.
pub async fn follow(
    path: PathBuf,
    registry: Arc<ScopeRegistry>,
    loaded: Vec<u8>,
    policy: watch::Sender<Arc<Policy>>,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    let followed = Followed { path, registry, policy, hangups: hangups() };
    crate::tasks::follow(followed, Some(loaded), every, stop).await;
}

/// The policy file as [`crate::tasks::follow`] follows it, forced by SIGHUP.
struct Followed {
    path: PathBuf,
    registry: Arc<ScopeRegistry>,
    policy: watch::Sender<Arc<Policy>>,
    hangups: Hangups,
}

impl crate::tasks::Followed for Followed {
    type Contents = Vec<u8>;
    type Built = Policy;
    type Error = PolicyFileError;

    fn read(&self) -> Result<Vec<u8>, PolicyFileError> {
        std::fs::read(&self.path).map_err(|source| PolicyFileError::Unreadable { path: self.path.clone(), source })
    }

    fn build(&self, bytes: &Vec<u8>) -> Result<Policy, PolicyFileError> {
        parse(&self.path, bytes, &self.registry)
    }

    fn publish(&self, parsed: Policy, forced: bool) {
        tracing::info!(path = %self.path.display(), routes = parsed.len(), sighup = forced, "route policy reloaded");
        self.policy.send_replace(Arc::new(parsed));
    }

    fn reject(&self, problem: &str) {
        tracing::warn!(error = %problem, "route policy rejected; the previous policy stays in force");
    }

    fn forced(&mut self) -> impl Future<Output = ()> + Send {
        next_hangup(&mut self.hangups)
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

/// SIGHUP, where there is one. Registering also keeps SIGHUP from ending the process.
fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; the policy file is still watched");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        if signal.recv().await.is_some() {
            return;
        }
    }
    let _ = hangups;
    std::future::pending::<()>().await;
}
