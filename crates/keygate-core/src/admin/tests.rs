//! The admin rules, on the in-memory store with a manual clock: which scopes an admin may grant,
//! organization isolation, the plan's key limit, lifetimes and grace periods, the audit log, and
//! the kind of each refusal. No database, no network, no sleeping.

use chrono::Duration;

use crate::admin::audit::AuditListing;
use crate::admin::clients::NewClient;
use crate::admin::{IssuedKey, ListRequest, NewKey, NewOrganization, OrganizationUpdate, RotateKey};
use crate::error::{CoreError, OAuthErrorKind};
use crate::model::{AuditEntry, KeyStatus, Labels, LimitOverrides, PrincipalKind, Reason, SUCCESS};
use crate::oauth::{CLIENT_CREDENTIALS, TokenRequest};
use crate::ports::KeyChanges;
use crate::testing::harness::{Core, PLATFORM, code, ctx, new_key, scopes, start};

/// A platform admin and an organization `acme` (plan `pro`) with an admin holding `admin`.
async fn acme(admin: &[&str]) -> (Core, String, String) {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    core.organization(&root, "acme", "pro").await;
    let acme_admin = core.key(&root, "acme", admin).await.api_key;
    (core, root, acme_admin)
}

fn listing(offset: i64, limit: i64, organization: &str) -> ListRequest {
    ListRequest { offset, limit, organization: organization.into(), ..ListRequest::default() }
}

fn rotation(key: &IssuedKey, grace: Option<i64>, expires: Option<i64>) -> RotateKey {
    RotateKey { key_id: key.view.key.key_id.clone(), grace_period_days: grace, expires_in_days: expires }
}

/// The outcomes of the refused attempts among `entries`, oldest first.
fn refusals(entries: &[AuditEntry]) -> Vec<String> {
    entries.iter().filter(|e| e.outcome != SUCCESS).map(|e| e.outcome.clone()).collect()
}

#[tokio::test]
async fn bootstrap_makes_the_platform_and_its_admin_once() {
    let core = Core::new().await;
    let issued = core.admin.bootstrap(PLATFORM, false).await.expect("bootstrap");
    let key = &issued.view.key;
    assert_eq!((key.organization.as_str(), key.scopes.clone()), (PLATFORM, scopes(&["*"])));
    assert_eq!(key.expires_at, start() + Duration::days(365), "the configured default lifetime");
    let org = core.admin.get_organization(&ctx(&issued.api_key), PLATFORM).await.expect("platform");
    assert_eq!((org.platform, org.plan.as_str(), org.max_active_keys), (true, "enterprise", 1000));
    let principal = core.authenticate(&issued.api_key).await.expect("the key works");
    assert_eq!((principal.kind, principal.id.as_str()), (PrincipalKind::ApiKey, key.key_id.as_str()));

    assert_eq!(code(&core.admin.bootstrap(PLATFORM, false).await), "FAILED_PRECONDITION", "once");
    assert_eq!(code(&core.admin.bootstrap("other", true).await), "FAILED_PRECONDITION", "one platform");
    assert_eq!(code(&core.admin.bootstrap("Not A Slug", true).await), "INVALID_ARGUMENT");
    let forced = core.admin.bootstrap(PLATFORM, true).await.expect("--force adds an admin key");
    assert_ne!(forced.view.key.key_id, key.key_id);

    let created = core.audit(PLATFORM, "organization.create");
    assert_eq!(created.len(), 1);
    assert_eq!((created[0].actor.as_str(), created[0].actor_kind.as_str()), ("bootstrap", "operator"));
    let keys = core.audit(PLATFORM, "api_key.create");
    let targets: Vec<&str> = keys.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, vec![key.key_id.as_str(), forced.view.key.key_id.as_str()]);
}

#[tokio::test]
async fn admins_grant_only_the_scopes_they_hold() {
    let (core, _root, admin) = acme(&["admin:keys", "graph:read"]).await;
    let granted = core.admin.create_key(&ctx(&admin), new_key("", &["graph:read"])).await.expect("held scope");
    assert_eq!(granted.view.key.organization, "acme", "in the caller's own organization by default");
    let admin_id = core.authenticate(&admin).await.expect("admin").id;
    assert_eq!(granted.view.key.created_by, admin_id);
    // A scope grants the scopes below it.
    core.admin.create_key(&ctx(&admin), new_key("", &["admin:keys:read"])).await.expect("a child scope");

    match core.admin.create_key(&ctx(&admin), new_key("", &["graph:read", "search:read"])).await {
        Err(CoreError::PermissionDenied(message)) => {
            assert!(message.contains("search:read") && !message.contains("graph:read"), "{message}");
        }
        other => panic!("a scope beyond the caller's must be refused, got {other:?}"),
    }
    assert_eq!(code(&core.admin.create_key(&ctx(&admin), new_key("", &["*"])).await), "PERMISSION_DENIED");
    assert_eq!(code(&core.admin.create_key(&ctx(&admin), new_key("", &["nope:x"])).await), "INVALID_ARGUMENT");
    assert_eq!(code(&core.admin.create_key(&ctx(&admin), new_key("", &[])).await), "INVALID_ARGUMENT");
    let blank = NewKey { name: "  ".into(), ..new_key("", &["graph:read"]) };
    assert_eq!(code(&core.admin.create_key(&ctx(&admin), blank).await), "INVALID_ARGUMENT");

    let outcomes = refusals(&core.audit("acme", "api_key.create"));
    assert_eq!(
        outcomes,
        ["PERMISSION_DENIED", "PERMISSION_DENIED", "INVALID_ARGUMENT", "INVALID_ARGUMENT", "INVALID_ARGUMENT"]
    );
}

