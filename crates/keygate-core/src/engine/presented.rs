//! Which credential a request presents, told apart by where and how it came: `X-API-Key`, or
//! `Authorization` with the Bearer scheme (an API key or a JWT) or the Basic scheme (an API key
//! as the user name and an empty password, as Stripe's and Socket's clients send it).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::model::{AuthFailure, Credentials, Reason};
use crate::tokens::looks_like_jwt;

/// A presented credential, told apart by its shape. Borrowed from the request, except for a key
/// sent with Basic, which had to be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    Key(Cow<'a, str>),
    Token(&'a str),
}

/// The `Authorization` schemes keygate accepts, matched without regard to case.
const BEARER: &str = "bearer";
const BASIC: &str = "basic";
/// The longest Basic credential read: a key is far shorter.
const MAX_BASIC: usize = 1024;

/// Picks the presented credential: `X-API-Key` (an API key) when set, else the `Authorization`
/// header's: Bearer (an API key or a JWT) or Basic (an API key).
pub fn presented_credential(credentials: &Credentials) -> Result<Presented<'_>, AuthFailure> {
    let api_key = credentials.api_key.trim();
    if !api_key.is_empty() {
        return Ok(Presented::Key(Cow::Borrowed(api_key)));
    }
    let authorization = credentials.authorization.trim();
    if authorization.is_empty() {
        return Err(AuthFailure::new(Reason::MissingApiKey, "no API key was included in the request"));
    }
    if authorization.eq_ignore_ascii_case(BEARER) || authorization.eq_ignore_ascii_case(BASIC) {
        return Err(AuthFailure::new(Reason::MissingApiKey, "the Authorization header carries no credential"));
    }
    if let Some(bearer) = after_scheme(authorization, BEARER) {
        let bearer = bearer.trim();
        return Ok(if looks_like_jwt(bearer) {
            Presented::Token(bearer)
        } else {
            Presented::Key(Cow::Borrowed(bearer))
        });
    }
    if let Some(basic) = after_scheme(authorization, BASIC) {
        return basic_key(basic.trim()).map(|key| Presented::Key(Cow::Owned(key)));
    }
    Err(AuthFailure::new(Reason::InvalidApiKey, "the Authorization header must use the Bearer or Basic scheme"))
}

/// What follows `scheme` and one space, read in place (no search for the space: any other
/// scheme fails).
fn after_scheme<'a>(authorization: &'a str, scheme: &str) -> Option<&'a str> {
    authorization.get(..scheme.len()).filter(|found| found.eq_ignore_ascii_case(scheme))?;
    authorization.get(scheme.len()..)?.strip_prefix(' ')
}

/// The API key of Basic credentials (RFC 7617): `base64(key ":")`, the key as the user name and
/// no password. Anything else is refused rather than guessed at: a password would be a second
/// secret keygate never checks.
fn basic_key(encoded: &str) -> Result<String, AuthFailure> {
    let invalid = |message: &str| Err(AuthFailure::new(Reason::InvalidApiKey, message));
    if encoded.is_empty() {
        return Err(AuthFailure::new(Reason::MissingApiKey, "the Basic credential is empty"));
    }
    if encoded.len() > MAX_BASIC {
        return invalid("the Basic credential is too long");
    }
    let Ok(decoded) = STANDARD.decode(encoded) else { return invalid("the Basic credential is not base64") };
    let Ok(decoded) = String::from_utf8(decoded) else { return invalid("the Basic credential is not UTF-8") };
    let Some((user, password)) = decoded.split_once(':') else {
        return invalid("the Basic credential must be user:password, with the API key as the user");
    };
    if !password.is_empty() {
        return invalid("send the API key as the Basic user name with an empty password");
    }
    if user.trim().is_empty() {
        return Err(AuthFailure::new(Reason::MissingApiKey, "the Basic user name (the API key) is empty"));
    }
    Ok(user.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(authorization: &str, api_key: &str) -> Result<String, Reason> {
        let presented = Credentials { authorization: authorization.into(), api_key: api_key.into() };
        match presented_credential(&presented) {
            Ok(Presented::Key(key)) => Ok(format!("key {key}")),
            Ok(Presented::Token(token)) => Ok(format!("token {token}")),
            Err(failure) => Err(failure.reason),
        }
    }

    fn basic(user_and_password: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_and_password))
    }

    #[test]
    fn picks_the_presented_credential() {
        assert_eq!(pick("Bearer abc", ""), Ok("key abc".to_owned()));
        assert_eq!(pick("bearer  abc ", ""), Ok("key abc".to_owned()));
        assert_eq!(pick("Bearer abc", "xyz"), Ok("key xyz".to_owned()));
        assert_eq!(pick("Bearer e30.e30.c2ln", ""), Ok("token e30.e30.c2ln".to_owned()));
        assert_eq!(pick("", "e30.e30.c2ln"), Ok("key e30.e30.c2ln".to_owned()));
        assert_eq!(pick("", ""), Err(Reason::MissingApiKey));
        assert_eq!(pick("Bearer ", ""), Err(Reason::MissingApiKey));
        assert_eq!(pick("Digest abc", ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick("Bearerabc", ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick("Bearer\tabc", ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick("Beaérer abc", ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick("BEARER  abc", ""), Ok("key abc".to_owned()));
    }

    #[test]
    fn basic_carries_a_key_as_the_user_name() {
        assert_eq!(pick(&basic("sk_live_k_abc:"), ""), Ok("key sk_live_k_abc".to_owned()));
        assert_eq!(pick(&basic("sk_live_k_abc:").replace("Basic", "BASIC"), ""), Ok("key sk_live_k_abc".to_owned()));
        // A token is never taken from Basic: it is a key or nothing.
        assert_eq!(pick(&basic("e30.e30.c2ln:"), ""), Ok("key e30.e30.c2ln".to_owned()));
        assert_eq!(pick(&basic("sk_live_k_abc:secret"), ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick(&basic("sk_live_k_abc"), ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick(&basic(":"), ""), Err(Reason::MissingApiKey));
        assert_eq!(pick("Basic ", ""), Err(Reason::MissingApiKey));
        assert_eq!(pick("Basic !!!", ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick(&format!("Basic {}", STANDARD.encode([0xff, b':'])), ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick(&format!("Basic {}", "QUFB".repeat(400)), ""), Err(Reason::InvalidApiKey));
        assert_eq!(pick(&basic("other:"), "xyz"), Ok("key xyz".to_owned()), "X-API-Key first, as for Bearer");
    }
}
