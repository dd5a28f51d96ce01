//! The operator's key-encryption key (KEK): it seals the private signing keys stored in the
//! database (XChaCha20-Poly1305, with the signing key's id as associated data) and keys the
//! fingerprints of stored secrets, so that a copy of the database alone neither signs tokens nor
//! lets its holder make up secrets that pass a fingerprint. Each use has a key of its own,
//! derived from the operator's 32 bytes with HKDF-SHA-256.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;

/// What a sealed private key starts with in the database; anything else is a plain PEM from
/// before a KEK was configured.
const SEALED_PREFIX: &str = "kgsealed:v1:";
const NONCE_LEN: usize = 24;
/// The associated data: the key id, under a label of its own.
const AAD_LABEL: &[u8] = b"keygate signing key\0";

/// 32 bytes the operator keeps outside the database. `Debug` shows only its id.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    aead: [u8; 32],
    fingerprints: [u8; 32],
    /// A short public name of the key (not of its bytes): says which KEK sealed a row.
    id: String,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl PartialEq for KeyEncryptionKey {
    fn eq(&self, other: &Self) -> bool {
        self.aead == other.aead
    }
}

impl Eq for KeyEncryptionKey {}

/// Why a stored private key could not be unsealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsealError {
    /// The row is sealed and no KEK is configured.
    NoKey { sealed_with: String },
    /// The row names another KEK than the configured one.
    OtherKey { sealed_with: String, configured: String },
    /// The row names the configured KEK but does not open with it (altered, or moved to another
    /// key id).
    Inauthentic,
    /// Not what [`KeyEncryptionKey::seal`] writes.
    Malformed,
}

impl std::fmt::Display for UnsealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsealError::NoKey { sealed_with } => write!(
                f,
                "it is encrypted with key-encryption key {sealed_with} and none is configured; set \
                 oauth.signing_key_encryption_key_file (or KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY) to that key"
            ),
            UnsealError::OtherKey { sealed_with, configured } => write!(
                f,
                "it is encrypted with key-encryption key {sealed_with}, but the configured one is {configured}: \
                 start with the key it was encrypted with"
            ),
            UnsealError::Inauthentic => {
                write!(f, "it does not decrypt with the configured key-encryption key (altered or moved)")
            }
            UnsealError::Malformed => write!(f, "its encrypted form is unreadable"),
        }
    }
}

fn derive(ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-256's limit of 255 blocks: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(None, ikm).expand(info, &mut okm);
    okm
}

impl KeyEncryptionKey {
    /// From the operator's 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let name = derive(&bytes, b"keygate key-encryption key id v1");
        let id = name[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            aead: derive(&bytes, b"keygate signing key encryption v1"),
            fingerprints: derive(&bytes, b"keygate secret fingerprints v1"),
            id,
        }
    }

    /// 32 bytes as 64 hex digits or base64 (standard or URL-safe, padded or not), surrounding
    /// whitespace ignored. Errors never repeat the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect::<Option<Vec<u8>>>()
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(text).ok())
        };
        let bytes: [u8; 32] = decoded.and_then(|bytes| bytes.try_into().ok()).ok_or_else(|| {
            "must be 32 random bytes as base64 or 64 hex digits (e.g. the output of `openssl rand -base64 32`)"
                .to_owned()
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key's public name, for logs and errors.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key of secret fingerprints, derived from this one.
    pub fn fingerprint_key(&self) -> [u8; 32] {
        self.fingerprints
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.aead.into())
    }

    /// `pem` sealed for the signing key `kid`: a random 192-bit nonce (safe to draw at random for
    /// any number of keys) and the ciphertext, base64url, after the KEK's id.
    pub fn seal(&self, kid: &str, pem: &str) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = [AAD_LABEL, kid.as_bytes()].concat();
        let sealed = self
            .cipher()
            .encrypt(&XNonce::from(nonce), Payload { msg: pem.as_bytes(), aad: &aad })
            .map_err(|_| "encrypting a signing key failed".to_owned())?;
        let body = [nonce.as_slice(), &sealed].concat();
        Ok(format!("{SEALED_PREFIX}{}:{}", self.id, URL_SAFE_NO_PAD.encode(body)))
    }

    /// Opens what [`Self::seal`] wrote for `kid`.
    pub fn unseal(&self, kid: &str, stored: &str) -> Result<String, UnsealError> {
        let (sealed_with, body) = sealed_parts(stored).ok_or(UnsealError::Malformed)?;
        if sealed_with != self.id {
            return Err(UnsealError::OtherKey { sealed_with: sealed_with.to_owned(), configured: self.id.clone() });
        }
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| UnsealError::Malformed)?;
        if body.len() < NONCE_LEN {
            return Err(UnsealError::Malformed);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| UnsealError::Malformed)?;
        let aad = [AAD_LABEL, kid.as_bytes()].concat();
        let pem = self
            .cipher()
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| UnsealError::Inauthentic)?;
        String::from_utf8(pem).map_err(|_| UnsealError::Malformed)
    }
}