#[tokio::test]
async fn organization_admins_cannot_reach_another_organization() {
    let all = ["admin:keys", "admin:clients", "admin:orgs:read", "admin:audit:read", "graph:read", "search:read"];
    let (core, root, admin) = acme(&all).await;
    core.organization(&root, "globex", "pro").await;
    let theirs = core.key(&root, "globex", &["graph:read"]).await;
    let id = theirs.view.key.key_id.clone();
    let client = NewClient {
        name: "Globex Sync".into(),
        scopes: scopes(&["search:read"]),
        organization: "globex".into(),
        ..NewClient::default()
    };
    let their_client = core.admin.create_client(&ctx(&root), client).await.expect("client").client.client_id;

    let c = ctx(&admin);
    let rename = KeyChanges { name: Some("mine now".into()), ..KeyChanges::default() };
    assert_eq!(code(&core.admin.get_key(&c, &id).await), "NOT_FOUND", "as if it did not exist");
    assert_eq!(code(&core.admin.update_key(&c, &id, rename).await), "NOT_FOUND");
    assert_eq!(code(&core.admin.rotate_key(&c, rotation(&theirs, None, None)).await), "NOT_FOUND");
    assert_eq!(code(&core.admin.disable_key(&c, &id).await), "NOT_FOUND");
    assert_eq!(code(&core.admin.list_keys(&c, &listing(0, 10, "globex")).await), "NOT_FOUND");
    assert_eq!(code(&core.admin.create_key(&c, new_key("globex", &["graph:read"])).await), "NOT_FOUND");
    assert_eq!(code(&core.admin.get_organization(&c, "globex").await), "NOT_FOUND");
    assert_eq!(code(&core.admin.get_client(&c, &their_client).await), "NOT_FOUND");
    assert_eq!(code(&core.admin.regenerate_client_secret(&c, &their_client, true).await), "NOT_FOUND");
    assert_eq!(code(&core.admin.disable_client(&c, &their_client, true).await), "NOT_FOUND");
    assert_eq!(code(&core.admin.list_clients(&c, &listing(0, 10, "globex")).await), "NOT_FOUND");
    let listing = AuditListing { organization: "globex".into(), ..AuditListing::default() };
    assert_eq!(code(&core.admin.list_audit_events(&c, listing).await), "NOT_FOUND");
    let (orgs, total) = core.admin.list_organizations(&c, 0, 10).await.expect("own organization");
    assert_eq!((orgs.iter().map(|o| o.slug.as_str()).collect::<Vec<_>>(), total), (vec!["acme"], 1));

    // Nothing of globex's changed, and the attempts are in acme's log, not globex's.
    let principal = core.authenticate(&theirs.api_key).await.expect("their key still works");
    assert_eq!((principal.organization.as_str(), principal.name.as_str()), ("globex", "test key"));
    assert_eq!(core.store.audit_entries().iter().filter(|e| e.organization == "globex").count(), 2, "two creations");
    let attempts = core.audit("acme", "api_key.update");
    assert_eq!(
        (attempts.len(), attempts[0].target.as_str(), attempts[0].outcome.as_str()),
        (1, id.as_str(), "NOT_FOUND")
    );
    // The platform admin reaches every organization.
    assert_eq!(core.admin.get_key(&ctx(&root), &id).await.expect("platform admin").key.organization, "globex");
}

#[tokio::test]
async fn a_call_needs_an_admin_scope_and_the_one_it_names() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let plain = core.key(&root, "", &["graph:read"]).await.api_key;
    let reader = core.key(&root, "", &["admin:keys:read"]).await;
    let request = || new_key("", &["graph:read"]);
    assert_eq!(code(&core.admin.create_key(&ctx(&plain), request()).await), "PERMISSION_DENIED");
    assert_eq!(code(&core.admin.create_key(&ctx(&reader.api_key), request()).await), "PERMISSION_DENIED");
    let unknown = "sk_test_k_000000000000_00000000000000000000000000000000xxxxxx";
    assert_eq!(code(&core.admin.create_key(&ctx(unknown), request()).await), "UNAUTHENTICATED");
    // Only the admin's refusal is recorded: no actor, or no admin, is no one to record.
    let refused: Vec<(String, String)> = core
        .audit(PLATFORM, "api_key.create")
        .into_iter()
        .filter(|e| e.outcome != SUCCESS)
        .map(|e| (e.actor, e.outcome))
        .collect();
    assert_eq!(refused, vec![(reader.view.key.key_id.clone(), "PERMISSION_DENIED".to_owned())]);
    // Reading is what the reader may do.
    let (keys, total) = core.admin.list_keys(&ctx(&reader.api_key), &listing(0, 10, "")).await.expect("list");
    assert_eq!((keys.len(), total), (3, 3));
}

#[tokio::test]
async fn the_plan_limits_the_active_keys() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    core.organization(&root, "small", "free").await;
    let first = core.key(&root, "small", &["graph:read"]).await;
    let brief = NewKey { expires_in_days: Some(1), ..new_key("small", &["graph:read"]) };
    core.admin.create_key(&ctx(&root), brief).await.expect("second, for a day");
    core.key(&root, "small", &["graph:read"]).await;
    match core.admin.create_key(&ctx(&root), new_key("small", &["graph:read"])).await {
        Err(CoreError::FailedPrecondition(message)) => assert!(message.contains("limit of 3"), "{message}"),
        other => panic!("a fourth active key must be refused, got {other:?}"),
    }
    assert_eq!(refusals(&core.audit(PLATFORM, "api_key.create")), ["FAILED_PRECONDITION"]);
    // A disabled key and an expired one leave room.
    core.admin.disable_key(&ctx(&root), &first.view.key.key_id).await.expect("disable");
    core.key(&root, "small", &["graph:read"]).await;
    assert_eq!(
        code(&core.admin.create_key(&ctx(&root), new_key("small", &["graph:read"])).await),
        "FAILED_PRECONDITION"
    );
    core.advance_days(1);
    core.key(&root, "small", &["graph:read"]).await;
    let (_, total) = core.admin.list_keys(&ctx(&root), &listing(0, 100, "small")).await.expect("list");
    assert_eq!(total, 5, "disabled and expired keys are still listed");
}

