//! What the admin API's resources share on the wire: times, limits, changes, list parameters.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use keygate_core::error::FieldViolation;
use keygate_core::model::{LimitField, LimitOverrides};
use keygate_core::ports::KeyChanges;

/// A time as the reference writes it: RFC 3339, UTC, whole seconds (`2027-03-27T00:00:00Z`).
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn optional_time(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(time)
}

/// A credential's own limits; an absent or `null` one takes the configured default, `0` means
/// no limit of that sort.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute.
    #[schema(minimum = 0)]
    pub rate_limit_per_minute: Option<u32>,
    /// Requests allowed at once above the steady rate.
    #[schema(minimum = 0)]
    pub rate_limit_burst: Option<u32>,
    /// Requests per calendar month (UTC).
    #[schema(minimum = 0)]
    pub max_quota: Option<u64>,
    /// Slots held at once.
    #[schema(minimum = 0)]
    pub max_concurrency: Option<u32>,
}

impl From<LimitOverrides> for Limits {
    fn from(limits: LimitOverrides) -> Self {
        Self {
            rate_limit_per_minute: limits.rate_per_minute,
            rate_limit_burst: limits.rate_burst,
            max_quota: limits.max_quota,
            max_concurrency: limits.max_concurrency,
        }
    }
}

impl From<Limits> for LimitOverrides {
    fn from(limits: Limits) -> Self {
        Self {
            rate_per_minute: limits.rate_limit_per_minute,
            rate_burst: limits.rate_limit_burst,
            max_quota: limits.max_quota,
            max_concurrency: limits.max_concurrency,
        }
    }
}

/// Changes to a key or a client: each field sent replaces its own.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Changes {
    /// At most 100 characters.
    pub name: Option<String>,
    /// At most 1,000 characters.
    pub description: Option<String>,
    /// Replaces every scope; each must be one the caller holds.
    pub scopes: Option<Vec<String>>,
    #[serde(deserialize_with = "object")]
    pub limits: Option<LimitsPatch>,
}

impl From<Changes> for KeyChanges {
    fn from(body: Changes) -> Self {
        let (limits, reset_limits) = body.limits.unwrap_or_default().into_changes();
        Self { name: body.name, description: body.description, scopes: body.scopes, limits, reset_limits }
    }
}

/// A change of limits, as a JSON merge patch (RFC 7396): a number sets a limit, `null` returns
/// it to the configured default, an absent field leaves it as it is.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 0)]
    pub rate_limit_per_minute: Option<Option<u32>>,
    #[serde(deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 0)]
    pub rate_limit_burst: Option<Option<u32>>,
    #[serde(deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 0)]
    pub max_quota: Option<Option<u64>>,
    #[serde(deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 0)]
    pub max_concurrency: Option<Option<u32>>,
}

impl LimitsPatch {
    /// The limits to set and the names of those to reset.
    pub fn into_changes(self) -> (LimitOverrides, Vec<String>) {
        let mut resets = Vec::new();
        let mut set = LimitOverrides::default();
        apply(self.rate_limit_per_minute, LimitField::RatePerMinute, &mut set.rate_per_minute, &mut resets);
        apply(self.rate_limit_burst, LimitField::RateBurst, &mut set.rate_burst, &mut resets);
        apply(self.max_quota, LimitField::MaxQuota, &mut set.max_quota, &mut resets);
        apply(self.max_concurrency, LimitField::MaxConcurrency, &mut set.max_concurrency, &mut resets);
        (set, resets)
    }
}

/// One field of a merge patch: a value sets `target`, `null` resets `field`, absent does nothing.
fn apply<T>(patch: Option<Option<T>>, field: LimitField, target: &mut Option<T>, resets: &mut Vec<String>) {
    match patch {
        Some(Some(value)) => *target = Some(value),
        Some(None) => resets.push(field.name().to_owned()),
        None => {}
    }
}

