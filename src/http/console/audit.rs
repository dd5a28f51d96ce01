//! The audit log in the console, filtered by actor, action, target and time, each entry's actor
//! and target linked to their pages.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};

use super::form::{Form, Problems};
use super::page::{self, PAGE_SIZE, when};
use super::{Console, Signed};
use keygate_core::admin::audit::AuditListing;
use keygate_core::model::AuditEntry;

/// The console page of a credential or organization an entry names, when it has one.
fn page_of(kind: &str, id: &str) -> Option<String> {
    let section = match kind {
        "api_key" => "keys",
        "client" | "api_client" => "clients",
        "organization" => "organizations",
        _ => return None,
    };
    (!id.is_empty()).then(|| format!("/console/{section}/{id}"))
}

/// What kind of thing an entry's target is, from its action (`api_key.rotate`), or the actor's
/// kind for a sign-in.
fn target_kind(entry: &AuditEntry) -> &str {
    match entry.action.split_once('.').map(|(noun, _)| noun) {
        Some("admin") => entry.actor_kind.as_str(),
        Some(noun) => noun,
        None => "",
    }
}

fn linked(kind: &str, id: &str) -> Markup {
    match page_of(kind, id) {
        Some(href) => html! { a href=(href) { code { (id) } } },
        None => html! { code { (id) } },
    }
}

/// A day (`2026-12-01`) as the start of that day, UTC.
fn day(form: &Form, name: &str, problems: &mut Problems) -> Option<DateTime<Utc>> {
    let text = form.text(name);
    if text.trim().is_empty() {
        return None;
    }
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(date) => date.and_hms_opt(0, 0, 0).map(|at| at.and_utc()),
        Err(_) => {
            problems.add(name, "must be a date, e.g. 2026-12-01");
            None
        }
    }
}

/// `GET /console/audit`.
pub async fn list(State(console): State<Arc<Console>>, signed: Signed, RawQuery(query): RawQuery) -> Response {
    let query = Form::query(query.as_deref());
    let offset = page::offset(&query);
    let mut problems = Problems::default();
    let start = day(&query, "from", &mut problems);
    // The whole of the last day asked for.
    let end = day(&query, "until", &mut problems).map(|at| at + chrono::Duration::days(1));
    let listing = AuditListing {
        start,
        end,
        actor: query.text("actor"),
        action: query.text("action"),
        target: query.text("target"),
        organization: query.text("organization"),
        offset,
        limit: PAGE_SIZE,
    };
    let found = if problems.is_empty() {
        console.admin.list_audit_events(&signed.ctx, listing).await.map_err(|err| Problems::from_error(&err, &[]))
    } else {
        Err(problems)
    };
    let (entries, total, problems) = match found {
        Ok((entries, total)) => (entries, total, Problems::default()),
        Err(problems) => (Vec::new(), 0, problems),
    };
    let text = |name: &str| query.text(name);
    let body = html! {
        h1 { "Audit log" }
        form.filters method="get" action="/console/audit" role="search" {
            @for (name, label) in [("actor", "Actor"), ("action", "Action"), ("target", "Target")] {
                div.field { label for=(name) { (label) } input id=(name) name=(name) value=(text(name)); }
            }
            div.field {
                label for="from" { "From" }
                input id="from" name="from" type="date" value=(text("from")) aria-describedby=[(!problems.of("from").is_empty()).then_some("from-error")];
                (page::hint_and_errors("from", "", &problems.of("from")))
            }
            div.field {
                label for="until" { "Until" }
                input id="until" name="until" type="date" value=(text("until")) aria-describedby=[(!problems.of("until").is_empty()).then_some("until-error")];
                (page::hint_and_errors("until", "", &problems.of("until")))
            }
            @if signed.identity.platform {
                div.field { label for="organization" { "Organization" } input id="organization" name="organization" value=(text("organization")) placeholder=(signed.identity.organization); }
            }
            button type="submit" { "Filter" }
        }
        (page::general_problems(&problems))
        div.table {
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Target" }
                    th scope="col" { "Outcome" } th scope="col" { "Request" } } }
                tbody {
                    @for entry in &entries {
                        tr {
                            td { (when(entry.at)) }
                            td { (linked(&entry.actor_kind, &entry.actor)) }
                            td { code { (entry.action) } }
                            td { (linked(target_kind(entry), &entry.target)) }
                            td { @if entry.outcome == "success" { "success" } @else { span.flag { (entry.outcome) } } }
                            td { code.small { (entry.request_id) } @if !entry.peer.is_empty() { br; span.small { (entry.peer) } } }
                        }
                    }
                }
            }
        }
        (page::pager("/console/audit", &query, offset, total))
    };
    page::respond(StatusCode::OK, page::signed(&signed, "/console/audit", "Audit log", body))
}
