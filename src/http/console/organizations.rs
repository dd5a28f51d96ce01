//! Organizations in the console: the list and creation for platform admins, and an
//! organization's page, where its name (and, for platform admins, its plan) is changed.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::form::{self, Form, Problems};
use super::page::{self, PAGE_SIZE, csrf, field, when};
use super::{Console, Posted, Signed};
use keygate_core::admin::{NewOrganization, OrganizationUpdate};
use keygate_core::model::Organization;

const FIELDS: &[&str] = &["slug", "name", "plan"];

/// A plan picker over the configured plans.
fn plan_picker(plans: &[(String, u32)], chosen: &str, problems: &Problems) -> Markup {
    let errors = problems.of("plan");
    html! {
        div.field {
            label for="plan" { "Plan" }
            select id="plan" name="plan" aria-describedby=[(!errors.is_empty()).then_some("plan-error")] {
                @for (name, keys) in plans {
                    option value=(name) selected[name == chosen] { (name) " (" (keys) " active keys)" }
                }
            }
            (page::hint_and_errors("plan", "", &errors))
        }
    }
}

/// `GET /console/organizations`.
pub async fn list(State(console): State<Arc<Console>>, signed: Signed, RawQuery(query): RawQuery) -> Response {
    list_page(&console, &signed, query.as_deref(), &Form::default(), &Problems::default(), StatusCode::OK).await
}

async fn list_page(
    console: &Console,
    signed: &Signed,
    query: Option<&str>,
    form: &Form,
    problems: &Problems,
    status: StatusCode,
) -> Response {
    let query = Form::query(query);
    let offset = page::offset(&query);
    let (orgs, total) = match console.admin.list_organizations(&signed.ctx, offset, PAGE_SIZE).await {
        Ok(found) => found,
        Err(err) => return page::failure(&err),
    };
    let plans = console.admin.plans();
    let body = html! {
        h1 { "Organizations" }
        div.table {
            table {
                thead { tr { th scope="col" { "Slug" } th scope="col" { "Name" } th scope="col" { "Plan" }
                    th scope="col" { "Active keys allowed" } th scope="col" { "Created" } } }
                tbody {
                    @for org in &orgs {
                        tr {
                            td { a href={"/console/organizations/" (org.slug)} { code { (org.slug) } } @if org.platform { " " span.flag { "platform" } } }
                            td { (org.name) }
                            td { (org.plan) }
                            td { (org.max_active_keys) }
                            td { (when(org.created_at)) }
                        }
                    }
                }
            }
        }
        (page::pager("/console/organizations", &query, offset, total))
        @if signed.identity.platform && signed.identity.holds("admin:orgs:write") {
            section aria-labelledby="create-title" {
                h2 id="create-title" { "Create organization" }
                (page::general_problems(problems))
                form.card method="post" action="/console/organizations" novalidate {
                    (csrf(signed))
                    (field("slug", "Slug", &form.text("slug"), "text", "2 to 63 lowercase letters, digits or '-', starting with a letter.", problems))
                    (field("name", "Name", &form.text("name"), "text", "", problems))
                    (plan_picker(&plans, &form.text("plan"), problems))
                    button type="submit" { "Create organization" }
                }
            }
        }
    };
    page::respond(status, page::signed(signed, "/console/organizations", "Organizations", body))
}

/// `POST /console/organizations`.
pub async fn create(State(console): State<Arc<Console>>, Posted { signed, form }: Posted) -> Response {
    let request =
        NewOrganization { slug: form.text("slug").trim().to_owned(), name: form.text("name"), plan: form.text("plan") };
    match console.admin.create_organization(&signed.ctx, request).await {
        Ok(org) => Redirect::to(&format!("/console/organizations/{}", org.slug)).into_response(),
        Err(err) => {
            let status = form::form_status(&err);
            list_page(&console, &signed, None, &form, &Problems::from_error(&err, FIELDS), status).await
        }
    }
}

/// `GET /console/organizations/{slug}`.
pub async fn show(State(console): State<Arc<Console>>, signed: Signed, Path(slug): Path<String>) -> Response {
    match console.admin.get_organization(&signed.ctx, &slug).await {
        Ok(org) => page::respond(StatusCode::OK, org_page(&console, &signed, &org, None, &Problems::default())),
        Err(err) => page::failure(&err),
    }
}

fn org_page(
    console: &Console,
    signed: &Signed,
    org: &Organization,
    form: Option<&Form>,
    problems: &Problems,
) -> Markup {
    let name = form.map_or_else(|| org.name.clone(), |form| form.text("name"));
    let plan = form.map_or_else(|| org.plan.clone(), |form| form.text("plan"));
    let body = html! {
        h1 { (org.name) }
        dl.facts {
            dt { "Slug" } dd { code { (org.slug) } }
            dt { "Plan" } dd { (org.plan) }
            dt { "Active keys allowed" } dd { (org.max_active_keys) }
            dt { "Created" } dd { (when(org.created_at)) }
            dt { "Keys" } dd { a href={"/console/keys?organization=" (org.slug)} { "This organization's keys" } }
            dt { "Clients" } dd { a href={"/console/clients?organization=" (org.slug)} { "This organization's clients" } }
        }
        @if signed.identity.holds("admin:orgs:write") {
            section aria-labelledby="edit-title" {
                h2 id="edit-title" { "Change" }
                (page::general_problems(problems))
                form.card method="post" action={"/console/organizations/" (org.slug)} novalidate {
                    (csrf(signed))
                    (field("name", "Name", &name, "text", "", problems))
                    @if signed.identity.platform { (plan_picker(&console.admin.plans(), &plan, problems)) }
                    button type="submit" { "Save changes" }
                }
            }
        }
    };
    page::signed(signed, "/console/organizations", &org.name, body)
}

/// `POST /console/organizations/{slug}`.
pub async fn update(
    State(console): State<Arc<Console>>,
    Path(slug): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    let org = match console.admin.get_organization(&signed.ctx, &slug).await {
        Ok(org) => org,
        Err(err) => return page::failure(&err),
    };
    let name = form.text("name");
    let plan = form.text("plan");
    let request = OrganizationUpdate {
        slug: slug.clone(),
        name: (name != org.name).then_some(name),
        plan: (!plan.is_empty() && plan != org.plan).then_some(plan),
    };
    if request.name.is_none() && request.plan.is_none() {
        return Redirect::to(&format!("/console/organizations/{slug}")).into_response();
    }
    match console.admin.update_organization(&signed.ctx, request).await {
        Ok(_) => Redirect::to(&format!("/console/organizations/{slug}")).into_response(),
        Err(err) => {
            let status = form::form_status(&err);
            page::respond(status, org_page(&console, &signed, &org, Some(&form), &Problems::from_error(&err, FIELDS)))
        }
    }
}
