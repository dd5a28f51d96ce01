//! The verdict cache, alone and in the engine: a verified credential costs argon2 once; a change
//! made elsewhere (another replica, whose announcement arrives as an invalidation) is seen once
//! its verdicts are dropped; a verification that overlapped an invalidation is not kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use crate::admin::RotateKey;
use crate::admin::clients::NewClient;
use crate::credentials::api_key;
use crate::known_ids::UNKNOWN_READS_PER_SECOND;
use crate::model::{AuditEntry, LimitOverrides, Reason};
use crate::oauth::{CLIENT_CREDENTIALS, TokenRequest};
use crate::ports::{ClientStore, KeyChanges, RotateOutcome, Rotation, Store};
use crate::testing::harness::{Core, ctx, scopes};
use crate::verdicts::{VerdictCache, VerdictSettings, Verified};

/// An entry for a change made behind the use cases' back, as another replica would.
fn elsewhere() -> AuditEntry {
    AuditEntry { organization: "elsewhere".into(), action: "test".into(), ..AuditEntry::default() }
}

#[tokio::test]
async fn a_verified_key_costs_argon2_once() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let key = core.key(&root, "", &["graph:read"]).await.api_key;
    let before = core.hasher.verifications();
    for _ in 0..3 {
        core.authenticate(&key).await.expect("works");
    }
    assert_eq!(core.hasher.verifications(), before + 1);
    assert!(core.verdicts.entry_count() <= 3, "entries are per credential");
}

#[tokio::test]
async fn a_revocation_elsewhere_is_seen_once_its_verdict_is_dropped() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let issued = core.key(&root, "", &["graph:read"]).await;
    let id = issued.view.key.key_id.clone();
    core.authenticate(&issued.api_key).await.expect("cached now");

    // Another replica disables the key: until its announcement arrives, the verdict stands.
    assert!(core.store.disable_key(&id, core.now(), &elsewhere()).await.expect("disable"));
    assert!(core.authenticate(&issued.api_key).await.is_ok(), "stale until the announcement");
    core.verdicts.invalidate_key(&id).await;
    assert_eq!(core.authenticate(&issued.api_key).await.map(|p| p.id), Err(Reason::ExpiredApiKey));
}

#[tokio::test]
async fn a_refusal_is_remembered_and_dropped_with_its_key() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let issued = core.key(&root, "", &["graph:read"]).await;
    let record = issued.view.key.clone();
    // A secret the key does not have (yet): refused, and the refusal is cached under the key.
    let other = api_key::generate_for("sk_test_", &record.key_id);
    assert!(core.authenticate(&other.full).await.is_err());
    // Another replica rotates the key to exactly that secret.
    let rotation = Rotation {
        new_secret_hash: core.hasher.hash(other.secret.clone()).await.expect("hash"),
        previous_key_expires_at: core.now(),
        expires_at: record.expires_at,
        replaces_hash: record.secret_hash.clone(),
    };
    let outcome = core.store.rotate_key(&record.key_id, &rotation, None, core.now(), &elsewhere()).await;
    assert_eq!(outcome.expect("rotate"), RotateOutcome::Rotated);
    assert!(core.authenticate(&other.full).await.is_err(), "the cached refusal stands until the announcement");
    core.verdicts.invalidate_key(&record.key_id).await;
    assert!(core.authenticate(&other.full).await.is_ok(), "dropped with the key's other verdicts");
}

#[tokio::test]
async fn a_client_change_elsewhere_drops_its_tokens_verdicts() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let request = NewClient { name: "Sync".into(), scopes: scopes(&["search:read"]), ..NewClient::default() };
    let client = core.admin.create_client(&ctx(&root), request).await.expect("client");
    let id = client.client.client_id.clone();
    let token_request = TokenRequest {
        grant_type: CLIENT_CREDENTIALS.into(),
        client_id: id.clone(),
        client_secret: client.client_secret.clone(),
        scope: String::new(),
    };
    let token = core.oauth.issue_token(&token_request).await.expect("token").token;
    core.authenticate(&token).await.expect("cached now");
    core.store.disable_client(&id, true, core.now(), &elsewhere()).await.expect("disable elsewhere");
    assert!(core.authenticate(&token).await.is_ok(), "stale until the announcement");
    core.verdicts.invalidate_key(&id).await;
    assert_eq!(core.authenticate(&token).await.map(|p| p.id), Err(Reason::RevokedToken));
}