/// A field that was sent, `null` or not: told apart from one left out (the `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A nested object of a body, or `null`: serde's derived structs would also take a JSON array,
/// field by field in order (`"limits": [1, 2]`), which the document does not allow.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    struct Nullable<T>(PhantomData<T>);
    struct Fields<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Nullable<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_map(Fields(PhantomData)).map(Some)
        }
    }

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<T, M::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_option(Nullable(PhantomData))
}

/// The parameters of a list, as the document describes them ([`Listing`] reads them).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[allow(dead_code, reason = "read by the OpenAPI document only; Listing::parse reads the query")]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Matches names, descriptions and ids, case-insensitively.
    pub search: Option<String>,
    /// How many to skip.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 4_294_967_295_u32)]
    pub offset: Option<u32>,
    /// How many to return: 20 when unset or 0, at most 100.
    #[param(minimum = 0, maximum = 100)]
    pub limit: Option<u32>,
    /// The organization to list, for platform admins; others always list their own.
    pub organization: Option<String>,
}

/// A list's parameters read from a query string: every bad one named (400); unknown ones
/// ignored, as HTTP has it.
pub struct Listing {
    pub search: String,
    pub offset: i64,
    pub limit: i64,
    pub organization: String,
}

impl Listing {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut query = Query::parse(query);
        let (offset, limit) = (query.number("offset"), query.number("limit"));
        let listing = Self { search: query.text("search"), offset, limit, organization: query.text("organization") };
        query.finish().map(|()| listing)
    }
}

/// A query string's parameters, read one by one; the problems found are reported together.
pub struct Query {
    pairs: HashMap<String, String>,
    problems: Vec<FieldViolation>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        Self { pairs, problems: Vec::new() }
    }

    /// A text parameter; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.pairs.get(name).cloned().unwrap_or_default()
    }

    /// A whole number from 0; 0 when absent or empty.
    pub fn number(&mut self, name: &str) -> i64 {
        match self.pairs.get(name).map(|v| v.trim()) {
            None | Some("") => 0,
            Some(text) => text.parse::<u32>().map(i64::from).unwrap_or_else(|_| {
                self.problems.push(FieldViolation::new(name, "must be a whole number from 0"));
                0
            }),
        }
    }

    /// An RFC 3339 time (`2026-12-01T00:00:00Z`); `None` when absent or empty.
    pub fn time(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let text = self.pairs.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())?;
        match DateTime::parse_from_rfc3339(text) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                self.problems.push(FieldViolation::new(name, "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"));
                None
            }
        }
    }

    /// `Ok` when every parameter read was well formed, else 400 naming each bad one.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() { Ok(()) } else { Err(ApiError::bad_request(self.problems)) }
    }
}

/// How many a list holds in all.
pub fn total(total: u64) -> i64 {
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// A `true`/`false` query parameter (`false` when absent); anything else is 400 naming it.
pub fn flag(query: Option<&str>, name: &str) -> Result<bool, ApiError> {
    let given = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned());
    match given.as_deref().map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request(vec![FieldViolation::new(name, "must be true or false")])),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::Changes;
    use crate::http::admin::error::decode_body;

    #[test]
    fn limits_are_an_object_or_null_never_an_array() {
        let err = decode_body::<Changes>(br#"{"limits": [1, 2, 3, 4]}"#).expect_err("an array is refused");
        assert!(format!("{err:?}").contains("\"limits\""), "the field is named: {err:?}");
        assert_eq!(err.respond("r").status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err = decode_body::<Changes>(br#"{"limits": {"colour": 1}}"#).expect_err("an unknown field");
        assert!(format!("{err:?}").contains("limits.colour"), "the path reaches into it: {err:?}");
        let patch = decode_body::<Changes>(br#"{"limits": {"max_quota": 10}}"#).expect("an object");
        assert_eq!(patch.limits.and_then(|l| l.max_quota), Some(Some(10)));
        assert!(decode_body::<Changes>(br#"{"limits": null}"#).expect("null").limits.is_none());
    }

    #[test]
    fn a_null_body_is_no_body() {
        let changes = decode_body::<Changes>(b"null").expect("null, as the document allows");
        assert!(changes.name.is_none() && changes.limits.is_none());
    }
}
