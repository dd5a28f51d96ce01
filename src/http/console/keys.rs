//! API keys in the console: the list with its filters and flags, creation with the key shown
//! once, a key's page (details, usage, changes, rotation) and disabling with a confirmation.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use maud::{Markup, html};

use super::form::{self, Form, Problems};
use super::page::{self, PAGE_SIZE, UNUSED_DAYS, csrf, field, maybe_when, when};
use super::{Console, Posted, Signed};
use keygate_core::admin::{KeyView, ListRequest, NewKey, RotateKey};
use keygate_core::model::KeyStatus;

/// Rows on a page of the list.
/// A key expiring within this many days is flagged on the list.
const EXPIRING_DAYS: i64 = 14;
/// The fields of the key forms, where the core's problems are shown.
const FIELDS: &[&str] = &[
    "name",
    "description",
    "scopes",
    "expires_in_days",
    "organization",
    "labels",
    "rate_limit_per_minute",
    "rate_limit_burst",
    "max_quota",
    "max_concurrency",
    "grace_period_days",
];
/// The reference's warning beside a key shown once.
const SHOWN_ONCE: &str = "The full API key is only shown once. Copy it now and store it securely (in a secrets \
                          manager, say): keygate keeps only a salted hash of it and cannot show it again.";

fn status_name(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "active",
        KeyStatus::Expired => "expired",
        KeyStatus::Disabled => "disabled",
    }
}

/// `GET /console/keys`: search, status, flags and pages.
pub async fn list(State(console): State<Arc<Console>>, signed: Signed, RawQuery(query): RawQuery) -> Response {
    let query = Form::query(query.as_deref());
    let now = console.clock.now();
    let offset = page::offset(&query);
    let status = match query.text("status").as_str() {
        "active" => Some(KeyStatus::Active),
        "expired" => Some(KeyStatus::Expired),
        "disabled" => Some(KeyStatus::Disabled),
        _ => None,
    };
    let show = query.text("show");
    let listing = ListRequest {
        search: query.text("q"),
        offset,
        limit: PAGE_SIZE,
        organization: query.text("organization"),
        status,
        expiring_within_days: (show == "expiring").then_some(EXPIRING_DAYS),
        unused_since: (show == "unused").then(|| now - Duration::days(UNUSED_DAYS)),
        ..ListRequest::default()
    };
    let (keys, total) = match console.admin.list_keys(&signed.ctx, &listing).await {
        Ok(found) => found,
        Err(err) => return page::failure(&err),
    };
    let body = html! {
        div.heading {
            h1 { "API keys" }
            @if signed.identity.holds("admin:keys:write") { a.button href="/console/keys/new" { "Create API key" } }
        }
        (page::list_filters(&signed, &query, "/console/keys", "name, description or label",
            &[("", "Any"), ("active", "Active"), ("expired", "Expired"), ("disabled", "Disabled")],
            &[("", "All"), ("expiring", "Expiring within 14 days"), ("unused", "Unused for 30 days")]))
        p.count { (total) " keys" }
        div.table {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Status" } th scope="col" { "Scopes" }
                    th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { "Attention" } } }
                tbody {
                    @for view in &keys {
                        tr {
                            td { a href={"/console/keys/" (view.key.key_id)} { (view.key.name) } }
                            td { code { (view.key.key_prefix) "…" } }
                            td { span class={"status " (status_name(view.status))} { (status_name(view.status)) } }
                            td { @for scope in &view.key.scopes { code.scope { (scope) } " " } }
                            td { (when(view.key.expires_at)) }
                            td { (maybe_when(view.key.last_used_at, "never")) }
                            td { @for flag in attention(view, now) { span.flag { (flag) } " " } }
                        }
                    }
                }
            }
        }
        (page::pager("/console/keys", &query, offset, total))
    };
    page::respond(StatusCode::OK, page::signed(&signed, "/console/keys", "API keys", body))
}

/// What the list flags about a key at `now`: active keys expiring within [`EXPIRING_DAYS`], and
/// active keys unused (or, never used, created) more than [`UNUSED_DAYS`] ago.
fn attention(view: &KeyView, now: DateTime<Utc>) -> Vec<&'static str> {
    let key = &view.key;
    let mut flags = Vec::new();
    if view.status != KeyStatus::Active {
        return flags;
    }
    if key.expires_at < now + Duration::days(EXPIRING_DAYS) {
        flags.push("expires soon");
    }
    if page::unused(key.last_used_at, key.created_at, now) {
        flags.push("unused 30 days");
    }
    flags
}