#[tokio::test]
async fn keys_never_outlive_the_credential_that_made_them() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    core.organization(&root, "acme", "pro").await;
    let short = NewKey { expires_in_days: Some(10), ..new_key("acme", &["admin:keys", "graph:read"]) };
    let admin = core.admin.create_key(&ctx(&root), short).await.expect("a ten-day admin").api_key;
    let deadline = start() + Duration::days(10);
    let c = ctx(&admin);
    let asking = |days: Option<i64>| NewKey { expires_in_days: days, ..new_key("", &["graph:read"]) };

    let cut = core.admin.create_key(&c, asking(None)).await.expect("the default, cut");
    assert_eq!(cut.view.key.expires_at, deadline, "the default lifetime is cut to the creator's");
    let within = core.admin.create_key(&c, asking(Some(5))).await.expect("within");
    assert_eq!(within.view.key.expires_at, start() + Duration::days(5));
    match core.admin.create_key(&c, asking(Some(30))).await {
        Err(CoreError::PermissionDenied(message)) => assert!(message.contains("at most 10"), "{message}"),
        other => panic!("an explicit lifetime beyond the creator's is refused, not cut: {other:?}"),
    }
    assert_eq!(code(&core.admin.create_key(&c, asking(Some(0))).await), "INVALID_ARGUMENT");
    assert_eq!(code(&core.admin.create_key(&ctx(&root), asking(Some(3651))).await), "INVALID_ARGUMENT");
    // The platform admin's own API key is the operator's, and exempt.
    let long = core.admin.create_key(&ctx(&root), asking(Some(3650))).await.expect("platform admin");
    assert_eq!(long.view.key.expires_at, start() + Duration::days(3650));

    // A rotation's new secret may not outlive the caller either.
    core.clock.advance(Duration::days(9) + Duration::hours(12));
    let rotated = core.admin.rotate_key(&c, rotation(&cut, Some(0), None)).await.expect("keeps its expiry");
    assert_eq!(rotated.view.key.expires_at, deadline);
    assert_eq!(code(&core.admin.rotate_key(&c, rotation(&cut, Some(0), Some(1))).await), "PERMISSION_DENIED");
    // Within a day of its own expiry a credential hands out no key at all.
    assert_eq!(code(&core.admin.create_key(&c, asking(None)).await), "PERMISSION_DENIED");
}

#[tokio::test]
async fn a_rotated_secret_works_for_its_grace_period() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let key = core.key(&root, "", &["graph:read"]).await;
    let expires = key.view.key.expires_at;
    let rotated = core.admin.rotate_key(&ctx(&root), rotation(&key, Some(3), None)).await.expect("rotate");
    assert_eq!(rotated.view.key.key_id, key.view.key.key_id, "the id stays");
    assert_ne!(rotated.api_key, key.api_key);
    assert_eq!(rotated.view.key.expires_at, expires, "the expiry stays unless asked");
    assert_eq!(rotated.view.previous_key_expires_at, Some(start() + Duration::days(3)));

    let old = core.authenticate(&key.api_key).await.expect("the old secret, in its grace period");
    assert_eq!(old.expires_at, start() + Duration::days(3), "it works until the grace period ends");
    assert_eq!(core.authenticate(&rotated.api_key).await.expect("the new secret").expires_at, expires);
    core.clock.advance(Duration::days(3) - Duration::seconds(1));
    assert!(core.authenticate(&key.api_key).await.is_ok(), "a second before the end");
    core.clock.advance(Duration::seconds(1));
    assert_eq!(core.authenticate(&key.api_key).await.map(|p| p.id), Err(Reason::ExpiredApiKey));
    assert!(core.authenticate(&rotated.api_key).await.is_ok());

    // The default grace period, its bounds, and none at all.
    let again = core.admin.rotate_key(&ctx(&root), rotation(&key, None, None)).await.expect("rotate");
    assert_eq!(again.view.previous_key_expires_at, Some(core.now() + Duration::days(7)));
    assert_eq!(code(&core.admin.rotate_key(&ctx(&root), rotation(&key, Some(91), None)).await), "INVALID_ARGUMENT");
    assert_eq!(code(&core.admin.rotate_key(&ctx(&root), rotation(&key, Some(-1), None)).await), "INVALID_ARGUMENT");
    let abrupt = core.admin.rotate_key(&ctx(&root), rotation(&key, Some(0), None)).await.expect("rotate");
    assert_eq!(abrupt.view.previous_key_expires_at, None);
    assert_eq!(core.authenticate(&again.api_key).await.map(|p| p.id), Err(Reason::ExpiredApiKey), "at once");

    // A grace period never outlasts the key.
    let brief = NewKey { expires_in_days: Some(2), ..new_key("", &["graph:read"]) };
    let brief = core.admin.create_key(&ctx(&root), brief).await.expect("brief");
    let cut = core.admin.rotate_key(&ctx(&root), rotation(&brief, Some(30), None)).await.expect("rotate");
    assert_eq!(cut.view.previous_key_expires_at, Some(brief.view.key.expires_at));
}

