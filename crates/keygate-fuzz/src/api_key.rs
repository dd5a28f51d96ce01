//! Target `api_key`: the API-key parser, and the reading of the presented credential from the
//! `Authorization` (Bearer or Basic) and `X-API-Key` headers.
//!
//! Input: the `Authorization` value, a NUL, the `X-API-Key` value. The whole input is also parsed
//! as a key. What must hold: a key that parses is rebuilt exactly from its parts (prefix, id and
//! secret with their checksum); the presented credential is a trimmed, non-empty key or a token
//! of JWT shape, and `X-API-Key` wins when it is set.

use keygate_core::credentials::api_key;
use keygate_core::engine::{Presented, presented_credential};
use keygate_core::model::Credentials;
use keygate_core::tokens::looks_like_jwt;

use crate::{fields, text};

/// Runs one input.
pub fn run(data: &[u8]) {
    parse_key(&text(data));
    let mut parts = fields(data);
    let authorization = text(parts.next().unwrap_or_default()).into_owned();
    let api_key = text(parts.next().unwrap_or_default()).into_owned();
    let credentials = Credentials { authorization, api_key };
    match presented_credential(&credentials) {
        Ok(Presented::Key(key)) => {
            assert!(!key.is_empty() && key.trim() == key, "a presented key is trimmed and not empty: {key:?}");
            let header = credentials.api_key.trim();
            assert!(header.is_empty() || header == key, "X-API-Key is taken when set");
            parse_key(&key);
        }
        Ok(Presented::Token(token)) => {
            assert!(looks_like_jwt(token), "a token has the shape of a JWT: {token:?}");
            assert!(credentials.api_key.trim().is_empty(), "a token never comes from X-API-Key");
        }
        Err(_) => {}
    }
}

/// Parses `presented` as a key; a key that parses must be rebuilt exactly from its parts.
fn parse_key(presented: &str) {
    let Some(parsed) = api_key::parse(presented) else { return };
    let prefix = parsed.key_prefix.strip_suffix(parsed.key_id);
    assert!(prefix.is_some(), "the key prefix ends in the key id: {parsed:?}");
    let prefix = prefix.unwrap_or_default();
    assert!(api_key::is_valid_prefix(prefix) && api_key::is_valid_key_id(parsed.key_id), "{parsed:?}");
    let rebuilt = api_key::assemble(prefix, parsed.key_id, parsed.secret);
    assert_eq!(rebuilt.full, presented, "a parsed key is rebuilt from its parts");
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_keys_reach_the_round_trip() {
        let key = keygate_core::credentials::api_key::generate("sk_live_");
        assert!(keygate_core::credentials::api_key::parse(&key.full).is_some());
        super::run(key.full.as_bytes());
        super::run(format!("Bearer {}", key.full).as_bytes());
    }
}
