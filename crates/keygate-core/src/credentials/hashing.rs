//! argon2id hashing of stored secrets, run off the async executor with bounded parallelism, on
//! worker threads of their own at a lower CPU priority; and the short keyed fingerprint stored
//! beside each hash, which tells almost every made-up secret apart without argon2.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::OsRng;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::credentials::argon2_workers::Argon2Workers;
use crate::error::CoreError;
use crate::instruments::HashingInstruments;
use crate::model::{Fingerprint, StoredSecret};

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

/// One key fingerprints are made with.
#[derive(Clone)]
struct FingerprintKey {
    id: u32,
    mac: Hmac<Sha256>,
}

impl FingerprintKey {
    fn new(key: &[u8; 32]) -> Self {
        // HMAC pads a shorter key with zeros to the hash's block size: padded here, the key
        // takes the infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(key);
        let mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
        let mut namer = mac.clone();
        namer.update(b"keygate fingerprint key id\0");
        let id = first_u32(&namer.finalize().into_bytes());
        Self { id, mac }
    }

    fn of(&self, secret: &str) -> Fingerprint {
        let mut mac = self.mac.clone();
        mac.update(b"keygate secret fingerprint\0");
        mac.update(secret.as_bytes());
        Fingerprint { key: self.id, value: first_u32(&mac.finalize().into_bytes()) }
    }
}

fn first_u32(bytes: &[u8]) -> u32 {
    let mut first = [0u8; 4];
    first.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(first)
}

/// The key of fingerprints when no key-encryption key is configured. It is public (it is in this
/// source), so it protects against callers, who never see a fingerprint, and not against a
/// holder of the database; it stays accepted once a KEK is configured, so that fingerprints made
/// before keep screening until a successful verification renews them with the KEK's key.
const BUILT_IN_FINGERPRINT_KEY: [u8; 32] = *b"keygate built-in fingerprint key";

/// Makes fingerprints with the current key and checks them with any known one.
#[derive(Clone)]
pub struct Fingerprints {
    current: FingerprintKey,
    built_in: FingerprintKey,
}

impl Default for Fingerprints {
    fn default() -> Self {
        Self::keyed(&BUILT_IN_FINGERPRINT_KEY)
    }
}

/// What a fingerprint says about a presented secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Screen {
    /// Not the stored secret: decided without argon2.
    Mismatch,
    /// Possibly the stored secret (or one of the four billionth that share its fingerprint);
    /// `current` when made with the current key.
    Match { current: bool },
    /// No usable fingerprint: only argon2 can tell.
    Unknown,
}

impl Fingerprints {
    /// Fingerprints keyed with `key` (the key-encryption key's fingerprint key).
    pub fn keyed(key: &[u8; 32]) -> Self {
        Self { current: FingerprintKey::new(key), built_in: FingerprintKey::new(&BUILT_IN_FINGERPRINT_KEY) }
    }

    fn of(&self, secret: &str) -> Fingerprint {
        self.current.of(secret)
    }

    fn screen(&self, secret: &str, stored: Option<Fingerprint>) -> Screen {
        let Some(stored) = stored else { return Screen::Unknown };
        let key = [&self.current, &self.built_in].into_iter().find(|key| key.id == stored.key);
        match key {
            Some(key) if key.of(secret) == stored => Screen::Match { current: key.id == self.current.id },
            Some(_) => Screen::Mismatch,
            None => Screen::Unknown,
        }
    }
}

/// What verifying a presented secret against a stored one found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Not the stored secret.
    Mismatch,
    /// The stored secret, by argon2.
    Match,
    /// The stored secret, by argon2, whose row has no fingerprint of the current key yet: this
    /// one should be stored beside its hash.
    MatchUnrecorded(Fingerprint),
}

/// Hashes and verifies secrets. At most `max_concurrent` argon2 computations run at once, on
/// worker threads of their own (at `nice`), so the executor keeps serving cached traffic meanwhile;
/// at most `max_waiting` more wait for a turn, and the rest are refused at once as UNAVAILABLE, so
/// that a flood of made-up secrets cannot build an ever longer queue.
#[derive(Clone)]
pub struct SecretHasher {
    argon2: Argon2<'static>,
    fingerprints: Arc<Fingerprints>,
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
            fingerprints: Arc::new(Fingerprints::default()),
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

    /// The same hasher, making fingerprints with `fingerprints` (keyed by the key-encryption key).
    pub fn with_fingerprints(mut self, fingerprints: Fingerprints) -> Self {
        self.fingerprints = Arc::new(fingerprints);
        self
    }

    /// Hashes `secret` with a fresh salt into a PHC string, and fingerprints it.
    pub async fn hash(&self, secret: String) -> Result<StoredSecret, CoreError> {
        let fingerprint = Some(self.fingerprints.of(&secret));
        let argon2 = self.argon2.clone();
        let phc = self
            .run(move || {
                let salt = SaltString::generate(&mut OsRng);
                argon2
                    .hash_password(secret.as_bytes(), &salt)
                    .map(|hash| hash.to_string())
                    .map_err(|e| CoreError::Internal(format!("argon2 hash: {e}")))
            })
            .await?;
        Ok(StoredSecret { phc, fingerprint })
    }