#[tokio::test]
async fn expired_disabled_and_stronger_keys_are_not_rotated_freely() {
    let (core, root, admin) = acme(&["admin:keys", "graph:read"]).await;
    let brief = NewKey { expires_in_days: Some(1), ..new_key("acme", &["graph:read"]) };
    let brief = core.admin.create_key(&ctx(&root), brief).await.expect("brief");
    core.advance_days(2);
    assert_eq!(core.authenticate(&brief.api_key).await.map(|p| p.id), Err(Reason::ExpiredApiKey));
    assert_eq!(code(&core.admin.rotate_key(&ctx(&root), rotation(&brief, None, None)).await), "FAILED_PRECONDITION");
    let revived = core.admin.rotate_key(&ctx(&root), rotation(&brief, None, Some(30))).await.expect("revive");
    assert_eq!(
        (revived.view.status, revived.view.key.expires_at),
        (KeyStatus::Active, core.now() + Duration::days(30))
    );
    assert!(core.authenticate(&revived.api_key).await.is_ok());
    assert_eq!(core.authenticate(&brief.api_key).await.map(|p| p.id), Err(Reason::ExpiredApiKey), "no grace");

    core.admin.disable_key(&ctx(&root), &brief.view.key.key_id).await.expect("disable");
    assert_eq!(
        code(&core.admin.rotate_key(&ctx(&root), rotation(&brief, None, Some(30))).await),
        "FAILED_PRECONDITION"
    );

    // An admin cannot rotate, change or disable a key holding more than it does.
    let stronger = core.key(&root, "acme", &["graph:read", "search:read"]).await;
    let id = stronger.view.key.key_id.clone();
    let c = ctx(&admin);
    assert_eq!(code(&core.admin.rotate_key(&c, rotation(&stronger, None, None)).await), "PERMISSION_DENIED");
    let rename = KeyChanges { name: Some("x".into()), ..KeyChanges::default() };
    assert_eq!(code(&core.admin.update_key(&c, &id, rename).await), "PERMISSION_DENIED");
    assert_eq!(code(&core.admin.disable_key(&c, &id).await), "PERMISSION_DENIED");
    assert!(core.authenticate(&stronger.api_key).await.is_ok(), "untouched");
}

#[tokio::test]
async fn disabling_stops_both_secrets_at_once() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let key = core.key(&root, "", &["graph:read"]).await;
    let rotated = core.admin.rotate_key(&ctx(&root), rotation(&key, Some(7), None)).await.expect("rotate");
    // Both verdicts are cached now.
    assert!(core.authenticate(&key.api_key).await.is_ok() && core.authenticate(&rotated.api_key).await.is_ok());

    let view = core.admin.disable_key(&ctx(&root), &key.view.key.key_id).await.expect("disable");
    assert_eq!((view.status, view.previous_key_expires_at), (KeyStatus::Disabled, None));
    assert_eq!(core.authenticate(&rotated.api_key).await.map(|p| p.id), Err(Reason::ExpiredApiKey));
    assert_eq!(core.authenticate(&key.api_key).await.map(|p| p.id), Err(Reason::ExpiredApiKey), "grace ends too");
    let again = core.admin.disable_key(&ctx(&root), &key.view.key.key_id).await.expect("disabling twice is harmless");
    assert_eq!(again.key.disabled_at, view.key.disabled_at);
    let entries = core.audit(PLATFORM, "api_key.disable");
    assert_eq!(entries.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>(), [SUCCESS, SUCCESS]);
    let rename = KeyChanges { name: Some("x".into()), ..KeyChanges::default() };
    assert_eq!(code(&core.admin.update_key(&ctx(&root), &key.view.key.key_id, rename).await), "FAILED_PRECONDITION");
}

#[tokio::test]
async fn updates_change_what_they_name() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let key = core.key(&root, "", &["graph:read"]).await;
    let id = key.view.key.key_id.as_str();
    let root_ctx = ctx(&root);
    let update = |changes: KeyChanges| core.admin.update_key(&root_ctx, id, changes);

    let renamed = update(KeyChanges { name: Some("  renamed  ".into()), ..KeyChanges::default() }).await.expect("u");
    assert_eq!((renamed.key.name.as_str(), renamed.key.scopes.clone()), ("renamed", scopes(&["graph:read"])));
    assert_eq!(core.authenticate(&key.api_key).await.expect("works").name, "renamed", "the verdict was dropped");
    let rescoped = KeyChanges { scopes: Some(scopes(&["search:read"])), ..KeyChanges::default() };
    update(rescoped).await.expect("scopes");
    assert_eq!(core.authenticate(&key.api_key).await.expect("works").scopes, scopes(&["search:read"]));

    let limited = LimitOverrides { rate_per_minute: Some(120), ..LimitOverrides::default() };
    let view = update(KeyChanges { limits: limited, ..KeyChanges::default() }).await.expect("limits");
    assert_eq!(view.key.limits.rate_per_minute, Some(120));
    let reset = KeyChanges { reset_limits: scopes(&["rate_limit_per_minute"]), ..KeyChanges::default() };
    assert_eq!(update(reset).await.expect("reset").key.limits, LimitOverrides::default());

    assert_eq!(code(&update(KeyChanges::default()).await), "INVALID_ARGUMENT", "nothing to update");
    let unknown = KeyChanges { reset_limits: scopes(&["nope"]), ..KeyChanges::default() };
    assert_eq!(code(&update(unknown).await), "INVALID_ARGUMENT");
    let both =
        KeyChanges { limits: limited, reset_limits: scopes(&["rate_limit_per_minute"]), ..KeyChanges::default() };
    assert_eq!(code(&update(both).await), "INVALID_ARGUMENT", "set or reset, not both");
    assert_eq!(
        code(&core.admin.update_key(&ctx(&root), "not-a-key-id", KeyChanges::default()).await),
        "INVALID_ARGUMENT"
    );
}

