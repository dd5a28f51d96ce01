//! The route policy of the HTTP gateway (Envoy's `Check`): which requests need which scopes, which
//! are public, and what each costs. Parsed from TOML and validated as a whole, so that a bad file
//! is reported with every problem at once. The first route that matches a request decides.
//!
//! ```toml
//! [[routes]]
//! methods = ["GET"]                 # any method when left out
//! path = "/api/v1/sessions/*"       # `*` is one segment; a final `/**` is any rest (a prefix)
//! host = "api.example.com"          # optional; case-insensitive, port ignored unless given
//! scopes = ["investigations:read"]  # required, unless `public = true`
//! scope_match = "all"               # or "any"
//! cost = 1                          # quota units, for rate limiting
//! ```

use std::fmt;

use super::model::ScopeMatch;
use crate::credentials::scopes::ScopeRegistry;

/// The most routes a policy may hold; matching is linear, and a longer list is a mistake.
const MAX_ROUTES: usize = 10_000;
/// The largest quota cost of one request.
const MAX_COST: i64 = 1_000_000;
const ROUTE_KEYS: &[&str] = &["name", "methods", "path", "host", "scopes", "scope_match", "cost", "public"];

/// What a matched route asks of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No credential is needed.
    Public,
    /// A credential holding these scopes (all of them, or any under [`ScopeMatch::Any`]).
    Scopes { scopes: Vec<String>, matching: ScopeMatch },
}

/// One route: what it matches and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// For logs and metadata; defaults to the methods and path.
    pub name: String,
    /// Upper-case methods; empty matches any.
    methods: Vec<String>,
    /// Lower-case host, with a port only when one was given.
    host: Option<String>,
    path: PathPattern,
    pub access: Access,
    /// Quota units a request on this route consumes.
    pub cost: u32,
}

/// A path pattern: literal segments, `*` for exactly one non-empty segment, and optionally a
/// final `**` for any number of further segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PathPattern {
    segments: Vec<Segment>,
    /// Ends in `/**`: the segments are a prefix.
    rest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

/// A validated, immutable route policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    routes: Vec<Route>,
}

/// Every problem found in a policy file, one per entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<String>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid route policy:")?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl Policy {
    /// Parses and validates a policy; scopes must be known to `registry`.
    pub fn parse(text: &str, registry: &ScopeRegistry) -> Result<Self, PolicyErrors> {
        let table: toml::Table = text.parse().map_err(|err| PolicyErrors(vec![format!("not valid TOML: {err}")]))?;
        let mut problems = Vec::new();
        let mut routes = Vec::new();
        for key in table.keys().filter(|key| key.as_str() != "routes") {
            problems.push(format!("{key}: unknown key (a policy holds [[routes]])"));
        }
        match table.get("routes") {
            None => {}
            Some(toml::Value::Array(items)) if items.len() > MAX_ROUTES => {
                problems.push(format!("routes: at most {MAX_ROUTES} routes"));
            }
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let field = format!("routes[{i}]");
                    match item.as_table() {
                        Some(route) => {
                            if let Some(route) = parse_route(&field, route, registry, &mut problems) {
                                routes.push(route);
                            }
                        }
                        None => problems.push(format!("{field}: expected a table")),
                    }
                }
            }
            Some(other) => problems.push(format!("routes: expected [[routes]] tables, got {}", other.type_str())),
        }
        if problems.is_empty() { Ok(Self { routes }) } else { Err(PolicyErrors(problems)) }
    }

    /// The first route matching the request, if any. `path` may carry a query string; it must be
    /// in normal form (see [`abnormal_path`], which the gateway checks first).
    pub fn find(&self, method: &str, host: &str, path: &str) -> Option<&Route> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        self.routes.iter().find(|route| route.matches(method, host, path))
    }

    /// How many routes the policy holds.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the policy holds no route (every request is unmatched).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl Route {
    fn matches(&self, method: &str, host: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self.host.as_deref().is_none_or(|wanted| host_matches(wanted, host))
            && self.path.matches(path)
    }
}

