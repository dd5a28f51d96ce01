//! A secret is shown once: never stored (only argon2id hashes), never in Get or List results.

use keygate::proto::keygate_v1 as pb;

use crate::backend_tests;
use crate::support::{Backend, TestServer, as_admin};

backend_tests!(keys_are_stored_only_as_argon2id_hashes);

/// The pieces of a full key that must never reappear: the key itself and its secret part.
pub fn secret_parts(full_key: &str) -> [String; 2] {
    let secret = full_key.rsplit('_').next().expect("secret part");
    [full_key.to_owned(), secret[..32].to_owned()]
}

async fn keys_are_stored_only_as_argon2id_hashes(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let (key, key_id) = server.create_key(&server.admin_key, "secret", &["graph:read"]).await;
    let rotate = pb::RotateApiKeyRequest { key_id: key_id.clone(), grace_period_days: Some(1), expires_in_days: None };
    let rotated = server.admin().await.rotate_api_key(as_admin(rotate, &server.admin_key)).await.expect("rotate");
    let rotated = rotated.into_inner().api_key;
    assert!(server.authorize(&key, &["graph:read"]).await.decision.expect("d").allowed);

    let get = server.admin().await.get_api_key(as_admin(pb::GetApiKeyRequest { key_id }, &server.admin_key)).await;
    let list = server.admin().await.list_api_keys(as_admin(pb::ListApiKeysRequest::default(), &server.admin_key)).await;
    let shown = format!("{:?}{:?}", get.expect("get").into_inner(), list.expect("list").into_inner());

    server.shutdown_only().await;
    let stored = server.db.dump().await;
    assert!(stored.contains("$argon2id$"), "hashes are argon2id PHC strings");
    for full in [&key, &rotated, &server.admin_key] {
        for part in secret_parts(full) {
            assert!(!stored.contains(&part), "the database holds a secret");
            assert!(!shown.contains(&part), "a Get or List result shows a secret");
        }
    }
    server.db.drop_database().await;
}
