//! One body of checks that every store must pass: each written contract of the store ports
//! ([`crate::ports`]), with real values. The in-memory store runs it here; SQLite and PostgreSQL
//! run it in the keygate crate's tests (`tests/it/store_conformance.rs`). Where the two disagree,
//! the SQL store is the reference.
//!
//! [`run_all`] needs a fresh, empty store: it counts organizations and signing keys, which are
//! global. Every other check works in organizations of its own.

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use crate::error::StoreError;
use crate::model::{
    ApiClientRecord, ApiKeyRecord, AuditEntry, AuditQuery, DailyUses, Fingerprint, KeyStatus, Labels, LimitOverrides,
    ListFilter, Organization, Page, SUCCESS, SigningKeyRecord, StoredSecret, UsageRow,
};
use crate::ports::{
    AuditStore, ClientStore, DisableOutcome, KeyChanges, Revival, RotateOutcome, Rotation, SecretSlot, SigningKeyStore,
    Store, UsageStore,
};

/// Every store port: what the suite runs against.
pub trait AllPorts: Store + ClientStore + SigningKeyStore + AuditStore + UsageStore {}

impl<T: Store + ClientStore + SigningKeyStore + AuditStore + UsageStore> AllPorts for T {}

/// Runs every check against `store`, which must be fresh and empty.
pub async fn run_all<S: AllPorts>(store: Arc<S>) {
    let s = store.as_ref();
    organizations_are_created_found_and_listed(s).await;
    keys_are_created_within_the_limit(s).await;
    activity_is_judged_to_the_millisecond(s).await;
    concurrent_creations_never_overshoot_the_limit(store.clone()).await;
    keys_are_listed_newest_first_with_search_and_pages(s).await;
    lists_filter_by_status_expiry_use_and_labels(s).await;
    updates_change_what_they_name_unless_disabled(s).await;
    rotation_keeps_the_old_secret_for_its_grace_period(s).await;
    rotation_of_an_expired_key_respects_the_limit(s).await;
    disabling_ends_both_secrets(s).await;
    last_use_never_moves_back(s).await;
    fingerprints_are_recorded_while_their_hash_is_current(s).await;
    clients_are_created_listed_regenerated_and_disabled(s).await;
    every_key_and_client_id_is_read(s).await;
    signing_keys_are_added_retired_and_sealed(s).await;
    the_audit_log_filters_orders_and_pages(s).await;
    usage_is_kept_per_replica_as_totals(s).await;
    daily_uses_add_up_and_old_days_are_forgotten(s).await;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The result of a store call that must succeed: a failed check, as in any test, otherwise.
#[allow(clippy::panic)]
#[track_caller]
fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: {err:?}"),
    }
}

/// 2026-03-27T00:00:00Z: whole seconds, which every database keeps exactly.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 27, 0, 0, 0).single().unwrap_or_default()
}

/// `seconds` after [`start`].
fn at(seconds: i64) -> DateTime<Utc> {
    start() + Duration::seconds(seconds)
}

fn page(offset: u64, limit: u64) -> Page {
    Page { offset, limit }
}

/// A key id (`k_` and 12 lowercase letters or digits) ending in `tag`.
fn key_id(tag: &str) -> String {
    format!("k_{tag:0>12}")
}

fn fingerprint(n: u32) -> Fingerprint {
    ok(Fingerprint::from_column(&format!("v1:{n:08x}:{:08x}", n.wrapping_mul(7))).ok_or("unreadable"), "fingerprint")
}

/// A stored secret named `name`, unfingerprinted; the store treats the hash as opaque.
fn secret(name: &str) -> StoredSecret {
    StoredSecret { phc: format!("$argon2id$v=19$m=8,t=1,p=1${name}$aGFzaA"), fingerprint: None }
}

fn fingerprinted(name: &str, n: u32) -> StoredSecret {
    StoredSecret { fingerprint: Some(fingerprint(n)), ..secret(name) }
}

fn organization(slug: &str, max_active_keys: u32, platform: bool, created_at: DateTime<Utc>) -> Organization {
    Organization {
        slug: slug.to_owned(),
        name: format!("Org {slug}"),
        plan: "free".to_owned(),
        max_active_keys,
        platform,
        created_at,
        updated_at: created_at,
    }
}

fn key(id: &str, org: &str, name: &str, created_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: id.to_owned(),
        key_prefix: format!("sk_test_{id}"),
        organization: org.to_owned(),
        name: name.to_owned(),
        description: String::new(),
        scopes: vec!["graph:read".to_owned()],
        secret_hash: secret(id),
        previous_secret_hash: None,
        previous_key_expires_at: None,
        created_by: "k_conformance1".to_owned(),
        created_at,
        updated_at: created_at,
        expires_at,
        disabled_at: None,
        last_used_at: None,
        last_rotated_at: None,
        limits: LimitOverrides::default(),
        labels: Labels::new(),
    }
}

fn client(id: &str, org: &str, name: &str, description: &str, created_at: DateTime<Utc>) -> ApiClientRecord {
    ApiClientRecord {
        client_id: id.to_owned(),
        organization: org.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        scopes: vec!["search:read".to_owned()],
        secret_hash: secret(id),
        created_by: "k_conformance1".to_owned(),
        created_at,
        updated_at: created_at,
        disabled_at: None,
        tokens_revoked_at: None,
        last_used_at: None,
        secret_regenerated_at: None,
        token_generation: 0,
        limits: LimitOverrides::default(),
        labels: Labels::new(),
    }
}

/// An audit entry of one attempt, told apart from every other by its request id.
fn entry(org: &str, action: &str, target: &str, when: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        id: 0,
        at: when,
        actor: "k_conformance1".to_owned(),
        actor_kind: "api_key".to_owned(),
        organization: org.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: SUCCESS.to_owned(),
        request_id: format!("req-{}", uuid::Uuid::new_v4().simple()),
        client_request_id: String::new(),
        peer: "127.0.0.1:5000".to_owned(),
    }
}

/// How many times the attempt `wanted` was recorded: 1 when its write committed, 0 when not.
async fn recorded<S: AllPorts>(store: &S, wanted: &AuditEntry) -> usize {
    let query = AuditQuery {
        organization: wanted.organization.clone(),
        action: wanted.action.clone(),
        target: wanted.target.clone(),
        ..AuditQuery::default()
    };
    let (entries, _) = ok(store.audit_events(&query, page(0, 100)).await, "audit_events");
    let found: Vec<&AuditEntry> = entries.iter().filter(|e| e.request_id == wanted.request_id).collect();
    for got in &found {
        assert!(got.id > 0, "a stored entry has an id: {got:?}");
        assert_eq!(AuditEntry { id: 0, ..(*got).clone() }, *wanted, "the entry is stored as given");
    }
    found.len()
}

async fn must_get_key<S: AllPorts>(store: &S, id: &str) -> ApiKeyRecord {
    ok(ok(store.key(id).await, "key").ok_or("no such key"), id)
}

async fn must_get_client<S: AllPorts>(store: &S, id: &str) -> ApiClientRecord {
    ok(ok(store.client(id).await, "client").ok_or("no such client"), id)
}