#[tokio::test]
async fn organization_admins_grant_limits_within_the_ceiling() {
    let (core, root, admin) = acme(&["admin:keys", "graph:read"]).await;
    let with = |max_concurrency: u32| NewKey {
        limits: LimitOverrides { max_concurrency: Some(max_concurrency), ..LimitOverrides::default() },
        ..new_key("", &["graph:read"])
    };
    // No ceiling configured: the defaults (5 concurrent slots for keys) are the ceiling.
    let tighter = core.admin.create_key(&ctx(&admin), with(3)).await.expect("tighter than the default");
    assert_eq!(tighter.view.key.limits.max_concurrency, Some(3));
    assert_eq!(code(&core.admin.create_key(&ctx(&admin), with(10)).await), "INVALID_ARGUMENT");
    assert_eq!(code(&core.admin.create_key(&ctx(&admin), with(0)).await), "INVALID_ARGUMENT", "0 is no limit");
    let looser = NewKey { organization: "acme".into(), ..with(10) };
    let platform = core.admin.create_key(&ctx(&root), looser).await.expect("a platform admin may exceed it");
    assert_eq!(platform.view.key.limits.max_concurrency, Some(10));
}

#[tokio::test]
async fn every_change_is_recorded_with_its_request() {
    let (core, _root, admin) = acme(&["admin:keys", "admin:audit:read", "graph:read"]).await;
    let admin_id = core.authenticate(&admin).await.expect("admin").id;
    let c = ctx(&admin);
    let key = core.admin.create_key(&c, new_key("", &["graph:read"])).await.expect("create");
    let id = key.view.key.key_id.clone();
    let rename = KeyChanges { name: Some("renamed".into()), ..KeyChanges::default() };
    core.admin.update_key(&c, &id, rename).await.expect("update");
    core.admin.rotate_key(&c, rotation(&key, Some(1), None)).await.expect("rotate");
    assert_eq!(code(&core.admin.rotate_key(&c, rotation(&key, Some(91), None)).await), "INVALID_ARGUMENT");
    core.admin.disable_key(&c, &id).await.expect("disable");

    let mine: Vec<_> = core.store.audit_entries().into_iter().filter(|e| e.request_id == c.origin.request_id).collect();
    let what: Vec<(&str, &str)> = mine.iter().map(|e| (e.action.as_str(), e.outcome.as_str())).collect();
    let expected = [
        ("api_key.create", SUCCESS),
        ("api_key.update", SUCCESS),
        ("api_key.rotate", SUCCESS),
        ("api_key.rotate", "INVALID_ARGUMENT"),
        ("api_key.disable", SUCCESS),
    ];
    assert_eq!(what, expected);
    for entry in &mine {
        assert_eq!((entry.target.as_str(), entry.organization.as_str()), (id.as_str(), "acme"), "{entry:?}");
        assert_eq!((entry.actor.as_str(), entry.actor_kind.as_str()), (admin_id.as_str(), "api_key"));
        assert_eq!((entry.peer.as_str(), entry.at), (c.origin.peer.as_str(), start()));
    }

    let listing = AuditListing { action: "api_key.rotate".into(), ..AuditListing::default() };
    let (rotations, total) = core.admin.list_audit_events(&c, listing).await.expect("list");
    assert_eq!(total, 2);
    assert_eq!(rotations[0].outcome, "INVALID_ARGUMENT", "newest first");
    let (_, all) = core.admin.list_audit_events(&c, AuditListing::default()).await.expect("list");
    assert_eq!(all, 6, "the admin's own creation too");
    let backwards = AuditListing { start: Some(start()), end: Some(start()), ..AuditListing::default() };
    assert_eq!(code(&core.admin.list_audit_events(&c, backwards).await), "INVALID_ARGUMENT");
}

#[tokio::test]
async fn only_platform_admins_create_organizations() {
    let (core, root, admin) = acme(&["admin:orgs", "graph:read"]).await;
    let request = |slug: &str, plan: &str| NewOrganization { slug: slug.into(), name: "New".into(), plan: plan.into() };
    assert_eq!(code(&core.admin.create_organization(&ctx(&admin), request("beta", "")).await), "PERMISSION_DENIED");
    assert_eq!(refusals(&core.audit("acme", "organization.create")), ["PERMISSION_DENIED"]);

    let beta = core.admin.create_organization(&ctx(&root), request("beta", "")).await.expect("create");
    assert_eq!((beta.plan.as_str(), beta.max_active_keys, beta.platform), ("free", 3, false), "the default plan");
    assert_eq!(code(&core.admin.create_organization(&ctx(&root), request("beta", "")).await), "ALREADY_EXISTS");
    assert_eq!(code(&core.admin.create_organization(&ctx(&root), request("gamma", "gold")).await), "INVALID_ARGUMENT");
    assert_eq!(code(&core.admin.create_organization(&ctx(&root), request("Gamma", "")).await), "INVALID_ARGUMENT");
    // The platform's act, in the platform's log.
    let targets: Vec<String> = core.audit(PLATFORM, "organization.create").into_iter().map(|e| e.target).collect();
    assert!(targets.iter().any(|t| t == "beta"), "{targets:?}");
    assert!(core.audit("beta", "organization.create").is_empty());
    let (orgs, total) = core.admin.list_organizations(&ctx(&root), 0, 10).await.expect("list");
    let mut slugs: Vec<&str> = orgs.iter().map(|o| o.slug.as_str()).collect();
    slugs.sort_unstable();
    assert_eq!((slugs, total), (vec!["acme", "beta", PLATFORM], 3));
}

