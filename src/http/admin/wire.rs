//! What the admin API's resources share on the wire: times, limits, changes, list parameters.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use keygate_core::admin::ListRequest;
use keygate_core::error::FieldViolation;
use keygate_core::model::{KeyStatus, Labels, LimitField, LimitOverrides};
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
    /// Replaces every label; `{}` removes them all.
    #[schema(example = json!({"owner": "secops", "env": "prod"}))]
    pub labels: Option<Labels>,
}

impl From<Changes> for KeyChanges {
    fn from(body: Changes) -> Self {
        let (limits, reset_limits) = body.limits.as_ref().map(LimitsPatch::changes).unwrap_or_default();
        let Changes { name, description, scopes, labels, .. } = body;
        Self { name, description, scopes, limits, reset_limits, labels }
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
    pub fn changes(&self) -> (LimitOverrides, Vec<String>) {
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
fn apply<T: Copy>(patch: Option<Option<T>>, field: LimitField, target: &mut Option<T>, resets: &mut Vec<String>) {
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

/// The parameters of a list of keys, as the document describes them ([`listing`] reads them).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[allow(dead_code, reason = "read by the OpenAPI document only; listing() reads the query")]
#[into_params(parameter_in = Query)]
pub struct KeyListParams {
    /// Matches names, descriptions and label values, case-insensitively.
    pub search: Option<String>,
    /// How many to skip.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 4_294_967_295_u32)]
    pub offset: Option<u32>,
    /// How many to return: 20 when unset or 0, at most 100.
    #[param(minimum = 0, maximum = 100)]
    pub limit: Option<u32>,
    /// The organization to list, for platform admins; others always list their own.
    pub organization: Option<String>,
    /// Only keys of this status now.
    #[param(inline, value_type = Option<KeyStatusName>)]
    pub status: Option<String>,
    /// Only active keys expiring within this many days.
    #[param(minimum = 1)]
    pub expiring_within_days: Option<u32>,
    /// Only keys not used since this time (RFC 3339); never-used ones included.
    #[param(format = DateTime)]
    pub unused_since: Option<String>,
    /// `NAME=VALUE`: only keys carrying this label; repeat for more, all must match.
    pub label: Option<Vec<String>>,
}

/// The parameters of a list of clients, as the document describes them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[allow(dead_code, reason = "read by the OpenAPI document only; listing() reads the query")]
#[into_params(parameter_in = Query)]
pub struct ClientListParams {
    /// Matches ids, names, descriptions and label values, case-insensitively.
    pub search: Option<String>,
    #[param(value_type = Option<u64>, minimum = 0, maximum = 4_294_967_295_u32)]
    pub offset: Option<u32>,
    /// How many to return: 20 when unset or 0, at most 100.
    #[param(minimum = 0, maximum = 100)]
    pub limit: Option<u32>,
    /// The organization to list, for platform admins; others always list their own.
    pub organization: Option<String>,
    /// Only clients of this status.
    #[param(inline, value_type = Option<ClientStatusName>)]
    pub status: Option<String>,
    /// Only clients that have not obtained or presented a token since this time (RFC 3339).
    #[param(format = DateTime)]
    pub unused_since: Option<String>,
    /// `NAME=VALUE`: only clients carrying this label; repeat for more, all must match.
    pub label: Option<Vec<String>>,
}

/// A key status, as lists filter by it.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code, reason = "the OpenAPI document's name for the values KEY_STATUSES reads")]
#[serde(rename_all = "lowercase")]
pub enum KeyStatusName {
    Active,
    Expired,
    Disabled,
}

/// A client status, as lists filter by it.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code, reason = "the OpenAPI document's name for the values CLIENT_STATUSES reads")]
#[serde(rename_all = "lowercase")]
pub enum ClientStatusName {
    Active,
    Disabled,
}

/// The statuses a list of keys filters by.
pub const KEY_STATUSES: &[(&str, KeyStatus)] =
    &[("active", KeyStatus::Active), ("expired", KeyStatus::Expired), ("disabled", KeyStatus::Disabled)];
/// The statuses a list of clients filters by.
pub const CLIENT_STATUSES: &[(&str, KeyStatus)] = &[("active", KeyStatus::Active), ("disabled", KeyStatus::Disabled)];

/// A list's parameters read from a query string: every bad one named (400); unknown ones
/// ignored, as HTTP has it. `statuses` are those the listed kind has.
pub fn listing(query: Option<&str>, statuses: &[(&str, KeyStatus)]) -> Result<ListRequest, ApiError> {
    let mut query = Query::parse(query);
    let status = query.text("status");
    let status = match statuses.iter().find(|(name, _)| *name == status.trim()) {
        Some((_, status)) => Some(*status),
        None if status.trim().is_empty() => None,
        None => {
            let names: Vec<&str> = statuses.iter().map(|(name, _)| *name).collect();
            query.problem("status", format!("must be one of {}", names.join(", ")));
            None
        }
    };
    let mut labels = Labels::new();
    for label in query.all("label") {
        match label.split_once('=') {
            Some((name, value)) => {
                labels.insert(name.to_owned(), value.to_owned());
            }
            None => query.problem("label", "must be NAME=VALUE"),
        }
    }
    let listing = ListRequest {
        search: query.text("search"),
        offset: query.number("offset"),
        limit: query.number("limit"),
        organization: query.text("organization"),
        status,
        expiring_within_days: query.optional_number("expiring_within_days"),
        unused_since: query.time("unused_since"),
        labels,
    };
    query.finish().map(|()| listing)
}

/// A query string's parameters, read one by one; the problems found are reported together.
pub struct Query {
    pairs: Vec<(String, String)>,
    problems: Vec<FieldViolation>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        Self { pairs, problems: Vec::new() }
    }

    /// The last value of a parameter, trimmed; `None` when absent or empty.
    fn value(&self, name: &str) -> Option<String> {
        let value = self.pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.trim());
        value.filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// Every value of a repeated parameter, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone()).collect()
    }

    /// Records a problem with a parameter.
    pub fn problem(&mut self, name: &str, message: impl Into<String>) {
        self.problems.push(FieldViolation::new(name, message));
    }

    /// A text parameter; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default()
    }

    /// A whole number from 0; 0 when absent or empty.
    pub fn number(&mut self, name: &str) -> i64 {
        self.optional_number(name).unwrap_or(0)
    }

    /// A whole number from 0; `None` when absent or empty.
    pub fn optional_number(&mut self, name: &str) -> Option<i64> {
        let text = self.value(name)?;
        match text.parse::<u32>() {
            Ok(number) => Some(i64::from(number)),
            Err(_) => {
                self.problem(name, "must be a whole number from 0");
                None
            }
        }
    }

    /// `true` or `false`; `false` when absent or empty.
    pub fn flag(&mut self, name: &str) -> bool {
        match self.value(name).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                self.problem(name, "must be true or false");
                false
            }
        }
    }

    /// An RFC 3339 time (`2026-12-01T00:00:00Z`); `None` when absent or empty.
    pub fn time(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let text = self.value(name)?;
        match DateTime::parse_from_rfc3339(&text) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                self.problem(name, "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z");
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