/// Why a request target (a path, possibly with a query) is not in the normal form the route
/// matcher reads, or `None` when it is. Such a path is denied before any route is looked at,
/// whatever `default_action` says: the upstream may resolve it to another path than the one the
/// matcher saw (`/public/..;/admin` is `/admin` to Tomcat, `/a%2fb` is `/a/b` to some servers,
/// `\` is `/` to IIS). Envoy's `normalize_path`, `merge_slashes` and
/// `path_with_escaped_slashes_action` deal with most of these before keygate sees them, so normal
/// traffic never arrives this way. A trailing slash is normal (it is matched as if absent), and
/// so is a percent-encoded character that is valid UTF-8 and already in Unicode normal form.
pub fn abnormal_path(target: &str) -> Option<&'static str> {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if path == "/" {
        return None;
    }
    let Some(body) = path.strip_prefix('/') else {
        return Some("it does not start with '/'");
    };
    let body = body.strip_suffix('/').unwrap_or(body);
    body.split('/').find_map(abnormal_segment)
}

/// What is wrong with one path segment, if anything.
fn abnormal_segment(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        return Some("it has an empty segment ('//')");
    }
    if segment == "." || segment == ".." {
        return Some("it has a '.' or '..' segment");
    }
    let bytes = segment.as_bytes();
    // Only a segment with escapes is decoded (the common path copies nothing).
    let mut decoded = Vec::new();
    let escaped = bytes.contains(&b'%');
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        i += 1;
        let byte = match byte {
            b'%' => {
                let Some(value) = bytes.get(i..i + 2).and_then(hex_pair) else {
                    return Some("it has a malformed percent-escape");
                };
                i += 2;
                if let Some(problem) = abnormal_escape(value, bytes.get(i..i + 2)) {
                    return Some(problem);
                }
                value
            }
            b'\\' => return Some("it has a backslash"),
            b';' => return Some("it has a ';' (a path parameter)"),
            b'#' => return Some("it has a '#'"),
            0x21..=0x7e => byte,
            _ => return Some("it has a space, a control character or a non-ASCII byte"),
        };
        if escaped {
            decoded.push(byte);
        }
    }
    let text = if escaped {
        let Ok(text) = std::str::from_utf8(&decoded) else {
            return Some("it encodes bytes that are not UTF-8 (such as the overlong %c0%ae)");
        };
        if !text.is_ascii() && (!unicode_normalization::is_nfkc(text) || text.chars().any(is_slash_lookalike)) {
            return Some("it encodes characters that stand for others (such as fullwidth letters, dots or slashes)");
        }
        text
    } else {
        segment
    };
    if text.ends_with(['.', ' ']) {
        return Some("it has a segment ending in '.' or a space, which some servers drop");
    }
    None
}

/// What is wrong with a percent-escape of `value` (followed by `next`), if anything.
fn abnormal_escape(value: u8, next: Option<&[u8]>) -> Option<&'static str> {
    match value {
        b'.' => Some("it encodes a dot (%2e)"),
        b'/' | b'\\' => Some("it encodes a slash or a backslash (%2f, %5c)"),
        // RFC 3986 §2.3: these are never encoded by a normalizing client, and Envoy decodes them.
        b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') => {
            Some("it encodes a letter, a digit or one of '-', '_', '~', which need no encoding")
        }
        0..=0x1f | 0x7f => Some("it encodes a control character"),
        // `%252e` is `%2e` to an upstream that decodes twice.
        b'%' if next.and_then(hex_pair).is_some() => Some("it encodes a percent-escape twice (such as %252e)"),
        _ => None,
    }
}

/// The byte two hex digits stand for.
fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    match pair {
        [high, low] => u8::try_from(digit(*high)? * 16 + digit(*low)?).ok(),
        _ => None,
    }
}

/// Slashes and backslashes that Unicode normalization keeps but some platforms' "best fit"
/// conversions turn into `/` or `\`.
fn is_slash_lookalike(c: char) -> bool {
    matches!(c, '\u{2044}' | '\u{2215}' | '\u{2216}' | '\u{29f5}' | '\u{29f8}' | '\u{29f9}')
}

/// Host names compare case-insensitively (without a copy per request). A `wanted` without a
/// port matches any port.
fn host_matches(wanted: &str, host: &str) -> bool {
    if wanted.eq_ignore_ascii_case(host) {
        return true;
    }
    if has_port(wanted) {
        return false;
    }
    host.rsplit_once(':').is_some_and(|(name, port)| {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && name.eq_ignore_ascii_case(wanted)
    })
}

/// Whether a host (name, IPv4 or `[IPv6]`) names a port.
fn has_port(host: &str) -> bool {
    let after_bracket = host.rsplit_once(']').map_or(host, |(_, rest)| rest);
    after_bracket.contains(':')
}

