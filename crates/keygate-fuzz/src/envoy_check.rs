//! Target `envoy_check`: Envoy's `CheckRequest` as keygate receives it (protobuf bytes, decoded
//! with prost as tonic does), converted into the decision input ([`envoy_request`]), then what
//! the gateway reads of it before the engine: the path's normal form, the route, the presented
//! credential; and the answer encoded back ([`check_response`]) for an allowed and a denied
//! decision.
//!
//! What must hold: the conversion never panics; a lookalike of keygate's own headers is never one
//! of them (and is lower case); an allowed answer removes every lookalike and, with
//! `strip_credentials`, the credential headers; each answer encodes and decodes again.

use std::sync::OnceLock;

use prost::Message;

use keygate::config::{Config, EnvoyConfig};
use keygate::grpc::context::request_id_from;
use keygate::grpc::convert::{EnvoyRequest, check_response, envoy_request};
use keygate::proto::envoy_auth::check_response::HttpResponse;
use keygate::proto::envoy_auth::{CheckRequest, CheckResponse};
use keygate_core::credentials::scopes::{DEFAULT_SCOPES, ScopeRegistry};
use keygate_core::engine::presented_credential;
use keygate_core::gateway::GatewayDecision;
use keygate_core::model::{Decision, Reason};
use keygate_core::policy::{Policy, abnormal_path};

const POLICY: &str = r#"
[[routes]]
path = "/api/v1/sessions/*"
scopes = ["investigations:read"]
[[routes]]
path = "/static/**"
public = true
"#;

fn policy() -> &'static Policy {
    static POLICY_: OnceLock<Policy> = OnceLock::new();
    POLICY_.get_or_init(|| {
        let registry = ScopeRegistry::new(DEFAULT_SCOPES.iter().copied());
        Policy::parse(POLICY, &registry).unwrap_or_default()
    })
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(check) = CheckRequest::decode(data) else { return };
    let config = EnvoyConfig { strip_credentials: true, ..Config::default().envoy };
    let names = &config.headers;
    let EnvoyRequest { http, request_id, lookalikes } = envoy_request(check, names);
    let own = names.named().map(|(_, name)| name);
    for lookalike in &lookalikes {
        assert!(!own.iter().any(|own| own.eq_ignore_ascii_case(lookalike)), "{lookalike:?} is keygate's own header");
        assert_eq!(lookalike, &lookalike.to_ascii_lowercase());
    }
    let request_id = request_id_from(request_id.as_deref());
    let abnormal = abnormal_path(&http.path);
    let route = match abnormal {
        Some(_) => None,
        None => policy().find(&http.method, &http.host, &http.path),
    };
    let _ = presented_credential(&http.credentials);
    let route = route.map(|route| (route.name.clone(), route.cost));
    let allowed = GatewayDecision {
        decision: Decision::new(true, Reason::Allowed, String::new(), None),
        route: route.as_ref().map(|(name, _)| name.clone()),
        cost: route.as_ref().map_or(0, |(_, cost)| *cost),
    };
    let message =
        abnormal.map_or_else(String::new, |problem| format!("the request path is not in normal form: {problem}"));
    let denied =
        GatewayDecision { decision: Decision::new(false, Reason::InvalidPath, message, None), route: None, cost: 0 };
    let answer = check_response(allowed, &request_id, &config, lookalikes.clone());
    if let Some(HttpResponse::OkResponse(ok)) = &answer.http_response {
        assert!(lookalikes.iter().all(|l| ok.headers_to_remove.contains(l)), "an allowed answer removes lookalikes");
        assert!(ok.headers_to_remove.contains(&names.authorization) && ok.headers_to_remove.contains(&names.api_key));
    } else {
        assert!(answer.http_response.is_some(), "an allowed decision is answered with an OK response");
    }
    for answer in [answer, check_response(denied, &request_id, &config, lookalikes)] {
        let encoded = answer.encode_to_vec();
        assert_eq!(CheckResponse::decode(encoded.as_slice()).ok().as_ref(), Some(&answer), "the answer round-trips");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_loads() {
        assert_eq!(super::policy().len(), 2);
    }
}