async fn create_org<S: AllPorts>(store: &S, org: &Organization) {
    let audit = entry(&org.slug, "organization.create", &org.slug, org.created_at);
    ok(store.create_organization(org, &audit).await, "create_organization");
}

/// Creates `key` with room to spare, checking that it was.
async fn create_key<S: AllPorts>(store: &S, key: &ApiKeyRecord) {
    let audit = entry(&key.organization, "api_key.create", &key.key_id, key.created_at);
    assert!(ok(store.create_key_within_limit(key, 1000, key.created_at, &audit).await, "create"), "{}", key.key_id);
}

fn key_ids(keys: &[ApiKeyRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.key_id.as_str()).collect()
}

async fn listed<S: AllPorts>(store: &S, org: &str, search: &str, page: Page) -> (Vec<String>, u64) {
    let (keys, total) = ok(store.list_keys(org, &ListFilter::search(search, at(0)), page).await, "list_keys");
    (key_ids(&keys).into_iter().map(str::to_owned).collect(), total)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Organizations

async fn organizations_are_created_found_and_listed<S: AllPorts>(store: &S) {
    ok(store.ping().await, "ping");
    let (_, before) = ok(store.list_organizations(page(0, 100)).await, "list_organizations");
    assert_eq!(before, 0, "the conformance suite needs an empty store");
    assert_eq!(ok(store.platform_organization().await, "platform_organization"), None, "not bootstrapped yet");

    // Created out of order: listed oldest first, a tie by slug.
    let orgs = [
        organization("org-c", 7, false, at(2)),
        organization("org-b", 3, true, at(1)),
        organization("org-a", 5, false, at(2)),
    ];
    for org in &orgs {
        let audit = entry(&org.slug, "organization.create", &org.slug, org.created_at);
        ok(store.create_organization(org, &audit).await, "create_organization");
        assert_eq!(recorded(store, &audit).await, 1, "a creation is recorded with it");
    }
    assert_eq!(ok(store.organization("org-a").await, "organization"), Some(orgs[2].clone()));
    assert_eq!(ok(store.organization("org-b").await, "organization"), Some(orgs[1].clone()));
    assert_eq!(ok(store.organization("org-missing").await, "organization"), None);

    let slugs = |orgs: &[Organization]| orgs.iter().map(|o| o.slug.clone()).collect::<Vec<_>>();
    let (first, total) = ok(store.list_organizations(page(0, 2)).await, "list");
    assert_eq!((slugs(&first), total), (strings(&["org-b", "org-a"]), 3));
    let (rest, total) = ok(store.list_organizations(page(2, 10)).await, "list");
    assert_eq!((slugs(&rest), total), (strings(&["org-c"]), 3));
    let (beyond, total) = ok(store.list_organizations(page(3, 10)).await, "list");
    assert_eq!((beyond.len(), total), (0, 3));

    // The oldest platform organization is the platform's.
    assert_eq!(ok(store.platform_organization().await, "platform"), Some(orgs[1].clone()));
    create_org(store, &organization("org-z", 1, true, at(10))).await;
    assert_eq!(ok(store.platform_organization().await, "platform").map(|o| o.slug), Some("org-b".to_owned()));

    // A taken slug: CONFLICT, nothing changes, and its entry is not recorded.
    let taken = Organization { name: "Someone else".into(), max_active_keys: 99, ..orgs[0].clone() };
    let audit = entry("org-c", "organization.create", "org-c", at(20));
    let result = store.create_organization(&taken, &audit).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "a taken slug conflicts: {result:?}");
    assert_eq!(ok(store.organization("org-c").await, "organization"), Some(orgs[0].clone()));
    assert_eq!(recorded(store, &audit).await, 0, "a refused creation leaves no entry");
}

// ---------------------------------------------------------------------------------------------
// Keys

async fn keys_are_created_within_the_limit<S: AllPorts>(store: &S) {
    let org = "keys-limit";
    create_org(store, &organization(org, 2, false, at(0))).await;
    let now = at(100);
    let create = |key: ApiKeyRecord, max: u32, now: DateTime<Utc>| async move {
        let audit = entry(&key.organization, "api_key.create", &key.key_id, now);
        let created = store.create_key_within_limit(&key, max, now, &audit).await;
        (created, recorded(store, &audit).await)
    };
    let answered = |(created, entries): (Result<bool, StoreError>, usize)| (ok(created, "create"), entries);

    // Every field set, to see each come back as it went in.
    let mut first = key(&key_id("limit1"), org, "first", at(0), at(1000));
    first.description = "every field set".into();
    first.scopes = strings(&["graph:read", "search:read"]);
    first.secret_hash = fingerprinted("limit1", 1);
    first.previous_secret_hash = Some(fingerprinted("limit1-before", 2));
    first.previous_key_expires_at = Some(at(500));
    first.created_by = "k_someoneelse".into();
    first.updated_at = at(41);
    first.last_used_at = Some(at(50));
    first.last_rotated_at = Some(at(40));
    first.limits = LimitOverrides {
        rate_per_minute: Some(60),
        rate_burst: Some(10),
        max_quota: Some(1_000_000),
        max_concurrency: Some(0),
    };
    assert_eq!(answered(create(first.clone(), 2, now).await), (true, 1));
    assert_eq!(must_get_key(store, &first.key_id).await, first, "a key reads back as written");

    // Keys not active at `now` do not count: expired at `now` exactly, and disabled.
    let expired = key(&key_id("limit2"), org, "expired", at(0), now);
    assert_eq!(answered(create(expired, 2, now).await), (true, 1));
    let mut disabled = key(&key_id("limit3"), org, "disabled", at(0), at(1000));
    disabled.disabled_at = Some(at(10));
    assert_eq!(answered(create(disabled, 2, now).await), (true, 1));
    let second = key(&key_id("limit4"), org, "second", at(0), at(1000));
    assert_eq!(answered(create(second, 2, now).await), (true, 1), "one active key so far");

    // The limit is reached: refused, not inserted, not recorded.
    let third = key(&key_id("limit5"), org, "third", at(0), at(2000));
    assert_eq!(answered(create(third.clone(), 2, now).await), (false, 0));
    assert_eq!(ok(store.key(&third.key_id).await, "key"), None, "a refused key is not stored");
    assert_eq!(answered(create(key(&key_id("limit6"), org, "none", at(0), at(2000)), 0, now).await), (false, 0));
    // Once the first two expire (at 1000 exactly) there is room again.
    assert_eq!(answered(create(third, 2, at(1000)).await), (true, 1));

    // A taken key id conflicts, and an unknown organization fails; neither leaves an entry.
    let taken = ApiKeyRecord { name: "taken".into(), ..first.clone() };
    let (result, entries) = create(taken, 100, now).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "a taken key id conflicts: {result:?}");
    assert_eq!(entries, 0);
    assert_eq!(must_get_key(store, &first.key_id).await, first);
    let orphan = key(&key_id("limit7"), "no-such-org", "orphan", at(0), at(1000));
    let (result, entries) = create(orphan.clone(), 100, now).await;
    assert!(matches!(result, Err(StoreError::Internal(_))), "a key needs its organization: {result:?}");
    assert_eq!((entries, ok(store.key(&orphan.key_id).await, "key")), (0, None));

    let (keys, total) = listed(store, org, "", page(0, 100)).await;
    assert_eq!((keys.len(), total), (5, 5), "{keys:?}");
}