impl PathPattern {
    fn parse(pattern: &str) -> Result<Self, String> {
        let Some(body) = pattern.strip_prefix('/') else {
            return Err("must start with '/'".to_owned());
        };
        if pattern.contains(['?', '#']) {
            return Err("must not contain a query ('?') or fragment ('#')".to_owned());
        }
        if pattern.contains("//") {
            return Err("must not contain empty segments ('//')".to_owned());
        }
        // A trailing slash names the same resource as the path without it (see `matches`).
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut parts: Vec<&str> = if body.is_empty() { Vec::new() } else { body.split('/').collect() };
        let rest = parts.last() == Some(&"**");
        if rest {
            parts.pop();
        }
        let mut segments = Vec::new();
        for part in &parts {
            match *part {
                "*" => segments.push(Segment::Any),
                "**" => return Err("'**' may only be the last segment".to_owned()),
                "." | ".." => return Err("must not contain '.' or '..' segments".to_owned()),
                "" => return Err("must not contain empty segments ('//')".to_owned()),
                literal if literal.contains('*') => {
                    return Err(format!("segment {literal:?}: '*' must be a whole segment"));
                }
                // A request path in normal form never matches it: deny instead of never matching.
                literal => match abnormal_segment(literal) {
                    Some(problem) => return Err(format!("segment {literal:?} is not in normal form: {problem}")),
                    None => segments.push(Segment::Literal(literal.to_owned())),
                },
            }
        }
        Ok(Self { segments, rest })
    }

    fn matches(&self, path: &str) -> bool {
        let Some(body) = path.strip_prefix('/') else {
            return false;
        };
        // One trailing slash is the same resource to most upstreams: `/a/b/` is matched as `/a/b`,
        // so that it cannot slip past the route for `/a/b` (to `default_action = "allow"`).
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut parts = body.split('/').filter(|_| !body.is_empty());
        for segment in &self.segments {
            match (segment, parts.next()) {
                // Without regard to ASCII case: to a case-insensitive upstream `/ADMIN` is `/admin`,
                // and to a case-sensitive one it is a path nobody serves.
                (Segment::Literal(literal), Some(part)) if part.eq_ignore_ascii_case(literal) => {}
                (Segment::Any, Some(part)) if !part.is_empty() => {}
                _ => return false,
            }
        }
        // A `/**` pattern also matches its prefix itself.
        self.rest || parts.next().is_none()
    }
}

fn parse_route(
    field: &str,
    table: &toml::Table,
    registry: &ScopeRegistry,
    problems: &mut Vec<String>,
) -> Option<Route> {
    let before = problems.len();
    for key in table.keys().filter(|key| !ROUTE_KEYS.contains(&key.as_str())) {
        problems.push(format!("{field}.{key}: unknown key"));
    }
    let mut problem = |key: &str, description: String| problems.push(format!("{field}.{key}: {description}"));

    let path = match table.get("path").map(|value| value.as_str().ok_or("expected a string")) {
        None => {
            problem("path", "is required".to_owned());
            None
        }
        Some(Err(description)) => {
            problem("path", description.to_owned());
            None
        }
        Some(Ok(text)) => match PathPattern::parse(text) {
            Ok(pattern) => Some((text.to_owned(), pattern)),
            Err(description) => {
                problem("path", description);
                None
            }
        },
    };
    let methods = match string_list(table.get("methods")) {
        Ok(methods) => {
            for (i, method) in methods.iter().enumerate() {
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                    problem(&format!("methods[{i}]"), "is not an HTTP method".to_owned());
                }
            }
            methods.iter().map(|m| m.to_ascii_uppercase()).collect()
        }
        Err(description) => {
            problem("methods", description);
            Vec::new()
        }
    };
    let host = match table.get("host").map(toml::Value::as_str) {
        None => None,
        Some(Some(host)) if is_host(host) => Some(host.to_ascii_lowercase()),
        Some(_) => {
            problem("host", "expected a host name, optionally with :port".to_owned());
            None
        }
    };
    let public = match table.get("public").map(toml::Value::as_bool) {
        None => false,
        Some(Some(public)) => public,
        Some(None) => {
            problem("public", "expected true or false".to_owned());
            false
        }
    };
    let scopes = match string_list(table.get("scopes")) {
        Ok(scopes) => scopes,
        Err(description) => {
            problem("scopes", description);
            Vec::new()
        }
    };
    let matching = match table.get("scope_match").map(toml::Value::as_str) {
        None | Some(Some("all")) => ScopeMatch::All,
        Some(Some("any")) => ScopeMatch::Any,
        Some(_) => {
            problem("scope_match", "expected \"all\" or \"any\"".to_owned());
            ScopeMatch::All
        }
    };
    let cost = match table.get("cost").map(toml::Value::as_integer) {
        None => 1,
        Some(Some(cost)) if (0..=MAX_COST).contains(&cost) => u32::try_from(cost).unwrap_or(u32::MAX),
        Some(_) => {
            problem("cost", format!("expected an integer from 0 to {MAX_COST}"));
            1
        }
    };
    let name = match table.get("name").map(toml::Value::as_str) {
        None => None,
        Some(Some(name)) if !name.trim().is_empty() && name.len() <= 200 => Some(name.to_owned()),
        Some(_) => {
            problem("name", "expected a non-empty string of at most 200 characters".to_owned());
            None
        }
    };
    let access = if public {
        if !scopes.is_empty() || table.contains_key("scope_match") {
            problem("scopes", "a public route needs no scopes; remove them or public = true".to_owned());
        }
        Access::Public
    } else {
        if scopes.is_empty() && !table.contains_key("scopes") {
            problem("scopes", "is required (or public = true)".to_owned());
        } else if scopes.is_empty() {
            problem("scopes", "must name at least one scope (or public = true)".to_owned());
        }
        for violation in registry.check(&format!("{field}.scopes"), &scopes) {
            problems.push(format!("{}: {}", violation.field, violation.description));
        }
        Access::Scopes { scopes, matching }
    };

    let (path_text, path) = path?;
    if problems.len() > before {
        return None;
    }
    let name = name
        .unwrap_or_else(|| if methods.is_empty() { path_text } else { format!("{} {path_text}", methods.join(",")) });
    Some(Route { name, methods, host, path, access, cost })
}

