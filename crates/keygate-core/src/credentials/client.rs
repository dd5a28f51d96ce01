//! OAuth2 client credentials: readable client ids (`xsoar-production-3f9a2c`, a slug of the
//! name and a random suffix) and secrets of about 256 bits, of which only a hash is stored.

use crate::credentials::api_key::{BASE62, random_chars};

/// What every client secret starts with, so that leaked secrets are recognisable.
const SECRET_PREFIX: &str = "kgcs_";
/// 43 base62 characters: about 256 bits.
const SECRET_LEN: usize = 43;
const SUFFIX_LEN: usize = 6;
const MAX_SLUG_LEN: usize = 40;
const MAX_CLIENT_ID_LEN: usize = 100;
const HEX: &[u8] = b"0123456789abcdef";

/// A client id for `name`: its lowercase words joined by `-`, then a random suffix.
pub fn client_id_for(name: &str) -> String {
    let mut slug = String::new();
    for word in name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        if slug.len() + word.len() + 1 > MAX_SLUG_LEN {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() {
        slug.push_str("client");
    }
    format!("{slug}-{}", random_chars(HEX, SUFFIX_LEN))
}

/// Whether `client_id` has the shape of a client id, checked before any look-up.
pub fn is_valid_client_id(client_id: &str) -> bool {
    (2..=MAX_CLIENT_ID_LEN).contains(&client_id.len())
        && client_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !client_id.starts_with('-')
}

/// A new secret, shown once.
pub fn generate_secret() -> String {
    format!("{SECRET_PREFIX}{}", random_chars(BASE62, SECRET_LEN))
}

/// Whether `secret` has the shape of a client secret, checked before any look-up or argon2.
pub fn is_well_formed_secret(secret: &str) -> bool {
    secret.len() == SECRET_PREFIX.len() + SECRET_LEN
        && secret.starts_with(SECRET_PREFIX)
        && secret.bytes().skip(SECRET_PREFIX.len()).all(|b| BASE62.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_readable_slugs() {
        let id = client_id_for("XSOAR Production");
        assert!(id.starts_with("xsoar-production-"), "{id}");
        assert!(is_valid_client_id(&id));
        assert!(client_id_for("!!!").starts_with("client-"));
        assert!(client_id_for(&"word ".repeat(50)).len() <= MAX_SLUG_LEN + 1 + SUFFIX_LEN);
        assert!(!is_valid_client_id("Upper-Case"));
        assert!(!is_valid_client_id("-x"));
    }

    #[test]
    fn secrets_are_well_formed_and_differ() {
        let (a, b) = (generate_secret(), generate_secret());
        assert!(is_well_formed_secret(&a));
        assert_ne!(a, b);
        assert!(!is_well_formed_secret("kgcs_short"));
        assert!(!is_well_formed_secret(&a.replace("kgcs_", "xxxx_")));
    }
}