/// The clock keeps milliseconds (see [`crate::ports::Clock`]), and so must every comparison of
/// times: a key expiring half a second after a whole second is active until then.
async fn activity_is_judged_to_the_millisecond<S: AllPorts>(store: &S) {
    let org = "keys-millis";
    create_org(store, &organization(org, 1, false, at(0))).await;
    let ends = at(100) + Duration::milliseconds(500);
    let first = key(&key_id("millis1"), org, "first", at(0), ends);
    let audit = entry(org, "api_key.create", &first.key_id, at(0));
    assert!(ok(store.create_key_within_limit(&first, 1, at(0), &audit).await, "create"));
    assert_eq!(must_get_key(store, &first.key_id).await.expires_at, ends, "milliseconds survive");
    let second = key(&key_id("millis2"), org, "second", at(0), at(1000));
    for now in [at(100), ends - Duration::milliseconds(1)] {
        let audit = entry(org, "api_key.create", &second.key_id, now);
        assert!(!ok(store.create_key_within_limit(&second, 1, now, &audit).await, "create"), "active at {now}");
    }
    let audit = entry(org, "api_key.create", &second.key_id, ends);
    assert!(ok(store.create_key_within_limit(&second, 1, ends, &audit).await, "create"), "expired at its end");
}

async fn concurrent_creations_never_overshoot_the_limit<S: AllPorts>(store: Arc<S>) {
    const LIMIT: u32 = 3;
    const ATTEMPTS: usize = 12;
    let org = "keys-race";
    create_org(store.as_ref(), &organization(org, LIMIT, false, at(0))).await;
    let now = at(100);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ATTEMPTS {
        let store = store.clone();
        tasks.spawn(async move {
            let key = key(&key_id(&format!("race{i}")), org, &format!("racer {i}"), now, at(1000));
            let audit = entry(org, "api_key.create", &key.key_id, now);
            let created = store.create_key_within_limit(&key, LIMIT, now, &audit).await;
            (key.key_id, created, audit)
        });
    }
    let (mut created, mut refused) = (Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let (id, result, audit) = ok(joined, "a creating task");
        if ok(result, "create_key_within_limit under concurrency") {
            created.push((id, audit))
        } else {
            refused.push((id, audit))
        }
    }
    assert_eq!(created.len(), LIMIT as usize, "exactly the limit is created, whatever the interleaving");
    let store = store.as_ref();
    for (id, audit) in &created {
        assert_eq!(recorded(store, audit).await, 1, "{id}");
        assert_eq!(must_get_key(store, id).await.key_id, *id);
    }
    for (id, audit) in &refused {
        assert_eq!(recorded(store, audit).await, 0, "{id}");
        assert_eq!(ok(store.key(id).await, "key"), None, "{id}");
    }
    let (keys, total) = listed(store, org, "", page(0, 100)).await;
    assert_eq!((keys.len(), total), (LIMIT as usize, u64::from(LIMIT)));
}

