//! The HTTP gateway's decision (Envoy's `Check`): the route policy says what a request needs and
//! the engine's `authorize` decides it; this adds no other way to allow a request.

use super::engine::{AuthorizeInput, Engine};
use super::error::CoreError;
use super::model::{Credentials, Decision, Reason};
use super::policy::{Access, Policy, abnormal_path};

/// What happens to a request that no route matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnmatchedAction {
    /// Denied with [`Reason::RouteNotAllowed`]: a route that was forgotten stays closed.
    #[default]
    Deny,
    /// Let through like a public route, without a credential.
    Allow,
}

/// The parts of an HTTP request the gateway decides on.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// `:authority`, possibly with a port.
    pub host: String,
    /// The request target: the path, possibly with a query string.
    pub path: String,
    pub credentials: Credentials,
}

/// The decision, and what the matched route adds for the layers after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayDecision {
    pub decision: Decision,
    /// The matched route's name; `None` when no route matched.
    pub route: Option<String>,
    /// Quota units the request consumes (0 when no route matched).
    pub cost: u32,
}

/// Decides an HTTP request under `policy`.
pub async fn decide(
    engine: &Engine,
    policy: &Policy,
    unmatched: UnmatchedAction,
    request: &HttpRequest,
) -> Result<GatewayDecision, CoreError> {
    // Before any route, and whatever `unmatched` says: the upstream may read such a path
    // differently from the matcher, so no route (and no "no route") can be trusted with it.
    if let Some(problem) = abnormal_path(&request.path) {
        let message = format!("the request path is not in normal form: {problem}");
        let decision = Decision::new(false, Reason::InvalidPath, message, None);
        return Ok(GatewayDecision { decision, route: None, cost: 0 });
    }
    let Some(route) = policy.find(&request.method, &request.host, &request.path) else {
        let decision = match unmatched {
            UnmatchedAction::Allow => allow_anonymous(),
            UnmatchedAction::Deny => Decision::new(
                false,
                Reason::RouteNotAllowed,
                "no route of the gateway policy matches this request".to_owned(),
                None,
            ),
        };
        return Ok(GatewayDecision { decision, route: None, cost: 0 });
    };
    let decision = match &route.access {
        Access::Public => allow_anonymous(),
        Access::Scopes { scopes, matching } => {
            let input = AuthorizeInput {
                credentials: &request.credentials,
                required_scopes: scopes,
                scope_match: *matching,
                organization: "",
                cost: u64::from(route.cost),
                lease: None,
            };
            // The policy's scopes were checked against the registry when it was loaded.
            engine.authorize_checked(&input).await?
        }
    };
    Ok(GatewayDecision { decision, route: Some(route.name.clone()), cost: route.cost })
}

/// Public routes do not look at credentials at all: an invalid key on a public page is not an
/// error, and no principal is claimed.
fn allow_anonymous() -> Decision {
    Decision::new(true, Reason::Allowed, String::new(), None)
}
