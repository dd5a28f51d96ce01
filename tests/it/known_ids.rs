//! Made-up ids cost nothing: a well-formed key or client id that no credential has (its checksum
//! is public, so anyone makes them up) is refused with no database read once the replica knows
//! every id, beyond a few reads a second kept for creations still being announced. Over gRPC
//! and at `/oauth/token`, on SQLite and PostgreSQL, counted by keygate's own metrics.

use keygate::proto::keygate_v1 as pb;
use keygate_core::credentials::api_key;
use keygate_core::known_ids::UNKNOWN_READS_PER_SECOND;
use pb::DecisionReason as R;

use crate::backend_tests;
use crate::metrics::sample;
use crate::support::{Backend, TestServer, as_admin};

backend_tests!(made_up_ids_are_refused_with_no_database_read);

const MADE_UP_KEYS: u64 = 300;
const MADE_UP_CLIENTS: u64 = 100;

/// (reads that found no credential, credentials refused unread, ids known).
async fn counters(server: &TestServer) -> (f64, f64, f64) {
    let text = reqwest::get(server.url("/metrics")).await.expect("scrape").text().await.expect("text");
    let read = sample(&text, "keygate_unknown_credential_reads_total").expect("reads");
    let refused = sample(&text, "keygate_unknown_credentials_refused_total").expect("refusals");
    let known = sample(&text, "keygate_known_credential_ids").expect("known ids");
    (read, refused, known)
}

async fn made_up_ids_are_refused_with_no_database_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, _) = server.create_key(&server.admin_key, "real", &["graph:read"]).await;
    let request =
        pb::CreateApiClientRequest { name: "svc".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let client = server.admin().await.create_api_client(as_admin(request, &server.admin_key)).await.expect("client");
    let client = client.into_inner();
    let (_, _, known) = counters(&server).await;
    assert_eq!(known, 3.0, "the bootstrap key, the key and the client");

    // The server's clock is a manual one: every request below falls in one second, which keeps
    // at most UNKNOWN_READS_PER_SECOND reads for ids not known.
    let prefix = &key[..key.find("_k_").expect("a key id") + 1];
    let (read_before, refused_before, _) = counters(&server).await;
    for n in 0..MADE_UP_KEYS {
        let made_up = api_key::generate_for(prefix, &format!("k_m{n:011}")).full;
        assert_eq!(server.reason(&made_up, &["graph:read"]).await, R::InvalidApiKey);
    }
    let http = reqwest::Client::new();
    for n in 0..MADE_UP_CLIENTS {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", &format!("made-up-{n:06}")),
            ("client_secret", client.client_secret.as_str()),
        ];
        let response = http.post(server.url("/oauth/token")).form(&form).send().await.expect("post");
        assert_eq!(response.status(), 401, "an unknown client is invalid_client");
    }
    let (read_after, refused_after, _) = counters(&server).await;
    let (read, refused) = (read_after - read_before, refused_after - refused_before);
    eprintln!(
        "made-up ids ({backend:?}): {} sent, {read} read from the database, {refused} refused unread",
        MADE_UP_KEYS + MADE_UP_CLIENTS
    );
    assert!(read <= UNKNOWN_READS_PER_SECOND as f64, "at most a second's reads: {read}");
    assert_eq!(read + refused, (MADE_UP_KEYS + MADE_UP_CLIENTS) as f64, "every one counted once");

    // What exists still works; a key created now is known at once.
    assert_eq!(server.reason(&key, &["graph:read"]).await, R::Allowed);
    let (fresh, _) = server.create_key(&server.admin_key, "fresh", &["graph:read"]).await;
    assert_eq!(server.reason(&fresh, &["graph:read"]).await, R::Allowed);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.as_str()),
    ];
    let response = http.post(server.url("/oauth/token")).form(&form).send().await.expect("post");
    assert_eq!(response.status(), 200, "the real client still gets tokens");
    assert_eq!(counters(&server).await.2, 4.0);
    server.stop().await;
}