async fn keys_are_listed_newest_first_with_search_and_pages<S: AllPorts>(store: &S) {
    let org = "keys-list";
    create_org(store, &organization(org, 100, false, at(0))).await;
    create_org(store, &organization("keys-list-other", 100, false, at(0))).await;
    let described = |tag: &str, name: &str, description: &str, created: i64| ApiKeyRecord {
        description: description.to_owned(),
        ..key(&key_id(tag), org, name, at(created), at(10_000))
    };
    let keys = [
        described("lista", "Billing Export", "nightly job", 1),
        described("listb", "billing import", "", 2),
        described("listc", "Search", "Feeds the BILLING dashboard", 3),
        // Created at the same time as listc: the greater key id comes first.
        described("listd", "100% coverage", "", 3),
        described("liste", "under_score", "", 4),
    ];
    for key in &keys {
        create_key(store, key).await;
    }
    create_key(store, &key(&key_id("listx"), "keys-list-other", "billing elsewhere", at(5), at(10_000))).await;
    let ids = |tags: &[&str]| tags.iter().map(|t| key_id(t)).collect::<Vec<_>>();

    let all = ids(&["liste", "listd", "listc", "listb", "lista"]);
    assert_eq!(listed(store, org, "", page(0, 10)).await, (all, 5), "newest first");
    let (found, _) = ok(store.list_keys(org, &ListFilter::search("", at(0)), page(0, 10)).await, "list_keys");
    assert_eq!(found.last(), Some(&keys[0]), "listed records are whole");
    assert_eq!(listed(store, org, "", page(1, 2)).await, (ids(&["listd", "listc"]), 5), "a page, and the total");
    assert_eq!(listed(store, org, "", page(5, 2)).await, (Vec::new(), 5));
    // Name and description, whatever the case.
    assert_eq!(listed(store, org, "BILLING", page(0, 10)).await, (ids(&["listc", "listb", "lista"]), 3));
    assert_eq!(listed(store, org, "billing", page(0, 1)).await, (ids(&["listc"]), 3));
    assert_eq!(listed(store, org, "Nightly Job", page(0, 10)).await, (ids(&["lista"]), 1));
    // LIKE's wildcards are plain characters.
    assert_eq!(listed(store, org, "%", page(0, 10)).await, (ids(&["listd"]), 1));
    assert_eq!(listed(store, org, "_", page(0, 10)).await, (ids(&["liste"]), 1));
    // Ids are not searched; other organizations are not listed.
    assert_eq!(listed(store, org, &key_id("lista"), page(0, 10)).await, (Vec::new(), 0));
    assert_eq!(listed(store, org, "elsewhere", page(0, 10)).await, (Vec::new(), 0));
    assert_eq!(listed(store, "keys-list-other", "", page(0, 10)).await, (ids(&["listx"]), 1));
    assert_eq!(listed(store, "no-such-org", "", page(0, 10)).await, (Vec::new(), 0));
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

async fn lists_filter_by_status_expiry_use_and_labels<S: AllPorts>(store: &S) {
    let org = "keys-filter";
    create_org(store, &organization(org, 100, false, at(0))).await;
    let now = at(1000);
    let with = |tag: &str, expires: i64, used: Option<i64>, pairs: &[(&str, &str)]| ApiKeyRecord {
        last_used_at: used.map(at),
        labels: labels(pairs),
        ..key(&key_id(tag), org, tag, at(1), at(expires))
    };
    let keys = [
        with("filta", 5000, Some(900), &[("env", "prod"), ("owner", "team-a")]),
        with("filtb", 1100, None, &[("env", "staging")]),
        with("filtc", 500, Some(400), &[("env", "prod")]),
        // A value holding another label's text must not pass for it.
        with("filtd", 5000, Some(100), &[("note", "env:prod,owner=team-a")]),
    ];
    for key in &keys {
        create_key(store, key).await;
    }
    let audit = entry(org, "api_key.disable", &key_id("filtd"), at(999));
    assert!(ok(store.disable_key(&key_id("filtd"), at(999), &audit).await, "disable"));
    let found = |filter: ListFilter| async move {
        let (keys, total) = ok(store.list_keys(org, &filter, page(0, 10)).await, "list_keys");
        let mut tags: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
        tags.sort();
        assert_eq!(total, tags.len() as u64);
        tags
    };
    let base = ListFilter::search("", now);
    assert_eq!(
        found(ListFilter { status: Some(KeyStatus::Active), ..base.clone() }).await,
        strings(&["filta", "filtb"])
    );
    assert_eq!(found(ListFilter { status: Some(KeyStatus::Expired), ..base.clone() }).await, strings(&["filtc"]));
    assert_eq!(found(ListFilter { status: Some(KeyStatus::Disabled), ..base.clone() }).await, strings(&["filtd"]));
    let soon = ListFilter { expires_before: Some(at(1200)), ..base.clone() };
    assert_eq!(found(soon).await, strings(&["filtb"]), "active keys expiring soon, not expired ones");
    let unused = ListFilter { unused_since: Some(at(500)), ..base.clone() };
    assert_eq!(found(unused).await, strings(&["filtb", "filtc", "filtd"]), "never used counts as unused");
    let prod = ListFilter { labels: labels(&[("env", "prod")]), ..base.clone() };
    assert_eq!(found(prod).await, strings(&["filta", "filtc"]));
    let both = ListFilter { labels: labels(&[("env", "prod"), ("owner", "team-a")]), ..base.clone() };
    assert_eq!(found(both).await, strings(&["filta"]), "every label must match");
    let prefix = ListFilter { labels: labels(&[("env", "pro")]), ..base.clone() };
    assert_eq!(found(prefix).await, Vec::<String>::new(), "a label value matches whole");
    let searched = ListFilter::search("STAGING", now);
    assert_eq!(found(searched).await, strings(&["filtb"]), "search reaches label values");
    let combined = ListFilter { status: Some(KeyStatus::Active), ..ListFilter::search("prod", now) };
    assert_eq!(found(combined).await, strings(&["filta"]));

    // Labels are replaced whole by an update, and found by their new values only.
    let relabel = KeyChanges { labels: Some(labels(&[("env", "dev")])), ..KeyChanges::default() };
    let audit = entry(org, "api_key.update", &key_id("filta"), at(1001));
    assert!(ok(store.update_key(&key_id("filta"), &relabel, at(1001), &audit).await, "update"));
    assert_eq!(must_get_key(store, &key_id("filta")).await.labels, labels(&[("env", "dev")]));
    assert_eq!(
        found(ListFilter::search("team-a", now)).await,
        strings(&["filtd"]),
        "the old value is no longer searched"
    );
    let dev = ListFilter { labels: labels(&[("env", "dev")]), ..base };
    assert_eq!(found(dev).await, strings(&["filta"]));
}

async fn updates_change_what_they_name_unless_disabled<S: AllPorts>(store: &S) {
    let org = "keys-update";
    create_org(store, &organization(org, 100, false, at(0))).await;
    let mut original = key(&key_id("update1"), org, "before", at(0), at(1000));
    original.description = "as created".into();
    original.limits = LimitOverrides { rate_per_minute: Some(60), max_quota: Some(1000), ..LimitOverrides::default() };
    create_key(store, &original).await;
    let id = original.key_id.as_str();

    let audit = entry(org, "api_key.update", id, at(10));
    let rename = KeyChanges { name: Some("after".into()), ..KeyChanges::default() };
    assert!(ok(store.update_key(id, &rename, at(10), &audit).await, "update"));
    assert_eq!(recorded(store, &audit).await, 1);
    let renamed = ApiKeyRecord { name: "after".into(), updated_at: at(10), ..original.clone() };
    assert_eq!(must_get_key(store, id).await, renamed, "only the name (and updated_at) changed");
    assert_eq!(listed(store, org, "AFTER", page(0, 10)).await.1, 1, "the search follows the new name");
    assert_eq!(listed(store, org, "before", page(0, 10)).await.1, 0);

    let changes = KeyChanges {
        name: None,
        description: Some("changed".into()),
        scopes: Some(strings(&["search:read", "graph:read"])),
        limits: LimitOverrides { rate_burst: Some(5), max_concurrency: Some(2), ..LimitOverrides::default() },
        reset_limits: strings(&["max_quota"]),
        labels: None,
    };
    let audit = entry(org, "api_key.update", id, at(20));
    assert!(ok(store.update_key(id, &changes, at(20), &audit).await, "update"));
    assert_eq!(recorded(store, &audit).await, 1);
    let changed = ApiKeyRecord {
        description: "changed".into(),
        scopes: strings(&["search:read", "graph:read"]),
        limits: LimitOverrides {
            rate_per_minute: Some(60),
            rate_burst: Some(5),
            max_quota: None,
            max_concurrency: Some(2),
        },
        updated_at: at(20),
        ..renamed
    };
    assert_eq!(must_get_key(store, id).await, changed, "set limits replace, reset ones return to the default");

    // A disabled key, or none, is not updated, and no entry is left.
    ok(store.disable_key(id, at(30), &entry(org, "api_key.disable", id, at(30))).await, "disable");
    let disabled = must_get_key(store, id).await;
    let audit = entry(org, "api_key.update", id, at(40));
    assert!(!ok(store.update_key(id, &rename, at(40), &audit).await, "update"), "a disabled key is not updated");
    assert_eq!(recorded(store, &audit).await, 0);
    assert_eq!(must_get_key(store, id).await, disabled);
    let missing = key_id("nosuchkey");
    let audit = entry(org, "api_key.update", &missing, at(40));
    assert!(!ok(store.update_key(&missing, &rename, at(40), &audit).await, "update"));
    assert_eq!(recorded(store, &audit).await, 0);
}

async fn rotation_keeps_the_old_secret_for_its_grace_period<S: AllPorts>(store: &S) {
    let org = "keys-rotate";
    create_org(store, &organization(org, 100, false, at(0))).await;
    let old = fingerprinted("rotate-old", 1);
    let original = ApiKeyRecord { secret_hash: old.clone(), ..key(&key_id("rotate1"), org, "k", at(0), at(1000)) };
    create_key(store, &original).await;
    let id = original.key_id.as_str();

    let new = fingerprinted("rotate-new", 2);
    let rotation = Rotation {
        new_secret_hash: new.clone(),
        previous_key_expires_at: at(200),
        expires_at: at(2000),
        replaces_hash: old.clone(),
    };
    let audit = entry(org, "api_key.rotate", id, at(100));
    assert_eq!(ok(store.rotate_key(id, &rotation, None, at(100), &audit).await, "rotate"), RotateOutcome::Rotated);
    assert_eq!(recorded(store, &audit).await, 1);
    let rotated = ApiKeyRecord {
        secret_hash: new.clone(),
        previous_secret_hash: Some(old.clone()),
        previous_key_expires_at: Some(at(200)),
        expires_at: at(2000),
        last_rotated_at: Some(at(100)),
        updated_at: at(100),
        ..original.clone()
    };
    assert_eq!(must_get_key(store, id).await, rotated, "the old secret, fingerprint included, is kept as previous");
    assert_eq!(rotated.grace_until(at(199)), Some(at(200)), "the old secret works until its grace period ends");
    assert_eq!(rotated.grace_until(at(200)), None);

    // A rotation that read the key before this one wrote loses, and changes nothing.
    let stale = Rotation { new_secret_hash: secret("rotate-stale"), ..rotation.clone() };
    let audit = entry(org, "api_key.rotate", id, at(110));
    assert_eq!(ok(store.rotate_key(id, &stale, None, at(110), &audit).await, "rotate"), RotateOutcome::Changed);
    assert_eq!(recorded(store, &audit).await, 0);
    assert_eq!(must_get_key(store, id).await, rotated, "the first rotation's grace secret is kept");

    // The next rotation makes the current secret the previous one.
    let newer = Rotation {
        new_secret_hash: secret("rotate-newer"),
        previous_key_expires_at: at(300),
        expires_at: at(2000),
        replaces_hash: new.clone(),
    };
    let audit = entry(org, "api_key.rotate", id, at(250));
    assert_eq!(ok(store.rotate_key(id, &newer, None, at(250), &audit).await, "rotate"), RotateOutcome::Rotated);
    let again = must_get_key(store, id).await;
    assert_eq!((again.secret_hash, again.previous_secret_hash), (secret("rotate-newer"), Some(new)));
    assert_eq!(again.previous_key_expires_at, Some(at(300)));

    // A missing or a disabled key is not rotated.
    let missing = key_id("nosuchkey");
    let audit = entry(org, "api_key.rotate", &missing, at(260));
    let outcome = ok(store.rotate_key(&missing, &newer, None, at(260), &audit).await, "rotate");
    assert_eq!((outcome, recorded(store, &audit).await), (RotateOutcome::Changed, 0));
    ok(store.disable_key(id, at(270), &entry(org, "api_key.disable", id, at(270))).await, "disable");
    let disabled = must_get_key(store, id).await;
    let current = Rotation { replaces_hash: secret("rotate-newer"), ..newer };
    let audit = entry(org, "api_key.rotate", id, at(280));
    let outcome = ok(store.rotate_key(id, &current, None, at(280), &audit).await, "rotate");
    assert_eq!((outcome, recorded(store, &audit).await), (RotateOutcome::Changed, 0), "a disabled key stays so");
    assert_eq!(must_get_key(store, id).await, disabled);
}

async fn rotation_of_an_expired_key_respects_the_limit<S: AllPorts>(store: &S) {
    let org = "keys-revive";
    create_org(store, &organization(org, 1, false, at(0))).await;
    let expired = key(&key_id("revive1"), org, "expired", at(0), at(50));
    let audit = entry(org, "api_key.create", &expired.key_id, at(0));
    assert!(ok(store.create_key_within_limit(&expired, 1, at(0), &audit).await, "create"));
    // At 100 the first has expired: there is room for one active key.
    let active = key(&key_id("revive2"), org, "active", at(100), at(1000));
    let audit = entry(org, "api_key.create", &active.key_id, at(100));
    assert!(ok(store.create_key_within_limit(&active, 1, at(100), &audit).await, "create"));

    let revive = Rotation {
        new_secret_hash: secret("revived"),
        previous_key_expires_at: at(110),
        expires_at: at(3000),
        replaces_hash: expired.secret_hash.clone(),
    };
    let revival = Revival { organization: org.to_owned(), max_active: 1 };
    let id = expired.key_id.as_str();
    let audit = entry(org, "api_key.rotate", id, at(110));
    let outcome = ok(store.rotate_key(id, &revive, Some(&revival), at(110), &audit).await, "rotate");
    assert_eq!(outcome, RotateOutcome::LimitReached, "reviving would make two active keys");
    assert_eq!(recorded(store, &audit).await, 0);
    assert_eq!(must_get_key(store, id).await, expired, "a revival past the limit changes nothing");

    ok(store.disable_key(&active.key_id, at(120), &entry(org, "api_key.disable", &active.key_id, at(120))).await, "d");
    let audit = entry(org, "api_key.rotate", id, at(130));
    let outcome = ok(store.rotate_key(id, &revive, Some(&revival), at(130), &audit).await, "rotate");
    assert_eq!((outcome, recorded(store, &audit).await), (RotateOutcome::Rotated, 1), "room again");
    let revived = must_get_key(store, id).await;
    assert_eq!((revived.expires_at, &revived.secret_hash), (at(3000), &secret("revived")));
    assert_eq!(revived.status(at(130)), KeyStatus::Active);
}

async fn disabling_ends_both_secrets<S: AllPorts>(store: &S) {
    let org = "keys-disable";
    create_org(store, &organization(org, 1, false, at(0))).await;
    let original = ApiKeyRecord {
        previous_secret_hash: Some(secret("disable-previous")),
        previous_key_expires_at: Some(at(500)),
        ..key(&key_id("disable1"), org, "k", at(0), at(1000))
    };
    create_key(store, &original).await;
    let id = original.key_id.as_str();
    assert_eq!(original.grace_until(at(100)), Some(at(500)));

    let audit = entry(org, "api_key.disable", id, at(100));
    assert!(ok(store.disable_key(id, at(100), &audit).await, "disable"));
    assert_eq!(recorded(store, &audit).await, 1);
    let disabled = ApiKeyRecord { disabled_at: Some(at(100)), updated_at: at(100), ..original.clone() };
    assert_eq!(must_get_key(store, id).await, disabled, "the previous secret is kept, to be told from unknown ones");
    assert_eq!(disabled.status(at(100)), KeyStatus::Disabled);
    assert_eq!(disabled.grace_until(at(100)), None, "the grace-period secret stops with the key");

    // Disabling again changes nothing; the attempt is recorded, as the caller was told it worked.
    let audit = entry(org, "api_key.disable", id, at(200));
    assert!(!ok(store.disable_key(id, at(200), &audit).await, "disable again"));
    assert_eq!(recorded(store, &audit).await, 1);
    assert_eq!(must_get_key(store, id).await, disabled, "disabled_at is the first disabling's");
    assert!(!ok(store.disable_key(&key_id("nosuchkey"), at(200), &audit).await, "disable a missing key"));

    // A disabled key leaves room under the limit.
    let next = key(&key_id("disable2"), org, "next", at(300), at(1000));
    let audit = entry(org, "api_key.create", &next.key_id, at(300));
    assert!(ok(store.create_key_within_limit(&next, 1, at(300), &audit).await, "create"));
}

async fn last_use_never_moves_back<S: AllPorts>(store: &S) {
    let org = "keys-touch";
    create_org(store, &organization(org, 100, false, at(0))).await;
    let (one, two) =
        (key(&key_id("touch1"), org, "one", at(0), at(1000)), key(&key_id("touch2"), org, "two", at(0), at(1000)));
    create_key(store, &one).await;
    create_key(store, &two).await;
    let uses = |list: &[(&ApiKeyRecord, i64)]| list.iter().map(|(k, s)| (k.key_id.clone(), at(*s))).collect::<Vec<_>>();
    ok(store.touch_keys(&uses(&[(&one, 20), (&two, 10)])).await, "touch");
    let last_used = |k: ApiKeyRecord| (k.last_used_at, k.updated_at);
    assert_eq!(last_used(must_get_key(store, &one.key_id).await), (Some(at(20)), at(0)), "a use is not an update");
    assert_eq!(last_used(must_get_key(store, &two.key_id).await), (Some(at(10)), at(0)));
    let mut batch = uses(&[(&one, 15), (&two, 30)]);
    batch.push((key_id("nosuchkey"), at(40)));
    ok(store.touch_keys(&batch).await, "touch with an unknown key");
    assert_eq!(must_get_key(store, &one.key_id).await.last_used_at, Some(at(20)), "never backwards");
    assert_eq!(must_get_key(store, &two.key_id).await.last_used_at, Some(at(30)));
    ok(store.touch_keys(&[]).await, "touch nothing");
}

async fn fingerprints_are_recorded_while_their_hash_is_current<S: AllPorts>(store: &S) {
    let org = "keys-fingerprint";
    create_org(store, &organization(org, 100, false, at(0))).await;
    let current = secret("fp-current");
    let original = ApiKeyRecord { secret_hash: current.clone(), ..key(&key_id("fp1"), org, "k", at(0), at(1000)) };
    create_key(store, &original).await;
    let id = original.key_id.as_str();
    let secrets = |k: ApiKeyRecord| (k.secret_hash, k.previous_secret_hash);

    ok(store.record_key_fingerprint(id, SecretSlot::Current, "$argon2id$other", fingerprint(7)).await, "record");
    assert_eq!(secrets(must_get_key(store, id).await), (current.clone(), None), "another hash: not recorded");
    ok(store.record_key_fingerprint(id, SecretSlot::Current, &current.phc, fingerprint(7)).await, "record");
    let current_fp = StoredSecret { fingerprint: Some(fingerprint(7)), ..current.clone() };
    assert_eq!(secrets(must_get_key(store, id).await), (current_fp.clone(), None));
    ok(store.record_key_fingerprint(id, SecretSlot::Previous, &current.phc, fingerprint(8)).await, "record");
    assert_eq!(secrets(must_get_key(store, id).await), (current_fp.clone(), None), "no previous secret to record");

    let rotation = Rotation {
        new_secret_hash: secret("fp-new"),
        previous_key_expires_at: at(200),
        expires_at: at(1000),
        replaces_hash: current_fp.clone(),
    };
    let audit = entry(org, "api_key.rotate", id, at(100));
    assert_eq!(ok(store.rotate_key(id, &rotation, None, at(100), &audit).await, "rotate"), RotateOutcome::Rotated);
    // A verification that read the secret before the rotation writes into the previous slot
    // only: the rotation wins.
    ok(store.record_key_fingerprint(id, SecretSlot::Current, &current.phc, fingerprint(9)).await, "record");
    assert_eq!(secrets(must_get_key(store, id).await), (secret("fp-new"), Some(current_fp)));
    ok(store.record_key_fingerprint(id, SecretSlot::Previous, &current.phc, fingerprint(10)).await, "record");
    let previous_fp = StoredSecret { fingerprint: Some(fingerprint(10)), ..current };
    assert_eq!(secrets(must_get_key(store, id).await), (secret("fp-new"), Some(previous_fp)));
    let unknown = key_id("nosuchkey");
    ok(store.record_key_fingerprint(&unknown, SecretSlot::Current, "x", fingerprint(1)).await, "unknown key");
}

// ---------------------------------------------------------------------------------------------
// Clients

async fn clients_are_created_listed_regenerated_and_disabled<S: AllPorts>(store: &S) {
    let org = "clients";
    create_org(store, &organization(org, 100, false, at(0))).await;
    create_org(store, &organization("clients-other", 100, false, at(0))).await;

    let mut first = client("billing-sync-000001", org, "Billing Sync", "Nightly", at(1));
    first.scopes = strings(&["search:read", "graph:read"]);
    first.secret_hash = fingerprinted("client-first", 3);
    first.limits = LimitOverrides { rate_per_minute: Some(120), max_quota: Some(0), ..LimitOverrides::default() };
    let audit = entry(org, "api_client.create", &first.client_id, at(1));
    ok(store.create_client(&first, &audit).await, "create_client");
    assert_eq!(recorded(store, &audit).await, 1);
    assert_eq!(must_get_client(store, &first.client_id).await, first, "a client reads back as written");
    assert_eq!(ok(store.client("no-such-client").await, "client"), None);

    let taken = ApiClientRecord { name: "taken".into(), ..first.clone() };
    let audit = entry(org, "api_client.create", &first.client_id, at(2));
    let result = store.create_client(&taken, &audit).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "a taken client id conflicts: {result:?}");
    assert_eq!(recorded(store, &audit).await, 0);
    assert_eq!(must_get_client(store, &first.client_id).await, first);
    let orphan = client("orphan-000009", "no-such-org", "Orphan", "", at(2));
    let audit = entry("no-such-org", "api_client.create", &orphan.client_id, at(2));
    let result = store.create_client(&orphan, &audit).await;
    assert!(matches!(result, Err(StoreError::Internal(_))), "a client needs its organization: {result:?}");
    assert_eq!(recorded(store, &audit).await, 0);

    // Newest first, a tie by the greater id; the id is searched too.
    let second = client("search-feed-000002", org, "Search Feed", "feeds billing", at(2));
    let third = client("audit-bot-000003", org, "Audit Bot", "", at(2));
    for c in [&second, &third, &client("elsewhere-000004", "clients-other", "Billing", "", at(3))] {
        ok(store.create_client(c, &entry(&c.organization, "api_client.create", &c.client_id, c.created_at)).await, "c");
    }
    let list = |search: &'static str, page: Page| async move {
        let filter = ListFilter::search(search, at(0));
        let (clients, total) = ok(store.list_clients(org, &filter, page).await, "list_clients");
        (clients.into_iter().map(|c| c.client_id).collect::<Vec<_>>(), total)
    };
    let all = strings(&["search-feed-000002", "audit-bot-000003", "billing-sync-000001"]);
    assert_eq!(list("", page(0, 10)).await, (all, 3));
    assert_eq!(list("", page(1, 1)).await, (strings(&["audit-bot-000003"]), 3));
    assert_eq!(list("BILLING", page(0, 10)).await, (strings(&["search-feed-000002", "billing-sync-000001"]), 2));
    assert_eq!(list("bot-0000", page(0, 10)).await, (strings(&["audit-bot-000003"]), 1));
    assert_eq!(list("nothing like it", page(0, 10)).await, (Vec::new(), 0));

    // A new secret; with revoke_tokens, a new token generation too.
    let id = first.client_id.as_str();
    let audit = entry(org, "api_client.regenerate_secret", id, at(10));
    let replacement = fingerprinted("client-first-new", 4);
    assert!(ok(store.replace_client_secret(id, &replacement, false, at(10), &audit).await, "replace"));
    assert_eq!(recorded(store, &audit).await, 1);
    let replaced = ApiClientRecord {
        secret_hash: replacement,
        secret_regenerated_at: Some(at(10)),
        updated_at: at(10),
        ..first.clone()
    };
    assert_eq!(must_get_client(store, id).await, replaced, "the generation stays without revoke_tokens");
    let audit = entry(org, "api_client.regenerate_secret", id, at(20));
    assert!(ok(store.replace_client_secret(id, &secret("client-first-newer"), true, at(20), &audit).await, "r"));
    let revoked = must_get_client(store, id).await;
    assert_eq!((revoked.token_generation, revoked.secret_hash), (1, secret("client-first-newer")));
    assert_eq!((revoked.secret_regenerated_at, revoked.updated_at), (Some(at(20)), at(20)));
    let audit = entry(org, "api_client.regenerate_secret", "no-such-client", at(20));
    assert!(!ok(store.replace_client_secret("no-such-client", &secret("x"), true, at(20), &audit).await, "r"));
    assert_eq!(recorded(store, &audit).await, 0);

    // Disabling: each call is recorded; its outcome says what changed.
    let disable = |id: &'static str, revoke: bool, when: i64| async move {
        let audit = entry(org, "api_client.disable", id, at(when));
        let outcome = ok(store.disable_client(id, revoke, at(when), &audit).await, "disable_client");
        let client = must_get_client(store, id).await;
        (outcome, recorded(store, &audit).await, client.disabled_at, client.tokens_revoked_at)
    };
    let feed = "search-feed-000002";
    assert_eq!(disable(feed, false, 30).await, (DisableOutcome::Disabled, 1, Some(at(30)), None));
    assert_eq!(must_get_client(store, feed).await.updated_at, at(30));
    assert_eq!(disable(feed, false, 40).await, (DisableOutcome::Unchanged, 1, Some(at(30)), None));
    assert_eq!(disable(feed, true, 50).await, (DisableOutcome::TokensRevoked, 1, Some(at(30)), Some(at(50))));
    assert_eq!(must_get_client(store, feed).await.updated_at, at(50));
    assert_eq!(disable(feed, true, 60).await, (DisableOutcome::Unchanged, 1, Some(at(30)), Some(at(50))));
    let bot = "audit-bot-000003";
    assert_eq!(disable(bot, true, 70).await, (DisableOutcome::Disabled, 1, Some(at(70)), Some(at(70))));

    // A disabled client gets no new secret.
    let before = must_get_client(store, feed).await;
    let audit = entry(org, "api_client.regenerate_secret", feed, at(80));
    assert!(!ok(store.replace_client_secret(feed, &secret("never"), true, at(80), &audit).await, "replace"));
    assert_eq!((recorded(store, &audit).await, must_get_client(store, feed).await), (0, before));

    // Last use never moves back; fingerprints are recorded while their hash is current.
    ok(store.touch_clients(&[(id.to_owned(), at(100)), ("no-such-client".to_owned(), at(100))]).await, "touch");
    ok(store.touch_clients(&[(id.to_owned(), at(90))]).await, "touch");
    let touched = must_get_client(store, id).await;
    assert_eq!((touched.last_used_at, touched.updated_at), (Some(at(100)), at(20)));
    ok(store.record_client_fingerprint(bot, "$argon2id$other", fingerprint(5)).await, "record");
    assert_eq!(must_get_client(store, bot).await.secret_hash, secret(bot));
    ok(store.record_client_fingerprint(bot, &secret(bot).phc, fingerprint(5)).await, "record");
    assert_eq!(
        must_get_client(store, bot).await.secret_hash,
        StoredSecret { fingerprint: Some(fingerprint(5)), ..secret(bot) }
    );
}

