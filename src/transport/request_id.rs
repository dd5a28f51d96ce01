//! Request ids, the same on both edges: keygate's own for every request, and the caller's
//! `x-request-id` kept beside it only when it is harmless to store and echo.

use uuid::Uuid;

/// The header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 128;

/// A given request id when it is sensible (printable ASCII, at most 128 characters), otherwise a
/// new UUID.
pub fn request_id_from(given: Option<&str>) -> String {
    given
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned)
}

/// The caller's request id as the admin edges keep it beside their own: up to 128 ASCII
/// letters, digits and `-_.:/+=`; anything else (absent, empty, too long, other characters) is
/// dropped rather than stored.
pub fn client_request_id(given: Option<&str>) -> String {
    let given = given.unwrap_or_default().trim();
    let usable = given.len() <= MAX_REQUEST_ID_LEN
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='));
    if usable { given.to_owned() } else { String::new() }
}

/// A new random (v4) UUID, in its hyphenated form, without going through `fmt`.
pub fn new_request_id() -> String {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    Uuid::new_v4().hyphenated().encode_lower(&mut text).to_owned()
}
