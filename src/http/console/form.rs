//! A posted HTML form, read field by field, and the problems found in it, each kept beside the
//! field it concerns so that the page shows it there.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::StatusCode;

use keygate_core::error::{CoreError, FieldViolation};
use keygate_core::model::{Labels, LimitField, LimitOverrides};
use keygate_core::ports::KeyChanges;

/// The fields of a posted form (`application/x-www-form-urlencoded`).
#[derive(Debug, Default, Clone)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn parse(body: &Bytes) -> Self {
        Self { pairs: form_urlencoded::parse(body).into_owned().collect() }
    }

    /// A form from a query string, for the filters of a list.
    pub fn query(query: Option<&str>) -> Self {
        Self { pairs: form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect() }
    }

    /// The last value of a field, as sent; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default()
    }

    /// Every value of a repeated field (checkboxes), in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone()).collect()
    }

    /// Whether a checkbox was ticked.
    pub fn ticked(&self, name: &str) -> bool {
        self.pairs.iter().any(|(key, _)| key == name)
    }
}

/// Problems with a form's fields, by field name as the form spells it.
#[derive(Debug, Default, Clone)]
pub struct Problems {
    by_field: BTreeMap<String, Vec<String>>,
    /// Problems that concern no field of the form.
    pub general: Vec<String>,
}

impl Problems {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.by_field.entry(field.to_owned()).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty() && self.general.is_empty()
    }

    /// The problems with field `name`, `scopes[2]` and `limits.max_quota` counting as problems
    /// of `scopes` and `max_quota`.
    pub fn of(&self, name: &str) -> Vec<String> {
        self.by_field
            .iter()
            .filter(|(field, _)| field_of(field) == name)
            .flat_map(|(field, messages)| messages.iter().map(move |m| describe(field, m)))
            .collect()
    }

    /// The core's answer to a form: its field problems placed by field (those naming no field
    /// in `fields` are general), anything else one general message.
    pub fn from_error(err: &CoreError, fields: &[&str]) -> Self {
        let mut problems = Self::default();
        match err {
            CoreError::InvalidArgument(violations) => {
                for FieldViolation { field, description } in violations {
                    if fields.contains(&field_of(field)) {
                        problems.add(field, description.clone());
                    } else {
                        problems.general.push(format!("{field}: {description}"));
                    }
                }
            }
            other => problems.general.push(other.to_string()),
        }
        problems
    }
}

/// The form field a problem's field belongs to: `scopes[2]` → `scopes`, `limits.max_quota` →
/// `max_quota`.
fn field_of(field: &str) -> &str {
    let field = field.split('[').next().unwrap_or(field);
    field.rsplit('.').next().unwrap_or(field)
}

fn describe(field: &str, message: &str) -> String {
    match field.find('[') {
        Some(at) => format!("{}: {message}", &field[at..]),
        None => message.to_owned(),
    }
}

/// A whole number field: `None` when empty; a problem when not a number from 0.
pub fn number<T: std::str::FromStr>(form: &Form, name: &str, problems: &mut Problems) -> Option<T> {
    let text = form.text(name);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse::<T>() {
        Ok(value) => Some(value),
        Err(_) => {
            problems.add(name, "must be a whole number from 0");
            None
        }
    }
}

/// The limit fields of a form; empty ones take the configured default.
pub fn limits(form: &Form, problems: &mut Problems) -> LimitOverrides {
    let mut limits = LimitOverrides::default();
    for field in LimitField::ALL {
        limits.set(field, number(form, field.name(), problems));
    }
    limits
}

/// The limits a form changes from `current`: those set to another number, and the names of
/// those emptied (back to the configured default).
fn limit_changes(form: &Form, current: &LimitOverrides, problems: &mut Problems) -> (LimitOverrides, Vec<String>) {
    let asked = limits(form, problems);
    let mut set = LimitOverrides::default();
    let mut resets = Vec::new();
    for field in LimitField::ALL {
        match (asked.get(field), current.get(field)) {
            (Some(value), now) if Some(value) != now => set.set(field, Some(value)),
            (None, Some(_)) => resets.push(field.name().to_owned()),
            _ => {}
        }
    }
    (set, resets)
}

