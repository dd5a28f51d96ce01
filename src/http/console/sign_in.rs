//! Signing in to the console with an admin credential (an API key or a token), and out.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::form::Form;
use super::page;
use super::{CONSOLE_PATH, COOKIE, Console, Posted, session_token};
use crate::http::admin::request_origin;
use keygate_core::admin::AdminContext;
use keygate_core::error::CoreError;
use keygate_core::model::Credentials;

/// `GET /console/sign-in`.
pub async fn form() -> Response {
    page::respond(StatusCode::OK, sign_in_page(None))
}

fn sign_in_page(problem: Option<&str>) -> Markup {
    page::shell(
        "Sign in",
        html! {
            main.narrow id="main" {
                h1 { "Sign in to keygate" }
                @if let Some(problem) = problem { p.notice.bad role="alert" id="credential-error" { (problem) } }
                form method="post" action="/console/sign-in" {
                    div.field {
                        label for="credential" { "Admin API key or access token" }
                        input id="credential" name="credential" type="password" autocomplete="off" required
                            aria-describedby="credential-hint";
                        p.hint id="credential-hint" {
                            "It stays on the server for this session only; your browser keeps an opaque session cookie."
                        }
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// `POST /console/sign-in`: a credential holding an admin scope starts a session.
pub async fn submit(State(console): State<Arc<Console>>, parts: Parts, body: Bytes) -> Response {
    if !same_origin(&parts) {
        // A page elsewhere posting a credential of its choosing would sign this browser in as
        // someone else (login CSRF).
        return page::refused(StatusCode::FORBIDDEN, "Sign-in forms are taken only from the console itself.");
    }
    let form = Form::parse(&body);
    let credential = form.text("credential").trim().to_owned();
    if credential.is_empty() {
        return page::respond(StatusCode::UNPROCESSABLE_ENTITY, sign_in_page(Some("Enter an admin API key or token.")));
    }
    let credentials = Credentials { authorization: format!("Bearer {credential}"), api_key: String::new() };
    let ctx = AdminContext { credentials: credentials.clone(), origin: request_origin(&parts) };
    let identity = match console.admin.sign_in(&ctx).await {
        Ok(identity) => identity,
        Err(err @ (CoreError::Unauthenticated(_) | CoreError::PermissionDenied(_))) => {
            let status = StatusCode::from_u16(err.code().http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return page::respond(status, sign_in_page(Some(&err.to_string())));
        }
        Err(err) => return page::failure(&err),
    };
    tracing::info!(admin = %identity.id, organization = %identity.organization, "console sign-in");
    let (token, _) = console.sessions.start(credentials, console.clock.now(), identity.expires_at).await;
    with_cookie(&console, Redirect::to("/console/keys").into_response(), &token, "")
}

/// `POST /console/sign-out`: ends the session and forgets the cookie.
pub async fn sign_out(State(console): State<Arc<Console>>, headers: HeaderMap, _: Posted) -> Response {
    if let Some(token) = session_token(&headers) {
        console.sessions.end(&token).await;
    }
    with_cookie(&console, Redirect::to("/console/sign-in").into_response(), "", "; Max-Age=0")
}

/// `response` setting the session cookie to `value` (with the console's flags, and `extra`).
fn with_cookie(console: &Console, mut response: Response, value: &str, extra: &str) -> Response {
    let secure = if console.secure { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={value}; Path={CONSOLE_PATH}; HttpOnly; SameSite=Strict{extra}{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Whether a form was posted by a page of this host: `Origin`, when the browser sends it (all
/// current ones do on a POST), names the host the request was sent to (`Host`, or the
/// authority of an HTTP/2 request).
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let Some(host) = host.or_else(|| parts.uri.authority().map(|a| a.as_str())) else { return false };
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    origin_host.eq_ignore_ascii_case(host)
}
