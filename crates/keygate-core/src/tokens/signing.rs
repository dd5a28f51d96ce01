//! The keys keygate signs access tokens with: generated on first start and stored so that every
//! replica signs and verifies with the same set, or loaded from PEM files. A rotated-out key
//! stays published (JWKS) and accepted until every token it signed has expired.

use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Duration, Utc};
use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, JwsVerifier, RS256};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::CoreError;
use crate::model::{AuditEntry, SigningKeyRecord};
use crate::ports::{Clock, SigningKeyStore};
use crate::tokens::sealing::{self, KeyEncryptionKey};

/// The signature algorithms keygate signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` name; `none`, HMAC and anything else keygate does not verify are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// A signer with the PEM private key `pem`.
    pub fn signer(self, pem: &[u8]) -> Result<Box<dyn JwsSigner>, String> {
        let signer: Box<dyn JwsSigner> = match self {
            Algorithm::Rs256 => Box::new(RS256.signer_from_pem(pem).map_err(|e| e.to_string())?),
            Algorithm::Es256 => Box::new(ES256.signer_from_pem(pem).map_err(|e| e.to_string())?),
            Algorithm::EdDsa => Box::new(EdDSA.signer_from_pem(pem).map_err(|e| e.to_string())?),
        };
        Ok(signer)
    }

    /// A verifier for `jwk` that only accepts this algorithm, so that a token cannot pick another
    /// (no `none`, no HMAC keyed with a public key).
    pub fn verifier(self, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, String> {
        let verifier: Box<dyn JwsVerifier> = match self {
            Algorithm::Rs256 => Box::new(RS256.verifier_from_jwk(jwk).map_err(|e| e.to_string())?),
            Algorithm::Es256 => Box::new(ES256.verifier_from_jwk(jwk).map_err(|e| e.to_string())?),
            Algorithm::EdDsa => Box::new(EdDSA.verifier_from_jwk(jwk).map_err(|e| e.to_string())?),
        };
        Ok(verifier)
    }
}

/// Generates a new key pair for `algorithm`.
pub fn generate(algorithm: Algorithm, now: DateTime<Utc>) -> Result<SigningKeyRecord, CoreError> {
    let internal = |e: josekit::JoseError| CoreError::Internal(format!("generating a signing key: {e}"));
    let (pem, public) = match algorithm {
        Algorithm::Rs256 => {
            let pair = RS256.generate_key_pair(2048).map_err(internal)?;
            (pair.to_pem_private_key(), pair.to_jwk_public_key())
        }
        Algorithm::Es256 => {
            let pair = ES256.generate_key_pair().map_err(internal)?;
            (pair.to_pem_private_key(), pair.to_jwk_public_key())
        }
        Algorithm::EdDsa => {
            let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(internal)?;
            (pair.to_pem_private_key(), pair.to_jwk_public_key())
        }
    };
    let pem = String::from_utf8(pem).map_err(|e| CoreError::Internal(format!("signing key PEM: {e}")))?;
    record(algorithm, pem, public, now)
}

/// Reads a PEM private key of any supported type; its algorithm follows from the key type.
pub fn from_pem(pem: &str, now: DateTime<Utc>) -> Result<SigningKeyRecord, String> {
    let (algorithm, public) = if let Ok(pair) = RS256.key_pair_from_pem(pem) {
        (Algorithm::Rs256, pair.to_jwk_public_key())
    } else if let Ok(pair) = ES256.key_pair_from_pem(pem) {
        (Algorithm::Es256, pair.to_jwk_public_key())
    } else if let Ok(pair) = EdDSA.key_pair_from_pem(pem) {
        (Algorithm::EdDsa, pair.to_jwk_public_key())
    } else {
        return Err("not an RSA, P-256 or Ed25519 private key in PEM".to_owned());
    };
    record(algorithm, pem.to_owned(), public, now).map_err(|e| e.to_string())
}

