//! How answers are printed: JSON in snake_case built from the proto messages, or tables for
//! people. A new secret, in table form, is printed alone on stdout and everything about it on
//! stderr, so that `KEY=$(keygate keys create …)` captures the secret and nothing else.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::proto::keygate_v1 as pb;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// A new secret: alone on stdout, with what to know about it on stderr.
pub fn print_secret(secret: &str, about: &[(&str, String)]) {
    for (label, value) in about {
        eprintln!("{label}: {value}");
    }
    eprintln!("keygate: the secret below is shown once; store it now");
    println!("{secret}");
}

/// An RFC 3339 time in UTC, or null.
pub fn time(at: &Option<prost_types::Timestamp>) -> Value {
    text_time(at).map_or(Value::Null, Value::String)
}

/// An RFC 3339 time in UTC, if set.
pub fn text_time(at: &Option<prost_types::Timestamp>) -> Option<String> {
    let at = at.as_ref()?;
    let nanos = u32::try_from(at.nanos).unwrap_or(0);
    let at: DateTime<Utc> = DateTime::from_timestamp(at.seconds, nanos)?;
    Some(at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn or_dash(text: Option<String>) -> String {
    text.filter(|t| !t.is_empty()).unwrap_or_else(|| "-".to_owned())
}

pub fn limits(limits: &Option<pb::Limits>) -> Value {
    match limits {
        None => Value::Null,
        Some(l) => json!({
            "rate_limit_per_minute": l.rate_limit_per_minute,
            "rate_limit_burst": l.rate_limit_burst,
            "max_quota": l.max_quota,
            "max_concurrency": l.max_concurrency,
        }),
    }
}

fn limits_text(limits: &Option<pb::Limits>) -> String {
    let Some(l) = limits else { return "defaults".to_owned() };
    let part = |name: &str, value: Option<String>| value.map(|v| format!("{name}={v}"));
    let parts: Vec<String> = [
        part("rate_limit_per_minute", l.rate_limit_per_minute.map(|v| v.to_string())),
        part("rate_limit_burst", l.rate_limit_burst.map(|v| v.to_string())),
        part("max_quota", l.max_quota.map(|v| v.to_string())),
        part("max_concurrency", l.max_concurrency.map(|v| v.to_string())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() { "defaults".to_owned() } else { parts.join(" ") }
}

/// Labels as `name=value` pairs, or a dash.
fn labels_text(labels: &std::collections::BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(name, value)| format!("{name}={value}")).collect();
    if pairs.is_empty() { "-".to_owned() } else { pairs.join(" ") }
}

pub fn api_key(key: &pb::ApiKey) -> Value {
    json!({
        "key_id": key.key_id,
        "key_prefix": key.key_prefix,
        "name": key.name,
        "description": key.description,
        "status": key.status().as_str_name().to_lowercase(),
        "scopes": key.scopes,
        "organization": key.organization,
        "created_by": key.created_by,
        "created_at": time(&key.created_at),
        "updated_at": time(&key.updated_at),
        "expires_at": time(&key.expires_at),
        "last_used_at": time(&key.last_used_at),
        "last_rotated_at": time(&key.last_rotated_at),
        "previous_key_expires_at": time(&key.previous_key_expires_at),
        "disabled_at": time(&key.disabled_at),
        "limits": limits(&key.limits),
        "labels": key.labels,
    })
}

pub fn api_client(client: &pb::ApiClient) -> Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "description": client.description,
        "status": client.status().as_str_name().to_lowercase(),
        "scopes": client.scopes,
        "organization": client.organization,
        "created_by": client.created_by,
        "created_at": time(&client.created_at),
        "updated_at": time(&client.updated_at),
        "last_used_at": time(&client.last_used_at),
        "disabled_at": time(&client.disabled_at),
        "tokens_revoked_at": time(&client.tokens_revoked_at),
        "secret_regenerated_at": time(&client.secret_regenerated_at),
        "limits": limits(&client.limits),
        "labels": client.labels,
    })
}

pub fn organization(org: &pb::Organization) -> Value {
    json!({
        "slug": org.slug,
        "name": org.name,
        "plan": org.plan,
        "max_active_keys": org.max_active_keys,
        "platform": org.platform,
        "created_at": time(&org.created_at),
        "updated_at": time(&org.updated_at),
    })
}

pub fn audit_event(event: &pb::AuditEvent) -> Value {
    json!({
        "id": event.id,
        "time": time(&event.time),
        "actor": event.actor,
        "actor_kind": event.actor_kind,
        "organization": event.organization,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "peer": event.peer,
        "client_request_id": event.client_request_id,
    })
}

/// One record as `field: value` lines.
/// A credential's usage: one row per day, then its quota.
pub fn print_usage(format: Format, usage: &pb::CredentialUsage) {
    if format == Format::Json {
        let days: Vec<Value> = usage.days.iter().map(|d| json!({"day": d.day, "requests": d.requests})).collect();
        let quota = usage.quota.as_ref().map(|q| {
            json!({"quota": q.quota, "max_quota": q.max_quota, "next_window_refresh": time(&q.next_window_refresh)})
        });
        return print_json(&json!({"days": days, "quota": quota}));
    }
    let mut rows: Vec<(&str, String)> = usage.days.iter().map(|d| (d.day.as_str(), d.requests.to_string())).collect();
    let quota = match &usage.quota {
        Some(q) => format!("{} of {} left this month", q.quota, q.max_quota),
        None => "none".to_owned(),
    };
    rows.push(("quota", quota));
    print_record(&rows);
}