/// Whether a stored private key is sealed (rather than a plain PEM).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The KEK id and the body of a sealed private key.
fn sealed_parts(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(SEALED_PREFIX)?.split_once(':')
}

/// Opens a stored private key with `kek`, if any: a plain PEM as it is, a sealed one with the
/// KEK that sealed it.
pub fn unseal(kek: Option<&KeyEncryptionKey>, kid: &str, stored: &str) -> Result<String, UnsealError> {
    if !is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    match kek {
        Some(kek) => kek.unseal(kid, stored),
        None => {
            let sealed_with = sealed_parts(stored).map_or("?", |(id, _)| id).to_owned();
            Err(UnsealError::NoKey { sealed_with })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIH1s\n-----END PRIVATE KEY-----\n";

    #[test]
    fn parses_hex_and_base64_and_nothing_else() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let from_hex = KeyEncryptionKey::parse(&format!("{hex}\n")).expect("hex");
        for encoded in [STANDARD.encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes), STANDARD_NO_PAD.encode(&bytes)] {
            assert_eq!(KeyEncryptionKey::parse(&encoded).expect("base64"), from_hex);
        }
        for bad in ["", "short", &hex[..62], &STANDARD.encode([7u8; 31]), &STANDARD.encode([7u8; 33])] {
            let err = KeyEncryptionKey::parse(bad).expect_err(bad);
            assert!(err.contains("32 random bytes"), "{err}");
            assert!(bad.is_empty() || !err.contains(bad), "errors never repeat the key");
        }
        assert!(!format!("{from_hex:?}").contains(&hex[..8]), "Debug shows the id only");
    }

    #[test]
    fn seals_and_unseals_bound_to_the_key_id() {
        let kek = KeyEncryptionKey::from_bytes([1; 32]);
        let sealed = kek.seal("kid-1", PEM).expect("seal");
        assert!(is_sealed(&sealed) && !sealed.contains("PRIVATE KEY"), "{sealed}");
        assert_ne!(sealed, kek.seal("kid-1", PEM).expect("seal"), "a fresh nonce each time");
        assert_eq!(kek.unseal("kid-1", &sealed).expect("unseal"), PEM);
        assert_eq!(kek.unseal("kid-2", &sealed), Err(UnsealError::Inauthentic), "moved to another key id");
        let other = KeyEncryptionKey::from_bytes([2; 32]);
        assert!(matches!(other.unseal("kid-1", &sealed), Err(UnsealError::OtherKey { .. })));
        assert!(matches!(unseal(None, "kid-1", &sealed), Err(UnsealError::NoKey { .. })));
        assert_eq!(unseal(None, "kid-1", PEM).expect("plain"), PEM);
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(kek.unseal("kid-1", &altered).is_err());
        assert_ne!(kek.fingerprint_key(), other.fingerprint_key());
        assert_ne!(kek.fingerprint_key(), kek.aead, "each use has a key of its own");
    }
}