// ---------------------------------------------------------------------------------------------
// Signing keys

fn signing_key(kid: &str, created: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        algorithm: "ES256".to_owned(),
        private_key_pem: format!("plain {kid}"),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at: at(created),
        retired_at: None,
    }
}

/// The ids the known-id filter is built from: every key and client whatever its state, and
/// nothing that was never created. Runs after the tests above have created and disabled some.
async fn every_key_and_client_id_is_read<S: AllPorts>(store: &S) {
    let keys = ok(store.key_ids().await, "key_ids");
    for created in ["limit1", "disable1", "disable2"] {
        assert!(keys.contains(&key_id(created)), "key {created} is read: {keys:?}");
    }
    assert!(!keys.contains(&key_id("nosuchkey")), "a key never created is not read");
    let clients = ok(store.client_ids().await, "client_ids");
    assert!(clients.iter().any(|id| id == "billing-sync-000001"), "a client is read: {clients:?}");
    assert!(!clients.iter().any(|id| id == "orphan-000009"), "a refused creation is not read");
}

async fn signing_keys_are_added_retired_and_sealed<S: AllPorts>(store: &S) {
    assert_eq!(ok(store.signing_keys().await, "signing_keys"), Vec::new(), "the suite needs an empty store");
    let (one, two, three) = (signing_key("kid-one", 1), signing_key("kid-two", 2), signing_key("kid-three", 3));
    ok(store.add_signing_key(&one, None).await, "add at start-up, unaudited");
    assert_eq!(ok(store.signing_keys().await, "signing_keys"), vec![one.clone()]);

    let audit = entry("signing", "signing_key.rotate", &two.kid, at(2));
    ok(store.add_signing_key(&two, Some(&audit)).await, "add by an admin");
    assert_eq!(recorded(store, &audit).await, 1);
    let retired_one = SigningKeyRecord { retired_at: Some(at(2)), ..one.clone() };
    assert_eq!(ok(store.signing_keys().await, "keys"), vec![two.clone(), retired_one.clone()], "newest first");
    ok(store.add_signing_key(&three, None).await, "add");
    let retired_two = SigningKeyRecord { retired_at: Some(at(3)), ..two.clone() };
    let expected = vec![three.clone(), retired_two.clone(), retired_one.clone()];
    assert_eq!(ok(store.signing_keys().await, "keys"), expected, "a retired key keeps its retirement time");

    // A taken kid conflicts: nothing is retired, nothing recorded.
    let again = signing_key("kid-one", 4);
    let audit = entry("signing", "signing_key.rotate", &again.kid, at(4));
    let result = store.add_signing_key(&again, Some(&audit)).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "a taken kid conflicts: {result:?}");
    assert_eq!(recorded(store, &audit).await, 0);
    assert_eq!(ok(store.signing_keys().await, "keys"), expected, "the failed addition retired nothing");

    // Sealed once, while it is still the plain key.
    assert!(!ok(store.seal_signing_key("kid-three", "another pem", "sealed").await, "seal"));
    assert!(ok(store.seal_signing_key("kid-three", "plain kid-three", "sealed kid-three").await, "seal"));
    assert!(!ok(store.seal_signing_key("kid-three", "plain kid-three", "sealed twice").await, "seal"));
    assert!(!ok(store.seal_signing_key("kid-none", "plain kid-none", "sealed").await, "seal"));
    let sealed = SigningKeyRecord { private_key_pem: "sealed kid-three".into(), ..three };
    assert_eq!(ok(store.signing_keys().await, "keys"), vec![sealed, retired_two, retired_one]);
}

