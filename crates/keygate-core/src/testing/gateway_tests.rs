//! The HTTP gateway's decision (Envoy's `Check`) on the in-memory store: what the route policy
//! asks of a request, what the engine then decides, and what is refused before any route.

use crate::credentials::scopes::{DEFAULT_SCOPES, ScopeRegistry};
use crate::gateway::{GatewayDecision, HttpRequest, UnmatchedAction, decide};
use crate::model::{Credentials, PrincipalKind, Reason};
use crate::policy::Policy;
use crate::testing::harness::Core;

const POLICY: &str = r#"
[[routes]]
name = "sessions"
methods = ["GET"]
path = "/api/v1/sessions/*"
host = "api.example.com"
scopes = ["investigations:read"]
cost = 3

[[routes]]
name = "search"
path = "/api/v1/search/**"
scopes = ["search:read", "graph:read"]
scope_match = "any"

[[routes]]
name = "static"
path = "/static/**"
public = true
cost = 0
"#;

fn policy() -> Policy {
    let registry = ScopeRegistry::new(DEFAULT_SCOPES.iter().copied());
    Policy::parse(POLICY, &registry).unwrap_or_else(|errors| panic!("{errors}"))
}

/// A core with organization `acme`, and a key there holding `held`.
async fn with_key(held: &[&str]) -> (Core, String, String) {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    core.organization(&root, "acme", "pro").await;
    let issued = core.key(&root, "acme", held).await;
    (core, issued.api_key, issued.view.key.key_id)
}

fn request(method: &str, host: &str, path: &str, api_key: &str) -> HttpRequest {
    HttpRequest {
        method: method.to_owned(),
        host: host.to_owned(),
        path: path.to_owned(),
        credentials: Credentials { authorization: String::new(), api_key: api_key.to_owned() },
    }
}

async fn gateway(core: &Core, unmatched: UnmatchedAction, request: &HttpRequest) -> GatewayDecision {
    decide(&core.engine, &policy(), unmatched, request).await.expect("a decision")
}

#[tokio::test]
async fn a_key_holding_the_route_scope_is_allowed_with_the_route_cost() {
    let (core, key, key_id) = with_key(&["investigations:read"]).await;
    let request = request("GET", "API.example.com:443", "/api/v1/sessions/42?view=full", &key);
    let out = gateway(&core, UnmatchedAction::Deny, &request).await;
    assert_eq!((out.decision.allowed, out.decision.reason), (true, Reason::Allowed), "{}", out.decision.message);
    assert_eq!((out.route.as_deref(), out.cost), (Some("sessions"), 3));
    let principal = out.decision.principal.expect("the key's principal");
    assert_eq!(
        (principal.kind, principal.id.as_str(), principal.organization.as_str()),
        (PrincipalKind::ApiKey, key_id.as_str(), "acme")
    );
}

#[tokio::test]
async fn a_parent_scope_grants_the_route_and_any_needs_only_one() {
    let (core, key, _) = with_key(&["investigations", "graph:read"]).await;
    let sessions =
        gateway(&core, UnmatchedAction::Deny, &request("GET", "api.example.com", "/api/v1/sessions/1", &key)).await;
    assert_eq!(sessions.decision.reason, Reason::Allowed, "investigations grants investigations:read");
    let search = gateway(&core, UnmatchedAction::Deny, &request("POST", "any", "/api/v1/search/q", &key)).await;
    assert_eq!((search.decision.reason, search.route.as_deref(), search.cost), (Reason::Allowed, Some("search"), 1));
}

#[tokio::test]
async fn a_key_without_the_route_scope_is_denied_but_named() {
    let (core, key, key_id) = with_key(&["incidents:read"]).await;
    let out =
        gateway(&core, UnmatchedAction::Deny, &request("GET", "api.example.com", "/api/v1/sessions/1", &key)).await;
    assert_eq!((out.decision.allowed, out.decision.reason), (false, Reason::InsufficientScope));
    assert!(out.decision.message.contains("investigations:read"), "{}", out.decision.message);
    assert_eq!(out.decision.principal.map(|p| p.id), Some(key_id), "a valid key is named even when denied");
    assert_eq!(out.route.as_deref(), Some("sessions"));
    let search = gateway(&core, UnmatchedAction::Deny, &request("GET", "h", "/api/v1/search", &key)).await;
    assert_eq!(search.decision.reason, Reason::InsufficientScope, "any of two, and it holds neither");
    assert!(search.decision.message.contains("any of the required scopes"), "{}", search.decision.message);
}

