//! The console's page shell (header, navigation, sign-out) and the pieces every page uses:
//! fields with their problems beside them, notices, tables' dates, error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::Signed;
use super::form::{Form, Problems};
use keygate_core::error::CoreError;

/// The sections of the navigation: path, label, and the scope that shows it.
const SECTIONS: &[(&str, &str, &str)] = &[
    ("/console/keys", "API keys", "admin:keys:read"),
    ("/console/clients", "API clients", "admin:clients:read"),
    ("/console/organizations", "Organizations", "admin:orgs:read"),
    ("/console/audit", "Audit log", "admin:audit:read"),
];

/// A whole page for a signed-in admin, `section` marked current in the navigation.
pub fn signed(signed: &Signed, section: &str, title: &str, body: Markup) -> Markup {
    let identity = &signed.identity;
    shell(
        title,
        html! {
            header.top {
                a.brand href="/console" { "keygate" }
                nav aria-label="Sections" {
                    ul {
                        @for (path, label, scope) in SECTIONS {
                            @if identity.holds(scope) {
                                li { a href=(path) aria-current=[(*path == section).then_some("page")] { (label) } }
                            }
                        }
                    }
                }
                div.who {
                    span { (identity.name) " · " code { (identity.id) } " · " (identity.organization) }
                    form method="post" action="/console/sign-out" {
                        input type="hidden" name="csrf" value=(signed.session.csrf);
                        button.link type="submit" { "Sign out" }
                    }
                }
            }
            main id="main" { (body) }
        },
    )
}

/// The document around a page's content.
pub fn shell(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · keygate console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (content)
            }
        }
    }
}

/// A page as an HTML response with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A text input with its label, hint and problems.
pub fn field(name: &str, label: &str, value: &str, kind: &str, hint: &str, problems: &Problems) -> Markup {
    let errors = problems.of(name);
    let described = describedby(name, hint, &errors);
    html! {
        div.field {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value) aria-describedby=[described]
                aria-invalid=[(!errors.is_empty()).then_some("true")];
            (hint_and_errors(name, hint, &errors))
        }
    }
}

/// A text area with its label, hint and problems.
pub fn area(name: &str, label: &str, value: &str, hint: &str, problems: &Problems) -> Markup {
    let errors = problems.of(name);
    let described = describedby(name, hint, &errors);
    html! {
        div.field {
            label for=(name) { (label) }
            textarea id=(name) name=(name) rows="3" aria-describedby=[described]
                aria-invalid=[(!errors.is_empty()).then_some("true")] { (value) }
            (hint_and_errors(name, hint, &errors))
        }
    }
}

