//! Request-field checks shared by the admin use cases; each returns the problems it found, so a
//! request's every mistake is reported at once.

use super::error::{CoreError, FieldViolation};
use super::model::{Labels, Page};

/// A credential's labels: at most this many, names and values at most this long.
pub const MAX_LABELS: usize = 20;
pub const MAX_LABEL_NAME: usize = 63;
pub const MAX_LABEL_VALUE: usize = 256;

/// The reference's pagination: default 20 items, at most 100.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// Collects field violations, then turns them into one INVALID_ARGUMENT.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn extend(&mut self, more: Vec<FieldViolation>) {
        self.0.extend(more);
    }

    /// `Ok` when nothing was found.
    pub fn finish(self) -> Result<(), CoreError> {
        if self.0.is_empty() { Ok(()) } else { Err(CoreError::InvalidArgument(self.0)) }
    }

    /// Checks a required display text of at most `max` characters.
    pub fn required_text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "is required");
        } else {
            self.optional_text(field, value, max);
        }
    }

    /// Checks an optional display text of at most `max` characters, without control characters.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
        if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            self.add(field, "must not contain control characters");
        }
    }

    /// Checks `offset`/`limit` and returns the page they ask for (defaults applied).
    pub fn page(&mut self, offset: i64, limit: i64) -> Page {
        if offset < 0 {
            self.add("offset", "must not be negative");
        }
        if limit < 0 {
            self.add("limit", "must not be negative");
        } else if limit > MAX_LIMIT {
            self.add("limit", format!("must be at most {MAX_LIMIT}"));
        }
        let limit = if limit <= 0 { DEFAULT_LIMIT } else { limit.min(MAX_LIMIT) };
        Page { offset: offset.max(0).unsigned_abs(), limit: limit.unsigned_abs() }
    }

    /// Checks a day count in `1..=max` from field `field`.
    /// Labels: at most [`MAX_LABELS`]; each name 1 to [`MAX_LABEL_NAME`] lowercase letters,
    /// digits and `._/-`, starting with a letter or digit; each value up to
    /// [`MAX_LABEL_VALUE`] characters with no quote, backslash or control character.
    pub fn labels(&mut self, field: &str, labels: &Labels) {
        if labels.len() > MAX_LABELS {
            self.add(field, format!("at most {MAX_LABELS} labels"));
        }
        for (name, value) in labels {
            if !is_valid_label_name(name) {
                self.add(
                    format!("{field}.{name}"),
                    format!("a label name is 1 to {MAX_LABEL_NAME} lowercase letters, digits or ._/- starting with a letter or digit"),
                );
            }
            if value.chars().count() > MAX_LABEL_VALUE {
                self.add(format!("{field}.{name}"), format!("must be at most {MAX_LABEL_VALUE} characters"));
            } else if value.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                self.add(format!("{field}.{name}"), "must hold no quote, backslash or control character");
            }
        }
    }

    pub fn days(&mut self, field: &str, days: i64, min: i64, max: i64) {
        if days < min || days > max {
            self.add(field, format!("must be between {min} and {max}"));
        }
    }
}

/// Whether `slug` is an organization slug: 2 to 63 lowercase letters, digits or `-`, starting with
/// a letter and not ending with `-`.
fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_LABEL_NAME
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '/' | '-'))
}

pub fn is_valid_slug(slug: &str) -> bool {
    (2..=63).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && !slug.ends_with('-')
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