fn cache() -> VerdictCache {
    let hour = StdDuration::from_secs(3600);
    VerdictCache::new(VerdictSettings { max_entries: 100, ttl: hour, negative_ttl: hour })
}

fn invalid(tag: usize) -> Verified {
    Verified::refused(format!("k_{tag:012}"))
}

#[tokio::test]
async fn a_verification_overlapping_an_invalidation_is_redone() {
    let cache = Arc::new(cache());
    let calls = AtomicUsize::new(0);
    let verify = || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let cache = cache.clone();
        async move {
            if n == 0 {
                // A change is announced while the first verification reads the database.
                cache.invalidate_key("k_000000000099").await;
            }
            Ok::<_, ()>(invalid(n))
        }
    };
    let verified = cache.get_or_try_verify(cache.digest("presented"), |_| true, verify).await;
    assert_eq!((verified, calls.load(Ordering::SeqCst)), (Ok(invalid(1)), 2), "the first read is not kept");
    let again =
        cache.get_or_try_verify(cache.digest("presented"), |_| true, || async { Ok::<_, ()>(invalid(7)) }).await;
    assert_eq!(again, Ok(invalid(1)), "the second is cached");
}

#[tokio::test]
async fn failures_to_verify_are_not_cached() {
    let cache = cache();
    let failed = cache
        .get_or_try_verify(cache.digest("presented"), |_| true, || async { Err::<Verified, _>("database down") })
        .await;
    assert_eq!(failed, Err("database down"));
    let verified =
        cache.get_or_try_verify(cache.digest("presented"), |_| true, || async { Ok::<_, &str>(invalid(1)) }).await;
    assert_eq!(verified, Ok(invalid(1)), "verified again once the database answers");
    cache.invalidate_key("k_000000000001").await;
    let after =
        cache.get_or_try_verify(cache.digest("presented"), |_| true, || async { Ok::<_, &str>(invalid(2)) }).await;
    assert_eq!(after, Ok(invalid(2)), "a refusal naming a key is dropped with it");
    cache.clear();
    let cleared =
        cache.get_or_try_verify(cache.digest("presented"), |_| true, || async { Ok::<_, &str>(invalid(3)) }).await;
    assert_eq!(cleared, Ok(invalid(3)));
}

