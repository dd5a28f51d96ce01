//! Store-level guarantees under concurrency: a rotation that lost a race changes nothing (nor
//! leaves an audit entry), and an expired key revived by rotation counts against its
//! organization's limit.

use std::sync::Arc;

use chrono::Duration;
use keygate::app;
use keygate_core::admin::{NewKey, NewOrganization, RotateKey};
use keygate_core::clock::ManualClock;
use keygate_core::error::CoreError;
use keygate_core::model::{AuditEntry, AuditQuery, Credentials, Page, StoredSecret};
use keygate_core::ports::{AuditStore, RotateOutcome, Rotation, Store};

use crate::backend_tests;
use crate::support::{Backend, TestDb, admin_ctx, start_time, test_config};

backend_tests!(a_stale_rotation_changes_nothing, reviving_an_expired_key_respects_the_limit);

fn creds(key: &str) -> Credentials {
    Credentials { authorization: String::new(), api_key: key.to_owned() }
}

async fn a_stale_rotation_changes_nothing(backend: Backend) {
    let db = TestDb::create(backend).await;
    let config = test_config(&db.url, &[]);
    let store = app::open_store(&config, true).await.expect("store");
    let state = app::build_state(&config, store, Arc::new(ManualClock::new(start_time()))).await.expect("state");
    let admin = state.admin.bootstrap("platform", false).await.expect("bootstrap").api_key;
    let new_key = NewKey { name: "k".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let original = state.admin.create_key(&admin_ctx(&admin), new_key).await.expect("create");
    let key_id = original.view.key.key_id.clone();
    let stale_hash = original.view.key.secret_hash.clone();

    let rotate = RotateKey { key_id: key_id.clone(), grace_period_days: Some(7), expires_in_days: None };
    let first = state.admin.rotate_key(&admin_ctx(&admin), rotate).await.expect("rotate");
    // A second rotation that read the key before the first one wrote loses, and changes nothing.
    let late = Rotation {
        new_secret_hash: StoredSecret {
            phc: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
            fingerprint: None,
        },
        previous_key_expires_at: start_time() + Duration::days(7),
        expires_at: start_time() + Duration::days(365),
        replaces_hash: stale_hash,
    };
    let entry = AuditEntry { organization: "stale".into(), action: "api_key.rotate".into(), ..Default::default() };
    let outcome = state.store.rotate_key(&key_id, &late, None, start_time(), &entry).await.expect("store answers");
    assert_eq!(outcome, RotateOutcome::Changed);
    // The entry rode in the rolled-back transaction.
    let query = AuditQuery { organization: "stale".into(), ..Default::default() };
    let (_, recorded) = state.store.audit_events(&query, Page { offset: 0, limit: 10 }).await.expect("audit");
    assert_eq!(recorded, 0);
    state.engine.authenticate(&creds(&original.api_key)).await.expect("decided").expect("original still in grace");
    state.engine.authenticate(&creds(&first.api_key)).await.expect("decided").expect("first rotation's key");
    db.drop_database().await;
}

async fn reviving_an_expired_key_respects_the_limit(backend: Backend) {
    let db = TestDb::create(backend).await;
    let config = test_config(&db.url, &[]);
    let store = app::open_store(&config, true).await.expect("store");
    let clock = Arc::new(ManualClock::new(start_time()));
    let state = app::build_state(&config, store, clock.clone()).await.expect("state");
    let admin = state.admin.bootstrap("platform", false).await.expect("bootstrap").api_key;
    let org = NewOrganization { slug: "small".into(), name: "Small".into(), plan: "free".into() };
    state.admin.create_organization(&admin_ctx(&admin), org).await.expect("org");
    let key = |days: Option<i64>| NewKey {
        name: "k".into(),
        scopes: vec!["graph:read".into()],
        expires_in_days: days,
        organization: "small".into(),
        ..Default::default()
    };
    let short = state.admin.create_key(&admin_ctx(&admin), key(Some(1))).await.expect("short-lived");
    state.admin.create_key(&admin_ctx(&admin), key(None)).await.expect("second");
    clock.advance(Duration::days(2));
    state.admin.create_key(&admin_ctx(&admin), key(None)).await.expect("third, while the first is expired");
    let fourth = state.admin.create_key(&admin_ctx(&admin), key(None)).await.expect("fourth: three active");
    assert!(state.admin.create_key(&admin_ctx(&admin), key(None)).await.is_err(), "the org is full");

    let revive =
        RotateKey { key_id: short.view.key.key_id.clone(), grace_period_days: Some(0), expires_in_days: Some(30) };
    match state.admin.rotate_key(&admin_ctx(&admin), revive.clone()).await {
        Err(CoreError::FailedPrecondition(message)) => assert!(message.contains("limit"), "{message}"),
        other => panic!("reviving past the limit must fail, got {other:?}"),
    }
    state.admin.disable_key(&admin_ctx(&admin), &fourth.view.key.key_id).await.expect("disable");
    let revived = state.admin.rotate_key(&admin_ctx(&admin), revive).await.expect("room again");
    state.engine.authenticate(&creds(&revived.api_key)).await.expect("decided").expect("revived key works");
    db.drop_database().await;
}