#[tokio::test]
async fn a_database_outage_is_unavailable_not_a_denial() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let key = core.key(&root, "", &["graph:read"]).await;
    core.store.set_available(false);
    assert_eq!(code(&core.admin.create_key(&ctx(&root), new_key("", &["graph:read"])).await), "UNAVAILABLE");
    assert_eq!(code(&core.admin.get_key(&ctx(&root), &key.view.key.key_id).await), "UNAVAILABLE");
    core.store.set_available(true);
    core.admin.get_key(&ctx(&root), &key.view.key.key_id).await.expect("back");
}

#[tokio::test]
async fn client_secrets_and_tokens_follow_their_client() {
    let (core, _root, admin) = acme(&["admin:clients", "search:read", "graph:read"]).await;
    let request = NewClient { name: "Billing Sync".into(), scopes: scopes(&["search:read"]), ..NewClient::default() };
    let issued = core.admin.create_client(&ctx(&admin), request).await.expect("create client");
    let id = issued.client.client_id.clone();
    assert!(id.starts_with("billing-sync-") && issued.client.organization == "acme", "{id}");
    let oauth = &core.oauth;
    let token = |secret: &str| {
        let request = TokenRequest {
            grant_type: CLIENT_CREDENTIALS.into(),
            client_id: id.clone(),
            client_secret: secret.to_owned(),
            scope: String::new(),
        };
        async move { oauth.issue_token(&request).await }
    };
    let first = token(&issued.client_secret).await.expect("a token").token;
    let principal = core.authenticate(&first).await.expect("the token works");
    assert_eq!((principal.kind, principal.organization.as_str()), (PrincipalKind::Client, "acme"));

    // A new secret: the old one stops at once, its tokens only when asked.
    let second = core.admin.regenerate_client_secret(&ctx(&admin), &id, false).await.expect("regenerate");
    assert!(
        matches!(token(&issued.client_secret).await, Err(CoreError::OAuth(e)) if e.kind == OAuthErrorKind::InvalidClient)
    );
    assert!(core.authenticate(&first).await.is_ok(), "tokens outlive the secret unless revoked");
    let third = core.admin.regenerate_client_secret(&ctx(&admin), &id, true).await.expect("regenerate, revoking");
    assert_eq!(third.client.token_generation, 1);
    assert_eq!(core.authenticate(&first).await.map(|p| p.id), Err(Reason::RevokedToken));
    assert!(token(&second.client_secret).await.is_err());
    let fresh = token(&third.client_secret).await.expect("a token of the new generation").token;
    assert!(core.authenticate(&fresh).await.is_ok());

    // Disabled: no more tokens; with revoke_tokens, those issued stop too.
    core.admin.disable_client(&ctx(&admin), &id, false).await.expect("disable");
    assert!(
        matches!(token(&third.client_secret).await, Err(CoreError::OAuth(e)) if e.kind == OAuthErrorKind::UnauthorizedClient)
    );
    assert!(core.authenticate(&fresh).await.is_ok());
    let revoked = core.admin.disable_client(&ctx(&admin), &id, true).await.expect("revoke");
    assert!(revoked.tokens_revoked_at.is_some());
    assert_eq!(core.authenticate(&fresh).await.map(|p| p.id), Err(Reason::RevokedToken));
    assert_eq!(code(&core.admin.regenerate_client_secret(&ctx(&admin), &id, false).await), "FAILED_PRECONDITION");
}

#[tokio::test]
async fn only_api_keys_are_handed_client_secrets() {
    let (core, _root, admin) = acme(&["admin:clients", "search:read"]).await;
    let bot = NewClient {
        name: "Admin Bot".into(),
        scopes: scopes(&["admin:clients", "search:read"]),
        ..NewClient::default()
    };
    let bot = core.admin.create_client(&ctx(&admin), bot).await.expect("client");
    let request = TokenRequest {
        grant_type: CLIENT_CREDENTIALS.into(),
        client_id: bot.client.client_id.clone(),
        client_secret: bot.client_secret.clone(),
        scope: "admin:clients search:read".into(),
    };
    let token = core.oauth.issue_token(&request).await.expect("token").token;
    let another = NewClient { name: "Another".into(), scopes: scopes(&["search:read"]), ..NewClient::default() };
    match core.admin.create_client(&ctx(&token), another).await {
        Err(CoreError::PermissionDenied(message)) => assert!(message.contains("only an admin API key"), "{message}"),
        other => panic!("a token may not be handed a secret that never expires: {other:?}"),
    }
    let (clients, _) = core.admin.list_clients(&ctx(&token), &listing(0, 10, "")).await.expect("a token may read");
    assert_eq!(clients.len(), 1);
}

#[tokio::test]
async fn only_platform_admins_rotate_the_signing_key() {
    let (core, root, admin) = acme(&["admin:signing:write"]).await;
    assert_eq!(code(&core.admin.rotate_signing_key(&ctx(&admin)).await), "PERMISSION_DENIED");
    let before = core.keyring.active().expect("a signing key").kid.clone();
    let record = core.admin.rotate_signing_key(&ctx(&root)).await.expect("rotate");
    assert_ne!(record.kid, before);
    assert_eq!(core.keyring.active().expect("a signing key").kid, record.kid);
    let published = core.keyring.jwks()["keys"].as_array().map_or(0, Vec::len);
    assert_eq!(published, 2, "the old key stays published until its tokens expire");
    let entries = core.audit(PLATFORM, "signing_key.rotate");
    assert_eq!((entries.len(), entries[0].target.as_str()), (1, record.kid.as_str()));
    assert_eq!(refusals(&core.audit("acme", "signing_key.rotate")), ["PERMISSION_DENIED"]);
}

