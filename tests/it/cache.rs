//! The verdict cache, seen from the engine over a real store: hits cost no argon2, concurrent
//! misses verify once, rejections are remembered, malformed keys never reach a look-up.

use std::sync::Arc;

use keygate::app::{self, State};
use keygate_core::admin::{NewKey, RotateKey};
use keygate_core::clock::ManualClock;
use keygate_core::credentials::api_key as credential;
use keygate_core::model::{Credentials, Reason};

use crate::backend_tests;
use crate::support::{Backend, TestDb, admin_ctx, start_time, test_config};

backend_tests!(hits_cost_no_argon2_and_concurrent_misses_verify_once, rejections_are_remembered);

async fn state_for(backend: Backend) -> (TestDb, State, String) {
    let db = TestDb::create(backend).await;
    let config = test_config(&db.url, &[]);
    let store = app::open_store(&config, true).await.expect("store");
    let state = app::build_state(&config, store, Arc::new(ManualClock::new(start_time()))).await.expect("state");
    let admin_key = state.admin.bootstrap("platform", false).await.expect("bootstrap").api_key;
    (db, state, admin_key)
}

fn key(presented: &str) -> Credentials {
    Credentials { authorization: String::new(), api_key: presented.to_owned() }
}

async fn create(state: &State, admin_key: &str) -> (String, String) {
    let request = NewKey { name: "cached".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let issued = state.admin.create_key(&admin_ctx(admin_key), request).await.expect("create");
    (issued.api_key, issued.view.key.key_id)
}

async fn hits_cost_no_argon2_and_concurrent_misses_verify_once(backend: Backend) {
    let (db, state, admin_key) = state_for(backend).await;
    let (presented, key_id) = create(&state, &admin_key).await;

    let before = state.hasher.verifications();
    let mut first_requests = Vec::new();
    for _ in 0..16 {
        let engine = state.engine.clone();
        let credentials = key(&presented);
        first_requests.push(tokio::spawn(async move { engine.authenticate(&credentials).await }));
    }
    for request in first_requests {
        let principal = request.await.expect("task").expect("decided").expect("valid");
        assert_eq!(principal.id, key_id);
    }
    assert_eq!(state.hasher.verifications() - before, 1, "16 concurrent first requests verify once");
    for _ in 0..100 {
        state.engine.authenticate(&key(&presented)).await.expect("decided").expect("valid");
    }
    assert_eq!(state.hasher.verifications() - before, 1, "hits run no argon2");

    // A rotation makes the verdict stale: the old secret is judged again from the re-read record
    // (its proven hash is now the replaced one) with no argon2; only the new secret runs it.
    let rotate = RotateKey { key_id: key_id.clone(), grace_period_days: Some(1), expires_in_days: None };
    let rotated = state.admin.rotate_key(&admin_ctx(&admin_key), rotate).await.expect("rotate").api_key;
    let before = state.hasher.verifications();
    state.engine.authenticate(&key(&presented)).await.expect("decided").expect("old secret in grace");
    assert_eq!(state.hasher.verifications() - before, 0, "the old secret is judged without argon2");
    state.engine.authenticate(&key(&rotated)).await.expect("decided").expect("new secret");
    assert_eq!(state.hasher.verifications() - before, 1);
    state.engine.authenticate(&key(&presented)).await.expect("decided").expect("cached again");
    assert_eq!(state.hasher.verifications() - before, 1);
    db.drop_database().await;
}

async fn rejections_are_remembered(backend: Backend) {
    let (db, state, admin_key) = state_for(backend).await;
    let (presented, key_id) = create(&state, &admin_key).await;
    let before = state.hasher.verifications();

    let mut bad_checksum = presented.clone();
    bad_checksum.pop();
    bad_checksum.push(if presented.ends_with('A') { 'B' } else { 'A' });
    let unknown = credential::generate("sk_live_").full;
    for presented in ["sk_live_garbage", bad_checksum.as_str(), unknown.as_str()] {
        for _ in 0..5 {
            let failure = state.engine.authenticate(&key(presented)).await.expect("decided").expect_err("rejected");
            assert_eq!(failure.reason, Reason::InvalidApiKey);
        }
    }
    assert_eq!(state.hasher.verifications(), before, "malformed and unknown keys never reach argon2");

    let wrong_secret = credential::generate_for("sk_live_", &key_id).full;
    for _ in 0..10 {
        let failure = state.engine.authenticate(&key(&wrong_secret)).await.expect("decided").expect_err("rejected");
        assert_eq!(failure.reason, Reason::InvalidApiKey);
    }
    assert_eq!(state.hasher.verifications(), before, "a made-up secret for a real id is ruled out by its fingerprint");
    db.drop_database().await;
}
