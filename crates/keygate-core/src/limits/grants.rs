//! What an organization's own admins may grant: the limits they give a key or a client are no
//! looser than the operator's ceiling for their organization's plan, nor than the limits of the
//! credential they call with. Platform admins are not held to these bounds.

use super::{LimitDefaults, Limits};
use crate::error::{CoreError, FieldViolation};
use crate::model::PrincipalKind;
use crate::model::{LimitField, LimitOverrides};

/// How a request asks for one of a credential's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Set in the request's `limits`.
    Set,
    /// Left unset on a new credential: the default of its kind, capped at the bounds.
    Unset,
    /// Returned to the default by `reset_limits[i]`.
    Reset(usize),
    /// Not changed: what the credential has stays, even beyond today's bounds.
    Kept,
}

/// The bounds one grant is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantBounds {
    /// The operator's ceiling for the organization, in force (`None`: no ceiling of that sort).
    pub ceiling: Limits,
    /// The organization's plan, for messages.
    pub plan: String,
    /// The limits in force for the granting credential.
    pub own: Limits,
}

impl GrantBounds {
    /// The bounds for granting limits to a credential of `kind`: `ceiling` (the plan's over the
    /// configured one) over the defaults of `kind`, so that without any ceiling configured an
    /// organization admin may tighten the operator's defaults but not loosen them.
    pub fn new(
        defaults: &LimitDefaults,
        kind: PrincipalKind,
        ceiling: LimitOverrides,
        plan: &str,
        own: Limits,
    ) -> Self {
        Self { ceiling: defaults.resolve(kind, &ceiling), plan: plan.to_owned(), own }
    }

    /// Holds `limits` (the credential's own limits once the grant is made) to the bounds, for a
    /// credential of `kind`. A limit left unset whose default is looser is capped at the bounds
    /// (and so stored with the credential); a limit asked for that is looser is refused: beyond the
    /// ceiling with INVALID_ARGUMENT naming each field, beyond the caller's own limits with
    /// PERMISSION_DENIED naming them, as the subset rule does for scopes. `asked` lists the
    /// limits in [`LimitField::ALL`]'s order, the rate before its burst.
    pub fn apply(
        &self,
        defaults: &LimitDefaults,
        kind: PrincipalKind,
        mut limits: LimitOverrides,
        asked: &[(LimitField, Asked)],
    ) -> Result<LimitOverrides, CoreError> {
        let mut beyond_ceiling = Vec::new();
        let mut beyond_own = Vec::new();
        for &(field, how) in asked {
            let in_force = defaults.resolve(kind, &limits).value(field);
            // Without a rate limit there is no burst to bound: the rate itself is reported.
            if field == LimitField::RateBurst && in_force.is_none() {
                continue;
            }
            let (ceiling, own) = (self.ceiling.value(field), self.own.value(field));
            let name = match how {
                Asked::Kept => continue,
                Asked::Unset => {
                    if let Some(cap) = tighter(ceiling, own)
                        && looser(in_force, cap)
                    {
                        limits.set(field, Some(cap));
                    }
                    continue;
                }
                Asked::Set => field.name().to_owned(),
                Asked::Reset(i) => format!("reset_limits[{i}]"),
            };
            if let Some(max) = ceiling
                && looser(in_force, max)
            {
                let description = match how {
                    Asked::Reset(_) => format!(
                        "the default of {} for {} ({}) is beyond the ceiling of plan {} ({max}): set {} to at most \
                         {max} instead",
                        noun(kind),
                        field.name(),
                        shown(in_force),
                        self.plan,
                        field.name()
                    ),
                    _ => format!(
                        "must be at most {max}, the ceiling of plan {}{}; a platform admin may set more",
                        self.plan,
                        if in_force.is_none() { " (0, no limit, is beyond any ceiling)" } else { "" }
                    ),
                };
                beyond_ceiling.push(FieldViolation::new(name, description));
            } else if let Some(max) = own
                && looser(in_force, max)
            {
                beyond_own.push(format!("{name} (yours: {max})"));
            }
        }
        if !beyond_ceiling.is_empty() {
            return Err(CoreError::InvalidArgument(beyond_ceiling));
        }
        if !beyond_own.is_empty() {
            return Err(CoreError::PermissionDenied(format!(
                "you cannot grant limits looser than your own: {}",
                beyond_own.join(", ")
            )));
        }
        Ok(limits)
    }
}

