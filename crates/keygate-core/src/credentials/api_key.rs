//! The API key format: `{prefix}k_{id}_{secret}{checksum}`, e.g.
//! `sk_live_k_3m9x0q2v7c1a_<32 base62 chars><6 base62 chars>`.
//!
//! The secret carries about 190 bits of OS randomness; the CRC-32 checksum lets a mistyped or
//! made-up key be rejected without touching the database.

use rand::Rng;
use rand::rngs::OsRng;

const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// Longer inputs are rejected before any parsing work.
const MAX_KEY_LEN: usize = 256;
pub(crate) const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A freshly generated key. `full` is shown to the caller once; only `secret`'s hash is stored.
pub struct GeneratedKey {
    pub key_id: String,
    pub key_prefix: String,
    pub secret: String,
    pub full: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey").field("key_prefix", &self.key_prefix).finish_non_exhaustive()
    }
}

/// A syntactically valid presented key, split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// `{prefix}k_{id}`, compared with the stored key prefix.
    pub key_prefix: &'a str,
    /// `k_{id}`.
    pub key_id: &'a str,
    /// The secret whose argon2id hash is stored.
    pub secret: &'a str,
}

/// Whether `prefix` may start keys: lowercase letters, digits and `_`, ending in `_`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 32
        && prefix.ends_with('_')
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `key_id` has the shape of a key id (`k_` and 12 lowercase letters or digits).
pub fn is_valid_key_id(key_id: &str) -> bool {
    key_id.len() == ID_LEN + 2
        && key_id.starts_with("k_")
        && key_id[2..].bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// `len` characters of `alphabet`, drawn from the OS's randomness.
pub(crate) fn random_chars(alphabet: &[u8], len: usize) -> String {
    let mut rng = OsRng;
    (0..len).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])).collect()
}

/// The base62 CRC-32 of `text`, as bytes: compared on every presented key, so never a `String`.
fn checksum(text: &str) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(crc32fast::hash(text.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Generates a new key with a new id.
pub fn generate(prefix: &str) -> GeneratedKey {
    let key_id = format!("k_{}", random_chars(ID_ALPHABET, ID_LEN));
    generate_for(prefix, &key_id)
}

/// Generates a new secret for an existing key id (rotation keeps the id).
pub fn generate_for(prefix: &str, key_id: &str) -> GeneratedKey {
    assemble(prefix, key_id, &random_chars(BASE62, SECRET_LEN))
}

/// Builds the full key for a given id and secret (with its checksum). For generation and for
/// tools that seed stores; `secret` must be 32 base62 characters to parse back.
pub fn assemble(prefix: &str, key_id: &str, secret: &str) -> GeneratedKey {
    let key_prefix = format!("{prefix}{key_id}");
    let mut full = format!("{key_prefix}_{secret}");
    let sum = checksum(&full);
    full.extend(sum.map(char::from));
    GeneratedKey { key_id: key_id.to_owned(), key_prefix, secret: secret.to_owned(), full }
}

/// Parses a presented key, checking its shape and checksum. `None` means malformed.
pub fn parse(presented: &str) -> Option<ParsedKey<'_>> {
    if presented.len() > MAX_KEY_LEN || !presented.is_ascii() {
        return None;
    }
    // The tail (secret and checksum) has a fixed length and no `_`: the separator's place is
    // known, so it is checked there rather than searched for.
    let separator = presented.len().checked_sub(SECRET_LEN + CHECKSUM_LEN + 1)?;
    if presented.as_bytes()[separator] != b'_' {
        return None;
    }
    let (head, tail) = (&presented[..separator], &presented[separator + 1..]);
    // BASE62 is exactly the ASCII letters and digits: a class test, not a search per byte.
    if !tail.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let id_start = head.len().checked_sub(ID_LEN + 2)?;
    let key_id = &head[id_start..];
    let prefix = &head[..id_start];
    if !is_valid_key_id(key_id) || !is_valid_prefix(prefix) {
        return None;
    }
    let (secret, sum) = tail.split_at(SECRET_LEN);
    let checked = &presented[..presented.len() - CHECKSUM_LEN];
    if checksum(checked) != sum.as_bytes() {
        return None;
    }
    Some(ParsedKey { key_prefix: head, key_id, secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back() {
        let key = generate("sk_live_");
        let parsed = parse(&key.full).expect("a generated key parses");
        assert_eq!(parsed.key_id, key.key_id);
        assert_eq!(parsed.key_prefix, key.key_prefix);
        assert_eq!(parsed.secret, key.secret);
        assert!(key.key_prefix.starts_with("sk_live_k_"));
    }

    #[test]
    fn any_single_character_change_is_rejected() {
        let key = generate("sk_live_");
        let bytes = key.full.as_bytes();
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            let changed = String::from_utf8(changed).expect("ascii");
            assert!(parse(&changed).is_none(), "changing byte {i} must be caught: {changed}");
        }
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        for input in ["", "sk_live_", "Bearer x", "k_abc_def", &"a".repeat(5000), "sk_live_k_ABCDEFGHIJKL_x"] {
            assert!(parse(input).is_none(), "{input:?}");
        }
    }

    #[test]
    fn secrets_differ() {
        assert_ne!(generate("sk_").secret, generate("sk_").secret);
    }
}