/// Until eight callers wait on the flight for `digest` (a few seconds at most).
async fn all_seated(cache: &VerdictCache, digest: crate::verdicts::Digest) {
    let seated = async {
        while cache.in_flight(digest).1 < 8 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(StdDuration::from_secs(10), seated).await.expect("eight callers on one flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_missing_together_verify_once_and_share_a_failure() {
    let cache = Arc::new(cache());
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let miss = |outcome: Result<usize, &'static str>| {
        let (cache, calls, released) = (cache.clone(), calls.clone(), released.clone());
        tokio::spawn(async move {
            let verify = || {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut released = released.clone();
                async move {
                    // Held until every caller has missed, as a slow database would hold them.
                    let _ = released.wait_for(|go| *go).await;
                    outcome.map(invalid)
                }
            };
            cache.get_or_try_verify(cache.digest("presented"), |_| true, verify).await
        })
    };
    let digest = cache.digest("presented");
    let failing: Vec<_> = (0..8).map(|_| miss(Err("database down"))).collect();
    // Released only once all eight wait on the one flight.
    all_seated(&cache, digest).await;
    release.send_replace(true);
    for caller in failing {
        assert_eq!(caller.await.expect("joined"), Err("database down"), "the one failure is every caller's");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one verification for eight callers");
    assert_eq!(cache.in_flight(digest).0, 0, "no flight is left once its callers are answered");

    release.send_replace(false);
    let verifying: Vec<_> = (0..8).map(|_| miss(Ok(5))).collect();
    all_seated(&cache, digest).await;
    release.send_replace(true);
    for caller in verifying {
        assert_eq!(caller.await.expect("joined"), Ok(invalid(5)));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "failures are not cached; the verdict is, once");
}

#[tokio::test]
async fn a_cancelled_verification_leaves_nothing_behind() {
    let cache = cache();
    let never =
        cache.get_or_try_verify(cache.digest("presented"), |_| true, std::future::pending::<Result<Verified, ()>>);
    let timed_out = tokio::time::timeout(StdDuration::from_millis(20), never).await;
    assert!(timed_out.is_err());
    assert_eq!(cache.in_flight(cache.digest("presented")).0, 0, "the caller went, and its flight with it");
    let verified =
        cache.get_or_try_verify(cache.digest("presented"), |_| true, || async { Ok::<_, ()>(invalid(1)) }).await;
    assert_eq!(verified, Ok(invalid(1)));
}

#[tokio::test]
async fn a_verdict_lives_no_longer_than_its_lifetime_and_the_cache_no_larger_than_its_bound() {
    let cache = VerdictCache::new(VerdictSettings {
        max_entries: 100,
        ttl: StdDuration::from_secs(3600),
        // Long enough that "remembered" holds on a loaded machine; the wait below outlasts it.
        negative_ttl: StdDuration::from_millis(500),
    });
    let refused = |tag| {
        cache.get_or_try_verify(cache.digest("presented"), |_| true, move || async move { Ok::<_, ()>(invalid(tag)) })
    };
    assert_eq!(refused(1).await, Ok(invalid(1)));
    assert_eq!(refused(2).await, Ok(invalid(1)), "remembered");
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    assert_eq!(refused(3).await, Ok(invalid(3)), "forgotten after the negative lifetime");
    for n in 0..1_000 {
        let digest = cache.digest(&format!("flood {n}"));
        let _ = cache.get_or_try_verify(digest, |_| true, || async { Ok::<_, ()>(invalid(n)) }).await;
    }
    assert!(cache.entry_count() <= 100, "{} entries held", cache.entry_count());
}

#[tokio::test]
async fn cached_keys_share_their_organization_and_scopes() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    for _ in 0..20 {
        let key = core.key(&root, "", &["graph:read"]).await.api_key;
        core.authenticate(&key).await.expect("works");
    }
    let (organizations, scope_lists) = core.verdicts.shared_held();
    // The root key's and the twenty keys' organization; the root's scopes and the twenty's.
    assert_eq!((organizations, scope_lists), (1, 2));
}

#[tokio::test]
async fn a_changed_key_is_judged_again_without_argon2() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let issued = core.key(&root, "", &["graph:read"]).await;
    let id = issued.view.key.key_id.clone();
    core.authenticate(&issued.api_key).await.expect("verified once, with argon2");
    let argon2 = core.hasher.verifications();

    // An update, a limit change: the next use re-reads the record and sees them, no argon2.
    let changes = KeyChanges {
        name: Some("renamed".into()),
        limits: LimitOverrides { rate_per_minute: Some(7), ..LimitOverrides::default() },
        ..KeyChanges::default()
    };
    core.admin.update_key(&ctx(&root), &id, changes).await.expect("update");
    let principal = core.authenticate(&issued.api_key).await.expect("still valid");
    assert_eq!((principal.name.as_str(), principal.limits.rate_per_minute), ("renamed", Some(7)));
    assert_eq!(core.hasher.verifications(), argon2, "no argon2 for a change that left the secret alone");
    assert_eq!(core.verdicts.instruments().rejudged.get(), 1);

    // A rotation: the old secret, now in the previous slot, still proven; the new one verified.
    let rotate = RotateKey { key_id: id.clone(), grace_period_days: Some(7), expires_in_days: None };
    let rotated = core.admin.rotate_key(&ctx(&root), rotate).await.expect("rotate");
    core.authenticate(&issued.api_key).await.expect("the grace period, judged from the record");
    assert_eq!(core.hasher.verifications(), argon2);
    core.authenticate(&rotated.api_key).await.expect("the new secret");
    assert_eq!(core.hasher.verifications(), argon2 + 1, "a new secret is verified once");

    // A second rotation leaves the first secret's hash nowhere: refused, still with no argon2.
    let again = RotateKey { key_id: id.clone(), grace_period_days: Some(7), expires_in_days: None };
    core.admin.rotate_key(&ctx(&root), again).await.expect("rotate again");
    assert_eq!(core.authenticate(&issued.api_key).await.map(|p| p.id), Err(Reason::InvalidApiKey));
    core.authenticate(&rotated.api_key).await.expect("the previous secret now");
    assert_eq!(core.hasher.verifications(), argon2 + 1);

    // Disabled: denied at once, no argon2.
    core.admin.disable_key(&ctx(&root), &id).await.expect("disable");
    assert_eq!(core.authenticate(&rotated.api_key).await.map(|p| p.id), Err(Reason::ExpiredApiKey));
    assert_eq!(core.hasher.verifications(), argon2 + 1, "a revocation costs no argon2");
}