#[tokio::test]
async fn a_plan_change_keeps_active_keys_and_holds_new_ones_to_the_new_limit() {
    let (core, root, admin) = acme(&["admin"]).await;
    for _ in 0..2 {
        core.key(&root, "acme", &["graph:read"]).await;
    }
    let move_to = |plan: &str| OrganizationUpdate { slug: "acme".into(), plan: Some(plan.into()), name: None };
    // An organization's admins may rename it, never move it to another plan.
    assert_eq!(code(&core.admin.update_organization(&ctx(&admin), move_to("free")).await), "PERMISSION_DENIED");
    let rename = OrganizationUpdate { slug: "acme".into(), name: Some(" Acme Corp ".into()), plan: None };
    let renamed = core.admin.update_organization(&ctx(&admin), rename).await.expect("own organization");
    assert_eq!((renamed.name.as_str(), renamed.plan.as_str()), ("Acme Corp", "pro"));

    let moved = core.admin.update_organization(&ctx(&root), move_to("free")).await.expect("platform admin");
    assert_eq!((moved.plan.as_str(), moved.max_active_keys), ("free", 3));
    // acme now holds 3 active keys (its admin's and two more): all still work, a fourth is refused.
    core.authenticate(&admin).await.expect("a key over nothing keeps working");
    assert_eq!(
        code(&core.admin.create_key(&ctx(&root), new_key("acme", &["graph:read"])).await),
        "FAILED_PRECONDITION"
    );
    let moved = core.admin.update_organization(&ctx(&root), move_to("pro")).await.expect("back to pro");
    assert_eq!(moved.max_active_keys, 50);
    core.admin.create_key(&ctx(&root), new_key("acme", &["graph:read"])).await.expect("room again");

    let unknown = move_to("gold");
    assert_eq!(code(&core.admin.update_organization(&ctx(&root), unknown).await), "INVALID_ARGUMENT");
    let nothing = OrganizationUpdate { slug: "acme".into(), ..OrganizationUpdate::default() };
    assert_eq!(code(&core.admin.update_organization(&ctx(&root), nothing).await), "INVALID_ARGUMENT");
    let elsewhere = OrganizationUpdate { slug: PLATFORM.into(), name: Some("mine".into()), plan: None };
    assert_eq!(code(&core.admin.update_organization(&ctx(&admin), elsewhere).await), "NOT_FOUND");
    let updates = core.audit(PLATFORM, "organization.update");
    assert_eq!(refusals(&updates), vec!["INVALID_ARGUMENT", "INVALID_ARGUMENT"], "the platform's own refusals");
    let own = core.audit("acme", "organization.update");
    assert_eq!(refusals(&own), vec!["PERMISSION_DENIED", "NOT_FOUND"], "acme's admin's, beside its rename");
    assert_eq!(own.len(), 3);
}

#[tokio::test]
async fn a_client_update_reaches_its_outstanding_tokens() {
    let (core, _root, admin) = acme(&["admin:clients", "search:read", "graph:read"]).await;
    let both = scopes(&["search:read", "graph:read"]);
    let request = NewClient { name: "Exporter".into(), scopes: both, ..NewClient::default() };
    let issued = core.admin.create_client(&ctx(&admin), request).await.expect("create client");
    let id = issued.client.client_id.clone();
    let request = TokenRequest {
        grant_type: CLIENT_CREDENTIALS.into(),
        client_id: id.clone(),
        client_secret: issued.client_secret.clone(),
        scope: String::new(),
    };
    let token = core.oauth.issue_token(&request).await.expect("a token").token;
    assert_eq!(core.authenticate(&token).await.expect("works").scopes.len(), 2);

    let narrower = KeyChanges {
        name: Some(" Exporter v2 ".into()),
        scopes: Some(scopes(&["search:read"])),
        limits: LimitOverrides { rate_per_minute: Some(30), ..LimitOverrides::default() },
        ..KeyChanges::default()
    };
    let updated = core.admin.update_client(&ctx(&admin), &id, narrower).await.expect("update");
    assert_eq!((updated.name.as_str(), updated.scopes.clone()), ("Exporter v2", scopes(&["search:read"])));
    let principal = core.authenticate(&token).await.expect("still a valid token");
    assert_eq!(principal.scopes, scopes(&["search:read"]), "the token's scopes are cut to the client's at once");
    assert_eq!(principal.limits.rate_per_minute, Some(30));

    let beyond = KeyChanges { scopes: Some(scopes(&["admin:keys"])), ..KeyChanges::default() };
    assert_eq!(code(&core.admin.update_client(&ctx(&admin), &id, beyond).await), "PERMISSION_DENIED");
    assert_eq!(code(&core.admin.update_client(&ctx(&admin), &id, KeyChanges::default()).await), "INVALID_ARGUMENT");
    assert_eq!(
        code(&core.admin.update_client(&ctx(&admin), "Not An Id", KeyChanges::default()).await),
        "INVALID_ARGUMENT"
    );
    core.admin.disable_client(&ctx(&admin), &id, false).await.expect("disable");
    let rename = KeyChanges { name: Some("late".into()), ..KeyChanges::default() };
    assert_eq!(code(&core.admin.update_client(&ctx(&admin), &id, rename).await), "FAILED_PRECONDITION");
    assert_eq!(core.audit("acme", "api_client.update").len(), 5);
}