    /// Whether `secret` may be `stored`, by its fingerprint alone: false means it is not, true
    /// that only argon2 could tell. For records that no secret can unlock any more (disabled,
    /// expired), whose answer is the same whichever secret it was.
    pub fn may_match(&self, secret: &str, stored: &StoredSecret) -> bool {
        self.fingerprints.screen(secret, stored.fingerprint) != Screen::Mismatch
    }

    /// Whether `secret` is `stored`: the fingerprint first, and argon2 only for a secret it does
    /// not rule out.
    pub async fn verify(&self, secret: &str, stored: &StoredSecret) -> Result<Verification, CoreError> {
        let current = match self.fingerprints.screen(secret, stored.fingerprint) {
            Screen::Mismatch => return Ok(Verification::Mismatch),
            Screen::Match { current } => current,
            Screen::Unknown => false,
        };
        if !self.verify_phc(secret.to_owned(), stored.phc.clone()).await? {
            return Ok(Verification::Mismatch);
        }
        Ok(if current { Verification::Match } else { Verification::MatchUnrecorded(self.fingerprints.of(secret)) })
    }

    /// Whether `secret` matches the PHC string `phc` (argon2, counted).
    async fn verify_phc(&self, secret: String, phc: String) -> Result<bool, CoreError> {
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

    fn cheap() -> SecretHasher {
        SecretHasher::new(HashParams { memory_kib: 1024, iterations: 1, lanes: 1 }, limits(2, 8)).expect("params")
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_secrets_do_not() {
        let hasher = cheap();
        let stored = hasher.hash("correct horse".into()).await.expect("hash");
        assert!(stored.phc.starts_with("$argon2id$"));
        assert!(!stored.phc.contains("correct horse"));
        assert_eq!(hasher.verify("correct horse", &stored).await.expect("verify"), Verification::Match);
        assert_eq!(hasher.verifications(), 1);
        assert_eq!(hasher.verify("battery staple", &stored).await.expect("verify"), Verification::Mismatch);
        assert_eq!(hasher.verifications(), 1, "the fingerprint ruled it out: no argon2");
        assert!(!format!("{stored:?}").contains("argon2"), "Debug shows no hash");
    }

    #[tokio::test]
    async fn made_up_secrets_almost_never_pass_the_fingerprint() {
        let hasher = cheap();
        let stored = hasher.hash("kgcs_the-real-one".into()).await.expect("hash");
        let passed = (0..100_000).filter(|n| hasher.may_match(&format!("kgcs_made-up-{n}"), &stored)).count();
        // One in 2^32 is expected; a handful would mean the fingerprint is far weaker.
        assert!(passed <= 1, "{passed} of 100000 made-up secrets passed");
        assert!(hasher.may_match("kgcs_the-real-one", &stored));
    }

    #[tokio::test]
    async fn rows_without_a_current_fingerprint_are_verified_and_get_one() {
        let hasher = cheap();
        let mut stored = hasher.hash("s3cret".into()).await.expect("hash");
        let fingerprint = stored.fingerprint.expect("fingerprinted");
        assert_eq!(Fingerprint::from_column(&fingerprint.to_column()), Some(fingerprint));
        for garbage in ["", "v1:zz:00", "v2:00000000:00000000", "v1:00000000:00000000:00"] {
            assert_eq!(Fingerprint::from_column(garbage), None, "{garbage:?}");
        }
        // A row from before fingerprints: argon2 decides, and says which fingerprint to record.
        stored.fingerprint = None;
        assert!(hasher.may_match("anything", &stored));
        assert_eq!(hasher.verify("wrong", &stored).await.expect("verify"), Verification::Mismatch);
        assert_eq!(hasher.verify("s3cret", &stored).await.expect("verify"), Verification::MatchUnrecorded(fingerprint));
        assert_eq!(hasher.verifications(), 2);

        // With a KEK the built-in key's fingerprints still screen, and are renewed on success.
        let keyed = cheap().with_fingerprints(Fingerprints::keyed(&[9; 32]));
        stored.fingerprint = Some(fingerprint);
        assert!(!keyed.may_match("wrong", &stored), "the built-in key's fingerprint still rules it out");
        let renewed = match keyed.verify("s3cret", &stored).await.expect("verify") {
            Verification::MatchUnrecorded(renewed) => renewed,
            other => panic!("{other:?}"),
        };
        assert_ne!(renewed, fingerprint);
        stored.fingerprint = Some(renewed);
        assert_eq!(keyed.verify("s3cret", &stored).await.expect("verify"), Verification::Match);
        // A fingerprint of a key keygate no longer has is no verdict: argon2 decides.
        assert!(cheap().with_fingerprints(Fingerprints::keyed(&[8; 32])).may_match("wrong", &stored));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_instead_of_waiting() {
        let params = HashParams { memory_kib: 64 * 1024, iterations: 3, lanes: 1 };
        let hasher = SecretHasher::new(params, limits(1, 2)).expect("params");
        let stored = hasher.hash("s".into()).await.expect("hash");
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let (hasher, stored) = (hasher.clone(), stored.clone());
                tokio::spawn(async move { hasher.verify("s", &stored).await })
            })
            .collect();
        let mut refused = 0;
        for attempt in attempts {
            match attempt.await.expect("task") {
                Ok(matched) => assert_eq!(matched, Verification::Match),
                Err(CoreError::Unavailable(_)) => refused += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(refused >= 8, "one running and two waiting at most; {refused} refused");
    }
}
