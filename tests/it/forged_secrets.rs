//! Made-up secrets for known ids (issue 15, M1). Key ids and client ids are public (in every key,
//! prefix, audit entry and log) and a key's checksum is public too, so anyone can send well-formed
//! keys and client secrets for real ids. Each used to cost argon2 work, and a flood of them left a
//! new key's first use UNAVAILABLE. Now a short keyed fingerprint beside each hash rules them out:
//! keygate's own argon2 counter, read from `/metrics`, must stay within 0.1 % of the forgeries
//! (active, disabled and expired keys, and a client), while a new key and a new client's first
//! uses during the flood are decided. Rows from before fingerprints get one on first use.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use keygate::proto::keygate_v1 as pb;
use keygate_core::credentials::{api_key as credential, client as client_credential};
use pb::DecisionReason as R;
use sea_orm::{ConnectionTrait, Database, Statement};

use crate::backend_tests;
use crate::metrics::sample;
use crate::support::{Backend, TestServer, as_admin};

backend_tests!(forged_secrets_for_known_ids_never_reach_argon2, rows_from_before_fingerprints_get_one_on_first_use);

/// keygate's argon2 parameters as shipped (19 MiB, 2 passes) on one worker: a few dozen
/// verifications a second, so that the flood below is many times what argon2 can do.
const PRODUCTION_ARGON2: &[(&str, &str)] =
    &[("hashing.memory_kib", "19456"), ("hashing.iterations", "2"), ("hashing.max_concurrent", "1")];

/// Forgeries per target.
const FORGED_KEYS: u64 = 1500;
const FORGED_PER_DEAD_KEY: u64 = 300;
const FORGED_CLIENT_SECRETS: u64 = 800;

/// `keygate_argon2_verifications_total`, and argon2's mean time per verification so far.
async fn argon2_counters(server: &TestServer) -> (f64, f64) {
    let text = reqwest::get(server.url("/metrics")).await.expect("scrape").text().await.expect("text");
    let count = sample(&text, "keygate_argon2_verifications_total").expect("verifications");
    let seconds = sample(&text, "keygate_argon2_duration_seconds_sum").unwrap_or(0.0);
    let timed = sample(&text, "keygate_argon2_duration_seconds_count").unwrap_or(0.0);
    (count, seconds / timed.max(1.0))
}

async fn create_key(server: &TestServer, name: &str, expires_in_days: Option<i32>) -> (String, String) {
    let request = pb::CreateApiKeyRequest {
        name: name.into(),
        scopes: vec!["graph:read".into()],
        expires_in_days,
        ..Default::default()
    };
    let created = server.admin().await.create_api_key(as_admin(request, &server.admin_key)).await.expect("create");
    let created = created.into_inner();
    (created.api_key, created.key.expect("view").key_id)
}