// ---------------------------------------------------------------------------------------------
// Audit log and usage

async fn the_audit_log_filters_orders_and_pages<S: AllPorts>(store: &S) {
    let org = "audit-log";
    let with = |actor: &str, action: &str, target: &str, when: i64| AuditEntry {
        actor: actor.to_owned(),
        outcome: if action.ends_with("disable") { "PERMISSION_DENIED".to_owned() } else { SUCCESS.to_owned() },
        ..entry(org, action, target, at(when))
    };
    let entries = [
        with("alice", "api_key.create", "k1", 10),
        with("bob", "api_key.disable", "k1", 20),
        with("alice", "api_key.create", "k2", 20),
        with("alice", "organization.create", "x", 30),
    ];
    for e in &entries {
        ok(store.record(e).await, "record");
    }
    ok(store.record(&entry("audit-log-other", "api_key.create", "k1", at(20))).await, "record elsewhere");

    let query = |start: Option<i64>, end: Option<i64>, actor: &str, action: &str, target: &str| AuditQuery {
        organization: org.to_owned(),
        start: start.map(at),
        end: end.map(at),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
    };
    // Which of `entries` a query finds, by index, and the total.
    let entries = &entries;
    let find = |query: AuditQuery, page: Page| async move {
        let (found, total) = ok(store.audit_events(&query, page).await, "audit_events");
        let indexes: Vec<usize> = found
            .iter()
            .map(|got| entries.iter().position(|e| e.request_id == got.request_id).unwrap_or(usize::MAX))
            .collect();
        (indexes, total, found)
    };
    let (all, total, found) = find(query(None, None, "", "", ""), page(0, 10)).await;
    assert_eq!((all, total), (vec![3, 2, 1, 0], 4), "newest first, a tie by insertion");
    for got in &found {
        let given = entries.iter().find(|e| e.request_id == got.request_id);
        assert_eq!(Some(&AuditEntry { id: 0, ..got.clone() }), given, "stored as given");
    }
    let ids: Vec<i64> = found.iter().map(|e| e.id).collect();
    assert!(ids.iter().all(|id| *id > 0) && ids.windows(2).all(|w| w[0] > w[1]), "ids rise: {ids:?}");

    let indexes = |(found, total, _): (Vec<usize>, u64, Vec<AuditEntry>)| (found, total);
    assert_eq!(
        indexes(find(query(Some(20), None, "", "", ""), page(0, 10)).await),
        (vec![3, 2, 1], 3),
        "start: inclusive"
    );
    assert_eq!(indexes(find(query(None, Some(20), "", "", ""), page(0, 10)).await), (vec![0], 1), "end: exclusive");
    assert_eq!(indexes(find(query(Some(20), Some(30), "", "", ""), page(0, 10)).await), (vec![2, 1], 2));
    assert_eq!(indexes(find(query(None, None, "alice", "", ""), page(0, 10)).await), (vec![3, 2, 0], 3));
    assert_eq!(indexes(find(query(None, None, "", "api_key.create", ""), page(0, 10)).await), (vec![2, 0], 2));
    assert_eq!(indexes(find(query(None, None, "", "", "k1"), page(0, 10)).await), (vec![1, 0], 2));
    assert_eq!(indexes(find(query(None, None, "alice", "api_key.create", "k2"), page(0, 10)).await), (vec![2], 1));
    assert_eq!(indexes(find(query(None, None, "ali", "", ""), page(0, 10)).await), (vec![], 0), "exact, not a search");
    assert_eq!(
        indexes(find(query(None, None, "", "", ""), page(1, 2)).await),
        (vec![2, 1], 4),
        "a page, and the total"
    );
    assert_eq!(indexes(find(query(None, None, "", "", ""), page(4, 2)).await), (vec![], 4));
    let other = AuditQuery { organization: "audit-log-none".into(), ..AuditQuery::default() };
    assert_eq!(indexes(find(other, page(0, 10)).await), (vec![], 0));
}