#[tokio::test]
async fn a_protected_route_without_a_valid_credential_is_denied() {
    let (core, _key, _) = with_key(&["investigations:read"]).await;
    let missing =
        gateway(&core, UnmatchedAction::Allow, &request("GET", "api.example.com", "/api/v1/sessions/1", "")).await;
    assert_eq!((missing.decision.allowed, missing.decision.reason), (false, Reason::MissingApiKey));
    assert_eq!((missing.route.as_deref(), missing.cost, missing.decision.principal), (Some("sessions"), 3, None));
    let bogus = "sk_test_k_000000000000_0000000000000000000000000000000000";
    let invalid =
        gateway(&core, UnmatchedAction::Allow, &request("GET", "api.example.com", "/api/v1/sessions/1", bogus)).await;
    assert_eq!((invalid.decision.allowed, invalid.decision.reason), (false, Reason::InvalidApiKey));
}

#[tokio::test]
async fn an_unmatched_request_is_denied_unless_unmatched_requests_are_allowed() {
    let (core, key, _) = with_key(&["investigations:read"]).await;
    for unmatched in [
        request("GET", "api.example.com", "/api/v2/other", &key),
        request("DELETE", "api.example.com", "/api/v1/sessions/1", &key),
        request("GET", "other.example.com", "/api/v1/sessions/1", &key),
        request("GET", "api.example.com", "/api/v1/sessions/1/notes", &key),
    ] {
        let denied = gateway(&core, UnmatchedAction::Deny, &unmatched).await;
        assert_eq!(
            (denied.decision.allowed, denied.decision.reason),
            (false, Reason::RouteNotAllowed),
            "{unmatched:?}"
        );
        assert_eq!((denied.route, denied.cost), (None, 0));
        let allowed = gateway(&core, UnmatchedAction::Allow, &unmatched).await;
        assert_eq!((allowed.decision.allowed, allowed.decision.reason), (true, Reason::Allowed), "{unmatched:?}");
        assert_eq!((allowed.route, allowed.cost, allowed.decision.principal), (None, 0, None), "no principal claimed");
    }
    let empty = decide(&core.engine, &Policy::default(), UnmatchedAction::Deny, &request("GET", "h", "/", &key))
        .await
        .expect("a decision");
    assert_eq!(empty.decision.reason, Reason::RouteNotAllowed, "an empty policy matches nothing");
}

#[tokio::test]
async fn a_public_route_needs_no_credential_and_ignores_a_bad_one() {
    let core = Core::new().await;
    for key in ["", "not-a-key", "sk_test_k_000000000000_0000000000000000000000000000000000"] {
        let out = gateway(&core, UnmatchedAction::Deny, &request("GET", "h", "/static/css/site.css", key)).await;
        assert_eq!((out.decision.allowed, out.decision.reason), (true, Reason::Allowed), "{key:?}");
        assert_eq!((out.route.as_deref(), out.cost, out.decision.principal), (Some("static"), 0, None), "{key:?}");
    }
    let prefix = gateway(&core, UnmatchedAction::Deny, &request("HEAD", "h", "/static", "")).await;
    assert_eq!((prefix.decision.reason, prefix.route.as_deref()), (Reason::Allowed, Some("static")));
}

#[tokio::test]
async fn an_abnormal_path_is_refused_before_any_route_whatever_unmatched_says() {
    let (core, key, _) = with_key(&["investigations:read"]).await;
    for (path, problem) in [
        ("/static/../api/v1/sessions/1", "'.' or '..' segment"),
        ("/static/..;/admin", "';'"),
        ("/static/%2e%2e/admin", "encodes a dot"),
        ("/api/v1/sessions%2f1", "slash or a backslash"),
        ("//api/v1/sessions/1", "empty segment"),
        ("api/v1/sessions/1", "does not start with '/'"),
    ] {
        for unmatched in [UnmatchedAction::Deny, UnmatchedAction::Allow] {
            let out = gateway(&core, unmatched, &request("GET", "api.example.com", path, &key)).await;
            assert_eq!((out.decision.allowed, out.decision.reason), (false, Reason::InvalidPath), "{path:?}");
            assert!(out.decision.message.contains(problem), "{path:?}: {}", out.decision.message);
            assert_eq!((out.route, out.cost, out.decision.principal), (None, 0, None), "{path:?}");
        }
    }
    let query = gateway(&core, UnmatchedAction::Deny, &request("GET", "h", "/static/a?next=/../admin;x=%2e", "")).await;
    assert_eq!(query.decision.reason, Reason::Allowed, "the query string is not part of the path");
}

#[tokio::test]
async fn a_trailing_slash_or_other_case_cannot_slip_past_a_route() {
    let (core, _key, _) = with_key(&["investigations:read"]).await;
    for path in ["/api/v1/sessions/1/", "/API/V1/Sessions/1"] {
        let out = gateway(&core, UnmatchedAction::Allow, &request("GET", "api.example.com", path, "")).await;
        assert_eq!((out.decision.reason, out.route.as_deref()), (Reason::MissingApiKey, Some("sessions")), "{path:?}");
    }
}
