//! A secret as stored: its argon2id hash and its short keyed fingerprint. Neither is ever shown.

/// A secret as stored: its argon2id hash (the at-rest protection) and, beside it, a fingerprint
/// that is checked first. `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// The PHC string of the secret's argon2id hash.
    pub phc: String,
    /// `None` for a secret stored before fingerprints existed: argon2 decides it, and its first
    /// successful verification records one.
    pub fingerprint: Option<Fingerprint>,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret").field("fingerprinted", &self.fingerprint.is_some()).finish_non_exhaustive()
    }
}

/// 32 bits of HMAC-SHA-256 of a secret, and which key made them. So short that it cannot single
/// out a secret of 190 bits or more (some 2^158 others share it), so argon2 stays the at-rest
/// hash; long enough that a made-up secret passes it once in four billion tries. Keyed with a
/// key kept outside the database (derived from the key-encryption key when one is configured),
/// so that a copy of the database does not tell which made-up secrets would pass.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// Names the key (a digest of it, not the key): a fingerprint made with another key than
    /// the configured ones is treated as missing, never as a mismatch.
    pub(crate) key: u32,
    pub(crate) value: u32,
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprint").field("key", &format_args!("{:08x}", self.key)).finish_non_exhaustive()
    }
}

const FINGERPRINT_VERSION: &str = "v1";

impl Fingerprint {
    /// How the fingerprint is written in its column: `v1:{key}:{value}`, both 8 hex digits.
    pub fn to_column(self) -> String {
        format!("{FINGERPRINT_VERSION}:{:08x}:{:08x}", self.key, self.value)
    }

    /// Reads a column written by [`Self::to_column`]; anything else counts as no fingerprint.
    pub fn from_column(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let (Some(FINGERPRINT_VERSION), Some(key), Some(value), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let hex = |part: &str| (part.len() == 8).then(|| u32::from_str_radix(part, 16).ok()).flatten();
        Some(Self { key: hex(key)?, value: hex(value)? })
    }
}