#[tokio::test]
async fn lists_narrow_by_filters_and_labels_are_checked() {
    let (core, root, admin) = acme(&["admin:keys", "admin:clients", "graph:read"]).await;
    let labelled = |pairs: &[(&str, &str)]| pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    let tagged = NewKey { labels: labelled(&[("env", "prod")]), ..new_key("", &["graph:read"]) };
    let made = core.admin.create_key(&ctx(&admin), tagged).await.expect("labelled key");
    assert_eq!(made.view.key.labels.get("env").map(String::as_str), Some("prod"));
    let soon = NewKey { expires_in_days: Some(3), ..new_key("", &["graph:read"]) };
    let expiring = core.admin.create_key(&ctx(&admin), soon).await.expect("short key");

    let by = |request: ListRequest| {
        let core = &core;
        let admin = admin.clone();
        async move {
            let (keys, _) = core.admin.list_keys(&ctx(&admin), &request).await.expect("list");
            keys.into_iter().map(|k| k.key.key_id).collect::<Vec<_>>()
        }
    };
    let prod = ListRequest { labels: labelled(&[("env", "prod")]), ..ListRequest::default() };
    assert_eq!(by(prod).await, vec![made.view.key.key_id.clone()]);
    let within = ListRequest { expiring_within_days: Some(7), ..ListRequest::default() };
    assert_eq!(by(within).await, vec![expiring.view.key.key_id.clone()]);
    core.advance_days(4);
    let expired = ListRequest { status: Some(KeyStatus::Expired), ..ListRequest::default() };
    assert_eq!(by(expired).await, vec![expiring.view.key.key_id.clone()]);

    let bad_labels = NewKey { labels: labelled(&[("Env", "x"), ("ok", "a\"b")]), ..new_key("", &["graph:read"]) };
    match core.admin.create_key(&ctx(&admin), bad_labels).await {
        Err(CoreError::InvalidArgument(errors)) => {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, vec!["labels.Env", "labels.ok"], "{errors:?}");
        }
        other => panic!("bad labels must be refused, got {other:?}"),
    }
    let zero = ListRequest { expiring_within_days: Some(0), ..ListRequest::default() };
    assert_eq!(code(&core.admin.list_keys(&ctx(&admin), &zero).await), "INVALID_ARGUMENT");
    let clients_expired = ListRequest { status: Some(KeyStatus::Expired), ..ListRequest::default() };
    assert_eq!(code(&core.admin.list_clients(&ctx(&root), &clients_expired).await), "INVALID_ARGUMENT");
    let relabel = KeyChanges { labels: Some(Labels::new()), ..KeyChanges::default() };
    let cleared = core.admin.update_key(&ctx(&admin), &made.view.key.key_id, relabel).await.expect("clear labels");
    assert!(cleared.key.labels.is_empty());
}

#[tokio::test]
async fn signing_in_needs_an_admin_scope_and_is_recorded() {
    let (core, root, acme_admin) = acme(&["admin:keys:read", "incidents:read"]).await;
    let identity = core.admin.sign_in(&ctx(&acme_admin)).await.expect("an admin signs in");
    assert_eq!((identity.organization.as_str(), identity.platform), ("acme", false));
    assert!(identity.holds("admin:keys:read") && !identity.holds("admin:keys:write"));
    assert_eq!(identity.grantable, scopes(&["admin:keys:read", "incidents:read"]), "only what it holds");
    let entries = core.audit("acme", "admin.sign_in");
    assert_eq!((entries.len(), entries[0].target.as_str()), (1, identity.id.as_str()));
    core.admin.identity(&ctx(&acme_admin)).await.expect("the identity");
    assert_eq!(core.audit("acme", "admin.sign_in").len(), 1, "reading the identity records nothing");

    let plain = core.key(&root, "acme", &["incidents:read"]).await.api_key;
    assert_eq!(code(&core.admin.sign_in(&ctx(&plain)).await), "PERMISSION_DENIED", "no admin scope");
    assert_eq!(code(&core.admin.sign_in(&ctx("sk_live_k_nope")).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn usage_counts_days_and_reads_the_quota_within_the_organization() {
    let (core, root, acme_admin) = acme(&["admin:keys:read", "admin:keys:write", "incidents:read"]).await;
    let mut request = new_key("", &["incidents:read"]);
    request.limits.max_quota = Some(100);
    let key = core.admin.create_key(&ctx(&acme_admin), request).await.expect("a key");
    let key_id = key.view.key.key_id.clone();
    // Each day's uses flushed that day: a batch is counted on the day of its last use.
    let store = core.store.as_ref();
    core.authenticate(&key.api_key).await.expect("used once");
    core.last_used.flush(store, store, store, core.now()).await.expect("flush");
    core.advance_days(1);
    core.authenticate(&key.api_key).await.expect("used again the next day");
    core.authenticate(&key.api_key).await.expect("and again");
    core.last_used.flush(store, store, store, core.now()).await.expect("flush");

    let usage = core.admin.key_usage(&ctx(&acme_admin), &key_id).await.expect("usage");
    assert_eq!(usage.days.len(), 14, "every day, unused ones too");
    assert_eq!(usage.days.last().map(|d| d.1), Some(2), "today");
    assert_eq!(usage.days.iter().rev().nth(1).map(|d| d.1), Some(1), "yesterday");
    assert_eq!(usage.quota.map(|q| q.max_quota), Some(100));
    core.admin.key_usage(&ctx(&root), &key_id).await.expect("a platform admin reads any");
    core.organization(&root, "globex", "pro").await;
    let globex = core.key(&root, "globex", &["admin:keys:read"]).await.api_key;
    assert_eq!(code(&core.admin.key_usage(&ctx(&globex), &key_id).await), "NOT_FOUND", "another organization's");
}