/// A new, not yet retired record for a key pair.
fn record(algorithm: Algorithm, pem: String, public: Jwk, now: DateTime<Utc>) -> Result<SigningKeyRecord, CoreError> {
    let public = publishable(public, algorithm)?;
    Ok(SigningKeyRecord {
        kid: public.key_id().unwrap_or_default().to_owned(),
        algorithm: algorithm.as_str().to_owned(),
        private_key_pem: pem,
        public_jwk: public.to_string(),
        created_at: now,
        retired_at: None,
    })
}

/// The public JWK as published: kid (its thumbprint), alg and use.
fn publishable(mut public: Jwk, algorithm: Algorithm) -> Result<Jwk, CoreError> {
    let kid = thumbprint(&public).ok_or_else(|| CoreError::Internal("public key lacks its members".into()))?;
    public.set_key_id(kid);
    public.set_algorithm(algorithm.as_str());
    public.set_key_use("sig");
    Ok(public)
}

/// The RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order.
fn thumbprint(jwk: &Jwk) -> Option<String> {
    let members: &[&str] = match jwk.key_type() {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for member in members {
        canonical.insert((*member).to_owned(), jwk.parameter(member)?.clone());
    }
    // serde_json's Map keeps keys sorted (no `preserve_order`), and emits no whitespace.
    let json = Value::Object(canonical).to_string();
    Some(base64_url(&Sha256::digest(json.as_bytes())))
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A key ready to sign and verify.
pub struct LoadedKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub signer: Box<dyn JwsSigner>,
    pub verifier: Box<dyn JwsVerifier>,
    pub public_jwk: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl LoadedKey {
    fn load(record: &SigningKeyRecord) -> Result<Self, String> {
        let algorithm = Algorithm::parse(&record.algorithm).ok_or_else(|| format!("algorithm {}", record.algorithm))?;
        let jwk = Jwk::from_bytes(record.public_jwk.as_bytes()).map_err(|e| e.to_string())?;
        let signer = algorithm.signer(record.private_key_pem.as_bytes())?;
        let verifier = algorithm.verifier(&jwk)?;
        Ok(Self {
            kid: record.kid.clone(),
            algorithm,
            signer,
            verifier,
            public_jwk: jwk.into(),
            created_at: record.created_at,
            retired_at: record.retired_at,
        })
    }

    /// Whether tokens it signed may still be alive at `now`, so it must stay published.
    fn published_at(&self, now: DateTime<Utc>, lifetime: Duration) -> bool {
        self.retired_at.is_none_or(|retired| retired + lifetime > now)
    }
}

/// Where signing keys come from.
pub enum KeySource {
    /// The database: generated on first start, rotated by an admin. With `kek`, the private keys
    /// are sealed with it before they are written, and those found in plain text are sealed at
    /// start; without, they are written in plain text (and a sealed one stops start-up).
    Stored { store: Arc<dyn SigningKeyStore>, kek: Option<KeyEncryptionKey> },
    /// PEM files (a Kubernetes Secret): the first signs, the others are only published and
    /// accepted. Rotation is done by replacing the files.
    Files(Vec<SigningKeyRecord>),
}

/// Settings of the keyring.
#[derive(Debug, Clone, Copy)]
pub struct KeyringSettings {
    pub algorithm: Algorithm,
    /// How long a retired key stays published: the token lifetime plus the verification leeway.
    pub retired_lifetime: Duration,
    /// The least time between two reloads caused by an unknown `kid`.
    pub min_reload_interval: Duration,
}

/// The current set of keys, newest first.
#[derive(Default)]
struct KeySet {
    keys: Vec<Arc<LoadedKey>>,
}

/// The signing keys in memory, reloaded from the store when another replica rotates them.
pub struct Keyring {
    source: KeySource,
    settings: KeyringSettings,
    clock: Arc<dyn Clock>,
    current: RwLock<Arc<KeySet>>,
    last_reload: Mutex<Option<DateTime<Utc>>>,
    /// One reload at a time, so that a slow one cannot overwrite what a later one read.
    reloading: tokio::sync::Mutex<()>,
}

impl Keyring {
    /// Loads the keys, generating the first one when the store has none of the configured
    /// algorithm (a changed algorithm is a rotation).
    pub async fn open(source: KeySource, settings: KeyringSettings, clock: Arc<dyn Clock>) -> Result<Self, CoreError> {
        let keyring = Self {
            source,
            settings,
            clock,
            current: RwLock::new(Arc::default()),
            last_reload: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        };
        if let KeySource::Stored { store, kek } = &keyring.source {
            match kek {
                Some(kek) => seal_plain_keys(store.as_ref(), kek).await?,
                None => tracing::warn!(
                    "signing keys are stored in the database unencrypted: anyone with a copy of it can sign tokens; \
                     set oauth.signing_key_encryption_key_file (or KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY)"
                ),
            }
        }
        // A stored key that cannot be opened (no KEK, another KEK) fails here, before a new key
        // could be generated in its place.
        keyring.reload().await?;
        let needs_key = keyring.active().is_none_or(|key| key.algorithm != settings.algorithm);
        if needs_key && let KeySource::Stored { store, .. } = &keyring.source {
            let record = generate(settings.algorithm, keyring.clock.now())?;
            store.add_signing_key(&keyring.stored_form(&record)?, None).await?;
            tracing::info!(kid = %record.kid, algorithm = %record.algorithm, "signing key generated");
            keyring.reload().await?;
        }
        if keyring.active().is_none() {
            return Err(CoreError::Internal("no signing key could be loaded".into()));
        }
        Ok(keyring)
    }

    /// Reads the keys again (after a rotation anywhere).
    pub async fn reload(&self) -> Result<(), CoreError> {
        let _turn = self.reloading.lock().await;
        // Noted before reading, so that unknown-kid reloads stay rate-limited while the
        // database is slow or down.
        *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.clock.now());
        let records = match &self.source {
            KeySource::Stored { store, kek } => {
                let mut records = store.signing_keys().await?;
                // All or nothing: a key left out here could be the one signing, and the set in
                // force is better than a smaller one.
                for record in &mut records {
                    record.private_key_pem = sealing::unseal(kek.as_ref(), &record.kid, &record.private_key_pem)
                        .map_err(|err| {
                            // At start this stops keygate; later (a replica that sealed with
                            // another KEK) this replica cannot decide such tokens.
                            CoreError::Unavailable(format!("signing key {} cannot be opened: {err}", record.kid))
                        })?;
                }
                records
            }
            KeySource::Files(records) => records.clone(),
        };
        let mut keys = Vec::with_capacity(records.len());
        for record in &records {
            match LoadedKey::load(record) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(err) => tracing::error!(kid = %record.kid, error = %err, "signing key cannot be loaded; skipped"),
            }
        }
        if matches!(self.source, KeySource::Stored { .. }) {
            keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.kid.cmp(&a.kid)));
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(KeySet { keys });
        Ok(())
    }

    /// Reloads when `kid` is unknown, at most once per `min_reload_interval`: a replica may see
    /// a token signed with a key another replica has just created.
    pub async fn reload_for_unknown(&self, kid: &str) -> Result<(), CoreError> {
        if self.key(kid).is_some() || matches!(self.source, KeySource::Files(_)) {
            return Ok(());
        }
        // A reload under way (say, for the rotation's notification) may be bringing the key.
        drop(self.reloading.lock().await);
        if self.key(kid).is_some() {
            return Ok(());
        }
        let now = self.clock.now();
        let recent = self
            .last_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| now < at + self.settings.min_reload_interval);
        if recent {
            return Ok(());
        }
        self.reload().await
    }

    /// `record` as it is written to the database: its private key sealed when a KEK is set.
    fn stored_form(&self, record: &SigningKeyRecord) -> Result<SigningKeyRecord, CoreError> {
        let KeySource::Stored { kek: Some(kek), .. } = &self.source else {
            return Ok(record.clone());
        };
        let sealed = kek.seal(&record.kid, &record.private_key_pem).map_err(CoreError::Internal)?;
        Ok(SigningKeyRecord { private_key_pem: sealed, ..record.clone() })
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key that signs new tokens: the newest one not retired.
    pub fn active(&self) -> Option<Arc<LoadedKey>> {
        self.snapshot().keys.iter().find(|key| key.retired_at.is_none()).cloned()
    }

    /// A published key by id.
    pub fn key(&self, kid: &str) -> Option<Arc<LoadedKey>> {
        let now = self.clock.now();
        let lifetime = self.settings.retired_lifetime;
        self.snapshot().keys.iter().find(|key| key.kid == kid && key.published_at(now, lifetime)).cloned()
    }

    /// The JWK Set document (RFC 7517) of every published key.
    pub fn jwks(&self) -> Value {
        let now = self.clock.now();
        let lifetime = self.settings.retired_lifetime;
        let keys: Vec<Value> = self
            .snapshot()
            .keys
            .iter()
            .filter(|key| key.published_at(now, lifetime))
            .map(|key| Value::Object(key.public_jwk.clone()))
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Makes a new key the signing one; the old ones stay published until their tokens expire.
    /// `audit` (about no target yet) is completed with the new key's id and written with it.
    pub async fn rotate(&self, audit: &AuditEntry) -> Result<SigningKeyRecord, CoreError> {
        let KeySource::Stored { store, .. } = &self.source else {
            return Err(CoreError::FailedPrecondition(
                "signing keys are loaded from files (oauth.signing_key_files); rotate them by replacing the files"
                    .into(),
            ));
        };
        let record = generate(self.settings.algorithm, self.clock.now())?;
        let audit = audit.about(&record.kid, &audit.organization);
        store.add_signing_key(&self.stored_form(&record)?, Some(&audit)).await?;
        self.reload().await?;
        tracing::info!(kid = %record.kid, algorithm = %record.algorithm, "signing key rotated");
        Ok(record)
    }
}

/// Seals every private key the database holds in plain text (from before a KEK was configured).
/// Idempotent, and safe while other replicas do the same: each row is replaced only while it
/// still holds the plain key.
async fn seal_plain_keys(store: &dyn SigningKeyStore, kek: &KeyEncryptionKey) -> Result<(), CoreError> {
    let mut sealed = 0;
    for record in store.signing_keys().await? {
        if sealing::is_sealed(&record.private_key_pem) {
            continue;
        }
        let text = kek.seal(&record.kid, &record.private_key_pem).map_err(CoreError::Internal)?;
        if store.seal_signing_key(&record.kid, &record.private_key_pem, &text).await? {
            sealed += 1;
        }
    }
    if sealed > 0 {
        tracing::info!(sealed, kek = kek.id(), "signing keys stored in plain text are now encrypted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // The example key of RFC 7638 §3.1 and its thumbprint.
        let jwk = Jwk::from_bytes(
            br#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .expect("jwk");
        assert_eq!(thumbprint(&jwk).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    }

    #[test]
    fn generated_keys_round_trip_through_pem() {
        let now = Utc::now();
        for algorithm in Algorithm::ALL {
            let record = generate(algorithm, now).expect("generate");
            let again = from_pem(&record.private_key_pem, now).expect("from pem");
            assert_eq!(again.kid, record.kid, "{algorithm:?}");
            assert_eq!(again.algorithm, algorithm.as_str());
            LoadedKey::load(&record).expect("loads");
        }
    }

    #[test]
    fn refuses_none_and_hmac() {
        assert_eq!(Algorithm::parse("none"), None);
        assert_eq!(Algorithm::parse("HS256"), None);
        assert_eq!(Algorithm::parse("RS256"), Some(Algorithm::Rs256));
    }
}
