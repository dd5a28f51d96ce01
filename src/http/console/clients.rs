//! API clients in the console: the list, creation with the secret shown once, a client's page
//! (details, usage, changes), regenerating its secret and disabling it, each after a warning.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use maud::{Markup, html};

use super::form::{self, Form, Problems};
use super::page::{self, PAGE_SIZE, UNUSED_DAYS, csrf, field, maybe_when, when};
use super::{Console, Posted, Signed};
use keygate_core::admin::ListRequest;
use keygate_core::admin::clients::NewClient;
use keygate_core::model::{ApiClientRecord, KeyStatus};

const FIELDS: &[&str] = &[
    "name",
    "description",
    "scopes",
    "organization",
    "labels",
    "rate_limit_per_minute",
    "rate_limit_burst",
    "max_quota",
    "max_concurrency",
];
/// The reference's warnings.
const SHOWN_ONCE: &str = "The client secret is shown only once. Copy it now and store it securely: keygate cannot \
                          recover it; you would need to regenerate it.";
const REGENERATE_WARNING: &str = "Regenerating the secret immediately invalidates the old secret. Any integrations \
                                  using the old secret will fail authentication. Unlike API key rotation, there is \
                                  no grace period. Coordinate the update with your integration team.";

fn status(client: &ApiClientRecord) -> &'static str {
    if client.disabled_at.is_some() { "disabled" } else { "active" }
}