async fn usage_is_kept_per_replica_as_totals<S: AllPorts>(store: &S) {
    let (month, next_month) = (at(0), at(31 * 86_400));
    let row = |subject: &str, window_start: DateTime<Utc>, used: u64| UsageRow {
        subject: subject.to_owned(),
        window_start,
        used,
    };
    let (subject, other) = ("api_key:k_usage0000001", "api_key:k_usage0000002");
    ok(store.record_usage("replica-a", &[row(subject, month, 5), row(other, month, 7)], at(1)).await, "record");
    ok(store.record_usage("replica-b", &[row(subject, month, 11), row(subject, next_month, 13)], at(1)).await, "r");
    let others = |subject: &'static str, window: DateTime<Utc>, replica: &'static str| async move {
        ok(store.usage_by_others(subject, window, replica).await, "usage_by_others")
    };
    assert_eq!(others(subject, month, "replica-a").await, 11);
    assert_eq!(others(subject, month, "replica-b").await, 5);
    assert_eq!(others(subject, month, "replica-c").await, 16, "every other replica's");
    assert_eq!(others(other, month, "replica-a").await, 0, "not its own");
    assert_eq!(others(other, month, "replica-b").await, 7);
    assert_eq!(others(subject, next_month, "replica-a").await, 13, "each month apart");
    assert_eq!(others("api_key:k_nosuchkey000", month, "replica-a").await, 0);
    // Totals, not increments: writing a row again replaces it.
    ok(store.record_usage("replica-a", &[row(subject, month, 8)], at(2)).await, "record");
    ok(store.record_usage("replica-a", &[row(subject, month, 8)], at(3)).await, "record the same again");
    assert_eq!(others(subject, month, "replica-c").await, 19);
    assert_eq!(others(other, month, "replica-b").await, 7, "rows not written again are kept");
    ok(store.record_usage("replica-a", &[], at(4)).await, "record nothing");
}

