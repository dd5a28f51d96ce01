//! Target `rest_bodies`: the JSON bodies of the REST admin API, decoded by [`decode_body`] as
//! each body type the handlers take, then converted as the handlers do.
//!
//! Input: a body. Each body type decodes it in turn. What must hold: a body that does not decode
//! is answered with 400 (not JSON) or 422 (not the documented shape), never a server error; one
//! that decodes converts into the core's request without a panic.

use http::StatusCode;

use keygate::http::admin::bodies::{
    ApiError, Changes, CreateClient, CreateKey, CreateOrganization, RegenerateSecret, RotateKeyBody,
    UpdateOrganization, decode_body,
};
use keygate_core::admin::NewKey;
use keygate_core::admin::clients::NewClient;
use keygate_core::ports::KeyChanges;

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Some(body) = decoded::<CreateKey>(data) {
        let _ = NewKey::from(body);
    }
    if let Some(body) = decoded::<Changes>(data) {
        let _ = KeyChanges::from(body);
    }
    if let Some(body) = decoded::<RotateKeyBody>(data) {
        let _ = (body.grace_period_days, body.expires_in_days);
    }
    if let Some(body) = decoded::<CreateClient>(data) {
        let _ = NewClient::from(body);
    }
    if let Some(body) = decoded::<RegenerateSecret>(data) {
        let _ = body.revoke_tokens.unwrap_or(true);
    }
    if let Some(body) = decoded::<CreateOrganization>(data) {
        let _ = (body.slug, body.name, body.plan);
    }
    if let Some(body) = decoded::<UpdateOrganization>(data) {
        let _ = (body.name, body.plan);
    }
}

/// `data` decoded as `T`, or `None` after checking the refusal.
fn decoded<T: serde::de::DeserializeOwned + Default>(data: &[u8]) -> Option<T> {
    match decode_body::<T>(data) {
        Ok(body) => Some(body),
        Err(err) => {
            refused(err);
            None
        }
    }
}

fn refused(err: ApiError) {
    let description = format!("{err:?}");
    let status = err.respond("fuzz").status();
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
        "a bad body is answered with 400 or 422, not {status}: {description}"
    );
}