/// How a new credential asks for each limit: the ones `overrides` sets, and the rest unset.
pub fn asked_on_create(overrides: &LimitOverrides) -> [(LimitField, Asked); 4] {
    LimitField::ALL.map(|field| (field, if field.is_set_in(overrides) { Asked::Set } else { Asked::Unset }))
}

/// How a change asks for each limit: set in `overrides`, reset by `resets` (names checked
/// already), or kept. A new rate changes a burst of "a minute's worth" with it, so the burst is
/// checked then too.
pub fn asked_on_change(overrides: &LimitOverrides, resets: &[String]) -> [(LimitField, Asked); 4] {
    let asked = |field: LimitField| {
        if field.is_set_in(overrides) {
            return Asked::Set;
        }
        match resets.iter().position(|name| LimitField::from_name(name) == Some(field)) {
            Some(i) => Asked::Reset(i),
            None => Asked::Kept,
        }
    };
    let mut all = LimitField::ALL.map(|field| (field, asked(field)));
    let rate_changed = all[0].1 != Asked::Kept;
    if rate_changed && all[1].1 == Asked::Kept {
        all[1].1 = Asked::Set;
    }
    all
}

/// The tighter of two bounds (`None`: none).
fn tighter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a limit in force (`None`: no limit) is looser than `max`.
fn looser(in_force: Option<u64>, max: u64) -> bool {
    in_force.is_none_or(|value| value > max)
}

fn shown(value: Option<u64>) -> String {
    value.map_or_else(|| "no limit".to_owned(), |n| n.to_string())
}

