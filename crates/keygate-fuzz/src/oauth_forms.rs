//! Target `oauth_forms`: the form bodies of `POST /oauth/token` and `POST /oauth/introspect`
//! with their headers, as [`token_request`] and [`introspection_request`] read them.
//!
//! Input: a first byte picking the `Content-Type` (`0` the form type, `1` with a charset, `2`
//! none, `3` the next field), then NUL-separated fields: `Authorization`, `X-API-Key`, the body
//! (a header value that is not valid is left out). What must hold: a refusal is the client's
//! mistake (an invalid request or an OAuth2 error), never an internal error; client credentials
//! come from HTTP Basic or the form, never both.

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};

use keygate::http::{introspection_request, token_request};
use keygate_core::error::ErrorCode;
use keygate_core::oauth::IntrospectionCaller;

use crate::fields;

const FORM: &str = "application/x-www-form-urlencoded";

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut parts = fields(rest);
    let mut headers = HeaderMap::new();
    let mut insert = |name, value: &[u8]| {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    };
    match mode & 3 {
        0 => insert(CONTENT_TYPE, FORM.as_bytes()),
        1 => insert(CONTENT_TYPE, b"Application/X-WWW-Form-Urlencoded ; charset=UTF-8"),
        2 => {}
        _ => insert(CONTENT_TYPE, parts.next().unwrap_or_default()),
    }
    let authorization = parts.next().unwrap_or_default();
    if !authorization.is_empty() {
        insert(AUTHORIZATION, authorization);
    }
    let api_key = parts.next().unwrap_or_default();
    if !api_key.is_empty() {
        insert(http::HeaderName::from_static("x-api-key"), api_key);
    }
    let body = parts.next().unwrap_or_default();
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let form_secret = form_urlencoded::parse(body).any(|(name, _)| name == "client_secret");

    let token = token_request(&headers, body);
    if let Err(err) = &token {
        assert_ne!(err.code(), ErrorCode::Internal, "a bad token form is the client's mistake: {err}");
    }
    assert!(!(basic && form_secret && token.is_ok()), "client credentials from Basic and the form at once");
    match introspection_request(&headers, body) {
        Ok((IntrospectionCaller::Client { .. }, _)) => assert!(basic || form_secret, "a client without credentials"),
        Ok((IntrospectionCaller::Bearer(_), _)) => assert!(!basic && !form_secret, "client credentials were ignored"),
        Err(err) => {
            assert_ne!(err.code(), ErrorCode::Internal, "a bad introspection form is the client's mistake: {err}")
        }
    }
}