pub fn print_record(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in rows {
        println!("{label:<width$}  {value}");
    }
}

/// Rows under a header, columns padded to their widest cell, then the total on stderr.
/// How a list is printed: JSON `{"<field>": [...], "total": N}`, or a table with `header`.
pub struct ListShape<T> {
    pub field: &'static str,
    pub json: fn(&T) -> Value,
    pub header: &'static [&'static str],
    pub cells: fn(&T) -> Vec<String>,
}

/// Prints one page of a list in `format`.
pub fn print_list<T>(format: Format, shape: ListShape<T>, items: &[T], total: i64) {
    match format {
        Format::Json => {
            let listed: Vec<Value> = items.iter().map(shape.json).collect();
            print_json(&json!({ shape.field: listed, "total": total }));
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = items.iter().map(shape.cells).collect();
            print_table(shape.header, &rows, total);
        }
    }
}

pub fn print_table(header: &[&str], rows: &[Vec<String>], total: i64) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
    eprintln!("{} shown, {total} in all", rows.len());
}

pub fn key_rows(key: &pb::ApiKey) -> Vec<(&'static str, String)> {
    vec![
        ("key_id", key.key_id.clone()),
        ("key_prefix", key.key_prefix.clone()),
        ("name", key.name.clone()),
        ("description", or_dash(Some(key.description.clone()))),
        ("status", key.status().as_str_name().to_lowercase()),
        ("scopes", key.scopes.join(" ")),
        ("organization", key.organization.clone()),
        ("created_by", key.created_by.clone()),
        ("created_at", or_dash(text_time(&key.created_at))),
        ("updated_at", or_dash(text_time(&key.updated_at))),
        ("expires_at", or_dash(text_time(&key.expires_at))),
        ("last_used_at", or_dash(text_time(&key.last_used_at))),
        ("last_rotated_at", or_dash(text_time(&key.last_rotated_at))),
        ("previous_key_expires_at", or_dash(text_time(&key.previous_key_expires_at))),
        ("disabled_at", or_dash(text_time(&key.disabled_at))),
        ("limits", limits_text(&key.limits)),
        ("labels", labels_text(&key.labels)),
    ]
}

pub fn key_cells(key: &pb::ApiKey) -> Vec<String> {
    vec![
        key.key_id.clone(),
        key.name.clone(),
        key.status().as_str_name().to_lowercase(),
        key.scopes.join(","),
        or_dash(text_time(&key.expires_at)),
        or_dash(text_time(&key.last_used_at)),
    ]
}

pub fn client_rows(client: &pb::ApiClient) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", client.client_id.clone()),
        ("name", client.name.clone()),
        ("description", or_dash(Some(client.description.clone()))),
        ("status", client.status().as_str_name().to_lowercase()),
        ("scopes", client.scopes.join(" ")),
        ("organization", client.organization.clone()),
        ("created_by", client.created_by.clone()),
        ("created_at", or_dash(text_time(&client.created_at))),
        ("updated_at", or_dash(text_time(&client.updated_at))),
        ("last_used_at", or_dash(text_time(&client.last_used_at))),
        ("disabled_at", or_dash(text_time(&client.disabled_at))),
        ("tokens_revoked_at", or_dash(text_time(&client.tokens_revoked_at))),
        ("secret_regenerated_at", or_dash(text_time(&client.secret_regenerated_at))),
        ("limits", limits_text(&client.limits)),
        ("labels", labels_text(&client.labels)),
    ]
}

pub fn client_cells(client: &pb::ApiClient) -> Vec<String> {
    vec![
        client.client_id.clone(),
        client.name.clone(),
        client.status().as_str_name().to_lowercase(),
        client.scopes.join(","),
        or_dash(text_time(&client.last_used_at)),
    ]
}

pub fn organization_rows(org: &pb::Organization) -> Vec<(&'static str, String)> {
    vec![
        ("slug", org.slug.clone()),
        ("name", org.name.clone()),
        ("plan", org.plan.clone()),
        ("max_active_keys", org.max_active_keys.to_string()),
        ("platform", org.platform.to_string()),
        ("created_at", or_dash(text_time(&org.created_at))),
        ("updated_at", or_dash(text_time(&org.updated_at))),
    ]
}

pub fn organization_cells(org: &pb::Organization) -> Vec<String> {
    vec![
        org.slug.clone(),
        org.name.clone(),
        org.plan.clone(),
        org.max_active_keys.to_string(),
        if org.platform { "yes".to_owned() } else { "no".to_owned() },
    ]
}

pub fn audit_cells(event: &pb::AuditEvent) -> Vec<String> {
    vec![
        event.id.to_string(),
        or_dash(text_time(&event.time)),
        event.actor.clone(),
        event.action.clone(),
        or_dash(Some(event.target.clone())),
        event.outcome.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_in_utc_and_unset_ones_null() {
        let at = Some(prost_types::Timestamp { seconds: 1_774_569_600, nanos: 0 });
        assert_eq!(time(&at), json!("2026-03-27T00:00:00Z"));
        assert_eq!(time(&None), Value::Null);
    }

    #[test]
    fn a_key_s_json_has_its_fields_in_snake_case_and_no_secret() {
        let key = pb::ApiKey { key_id: "k_1".into(), status: 1, scopes: vec!["a:read".into()], ..Default::default() };
        let value = api_key(&key);
        assert_eq!(value["key_id"], "k_1");
        assert_eq!(value["status"], "active", "as the REST API writes it");
        assert!(value.get("previous_key_expires_at").is_some());
        assert!(value.get("api_key").is_none());
    }
}