async fn create_client(server: &TestServer, name: &str) -> (String, String) {
    let request =
        pb::CreateApiClientRequest { name: name.into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let created = server.admin().await.create_api_client(as_admin(request, &server.admin_key)).await.expect("client");
    let created = created.into_inner();
    (created.client_id, created.client_secret)
}

/// `POST /oauth/token` with HTTP Basic; the status.
async fn grant(http: &reqwest::Client, server: &TestServer, client_id: &str, secret: &str) -> u16 {
    let response = http
        .post(server.url("/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token endpoint answers");
    response.status().as_u16()
}

/// Sends `count` requests made by `forge`, `concurrency` at a time, and checks each is denied as
/// `expected` (never UNAVAILABLE, never allowed).
async fn flood_keys(server: &TestServer, key_id: &str, count: u64, expected: R) {
    let channel = server.channel().await;
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..48 {
        let mut auth = pb::auth_service_client::AuthServiceClient::new(channel.clone());
        let (next, key_id) = (next.clone(), key_id.to_owned());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let forged = credential::generate_for("sk_live_", &key_id).full;
                let request = pb::AuthorizeRequest {
                    credentials: Some(crate::support::bearer(&forged)),
                    required_scopes: vec!["graph:read".into()],
                    ..Default::default()
                };
                let decision = auth.authorize(request).await.expect("decided, not UNAVAILABLE").into_inner();
                let decision = decision.decision.expect("decision");
                assert_eq!(decision.reason(), expected, "a forged secret for {key_id}");
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker");
    }
}

async fn flood_client(server: &TestServer, client_id: &str, count: u64) {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (http, next, client_id) = (http.clone(), next.clone(), client_id.to_owned());
        let url = server.url("/oauth/token");
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let forged = client_credential::generate_secret();
                let response = http
                    .post(&url)
                    .basic_auth(&client_id, Some(&forged))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .expect("token endpoint answers");
                assert_eq!(response.status().as_u16(), 401, "a forged client secret is invalid_client");
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker");
    }
}

async fn forged_secrets_for_known_ids_never_reach_argon2(backend: Backend) {
    let server = TestServer::start_with(backend, PRODUCTION_ARGON2).await;
    let (_, active_id) = create_key(&server, "active", None).await;
    let (_, disabled_id) = create_key(&server, "disabled", None).await;
    let (_, expired_id) = create_key(&server, "expiring", Some(1)).await;
    let disable = pb::DisableApiKeyRequest { key_id: disabled_id.clone() };
    server.admin().await.disable_api_key(as_admin(disable, &server.admin_key)).await.expect("disable");
    let (client_id, _) = create_client(&server, "known client").await;
    // Made after the first day: still valid when the clock moves on.
    server.advance_days(2);
    let (new_key, _) = create_key(&server, "first use during the flood", None).await;
    let (new_client, new_secret) = create_client(&server, "first grant during the flood").await;

    let (before, seconds_each) = argon2_counters(&server).await;
    let started = Instant::now();
    let legitimate = async {
        // Into the flood, then the new credentials' first uses: decided, not UNAVAILABLE.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let reason = server.reason(&new_key, &["graph:read"]).await;
        let status = grant(&reqwest::Client::new(), &server, &new_client, &new_secret).await;
        (reason, status)
    };
    let ((reason, status), (), (), (), ()) = tokio::join!(
        legitimate,
        flood_keys(&server, &active_id, FORGED_KEYS, R::InvalidApiKey),
        flood_keys(&server, &disabled_id, FORGED_PER_DEAD_KEY, R::InvalidApiKey),
        flood_keys(&server, &expired_id, FORGED_PER_DEAD_KEY, R::InvalidApiKey),
        flood_client(&server, &client_id, FORGED_CLIENT_SECRETS),
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(reason, R::Allowed, "a new key's first use during the flood");
    assert_eq!(status, 200, "a new client's first grant during the flood");

    let (after, _) = argon2_counters(&server).await;
    let forged = FORGED_KEYS + 2 * FORGED_PER_DEAD_KEY + FORGED_CLIENT_SECRETS;
    let capacity = 1.0 / seconds_each.max(1e-6);
    eprintln!(
        "{forged} forged secrets in {elapsed:.1} s ({:.0}/s; argon2 does about {capacity:.0}/s here): \
         {} argon2 verifications, 2 of them the new credentials'",
        forged as f64 / elapsed,
        after - before
    );
    // The two legitimate first uses, and at most one in a thousand of the forgeries.
    assert!(after - before <= 2.0 + forged as f64 / 1000.0, "{} verifications for {forged} forgeries", after - before);
    server.stop().await;
}

/// Runs `sql` on the test's database, beside the server.
async fn execute(server: &TestServer, sql: &str) {
    let db = Database::connect(&server.db.url).await.expect("connect");
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await.expect(sql);
    let _ = db.close().await;
}

/// The stored fingerprint of `column` in `table`'s row `id_column = id`.
async fn fingerprint(server: &TestServer, table: &str, column: &str, id_column: &str, id: &str) -> Option<String> {
    let db = Database::connect(&server.db.url).await.expect("connect");
    let sql = format!("SELECT {column} AS f FROM {table} WHERE {id_column} = '{id}'");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("select");
    let value = row.expect("row").try_get::<Option<String>>("", "f").expect("text");
    let _ = db.close().await;
    value
}

async fn rows_from_before_fingerprints_get_one_on_first_use(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let (key, key_id) = create_key(&server, "from before fingerprints", None).await;
    let (client_id, secret) = create_client(&server, "client from before fingerprints").await;
    // As the migration leaves every existing row: no fingerprint.
    execute(&server, &format!("UPDATE api_keys SET secret_fingerprint = NULL WHERE key_id = '{key_id}'")).await;
    execute(&server, &format!("UPDATE api_clients SET secret_fingerprint = NULL WHERE client_id = '{client_id}'"))
        .await;
    let forge_key = || credential::generate_for("sk_live_", &key_id).full;
    let http = reqwest::Client::new();

    // Without a fingerprint only argon2 can tell: one verification for a forgery.
    let (before, _) = argon2_counters(&server).await;
    assert_eq!(server.reason(&forge_key(), &["graph:read"]).await, R::InvalidApiKey);
    assert_eq!(argon2_counters(&server).await.0 - before, 1.0);
    // The first successful verification records one, for the key and for the client ...
    assert_eq!(server.reason(&key, &["graph:read"]).await, R::Allowed);
    assert_eq!(grant(&http, &server, &client_id, &secret).await, 200);
    let key_fingerprint = fingerprint(&server, "api_keys", "secret_fingerprint", "key_id", &key_id).await;
    let client_fingerprint = fingerprint(&server, "api_clients", "secret_fingerprint", "client_id", &client_id).await;
    assert!(key_fingerprint.as_deref().is_some_and(|f| f.starts_with("v1:")), "{key_fingerprint:?}");
    assert!(client_fingerprint.is_some(), "the client's fingerprint is recorded");
    // ... after which forgeries cost nothing.
    let (before, _) = argon2_counters(&server).await;
    for _ in 0..50 {
        assert_eq!(server.reason(&forge_key(), &["graph:read"]).await, R::InvalidApiKey);
        assert_eq!(grant(&http, &server, &client_id, &client_credential::generate_secret()).await, 401);
    }
    assert_eq!(argon2_counters(&server).await.0 - before, 0.0, "forgeries after the first use reach no argon2");

    // A rotation keeps the replaced secret's fingerprint, and forgeries are still ruled out. The
    // old secret's cached verdict is judged again from the record with no argon2 (the hash it
    // was proven against is now the replaced one); only the new secret is verified.
    let rotate = pb::RotateApiKeyRequest { key_id: key_id.clone(), grace_period_days: Some(1), expires_in_days: None };
    let rotated = server.admin().await.rotate_api_key(as_admin(rotate, &server.admin_key)).await.expect("rotate");
    let rotated = rotated.into_inner().api_key;
    let (before, _) = argon2_counters(&server).await;
    assert_eq!(server.reason(&key, &["graph:read"]).await, R::Allowed, "the old secret in its grace period");
    assert_eq!(server.reason(&rotated, &["graph:read"]).await, R::Allowed);
    assert_eq!(server.reason(&forge_key(), &["graph:read"]).await, R::InvalidApiKey);
    assert_eq!(
        argon2_counters(&server).await.0 - before,
        1.0,
        "one verification for the new secret, none for the old one or the forgery"
    );
    // With a key-encryption key, fingerprints made with the built-in key still rule forgeries
    // out; the next successful verification renews them with the KEK's key. (The restart also
    // empties the verdict cache.)
    server.advance_days(2);
    let kek = [("oauth.signing_key_encryption_key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")];
    server = server.restart(&kek).await;
    let (before, _) = argon2_counters(&server).await;
    assert_eq!(grant(&http, &server, &client_id, &client_credential::generate_secret()).await, 401);
    assert_eq!(server.reason(&forge_key(), &["graph:read"]).await, R::InvalidApiKey);
    // Past its grace period the replaced secret is refused without argon2 too.
    assert_eq!(server.reason(&key, &["graph:read"]).await, R::ExpiredApiKey);
    assert_eq!(argon2_counters(&server).await.0 - before, 0.0);
    assert_eq!(grant(&http, &server, &client_id, &secret).await, 200);
    let renewed = fingerprint(&server, "api_clients", "secret_fingerprint", "client_id", &client_id).await;
    assert!(renewed.is_some() && renewed != client_fingerprint, "renewed with the KEK's key: {renewed:?}");
    server.stop().await;
}