/// The four limit fields as posted.
pub fn limit_texts(form: &Form) -> [String; 4] {
    LimitField::ALL.map(|field| form.text(field.name()))
}

/// A credential's limits as the form's four fields show them.
pub fn limit_values(limits: &LimitOverrides) -> [String; 4] {
    LimitField::ALL.map(|field| limits.get(field).map(|v| v.to_string()).unwrap_or_default())
}

/// A key's or client's fields as they stand, for [`changes`].
pub struct Current<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub scopes: &'a [String],
    pub limits: &'a LimitOverrides,
    pub labels: &'a Labels,
}

/// What an edit form changes of a key or client: only the fields it changed, so that an admin
/// may edit a credential holding scopes the admin does not (the subset rule applies to a change
/// of scopes only). Its problems, if any, in `problems`.
pub fn changes(form: &Form, current: &Current<'_>, problems: &mut Problems) -> KeyChanges {
    let (limits, reset_limits) = limit_changes(form, current.limits, problems);
    let labels = labels(form, problems);
    let changed = |new: String, old: &str| (new != old).then_some(new);
    let scopes = form.all("scopes");
    KeyChanges {
        name: changed(form.text("name"), current.name),
        description: changed(form.text("description"), current.description),
        scopes: (scopes != current.scopes).then_some(scopes),
        limits,
        reset_limits,
        labels: (&labels != current.labels).then_some(labels),
    }
}

/// The status of a form the use cases refused: 422 for problems with its fields, as a form's
/// own checks answer, else the code table's.
pub fn form_status(err: &CoreError) -> StatusCode {
    match err {
        CoreError::InvalidArgument(_) => StatusCode::UNPROCESSABLE_ENTITY,
        other => StatusCode::from_u16(other.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Saves an edit form's `changes` with `save`, unless the form had problems (422) or changed
/// nothing; a refusal comes back with its status and its problems placed among `fields`.
pub async fn save<T>(
    problems: Problems,
    changes: KeyChanges,
    fields: &[&str],
    save: impl AsyncFnOnce(KeyChanges) -> Result<T, CoreError>,
) -> Result<(), (StatusCode, Problems)> {
    if !problems.is_empty() {
        return Err((StatusCode::UNPROCESSABLE_ENTITY, problems));
    }
    if changes == KeyChanges::default() {
        return Ok(());
    }
    match save(changes).await {
        Ok(_) => Ok(()),
        Err(err) => Err((form_status(&err), Problems::from_error(&err, fields))),
    }
}

/// Labels written one `name=value` per line.
pub fn labels(form: &Form, problems: &mut Problems) -> Labels {
    let mut labels = Labels::new();
    for line in form.text("labels").lines().map(str::trim).filter(|line| !line.is_empty()) {
        match line.split_once('=') {
            Some((name, value)) => {
                labels.insert(name.trim().to_owned(), value.trim().to_owned());
            }
            None => problems.add("labels", format!("{line:?} is not name=value")),
        }
    }
    labels
}

/// Labels as the form's text area shows them.
pub fn labels_text(labels: &Labels) -> String {
    labels.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_placed_by_their_field() {
        let err = CoreError::InvalidArgument(vec![
            FieldViolation::new("scopes[1]", "is not a scope"),
            FieldViolation::new("limits.max_quota", "too big"),
            FieldViolation::new("organization_id", "unknown"),
        ]);
        let problems = Problems::from_error(&err, &["scopes", "max_quota"]);
        assert_eq!(problems.of("scopes"), vec!["[1]: is not a scope"]);
        assert_eq!(problems.of("max_quota"), vec!["too big"]);
        assert_eq!(problems.general, vec!["organization_id: unknown"]);
    }

    #[test]
    fn numbers_and_labels_are_read_with_their_problems() {
        let form = Form::parse(&Bytes::from_static(b"max_quota=12&rate_limit_burst=x&labels=env%3Dprod%0Abad"));
        let mut problems = Problems::default();
        let limits = limits(&form, &mut problems);
        assert_eq!(limits.max_quota, Some(12));
        assert_eq!(problems.of("rate_limit_burst").len(), 1);
        let labels = labels(&form, &mut problems);
        assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(problems.of("labels").len(), 1);
    }
}
