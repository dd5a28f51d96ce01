//! Reading JWT claims safely: what the verifiers of keygate's own tokens and outside issuers' share.

use chrono::{DateTime, Utc};
use josekit::jwt::JwtPayload;

/// A NumericDate claim (seconds since the epoch, possibly fractional), read without josekit's
/// getters, which panic on absurd values.
pub fn numeric_date(payload: &JwtPayload, claim: &str) -> Option<DateTime<Utc>> {
    let seconds = payload.claim(claim)?.as_f64()?;
    if !seconds.is_finite() || !(0.0..=1e11).contains(&seconds) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)] // bounded above
    DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
}