/// `GET /console/keys/new`.
pub async fn new(signed: Signed) -> Response {
    let markup = new_page(&signed, &Form::default(), &Problems::default());
    page::respond(StatusCode::OK, markup)
}

fn new_page(signed: &Signed, form: &Form, problems: &Problems) -> Markup {
    let body = html! {
        h1 { "Create API key" }
        (page::general_problems(problems))
        form.card method="post" action="/console/keys" novalidate {
            (csrf(signed))
            (field("name", "Name", &form.text("name"), "text", "Required; at most 100 characters.", problems))
            (page::area("description", "Description", &form.text("description"), "", problems))
            (page::scope_picker(&signed.identity.grantable, &form.all("scopes"), problems))
            (field("expires_in_days", "Expires in days", &form.text("expires_in_days"), "number",
                "Empty: the configured default.", problems))
            (page::limit_fields(form::limit_texts(form), problems))
            (page::area("labels", "Labels", &form.text("labels"), "One name=value per line.", problems))
            @if signed.identity.platform {
                (field("organization", "Organization", &form.text("organization"), "text",
                    "Empty: your own organization.", problems))
            }
            button type="submit" { "Create API key" }
        }
    };
    page::signed(signed, "/console/keys", "Create API key", body)
}

/// `POST /console/keys`: creates the key and shows it once.
pub async fn create(State(console): State<Arc<Console>>, Posted { signed, form }: Posted) -> Response {
    let mut problems = Problems::default();
    let request = NewKey {
        name: form.text("name"),
        description: form.text("description"),
        scopes: form.all("scopes"),
        expires_in_days: form::number(&form, "expires_in_days", &mut problems),
        organization: form.text("organization").trim().to_owned(),
        limits: form::limits(&form, &mut problems),
        labels: form::labels(&form, &mut problems),
    };
    if !problems.is_empty() {
        return page::respond(StatusCode::UNPROCESSABLE_ENTITY, new_page(&signed, &form, &problems));
    }
    let issued = match console.admin.create_key(&signed.ctx, request).await {
        Ok(issued) => issued,
        Err(err) => {
            let problems = Problems::from_error(&err, FIELDS);
            let status = form::form_status(&err);
            return page::respond(status, new_page(&signed, &form, &problems));
        }
    };
    let key = &issued.view.key;
    let body = html! {
        h1 { "API key created" }
        p { "Send it in the " code { "X-API-Key" } " header (or as " code { "Authorization: Bearer" } ")." }
        (page::shown_once("API key", &issued.api_key, SHOWN_ONCE))
        dl.facts {
            dt { "Name" } dd { (key.name) }
            dt { "Key id" } dd { code { (key.key_id) } }
            dt { "Expires" } dd { (when(key.expires_at)) }
        }
        p { a.button href={"/console/keys/" (key.key_id)} { "I have copied it: go to the key" } }
    };
    page::respond(StatusCode::CREATED, page::signed(&signed, "/console/keys", "API key created", body))
}

/// `GET /console/keys/{key_id}`.
pub async fn show(State(console): State<Arc<Console>>, signed: Signed, Path(key_id): Path<String>) -> Response {
    match console.admin.get_key(&signed.ctx, &key_id).await {
        Ok(view) => {
            let usage = super::usage::of_key(&console, &signed, &view.key.key_id).await;
            page::respond(StatusCode::OK, key_page(&signed, &view, &usage, None, &Problems::default()))
        }
        Err(err) => page::failure(&err),
    }
}