fn noun(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::ApiKey => "API keys",
        PrincipalKind::Client => "API clients",
        PrincipalKind::User => "users",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::KindDefaults;
    use crate::model::RateLimit;

    /// Keys: no rate limit and 5 slots by default; clients 200 a minute.
    fn defaults() -> LimitDefaults {
        LimitDefaults {
            api_keys: KindDefaults { rate_per_minute: 0, rate_burst: 0, max_quota: 0, max_concurrency: 5 },
            clients: KindDefaults { rate_per_minute: 200, rate_burst: 0, max_quota: 0, max_concurrency: 5 },
            users: KindDefaults::default(),
        }
    }

    fn bounds(ceiling: LimitOverrides, own: Limits) -> GrantBounds {
        GrantBounds::new(&defaults(), PrincipalKind::ApiKey, ceiling, "free", own)
    }

    fn rate(per_minute: u32) -> LimitOverrides {
        LimitOverrides { rate_per_minute: Some(per_minute), ..LimitOverrides::default() }
    }

    fn fields(err: CoreError) -> Vec<String> {
        match err {
            CoreError::InvalidArgument(violations) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    fn create(bounds: &GrantBounds, limits: LimitOverrides) -> Result<LimitOverrides, CoreError> {
        bounds.apply(&defaults(), PrincipalKind::ApiKey, limits, &asked_on_create(&limits))
    }

    #[test]
    fn without_a_ceiling_the_defaults_bound_organization_admins() {
        let bounds = bounds(LimitOverrides::default(), Limits::default());
        // Keys have no rate limit by default, so none (0) may be asked for; not more slots.
        assert_eq!(create(&bounds, rate(0)).expect("allowed"), rate(0));
        let slots = LimitOverrides { max_concurrency: Some(6), ..LimitOverrides::default() };
        assert_eq!(fields(create(&bounds, slots).expect_err("beyond")), ["max_concurrency"]);
        let unlimited = LimitOverrides { max_concurrency: Some(0), ..LimitOverrides::default() };
        assert_eq!(fields(create(&bounds, unlimited).expect_err("beyond")), ["max_concurrency"]);
        // Clients: 200 a minute by default, so 201 or none is beyond.
        let client = |limits: LimitOverrides| {
            let bounds = GrantBounds::new(
                &defaults(),
                PrincipalKind::Client,
                LimitOverrides::default(),
                "free",
                Limits::default(),
            );
            bounds.apply(&defaults(), PrincipalKind::Client, limits, &asked_on_create(&limits))
        };
        assert!(client(rate(200)).is_ok());
        assert_eq!(fields(client(rate(201)).expect_err("beyond")), ["rate_limit_per_minute"]);
        assert_eq!(fields(client(rate(0)).expect_err("no limit")), ["rate_limit_per_minute"]);
    }

    #[test]
    fn unset_limits_are_capped_and_set_ones_refused() {
        let ceiling =
            LimitOverrides { rate_per_minute: Some(1000), rate_burst: Some(100), ..LimitOverrides::default() };
        let bounds = bounds(ceiling, Limits::default());
        // Unset: the default (no rate limit) is capped at the ceiling, burst included.
        let capped = create(&bounds, LimitOverrides::default()).expect("capped");
        assert_eq!((capped.rate_per_minute, capped.rate_burst), (Some(1000), Some(100)));
        assert_eq!(create(&bounds, rate(500)).expect("within").rate_burst, Some(100), "a minute's worth is 500");
        let err = create(&bounds, LimitOverrides { rate_burst: Some(0), ..rate(0) }).expect_err("no limit");
        assert_eq!(fields(err), ["rate_limit_per_minute"], "no rate, no burst to report");
        assert_eq!(fields(create(&bounds, rate(1001)).expect_err("beyond")), ["rate_limit_per_minute"]);
        let burst = LimitOverrides { rate_burst: Some(101), ..rate(10) };
        assert_eq!(fields(create(&bounds, burst).expect_err("beyond")), ["rate_limit_burst"]);
    }

    #[test]
    fn a_caller_grants_no_more_than_it_has() {
        let own = Limits {
            rate: Some(RateLimit { per_minute: 100, burst: 100 }),
            max_quota: Some(5000),
            max_concurrency: Some(5),
        };
        let bounds = bounds(LimitOverrides { max_quota: Some(0), ..LimitOverrides::default() }, own);
        let capped = create(&bounds, LimitOverrides::default()).expect("capped at its own");
        assert_eq!((capped.rate_per_minute, capped.max_quota), (Some(100), Some(5000)));
        let err = create(&bounds, LimitOverrides { max_quota: Some(0), ..rate(101) }).expect_err("looser");
        let CoreError::PermissionDenied(message) = err else { panic!("expected PERMISSION_DENIED: {err:?}") };
        assert!(message.contains("rate_limit_per_minute (yours: 100)"), "{message}");
        assert!(message.contains("max_quota (yours: 5000)"), "{message}");
    }

    #[test]
    fn ceilings_of_0_bound_nothing() {
        let none =
            LimitOverrides { rate_per_minute: Some(0), rate_burst: None, max_quota: Some(0), max_concurrency: Some(0) };
        let unbounded = bounds(none, Limits::default());
        let unlimited = LimitOverrides { max_quota: Some(0), max_concurrency: Some(0), ..rate(0) };
        assert_eq!(create(&unbounded, unlimited).expect("no ceiling"), unlimited);
        assert_eq!(create(&unbounded, LimitOverrides::default()).expect("nothing capped"), LimitOverrides::default());
    }

    #[test]
    fn changes_check_what_they_touch_and_resets_name_their_entry() {
        let bounds = bounds(rate(1000), Limits::default());
        // A key granted 5000 a minute before the ceiling was lowered keeps it while other limits change.
        let grandfathered = LimitOverrides { max_quota: Some(10), ..rate(5000) };
        let change = LimitOverrides { max_quota: Some(10), ..LimitOverrides::default() };
        let asked = asked_on_change(&change, &[]);
        assert!(bounds.apply(&defaults(), PrincipalKind::ApiKey, grandfathered, &asked).is_ok());
        // Resetting the rate to the default (no limit) is beyond the ceiling: the entry is named.
        let resets = ["max_quota".to_owned(), "rate_limit_per_minute".to_owned()];
        let asked = asked_on_change(&LimitOverrides::default(), &resets);
        let reset = LimitOverrides { rate_per_minute: None, ..LimitOverrides::default() };
        let err = bounds.apply(&defaults(), PrincipalKind::ApiKey, reset, &asked).expect_err("beyond");
        assert_eq!(fields(err), ["reset_limits[1]"]);
    }
}
