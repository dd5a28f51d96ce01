//! Target `policy`: the route-policy loader ([`Policy::parse`]) and the path matcher
//! ([`Policy::find`]) behind the gateway's normal-form check ([`abnormal_path`]).
//!
//! Input: a policy (TOML), a NUL, a method, a NUL, a host, then NUL-separated request targets;
//! an input without a NUL is one request target under a fixed policy. A policy that does not
//! load is replaced by the fixed one, so that every input still exercises the matcher.
//!
//! The differential property: the gateway never matches a path that a normalizer would have
//! rewritten. keygate has no normalizer of its own (it refuses what is not in normal form
//! instead), so [`rewriter`] models the ones upstreams and proxies apply (RFC 3986
//! normalization, Envoy's `normalize_path`/`merge_slashes`/escaped slashes, Tomcat's path
//! parameters, Windows' trailing dots and spaces, double decoding, Unicode compatibility
//! forms, C-string truncation); each of their rewrites must be refused by [`abnormal_path`]
//! before [`Policy::find`] is asked. For a path in normal form, the route found must not change
//! with a query string, a trailing slash or ASCII case.

use std::sync::OnceLock;

use keygate_core::credentials::scopes::{DEFAULT_SCOPES, ScopeRegistry};
use keygate_core::policy::{Policy, Route, abnormal_path};
use unicode_normalization::UnicodeNormalization;

use crate::{fields, text};

/// The policy an input that brings none (or a bad one) is matched against.
const FIXED_POLICY: &str = r#"
[[routes]]
path = "/api/v1/sessions/*"
scopes = ["investigations:read"]
[[routes]]
methods = ["GET", "HEAD"]
path = "/static/**"
public = true
[[routes]]
path = "/a%20b/%C3%A9/*/x"
host = "api.example.com"
public = true
[[routes]]
path = "/admin/**"
scopes = ["admin"]
[[routes]]
path = "/"
public = true
"#;

fn registry() -> &'static ScopeRegistry {
    static REGISTRY: OnceLock<ScopeRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| ScopeRegistry::new(DEFAULT_SCOPES.iter().copied()))
}

fn fixed_policy() -> &'static Policy {
    static FIXED: OnceLock<Policy> = OnceLock::new();
    FIXED.get_or_init(|| Policy::parse(FIXED_POLICY, registry()).unwrap_or_default())
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let parts: Vec<&[u8]> = fields(data).collect();
    let (policy_text, method, host, targets) = match parts.as_slice() {
        [target] => (None, "GET".into(), "api.example.com".into(), vec![text(target)]),
        [policy, rest @ ..] => {
            let field = |i: usize| text(rest.get(i).copied().unwrap_or_default());
            (Some(text(policy)), field(0), field(1), rest.iter().skip(2).map(|t| text(t)).collect())
        }
        [] => return,
    };
    let parsed = policy_text.map(|policy| Policy::parse(&policy, registry()));
    let policy = match &parsed {
        Some(Ok(policy)) => policy,
        _ => fixed_policy(),
    };
    for target in &targets {
        check(policy, &method, &host, target);
    }
}

/// What the gateway does with a request target: refuse one not in normal form, else find its
/// route.
fn gateway<'a>(policy: &'a Policy, method: &str, host: &str, target: &str) -> Option<&'a Route> {
    match abnormal_path(target) {
        Some(_) => None,
        None => policy.find(method, host, target),
    }
}