#[tokio::test]
async fn made_up_ids_are_refused_with_no_database_read() {
    let core = Core::new().await;
    let root = core.bootstrap().await;
    let issued = core.key(&root, "", &["graph:read"]).await;
    let request = NewClient { name: "Sync".into(), scopes: scopes(&["search:read"]), ..NewClient::default() };
    let client = core.admin.create_client(&ctx(&root), request).await.expect("client");
    let (store, instruments) = (core.store.as_ref(), core.verdicts.instruments());

    // Before the ids are read, a made-up id costs a read, as it always did.
    let made_up = api_key::generate_for("sk_test_", "k_zzzzzzzzzzzz").full;
    assert_eq!(core.authenticate(&made_up).await.map(|p| p.id), Err(Reason::InvalidApiKey));
    assert_eq!((instruments.unknown_reads.get(), instruments.unknown_refused.get()), (1, 0));

    assert_eq!(core.verdicts.known().learn_all(store, store).await.expect("ids"), 3, "root, key and client");
    // The first few unknown ids of a second are read (a creation elsewhere may be travelling).
    let budget = UNKNOWN_READS_PER_SECOND;
    for n in 0..budget {
        let made_up = api_key::generate_for("sk_test_", &format!("k_w{n:011}")).full;
        assert_eq!(core.authenticate(&made_up).await.map(|p| p.id), Err(Reason::InvalidApiKey));
    }
    assert_eq!((instruments.unknown_reads.get(), instruments.unknown_refused.get()), (1 + budget, 0));
    // Twice the same: a refusal made without a read is not cached (a creation announced a
    // moment later must not find it), so the second is refused by the known ids again.
    for id in ["k_yyyyyyyyyyyy", "k_yyyyyyyyyyyy", "k_xxxxxxxxxxxx"] {
        let made_up = api_key::generate_for("sk_test_", id).full;
        assert_eq!(core.authenticate(&made_up).await.map(|p| p.id), Err(Reason::InvalidApiKey));
    }
    assert_eq!(instruments.unknown_refused.get(), 3);
    let secret = client.client_secret.clone();
    let unknown_client = TokenRequest {
        grant_type: CLIENT_CREDENTIALS.into(),
        client_id: "made-up-client-0123".into(),
        client_secret: secret.clone(),
        scope: String::new(),
    };
    assert!(core.oauth.issue_token(&unknown_client).await.is_err(), "an unknown client is refused");
    assert_eq!(instruments.unknown_reads.get(), 1 + budget, "no more reads this second");
    assert_eq!(instruments.unknown_refused.get(), 4);

    // The credentials that exist still work, and one created now is known at once.
    assert_eq!(core.authenticate(&issued.api_key).await.map(|p| p.id), Ok(issued.view.key.key_id.clone()));
    let known_client = TokenRequest { client_id: client.client.client_id.clone(), ..unknown_client };
    core.oauth.issue_token(&known_client).await.expect("a known client gets a token");
    let fresh = core.key(&root, "", &["graph:read"]).await;
    assert_eq!(core.authenticate(&fresh.api_key).await.map(|p| p.id), Ok(fresh.view.key.key_id));
    assert_eq!(instruments.unknown_reads.get(), 1 + budget);
}