fn key_page(signed: &Signed, view: &KeyView, usage: &Markup, form: Option<&Form>, problems: &Problems) -> Markup {
    let key = &view.key;
    let writable = signed.identity.holds("admin:keys:write") && view.status != KeyStatus::Disabled;
    let value = |name: &str, current: String| form.map_or(current, |form| form.text(name));
    let scopes = form.map_or_else(|| key.scopes.clone(), |form| form.all("scopes"));
    let choices = page::scope_choices(&signed.identity.grantable, &key.scopes);
    let limits = form.map_or_else(|| form::limit_values(&key.limits), form::limit_texts);
    let body = html! {
        div.heading {
            h1 { (key.name) }
            span class={"status " (status_name(view.status))} { (status_name(view.status)) }
        }
        dl.facts {
            dt { "Key id" } dd { code { (key.key_id) } }
            dt { "Key" } dd { code { (key.key_prefix) "…" } }
            dt { "Organization" } dd { (key.organization) }
            dt { "Created" } dd { (when(key.created_at)) " by " a href={"/console/audit?actor=" (key.created_by)} { code { (key.created_by) } } }
            dt { "Expires" } dd { (when(key.expires_at)) }
            dt { "Last used" } dd { (maybe_when(key.last_used_at, "never")) }
            dt { "Last rotated" } dd { (maybe_when(key.last_rotated_at, "never")) }
            @if let Some(until) = view.previous_key_expires_at { dt { "Previous key works until" } dd { (when(until)) } }
            @if let Some(at) = key.disabled_at { dt { "Disabled" } dd { (when(at)) } }
            dt { "Scopes" } dd { @for scope in &key.scopes { code.scope { (scope) } " " } }
            dt { "History" } dd { a href={"/console/audit?target=" (key.key_id)} { "Audit entries about this key" } }
        }
        (usage)
        @if writable {
            section aria-labelledby="edit-title" {
                h2 id="edit-title" { "Change" }
                (page::general_problems(problems))
                form.card method="post" action={"/console/keys/" (key.key_id)} novalidate {
                    (csrf(signed))
                    (field("name", "Name", &value("name", key.name.clone()), "text", "", problems))
                    (page::area("description", "Description", &value("description", key.description.clone()), "", problems))
                    (page::scope_picker(&choices, &scopes, problems))
                    (page::limit_fields(limits, problems))
                    (page::area("labels", "Labels", &value("labels", form::labels_text(&key.labels)), "One name=value per line.", problems))
                    button type="submit" { "Save changes" }
                }
            }
            @if view.status == KeyStatus::Active {
                section aria-labelledby="rotate-title" {
                    h2 id="rotate-title" { "Rotate" }
                    form.card method="post" action={"/console/keys/" (key.key_id) "/rotate"} novalidate {
                        (csrf(signed))
                        p { "A new secret is made and shown once; the current one keeps working for the grace period." }
                        (field("grace_period_days", "Grace period in days", "7", "number", "0 ends the current secret at once.", problems))
                        button type="submit" { "Rotate key" }
                    }
                }
            }
            section aria-labelledby="disable-title" {
                h2 id="disable-title" { "Disable" }
                p { "Disabling is for good: the key and any grace-period secret stop working on every replica." }
                a.button.danger href={"/console/keys/" (key.key_id) "/disable"} { "Disable key…" }
            }
        }
    };
    page::signed(signed, "/console/keys", &key.name, body)
}

/// `POST /console/keys/{key_id}`: saves what the form changed.
pub async fn update(
    State(console): State<Arc<Console>>,
    Path(key_id): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    let view = match console.admin.get_key(&signed.ctx, &key_id).await {
        Ok(view) => view,
        Err(err) => return page::failure(&err),
    };
    let key = &view.key;
    let mut problems = Problems::default();
    let current = form::Current {
        name: &key.name,
        description: &key.description,
        scopes: &key.scopes,
        limits: &key.limits,
        labels: &key.labels,
    };
    let changes = form::changes(&form, &current, &mut problems);
    let save = async |changes| console.admin.update_key(&signed.ctx, &key_id, changes).await;
    match form::save(problems, changes, FIELDS, save).await {
        Ok(()) => Redirect::to(&format!("/console/keys/{key_id}")).into_response(),
        Err((status, problems)) => {
            let usage = super::usage::of_key(&console, &signed, &key_id).await;
            page::respond(status, key_page(&signed, &view, &usage, Some(&form), &problems))
        }
    }
}

