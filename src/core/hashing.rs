//! argon2id hashing of stored secrets, run off the async executor with bounded parallelism, on
//! worker threads of their own at a lower CPU priority.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

use super::argon2_workers::Argon2Workers;
use super::error::CoreError;
use super::metrics::HashingInstruments;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

impl Default for HashParams {
    /// OWASP's recommended argon2id setting: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, lanes: 1 }
    }
}

/// How many argon2 computations run at once, how many may wait, and at what CPU priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    /// Computations at once, each on a worker thread of its own.
    pub max_concurrent: usize,
    /// Verifications that may wait for a turn; beyond that, UNAVAILABLE at once.
    pub max_waiting: usize,
    /// The workers' `nice` value (0 to 19): above 0, cached traffic on the async executor gets
    /// the CPU first when both want it, and argon2 runs on what is left.
    pub nice: i32,
}

/// Hashes and verifies secrets. At most `max_concurrent` argon2 computations run at once, on
/// worker threads of their own (at `nice`), so the executor keeps serving cached traffic meanwhile;
/// at most `max_waiting` more wait for a turn, and the rest are refused at once as UNAVAILABLE, so
/// that a flood of made-up secrets cannot build an ever longer queue.
#[derive(Clone)]
pub struct SecretHasher {
    argon2: Argon2<'static>,
    workers: Arc<Argon2Workers>,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    instruments: HashingInstruments,
}

/// Counts a caller among the waiting until dropped (also when its request is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretHasher").field("permits", &self.permits.available_permits()).finish()
    }
}

impl SecretHasher {
    pub fn new(params: HashParams, limits: HashLimits) -> Result<Self, CoreError> {
        let params = Params::new(params.memory_kib, params.iterations, params.lanes, None)
            .map_err(|e| CoreError::Internal(format!("argon2 parameters: {e}")))?;
        let threads = limits.max_concurrent.max(1);
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            workers: Arc::new(Argon2Workers::start(threads, limits.nice)?),
            permits: Arc::new(Semaphore::new(threads)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: limits.max_waiting,
            instruments: HashingInstruments::default(),
        })
    }

    /// How many verifications have run since start (for metrics and tests).
    pub fn verifications(&self) -> u64 {
        self.instruments.verifications.get()
    }

    /// The hasher's instruments, for registration.
    pub fn instruments(&self) -> HashingInstruments {
        self.instruments.clone()
    }

    /// Hashes `secret` with a fresh salt into a PHC string.
    pub async fn hash(&self, secret: String) -> Result<String, CoreError> {
        let argon2 = self.argon2.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(secret.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| CoreError::Internal(format!("argon2 hash: {e}")))
        })
        .await
    }

    /// Whether `secret` matches the PHC string `phc`.
    pub async fn verify(&self, secret: String, phc: String) -> Result<bool, CoreError> {
        let argon2 = self.argon2.clone();
        self.instruments.verifications.inc();
        let seconds = self.instruments.seconds.clone();
        self.run(move || {
            let started = std::time::Instant::now();
            let parsed =
                PasswordHash::new(&phc).map_err(|e| CoreError::Internal(format!("stored hash unreadable: {e}")))?;
            let matched = argon2.verify_password(secret.as_bytes(), &parsed).is_ok();
            seconds.observe(started.elapsed().as_secs_f64());
            Ok(matched)
        })
        .await
    }

    async fn run<T, F>(&self, work: F) -> Result<T, CoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, CoreError> + Send + 'static,
    {
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(&self.waiting);
        if ahead >= self.max_waiting + self.permits.available_permits() {
            self.instruments.refused.inc();
            return Err(CoreError::Unavailable("too many credentials are being verified; retry shortly".into()));
        }
        let _permit = self.permits.acquire().await.map_err(|_| CoreError::Internal("hasher closed".into()))?;
        drop(waiting);
        // The permit bounds what is handed to the workers to their number: none waits there.
        self.workers.run(work).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_concurrent: usize, max_waiting: usize) -> HashLimits {
        HashLimits { max_concurrent, max_waiting, nice: 10 }
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_secrets_do_not() {
        let hasher =
            SecretHasher::new(HashParams { memory_kib: 1024, iterations: 1, lanes: 1 }, limits(2, 8)).expect("params");
        let phc = hasher.hash("correct horse".into()).await.expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(hasher.verify("correct horse".into(), phc.clone()).await.expect("verify"));
        assert!(!hasher.verify("battery staple".into(), phc).await.expect("verify"));
        assert_eq!(hasher.verifications(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_instead_of_waiting() {
        let params = HashParams { memory_kib: 64 * 1024, iterations: 3, lanes: 1 };
        let hasher = SecretHasher::new(params, limits(1, 2)).expect("params");
        let phc = hasher.hash("s".into()).await.expect("hash");
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let (hasher, phc) = (hasher.clone(), phc.clone());
                tokio::spawn(async move { hasher.verify("s".into(), phc).await })
            })
            .collect();
        let mut refused = 0;
        for attempt in attempts {
            match attempt.await.expect("task") {
                Ok(matched) => assert!(matched),
                Err(CoreError::Unavailable(_)) => refused += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(refused >= 8, "one running and two waiting at most; {refused} refused");
    }
}