/// `GET /console/clients`.
pub async fn list(State(console): State<Arc<Console>>, signed: Signed, RawQuery(query): RawQuery) -> Response {
    let query = Form::query(query.as_deref());
    let now = console.clock.now();
    let offset = page::offset(&query);
    let listing = ListRequest {
        search: query.text("q"),
        offset,
        limit: PAGE_SIZE,
        organization: query.text("organization"),
        status: match query.text("status").as_str() {
            "active" => Some(KeyStatus::Active),
            "disabled" => Some(KeyStatus::Disabled),
            _ => None,
        },
        unused_since: (query.text("show") == "unused").then(|| now - Duration::days(UNUSED_DAYS)),
        ..ListRequest::default()
    };
    let (clients, total) = match console.admin.list_clients(&signed.ctx, &listing).await {
        Ok(found) => found,
        Err(err) => return page::failure(&err),
    };
    let body = html! {
        div.heading {
            h1 { "API clients" }
            @if signed.identity.holds("admin:clients:write") { a.button href="/console/clients/new" { "Create API client" } }
        }
        (page::list_filters(&signed, &query, "/console/clients", "id, name, description or label",
            &[("", "Any"), ("active", "Active"), ("disabled", "Disabled")],
            &[("", "All"), ("unused", "Unused for 30 days")]))
        p.count { (total) " clients" }
        div.table {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Client id" } th scope="col" { "Status" }
                    th scope="col" { "Scopes" } th scope="col" { "Last used" } th scope="col" { "Attention" } } }
                tbody {
                    @for client in &clients {
                        tr {
                            td { a href={"/console/clients/" (client.client_id)} { (client.name) } }
                            td { code { (client.client_id) } }
                            td { span class={"status " (status(client))} { (status(client)) } }
                            td { @for scope in &client.scopes { code.scope { (scope) } " " } }
                            td { (maybe_when(client.last_used_at, "never")) }
                            td {
                                @if client.disabled_at.is_none() && page::unused(client.last_used_at, client.created_at, now) {
                                    span.flag { "unused 30 days" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (page::pager("/console/clients", &query, offset, total))
    };
    page::respond(StatusCode::OK, page::signed(&signed, "/console/clients", "API clients", body))
}

/// `GET /console/clients/new`.
pub async fn new(signed: Signed) -> Response {
    page::respond(StatusCode::OK, new_page(&signed, &Form::default(), &Problems::default()))
}

fn new_page(signed: &Signed, form: &Form, problems: &Problems) -> Markup {
    let body = html! {
        h1 { "Create API client" }
        p { "An OAuth2 client: it gets access tokens with its id and secret (client credentials)." }
        (page::general_problems(problems))
        form.card method="post" action="/console/clients" novalidate {
            (csrf(signed))
            (field("name", "Name", &form.text("name"), "text", "Required; at most 100 characters.", problems))
            (page::area("description", "Description", &form.text("description"), "", problems))
            (page::scope_picker(&signed.identity.grantable, &form.all("scopes"), problems))
            (page::limit_fields(form::limit_texts(form), problems))
            (page::area("labels", "Labels", &form.text("labels"), "One name=value per line.", problems))
            @if signed.identity.platform {
                (field("organization", "Organization", &form.text("organization"), "text", "Empty: your own organization.", problems))
            }
            button type="submit" { "Create API client" }
        }
    };
    page::signed(signed, "/console/clients", "Create API client", body)
}

/// The secret of a new or regenerated client, shown once.
fn secret_page(
    console: &Console,
    signed: &Signed,
    title: &str,
    issued_secret: &str,
    client: &ApiClientRecord,
) -> Response {
    let body = html! {
        h1 { (title) }
        dl.facts {
            dt { "Client id" } dd { code #client-id { (client.client_id) } }
            dt { "Token endpoint" } dd { code { (console.token_endpoint) } }
        }
        (page::shown_once("Client secret", issued_secret, SHOWN_ONCE))
        p { a.button href={"/console/clients/" (client.client_id)} { "I have copied it: go to the client" } }
    };
    page::respond(StatusCode::OK, page::signed(signed, "/console/clients", title, body))
}

/// `POST /console/clients`.
pub async fn create(State(console): State<Arc<Console>>, Posted { signed, form }: Posted) -> Response {
    let mut problems = Problems::default();
    let request = NewClient {
        name: form.text("name"),
        description: form.text("description"),
        scopes: form.all("scopes"),
        organization: form.text("organization").trim().to_owned(),
        limits: form::limits(&form, &mut problems),
        labels: form::labels(&form, &mut problems),
    };
    if !problems.is_empty() {
        return page::respond(StatusCode::UNPROCESSABLE_ENTITY, new_page(&signed, &form, &problems));
    }
    match console.admin.create_client(&signed.ctx, request).await {
        Ok(issued) => {
            let mut response =
                secret_page(&console, &signed, "API client created", &issued.client_secret, &issued.client);
            *response.status_mut() = StatusCode::CREATED;
            response
        }
        Err(err) => {
            let status = form::form_status(&err);
            page::respond(status, new_page(&signed, &form, &Problems::from_error(&err, FIELDS)))
        }
    }
}

/// `GET /console/clients/{client_id}`.
pub async fn show(State(console): State<Arc<Console>>, signed: Signed, Path(client_id): Path<String>) -> Response {
    match console.admin.get_client(&signed.ctx, &client_id).await {
        Ok(client) => {
            let usage = super::usage::of_client(&console, &signed, &client.client_id).await;
            page::respond(StatusCode::OK, client_page(&signed, &client, &usage, None, &Problems::default()))
        }
        Err(err) => page::failure(&err),
    }
}

fn client_page(
    signed: &Signed,
    client: &ApiClientRecord,
    usage: &Markup,
    form: Option<&Form>,
    problems: &Problems,
) -> Markup {
    let writable = signed.identity.holds("admin:clients:write") && client.disabled_at.is_none();
    let value = |name: &str, current: &str| form.map_or_else(|| current.to_owned(), |form| form.text(name));
    let scopes = form.map_or_else(|| client.scopes.clone(), |form| form.all("scopes"));
    let choices = page::scope_choices(&signed.identity.grantable, &client.scopes);
    let limits = form.map_or_else(|| form::limit_values(&client.limits), form::limit_texts);
    let id = &client.client_id;
    let body = html! {
        div.heading {
            h1 { (client.name) }
            span class={"status " (status(client))} { (status(client)) }
        }
        dl.facts {
            dt { "Client id" } dd { code { (id) } }
            dt { "Organization" } dd { (client.organization) }
            dt { "Created" } dd { (when(client.created_at)) " by " a href={"/console/audit?actor=" (client.created_by)} { code { (client.created_by) } } }
            dt { "Last used" } dd { (maybe_when(client.last_used_at, "never")) }
            dt { "Secret regenerated" } dd { (maybe_when(client.secret_regenerated_at, "never")) }
            @if let Some(at) = client.disabled_at { dt { "Disabled" } dd { (when(at)) } }
            dt { "Scopes" } dd { @for scope in &client.scopes { code.scope { (scope) } " " } }
            dt { "History" } dd { a href={"/console/audit?target=" (id)} { "Audit entries about this client" } }
        }
        (usage)
        @if writable {
            section aria-labelledby="edit-title" {
                h2 id="edit-title" { "Change" }
                (page::general_problems(problems))
                form.card method="post" action={"/console/clients/" (id)} novalidate {
                    (csrf(signed))
                    (field("name", "Name", &value("name", &client.name), "text", "", problems))
                    (page::area("description", "Description", &value("description", &client.description), "", problems))
                    (page::scope_picker(&choices, &scopes, problems))
                    (page::limit_fields(limits, problems))
                    (page::area("labels", "Labels", &value("labels", &form::labels_text(&client.labels)), "One name=value per line.", problems))
                    button type="submit" { "Save changes" }
                }
            }
            section aria-labelledby="secret-title" {
                h2 id="secret-title" { "Secret" }
                p { (REGENERATE_WARNING) }
                a.button href={"/console/clients/" (id) "/regenerate"} { "Regenerate secret…" }
            }
            section aria-labelledby="disable-title" {
                h2 id="disable-title" { "Disable" }
                p { "A disabled client gets no new tokens, for good." }
                a.button.danger href={"/console/clients/" (id) "/disable"} { "Disable client…" }
            }
        }
    };
    page::signed(signed, "/console/clients", &client.name, body)
}

/// `POST /console/clients/{client_id}`.
pub async fn update(
    State(console): State<Arc<Console>>,
    Path(client_id): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    let client = match console.admin.get_client(&signed.ctx, &client_id).await {
        Ok(client) => client,
        Err(err) => return page::failure(&err),
    };
    let mut problems = Problems::default();
    let current = form::Current {
        name: &client.name,
        description: &client.description,
        scopes: &client.scopes,
        limits: &client.limits,
        labels: &client.labels,
    };
    let changes = form::changes(&form, &current, &mut problems);
    let save = async |changes| console.admin.update_client(&signed.ctx, &client_id, changes).await;
    match form::save(problems, changes, FIELDS, save).await {
        Ok(()) => Redirect::to(&format!("/console/clients/{client_id}")).into_response(),
        Err((status, problems)) => {
            let usage = super::usage::of_client(&console, &signed, &client_id).await;
            page::respond(status, client_page(&signed, &client, &usage, Some(&form), &problems))
        }
    }
}

/// A confirmation page for a client action, with the tokens' fate as a choice.
async fn confirm(console: &Console, signed: &Signed, client_id: &str, action: &str) -> Response {
    let client = match console.admin.get_client(&signed.ctx, client_id).await {
        Ok(client) => client,
        Err(err) => return page::failure(&err),
    };
    // Revoking the tokens by default where the API does: on regenerating, not on disabling.
    let (title, warning, button, revoke) = match action {
        "regenerate" => ("Regenerate the secret of", REGENERATE_WARNING, "Regenerate secret", true),
        _ => ("Disable", "The client gets no new tokens, for good. This cannot be undone.", "Disable client", false),
    };
    let body = html! {
        h1 { (title) " " (client.name) "?" }
        p.notice.warn { (warning) }
        form method="post" action={"/console/clients/" (client_id) "/" (action)} {
            (csrf(signed))
            div.check {
                input type="checkbox" id="revoke_tokens" name="revoke_tokens" value="true" checked[revoke];
                label for="revoke_tokens" { "Also revoke the access tokens it already holds" }
            }
            button.danger type="submit" { (button) }
            " "
            a href={"/console/clients/" (client_id)} { "Cancel" }
        }
    };
    page::respond(StatusCode::OK, page::signed(signed, "/console/clients", title, body))
}

/// `GET /console/clients/{client_id}/regenerate`.
pub async fn confirm_regenerate(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(client_id): Path<String>,
) -> Response {
    confirm(&console, &signed, &client_id, "regenerate").await
}

/// `GET /console/clients/{client_id}/disable`.
pub async fn confirm_disable(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(client_id): Path<String>,
) -> Response {
    confirm(&console, &signed, &client_id, "disable").await
}

/// `POST /console/clients/{client_id}/regenerate`: shows the new secret once.
pub async fn regenerate(
    State(console): State<Arc<Console>>,
    Path(client_id): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    match console.admin.regenerate_client_secret(&signed.ctx, &client_id, form.ticked("revoke_tokens")).await {
        Ok(issued) => {
            secret_page(&console, &signed, "Client secret regenerated", &issued.client_secret, &issued.client)
        }
        Err(err) => page::failure(&err),
    }
}

/// `POST /console/clients/{client_id}/disable`.
pub async fn disable(
    State(console): State<Arc<Console>>,
    Path(client_id): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    match console.admin.disable_client(&signed.ctx, &client_id, form.ticked("revoke_tokens")).await {
        Ok(_) => Redirect::to(&format!("/console/clients/{client_id}")).into_response(),
        Err(err) => page::failure(&err),
    }
}