fn same(a: Option<&Route>, b: Option<&Route>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn check(policy: &Policy, method: &str, host: &str, target: &str) {
    let found = gateway(policy, method, host, target);
    if let Some(rewriter) = rewriter(target) {
        assert!(
            abnormal_path(target).is_some(),
            "{target:?} passes as normal, but {rewriter} rewrites it: the upstream would read another path"
        );
        assert!(found.is_none());
        return;
    }
    if abnormal_path(target).is_some() {
        return;
    }
    let (path, query) = target.split_once('?').map_or((target, None), |(path, query)| (path, Some(query)));
    if query.is_none() {
        let with_query = format!("{path}?q=/../admin");
        assert!(same(found, gateway(policy, method, host, &with_query)), "a query changes the route of {target:?}");
    }
    if path != "/" {
        let toggled = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        assert!(abnormal_path(&toggled).is_none(), "{toggled:?} is as normal as {target:?}");
        assert!(
            same(found, gateway(policy, method, host, &toggled)),
            "a trailing slash changes the route of {target:?}"
        );
    }
    let upper = path.to_ascii_uppercase();
    if abnormal_path(&upper).is_none() {
        assert!(same(found, gateway(policy, method, host, &upper)), "ASCII case changes the route of {target:?}");
    }
}

/// The first modelled normalizer that would rewrite the path of `target` (its query aside),
/// comparing without regard to ASCII case (percent-escapes' hex digits, and the matcher's
/// literals) and to one trailing slash (which the matcher ignores too).
pub fn rewriter(target: &str) -> Option<&'static str> {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if !path.starts_with('/') {
        return None;
    }
    let trim = |p: &str| p.strip_suffix('/').unwrap_or(p).to_owned();
    let differs = |normal: &str| !trim(normal).eq_ignore_ascii_case(&trim(path));
    if path.contains('#') {
        return Some("a server that drops the fragment");
    }
    if differs(&remove_dot_segments(&decode_if(path, is_unreserved))) {
        return Some("RFC 3986 normalization (unreserved escapes, dot segments)");
    }
    let envoy = decode_if(&path.replace('\\', "/"), |b| is_unreserved(b) || b == b'/' || b == b'\\');
    if differs(&merge_slashes(&remove_dot_segments(&envoy.replace('\\', "/")))) {
        return Some("Envoy (normalize_path, merge_slashes, unescaped slashes)");
    }
    let tomcat: Vec<&str> = path.split('/').map(|segment| segment.split(';').next().unwrap_or_default()).collect();
    if differs(&remove_dot_segments(&tomcat.join("/"))) {
        return Some("Tomcat (path parameters)");
    }
    let Ok(decoded) = String::from_utf8(decode(path.as_bytes())) else {
        return Some("a lenient decoder (bytes that are not UTF-8, such as overlong forms)");
    };
    if decoded.contains('\0') {
        return Some("a C-string server (truncation at NUL)");
    }
    if decoded.split(['/', '\\']).any(|segment| !segment.is_empty() && segment.ends_with(['.', ' '])) {
        return Some("Windows (trailing dots and spaces)");
    }
    if decode(decoded.as_bytes()) != decoded.as_bytes() {
        return Some("an upstream that decodes twice");
    }
    let compatible: String = decoded.nfkc().collect();
    if compatible != decoded || decoded.chars().any(is_slash_lookalike) {
        return Some("Unicode compatibility mapping (NFKC, best-fit slashes)");
    }
    None
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn is_slash_lookalike(c: char) -> bool {
    matches!(c, '\u{2044}' | '\u{2215}' | '\u{2216}' | '\u{29f5}' | '\u{29f8}' | '\u{29f9}' | '\u{ff0f}' | '\u{ff3c}')
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).and_then(|digit| u8::try_from(digit).ok())
}

/// The escape at the start of `bytes` (`%` and two hex digits), decoded.
fn escape(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [b'%', high, low, ..] => Some(hex(*high)? * 16 + hex(*low)?),
        _ => None,
    }
}

/// Every escape decoded once; a malformed one is left as it is.
fn decode(bytes: &[u8]) -> Vec<u8> {
    decode_bytes(bytes, |_| true)
}

/// The escapes of bytes that `wanted` accepts decoded, the others left.
fn decode_if(path: &str, wanted: impl Fn(u8) -> bool) -> String {
    String::from_utf8_lossy(&decode_bytes(path.as_bytes(), wanted)).into_owned()
}

/// The escapes of bytes that `wanted` accepts decoded, the others (and malformed ones) left.
fn decode_bytes(bytes: &[u8], wanted: impl Fn(u8) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match bytes.get(i..).and_then(escape).filter(|value| wanted(*value)) {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// RFC 3986 §5.2.4, segment by segment.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.strip_prefix('/').unwrap_or(path).split('/') {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

fn merge_slashes(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let slash = if path.ends_with('/') && !segments.is_empty() { "/" } else { "" };
    format!("/{}{slash}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_policy_loads() {
        assert_eq!(fixed_policy().len(), 5);
    }

    #[test]
    fn the_model_rewrites_what_upstreams_rewrite_and_nothing_normal() {
        for rewritten in [
            "/a/../admin",
            "/a/./b",
            "/%2e%2e/admin",
            "/%61dmin",
            "//admin",
            "/a%2fb",
            "/a\\b",
            "/public/..;/admin",
            "/admin.",
            "/admin%20",
            "/%252e",
            "/%c0%ae",
            "/%ef%bc%8e",
            "/a%e2%88%95b",
            "/a%00",
            "/a#b",
        ] {
            assert!(rewriter(rewritten).is_some(), "{rewritten:?}");
        }
        for normal in ["/", "/api/v1/sessions/", "/API/x?q=/../a", "/caf%C3%A9", "/100%25", "/a%3Fb", "/a.b/c"] {
            assert_eq!(rewriter(normal), None, "{normal:?}");
        }
    }
}