/// `POST /console/keys/{key_id}/rotate`: shows the new key once.
pub async fn rotate(
    State(console): State<Arc<Console>>,
    Path(key_id): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    let mut problems = Problems::default();
    let grace_period_days = form::number(&form, "grace_period_days", &mut problems);
    if !problems.is_empty() {
        return page::refused(StatusCode::UNPROCESSABLE_ENTITY, &problems.of("grace_period_days").join("; "));
    }
    let request = RotateKey { key_id, grace_period_days, expires_in_days: None };
    let issued = match console.admin.rotate_key(&signed.ctx, request).await {
        Ok(issued) => issued,
        Err(err) => return page::failure(&err),
    };
    let key = &issued.view.key;
    let body = html! {
        h1 { "API key rotated" }
        (page::shown_once("New API key", &issued.api_key, SHOWN_ONCE))
        dl.facts {
            dt { "Key id" } dd { code { (key.key_id) } }
            dt { "The previous key works until" } dd { (maybe_when(issued.view.previous_key_expires_at, "now: it has stopped")) }
        }
        p { a.button href={"/console/keys/" (key.key_id)} { "I have copied it: go to the key" } }
    };
    page::respond(StatusCode::OK, page::signed(&signed, "/console/keys", "API key rotated", body))
}

/// `GET /console/keys/{key_id}/disable`: asks first (a page, so that it works without JavaScript).
pub async fn confirm_disable(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(key_id): Path<String>,
) -> Response {
    let view = match console.admin.get_key(&signed.ctx, &key_id).await {
        Ok(view) => view,
        Err(err) => return page::failure(&err),
    };
    let body = html! {
        h1 { "Disable " (view.key.name) "?" }
        p.notice.warn { "The key " code { (view.key.key_prefix) "…" } " and any grace-period secret stop working at once, for good. This cannot be undone." }
        form method="post" action={"/console/keys/" (key_id) "/disable"} {
            (csrf(&signed))
            button.danger type="submit" { "Disable key" }
            " "
            a href={"/console/keys/" (key_id)} { "Cancel" }
        }
    };
    page::respond(StatusCode::OK, page::signed(&signed, "/console/keys", "Disable key", body))
}

/// `POST /console/keys/{key_id}/disable`.
pub async fn disable(
    State(console): State<Arc<Console>>,
    Path(key_id): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    match console.admin.disable_key(&signed.ctx, &key_id).await {
        Ok(_) => Redirect::to(&format!("/console/keys/{key_id}")).into_response(),
        Err(err) => page::failure(&err),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::attention;
    use keygate_core::admin::KeyView;
    use keygate_core::model::{ApiKeyRecord, KeyStatus, StoredSecret};

    fn view(
        created_days_ago: i64,
        last_used_days_ago: Option<i64>,
        expires_in_days: i64,
        now: DateTime<Utc>,
    ) -> KeyView {
        let key = ApiKeyRecord {
            key_id: "k_abc123def456".into(),
            key_prefix: "sk_live_k_abc123def456".into(),
            organization: "acme".into(),
            name: "n".into(),
            description: String::new(),
            scopes: vec![],
            secret_hash: StoredSecret { phc: String::new(), fingerprint: None },
            previous_secret_hash: None,
            previous_key_expires_at: None,
            created_by: "k_creator00000".into(),
            created_at: now - Duration::days(created_days_ago),
            updated_at: now,
            expires_at: now + Duration::days(expires_in_days),
            disabled_at: None,
            last_used_at: last_used_days_ago.map(|days| now - Duration::days(days)),
            last_rotated_at: None,
            limits: Default::default(),
            labels: Default::default(),
        };
        KeyView { key, status: KeyStatus::Active, previous_key_expires_at: None }
    }

    #[test]
    fn keys_expiring_within_14_days_and_unused_for_30_are_flagged() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert!(attention(&view(1, Some(0), 365, now), now).is_empty(), "a busy key with a year left");
        assert_eq!(attention(&view(1, Some(0), 13, now), now), vec!["expires soon"]);
        assert_eq!(attention(&view(40, Some(31), 365, now), now), vec!["unused 30 days"]);
        assert_eq!(attention(&view(40, None, 365, now), now), vec!["unused 30 days"], "never used, made long ago");
        assert!(attention(&view(2, None, 365, now), now).is_empty(), "never used, but new");
        let mut disabled = view(40, None, 3, now);
        disabled.status = KeyStatus::Disabled;
        assert!(attention(&disabled, now).is_empty(), "nothing to do about a disabled key");
    }
}