async fn daily_uses_add_up_and_old_days_are_forgotten<S: AllPorts>(store: &S) {
    let day = |n: u32| NaiveDate::from_ymd_opt(2026, 11, n).unwrap_or_default();
    let row = |credential: &str, d: u32, uses: u64| DailyUses { credential: credential.to_owned(), day: day(d), uses };
    let (key, client) = ("api_key:k_daily0000001", "client:daily-client");
    ok(store.add_daily_uses(&[row(key, 1, 3), row(key, 2, 4), row(client, 2, 9)], None).await, "add");
    // Increments: a second replica's (or a later flush's) counts add to the day's.
    ok(store.add_daily_uses(&[row(key, 2, 6)], None).await, "add again");
    let read = |credential: &'static str, since: u32| async move {
        let rows = ok(store.daily_uses(credential, day(since)).await, "daily_uses");
        rows.into_iter().map(|r| (r.day, r.uses)).collect::<Vec<_>>()
    };
    assert_eq!(read(key, 1).await, vec![(day(1), 3), (day(2), 10)], "oldest first, summed");
    assert_eq!(read(key, 2).await, vec![(day(2), 10)], "from the day asked");
    assert_eq!(read(client, 1).await, vec![(day(2), 9)], "each credential apart");
    assert_eq!(read("api_key:k_nosuchkey000", 1).await, vec![]);
    ok(store.add_daily_uses(&[u64::MAX, 1].map(|uses| row(key, 3, uses)), None).await, "huge counts");
    assert!(read(key, 3).await[0].1 >= i64::MAX.unsigned_abs() - 1, "clamped, not wrapped or refused");
    ok(store.add_daily_uses(&[], Some(day(2))).await, "forget before the 2nd");
    assert_eq!(read(key, 1).await.first().map(|r| r.0), Some(day(2)), "the 1st is gone");
    assert_eq!(read(client, 1).await, vec![(day(2), 9)], "later days are kept");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::testing::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_store_passes_the_conformance_tests() {
        super::run_all(Arc::new(MemoryStore::new())).await;
    }
}