fn describedby(name: &str, hint: &str, errors: &[String]) -> Option<String> {
    let mut ids = Vec::new();
    if !hint.is_empty() {
        ids.push(format!("{name}-hint"));
    }
    if !errors.is_empty() {
        ids.push(format!("{name}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

pub fn hint_and_errors(name: &str, hint: &str, errors: &[String]) -> Markup {
    html! {
        @if !hint.is_empty() { p.hint id={(name) "-hint"} { (hint) } }
        @if !errors.is_empty() {
            p.error id={(name) "-error"} role="alert" {
                @for (i, error) in errors.iter().enumerate() { @if i > 0 { br; } (error) }
            }
        }
    }
}

/// Scopes to pick from, as checkboxes, `chosen` ticked.
pub fn scope_picker(grantable: &[String], chosen: &[String], problems: &Problems) -> Markup {
    let errors = problems.of("scopes");
    html! {
        fieldset.scopes aria-describedby=[(!errors.is_empty()).then_some("scopes-error")] {
            legend { "Scopes" }
            @for scope in grantable {
                @let id = format!("scope-{}", scope.replace(':', "-"));
                div.check {
                    input type="checkbox" id=(id) name="scopes" value=(scope) checked[chosen.contains(scope)];
                    label for=(id) { code { (scope) } }
                }
            }
            (hint_and_errors("scopes", "", &errors))
        }
    }
}

/// The scopes a credential's form offers: those the admin may grant, and those the credential
/// has besides (kept unless unticked).
pub fn scope_choices(grantable: &[String], held: &[String]) -> Vec<String> {
    let mut choices = grantable.to_vec();
    choices.extend(held.iter().filter(|scope| !grantable.contains(scope)).cloned());
    choices
}

/// The four limit fields.
pub fn limit_fields(values: [String; 4], problems: &Problems) -> Markup {
    let [rate, burst, quota, concurrency] = values;
    html! {
        fieldset.limits {
            legend { "Limits" }
            p.hint { "Empty: the configured default. 0: no limit of that sort." }
            (field("rate_limit_per_minute", "Requests per minute", &rate, "number", "", problems))
            (field("rate_limit_burst", "Burst", &burst, "number", "", problems))
            (field("max_quota", "Requests per month", &quota, "number", "", problems))
            (field("max_concurrency", "Concurrent slots", &concurrency, "number", "", problems))
        }
    }
}

/// What a form could not place by field, above the form.
pub fn general_problems(problems: &Problems) -> Markup {
    html! {
        @if !problems.general.is_empty() {
            div.notice.bad role="alert" {
                @for problem in &problems.general { p { (problem) } }
            }
        }
    }
}

/// Rows on a page of a list.
pub const PAGE_SIZE: i64 = 20;
/// A key or client not used for this long is flagged on its list.
pub const UNUSED_DAYS: i64 = 30;

/// Whether a credential went unused (or, never used, was created) more than [`UNUSED_DAYS`]
/// before `now`: flagged on the lists.
pub fn unused(last_used_at: Option<DateTime<Utc>>, created_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    last_used_at.unwrap_or(created_at) < now - chrono::Duration::days(UNUSED_DAYS)
}

/// Where a page of a list starts, from its query (0 when absent or not a number).
pub fn offset(query: &Form) -> i64 {
    query.text("offset").parse::<i64>().unwrap_or(0).max(0)
}

/// Links to the previous and next pages of a list, keeping its filters.
pub fn pager(path: &str, query: &Form, offset: i64, total: u64) -> Markup {
    let link = |offset: i64| {
        let mut params = form_urlencoded::Serializer::new(String::new());
        for name in ["q", "status", "show", "organization", "actor", "action", "target"] {
            let value = query.text(name);
            if !value.is_empty() {
                params.append_pair(name, &value);
            }
        }
        params.append_pair("offset", &offset.to_string());
        format!("{path}?{}", params.finish())
    };
    let total = i64::try_from(total).unwrap_or(i64::MAX);
    html! {
        nav.pager aria-label="Pages" {
            @if offset > 0 { a href=(link((offset - PAGE_SIZE).max(0))) rel="prev" { "← Previous" } }
            @if total > 0 { span { (offset + 1) "–" ((offset + PAGE_SIZE).min(total)) " of " (total) } }
            @if offset + PAGE_SIZE < total { a href=(link(offset + PAGE_SIZE)) rel="next" { "Next →" } }
        }
    }
}

/// A list's filters: the search, the `statuses` and `shows` to pick from (value, label), and the
/// organization for platform admins; each kept from `query`.
pub fn list_filters(
    signed: &Signed,
    query: &Form,
    action: &str,
    search_hint: &str,
    statuses: &[(&str, &str)],
    shows: &[(&str, &str)],
) -> Markup {
    let select = |name: &str, label: &str, choices: &[(&str, &str)]| {
        html! {
            div.field {
                label for=(name) { (label) }
                select id=(name) name=(name) {
                    @for (value, text) in choices { option value=(value) selected[query.text(name) == *value] { (text) } }
                }
            }
        }
    };
    html! {
        form.filters method="get" action=(action) role="search" {
            div.field {
                label for="q" { "Search" }
                input id="q" name="q" type="search" value=(query.text("q")) placeholder=(search_hint);
            }
            (select("status", "Status", statuses))
            (select("show", "Show", shows))
            @if signed.identity.platform {
                div.field {
                    label for="organization" { "Organization" }
                    input id="organization" name="organization" value=(query.text("organization")) placeholder=(signed.identity.organization);
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

/// A time as tables show it (UTC, to the minute).
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn maybe_when(at: Option<DateTime<Utc>>, otherwise: &str) -> String {
    at.map_or_else(|| otherwise.to_owned(), when)
}

/// A secret shown this once, with a copy button and the warning that it will not be shown again.
pub fn shown_once(label: &str, secret: &str, warning: &str) -> Markup {
    html! {
        div.secret {
            label for="secret" { (label) }
            div.copyable {
                input id="secret" readonly value=(secret) data-secret aria-describedby="secret-warning";
                button type="button" data-copy="secret" hidden { "Copy" }
            }
            p.notice.warn id="secret-warning" role="alert" { (warning) }
        }
    }
}

/// An error answer of the admin use cases as a page.
pub fn failure(err: &CoreError) -> Response {
    let status = StatusCode::from_u16(err.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    refused(status, &err.to_string())
}

/// A page saying why a request was refused.
pub fn refused(status: StatusCode, message: &str) -> Response {
    let markup = shell(
        "Refused",
        html! {
            main id="main" {
                h1 { (status.canonical_reason().unwrap_or("Error")) }
                p.notice.bad role="alert" { (message) }
                p { a href="/console" { "Back to the console" } }
            }
        },
    );
    respond(status, markup)
}

pub fn not_found() -> Response {
    refused(StatusCode::NOT_FOUND, "There is no such page in the console.")
}

/// A page's hidden CSRF field.
pub fn csrf(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.session.csrf); }
}
