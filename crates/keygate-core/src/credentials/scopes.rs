//! Scopes: `resource:action` strings from a registry, with hierarchy. A scope grants itself and
//! every scope below it at a `:` boundary (`investigations` grants `investigations:read`,
//! `admin:keys` grants `admin:keys:write`), and `*` grants everything.

use std::collections::BTreeSet;

use crate::error::FieldViolation;

/// keygate's own admin scopes, always registered.
pub const ADMIN_SCOPES: &[&str] = &[
    "admin:keys:read",
    "admin:keys:write",
    "admin:clients:read",
    "admin:clients:write",
    "admin:orgs:read",
    "admin:orgs:write",
    "admin:signing:write",
    "admin:audit:read",
];

/// The application scopes of the reference docs, registered unless configured otherwise.
pub const DEFAULT_SCOPES: &[&str] =
    &["investigations:read", "investigations:write", "incidents:read", "search:read", "graph:read"];

/// Longest scope accepted.
const MAX_SCOPE_LEN: usize = 128;
/// Most scopes in one request field.
pub const MAX_SCOPES: usize = 64;
/// Most unknown scopes named in one error, to keep error trailers small.
const MAX_ECHOED: usize = 5;

/// Whether `held` grants `wanted`.
pub fn grants(held: &str, wanted: &str) -> bool {
    held == "*"
        || held == wanted
        || (wanted.len() > held.len() && wanted.starts_with(held) && wanted.as_bytes()[held.len()] == b':')
}

/// Whether any of `held` grants `wanted`.
pub fn any_grants(held: &[String], wanted: &str) -> bool {
    held.iter().any(|h| grants(h, wanted))
}

/// Whether any of `held` grants one of keygate's admin scopes: whether the credential is an
/// admin of any sort.
pub fn holds_admin_scope(held: &[String]) -> bool {
    ADMIN_SCOPES.iter().any(|admin| any_grants(held, admin))
}

/// Whether `scope` is syntactically a scope: segments of lowercase letters, digits, `-`, `_` or
/// `.`, separated by `:`; or `*`.
pub fn is_well_formed(scope: &str) -> bool {
    if scope == "*" {
        return true;
    }
    if scope.is_empty() || scope.len() > MAX_SCOPE_LEN {
        return false;
    }
    // One pass over the bytes (every request's scopes come through here): a `:` may not start
    // or end the scope, nor follow another.
    let mut segment_empty = true;
    for b in scope.bytes() {
        match b {
            b':' if segment_empty => return false,
            b':' => segment_empty = true,
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => segment_empty = false,
            _ => return false,
        }
    }
    !segment_empty
}

/// The set of scopes keygate knows.
#[derive(Debug, Clone)]
pub struct ScopeRegistry {
    known: BTreeSet<String>,
}

impl ScopeRegistry {
    /// A registry of `scopes` plus [`ADMIN_SCOPES`].
    pub fn new<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut known: BTreeSet<String> = scopes.into_iter().map(Into::into).collect();
        known.extend(ADMIN_SCOPES.iter().map(|s| (*s).to_owned()));
        Self { known }
    }

    /// Every registered scope, in order.
    pub fn known(&self) -> impl Iterator<Item = &str> {
        self.known.iter().map(String::as_str)
    }

    /// Whether `scope` is `*`, a registered scope, or a parent of one (`investigations`).
    pub fn is_known(&self, scope: &str) -> bool {
        // Most scopes are named exactly; only a wildcard needs the walk over every known scope.
        scope == "*" || self.known.contains(scope) || self.known.iter().any(|k| grants(scope, k))
    }

    /// Checks a list of scopes from field `field`: each well formed and known, no duplicates, at
    /// most [`MAX_SCOPES`]. Returns every problem.
    pub fn check(&self, field: &str, scopes: &[String]) -> Vec<FieldViolation> {
        let mut problems = Vec::new();
        if scopes.len() > MAX_SCOPES {
            problems.push(FieldViolation::new(field, format!("at most {MAX_SCOPES} scopes")));
            return problems;
        }
        let mut unknown = Vec::new();
        // Duplicates by a scan of the earlier entries: at most MAX_SCOPES of them, and no set to
        // allocate on every request.
        for (i, scope) in scopes.iter().enumerate() {
            if !is_well_formed(scope) {
                // Not echoed: it may be anything, even a key pasted into the wrong field.
                problems
                    .push(FieldViolation::new(format!("{field}[{i}]"), "is not a scope (expected resource:action)"));
            } else if !self.is_known(scope) {
                unknown.push(scope.as_str());
            } else if scopes[..i].contains(scope) {
                problems.push(FieldViolation::new(format!("{field}[{i}]"), format!("{scope} is listed twice")));
            }
        }
        if !unknown.is_empty() {
            let shown: Vec<&str> = unknown.iter().take(MAX_ECHOED).copied().collect();
            let more = unknown.len().saturating_sub(MAX_ECHOED);
            let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
            problems.push(FieldViolation::new(field, format!("unknown scopes: {}{tail}", shown.join(", "))));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy() {
        assert!(grants("*", "investigations:read"));
        assert!(grants("investigations", "investigations:read"));
        assert!(grants("admin:keys", "admin:keys:write"));
        assert!(grants("investigations:read", "investigations:read"));
        assert!(!grants("investigations:read", "investigations:write"));
        assert!(!grants("investigations:read", "investigations"));
        assert!(!grants("invest", "investigations:read"));
        assert!(!grants("investigations:read", "*"));
    }

    #[test]
    fn scope_syntax() {
        for scope in ["*", "a", "investigations:read", "admin:keys:write", "a-b_c.d:9"] {
            assert!(is_well_formed(scope), "{scope:?}");
        }
        let too_long = "a".repeat(MAX_SCOPE_LEN + 1);
        for scope in ["", ":", "a:", ":a", "a::b", "A:b", "a b", "a:*", "**", "é", too_long.as_str()] {
            assert!(!is_well_formed(scope), "{scope:?}");
        }
    }

    #[test]
    fn registry_knows_parents_and_rejects_the_rest() {
        let registry = ScopeRegistry::new(DEFAULT_SCOPES.iter().copied());
        assert!(registry.is_known("investigations"));
        assert!(registry.is_known("admin"));
        assert!(registry.is_known("*"));
        assert!(!registry.is_known("investigations:delete"));
        let problems = registry
            .check("scopes", &["incidents:read".into(), "nope:x".into(), "Bad Scope".into(), "incidents:read".into()]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.description.contains("unknown scopes: nope:x")));
    }
}