/// An optional array of strings.
fn string_list(value: Option<&toml::Value>) -> Result<Vec<String>, String> {
    match value {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| "expected an array of strings".to_owned()))
            .collect(),
        Some(other) => Err(format!("expected an array of strings, got {}", other.type_str())),
    }
}

/// A host name or address as Envoy reports `:authority`: letters, digits, `-`, `.`, and an
/// optional `:port`, or a bracketed IPv6 address.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::scopes::DEFAULT_SCOPES;

    fn registry() -> ScopeRegistry {
        ScopeRegistry::new(DEFAULT_SCOPES.iter().copied())
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text, &registry()).unwrap_or_else(|errors| panic!("{errors}"))
    }

    fn found<'a>(policy: &'a Policy, method: &str, host: &str, path: &str) -> Option<&'a str> {
        policy.find(method, host, path).map(|route| route.name.as_str())
    }

    #[test]
    fn exact_star_and_prefix_paths() {
        let p = policy(
            r#"
            [[routes]]
            name = "exact"
            path = "/api/v1/sessions"
            scopes = ["investigations:read"]
            [[routes]]
            name = "one"
            path = "/api/v1/sessions/*"
            scopes = ["investigations:read"]
            [[routes]]
            name = "middle"
            path = "/api/*/graph"
            scopes = ["graph:read"]
            [[routes]]
            name = "prefix"
            path = "/static/**"
            public = true
            [[routes]]
            name = "root"
            path = "/"
            public = true
            "#,
        );
        assert_eq!(found(&p, "GET", "h", "/api/v1/sessions"), Some("exact"));
        assert_eq!(found(&p, "GET", "h", "/api/v1/sessions?x=1"), Some("exact"));
        assert_eq!(found(&p, "GET", "h", "/api/v1/sessions/42"), Some("one"));
        assert_eq!(found(&p, "GET", "h", "/api/v1/sessions/42?q=a/b"), Some("one"));
        assert_eq!(found(&p, "GET", "h", "/api/v1/sessions/"), Some("exact"), "a trailing slash is ignored");
        assert_eq!(found(&p, "GET", "h", "/api/v1/sessions/42/"), Some("one"));
        assert_eq!(found(&p, "GET", "h", "/API/V1/Sessions/42"), Some("one"), "literals ignore ASCII case");
        assert_eq!(found(&p, "GET", "h", "/api/v1/sessions/42/notes"), None, "* is one segment");
        assert_eq!(found(&p, "GET", "h", "/api/v2/graph"), Some("middle"));
        assert_eq!(found(&p, "GET", "h", "/static"), Some("prefix"));
        assert_eq!(found(&p, "GET", "h", "/static/"), Some("prefix"));
        assert_eq!(found(&p, "GET", "h", "/static/css/site.css"), Some("prefix"));
        assert_eq!(found(&p, "GET", "h", "/staticky"), None, "a prefix ends at a segment boundary");
        assert_eq!(found(&p, "GET", "h", "/"), Some("root"));
        assert_eq!(found(&p, "GET", "h", "/nope"), None);
    }

    #[test]
    fn paths_not_in_normal_form_are_named() {
        for normal in [
            "/",
            "/api/v1/sessions",
            "/api/v1/sessions/",
            "/api/v1/sessions?next=/../admin;x=%2e%2e",
            "/API/Mixed-Case_~x",
            "/a.b/c..d/.well-known",
            "/caf%C3%A9/%E2%82%AC",
            "/100%25/a%20b",
            "/a%3Fb%23c%40d",
        ] {
            assert_eq!(abnormal_path(normal), None, "{normal:?}");
        }
        for (abnormal, problem) in [
            ("", "does not start with '/'"),
            ("*", "does not start with '/'"),
            ("api", "does not start with '/'"),
            ("//", "empty segment"),
            ("//admin", "empty segment"),
            ("/a//b", "empty segment"),
            ("/a//", "empty segment"),
            ("/.", "'.' or '..' segment"),
            ("/a/./b", "'.' or '..' segment"),
            ("/a/../b", "'.' or '..' segment"),
            ("/a/..", "'.' or '..' segment"),
            ("/a/../", "'.' or '..' segment"),
            ("/a/..;/b", "';'"),
            ("/a;jsessionid=1/b", "';'"),
            ("/a/b;", "';'"),
            ("/a/%2e%2e/b", "encodes a dot"),
            ("/a/%2E%2E/b", "encodes a dot"),
            ("/a/.%2e/b", "encodes a dot"),
            ("/a/%2e", "encodes a dot"),
            ("/a%2fb", "slash or a backslash"),
            ("/a%2Fb", "slash or a backslash"),
            ("/a%5cb", "slash or a backslash"),
            ("/a%5Cb", "slash or a backslash"),
            ("/a\\b", "backslash"),
            ("/a/b.", "ending in '.'"),
            ("/admin.", "ending in '.'"),
            ("/a/...", "ending in '.'"),
            ("/admin%20", "ending in '.' or a space"),
            ("/%61dmin", "encodes a letter"),
            ("/ad%6Din", "encodes a letter"),
            ("/%7e", "encodes a letter"),
            ("/a/%c0%ae%c0%ae/b", "not UTF-8"),
            ("/a/%C0%AF", "not UTF-8"),
            ("/a/%e0%80%ae", "not UTF-8"),
            ("/a/%ff", "not UTF-8"),
            ("/a/%ef%bc%8e%ef%bc%8e/b", "stand for others"),
            ("/%ef%bd%81dmin", "stand for others"),
            ("/a%e2%88%95b", "stand for others"),
            ("/a/%252e%252e/b", "twice"),
            ("/a/%u002e", "malformed"),
            ("/a%zz", "malformed"),
            ("/a%2", "malformed"),
            ("/a%", "malformed"),
            ("/a%00b", "control character"),
            ("/a%0d%0ab", "control character"),
            ("/a%7f", "control character"),
            ("/a b", "space, a control character or a non-ASCII byte"),
            ("/a\tb", "space, a control character or a non-ASCII byte"),
            ("/a\nb", "space, a control character or a non-ASCII byte"),
            ("/a\u{1}b", "space, a control character or a non-ASCII byte"),
            ("/a\u{7f}", "space, a control character or a non-ASCII byte"),
            ("/caf\u{e9}", "space, a control character or a non-ASCII byte"),
            ("/\u{ff0e}\u{ff0e}/admin", "space, a control character or a non-ASCII byte"),
            ("/a#b", "'#'"),
        ] {
            let found = abnormal_path(abnormal).unwrap_or_else(|| panic!("{abnormal:?} passed as normal"));
            assert!(found.contains(problem), "{abnormal:?}: {found:?} does not say {problem:?}");
        }
    }

    #[test]
    fn patterns_are_in_normal_form_too() {
        for (pattern, problem) in [
            ("/a//b", "empty segments"),
            ("//", "empty segments"),
            ("/a;b", "not in normal form"),
            ("/%2e%2e/x", "not in normal form"),
            ("/a./b", "not in normal form"),
        ] {
            let errors = Policy::parse(&format!("[[routes]]\npath = {pattern:?}\npublic = true\n"), &registry())
                .expect_err(pattern);
            assert!(errors.to_string().contains(problem), "{pattern:?}: {errors}");
        }
        let p = policy("[[routes]]\nname = \"slash\"\npath = \"/a/b/\"\npublic = true\n");
        assert_eq!(found(&p, "GET", "h", "/a/b"), Some("slash"), "a pattern's trailing slash is ignored too");
        assert_eq!(found(&p, "GET", "h", "/a/b/"), Some("slash"));
    }

    #[test]
    fn methods_hosts_and_first_match_wins() {
        let p = policy(
            r#"
            [[routes]]
            methods = ["get", "HEAD"]
            path = "/api/v1/sessions/**"
            host = "API.example.com"
            scopes = ["investigations:read"]
            [[routes]]
            methods = ["POST"]
            path = "/api/v1/sessions/**"
            scopes = ["investigations:write"]
            [[routes]]
            path = "/api/v1/sessions/**"
            host = "internal:8443"
            scopes = ["investigations"]
            "#,
        );
        assert_eq!(found(&p, "GET", "api.example.com", "/api/v1/sessions/1"), Some("GET,HEAD /api/v1/sessions/**"));
        assert_eq!(
            found(&p, "HEAD", "API.EXAMPLE.COM:443", "/api/v1/sessions/1"),
            Some("GET,HEAD /api/v1/sessions/**")
        );
        assert_eq!(found(&p, "GET", "other.example.com", "/api/v1/sessions/1"), None);
        assert_eq!(found(&p, "POST", "anything", "/api/v1/sessions/1"), Some("POST /api/v1/sessions/**"));
        assert_eq!(found(&p, "DELETE", "internal:8443", "/api/v1/sessions"), Some("/api/v1/sessions/**"));
        assert_eq!(found(&p, "DELETE", "internal", "/api/v1/sessions"), None, "a port in the pattern must match");
        assert_eq!(found(&p, "get", "api.example.com", "/api/v1/sessions/1"), None, "methods are case-sensitive");
    }

    #[test]
    fn access_cost_and_scope_match_are_carried() {
        let p = policy(
            r#"
            [[routes]]
            path = "/search"
            scopes = ["search:read", "graph:read"]
            scope_match = "any"
            cost = 5
            [[routes]]
            path = "/health"
            public = true
            cost = 0
            "#,
        );
        let search = p.find("GET", "h", "/search").expect("search");
        assert_eq!(search.cost, 5);
        let scopes = vec!["search:read".to_owned(), "graph:read".to_owned()];
        assert_eq!(search.access, Access::Scopes { scopes, matching: ScopeMatch::Any });
        let health = p.find("GET", "h", "/health").expect("health");
        assert_eq!((health.cost, &health.access), (0, &Access::Public));
        assert_eq!(p.len(), 2);
        assert!(policy("").is_empty(), "an empty policy is valid and matches nothing");
    }

    #[test]
    fn every_problem_is_reported() {
        let errors = Policy::parse(
            r#"
            default = "allow"
            [[routes]]
            path = "api/x"
            scopes = ["nope:read"]
            [[routes]]
            methods = ["GET", "G T"]
            path = "/a/**/b"
            public = true
            scopes = ["graph:read"]
            [[routes]]
            path = "/a/b*"
            scope = ["graph:read"]
            cost = -1
            scope_match = "some"
            host = "bad host"
            [[routes]]
            scopes = []
            "#,
            &registry(),
        )
        .expect_err("invalid");
        let text = errors.to_string();
        for needle in [
            "default: unknown key",
            "routes[0].path: must start with '/'",
            "routes[0].scopes: unknown scopes: nope:read",
            "routes[1].methods[1]",
            "routes[1].path: '**' may only be the last segment",
            "routes[1].scopes: a public route needs no scopes",
            "routes[2].scope: unknown key",
            "routes[2].path: segment \"b*\"",
            "routes[2].cost",
            "routes[2].scope_match",
            "routes[2].host",
            "routes[2].scopes: is required",
            "routes[3].path: is required",
            "routes[3].scopes: must name at least one scope",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        assert_eq!(errors.0.len(), 14, "{text}");
        let not_toml = Policy::parse("[[routes]\npath=", &registry()).expect_err("not TOML");
        assert!(not_toml.to_string().contains("not valid TOML"), "{not_toml}");
    }
}
