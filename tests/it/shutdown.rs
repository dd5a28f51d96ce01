//! Graceful shutdown: SIGTERM under concurrent Authorize load. Every request sent before the
//! signal completes OK (none fails mid-flight), later ones either complete or are refused, the
//! process exits 0, and the batched `last_used_at` is written on the way out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keygate::proto::keygate_v1 as pb;
use keygate_core::credentials::api_key as credential;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::process::{Served, keygate};
use crate::support::{as_admin, bearer};

/// One call: its request id, when it was sent, when it ended, and how.
struct Call {
    id: String,
    sent: Instant,
    ended: Instant,
    outcome: Result<(), (Code, String)>,
}

async fn connect(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect")
}

/// Calls Authorize with `key` in a loop until `stop`, or until a call is refused.
async fn load(
    task: usize,
    addr: String,
    key: Arc<dyn Fn() -> String + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> Vec<Call> {
    let mut client = pb::auth_service_client::AuthServiceClient::new(connect(&addr).await);
    let mut calls = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut request = tonic::Request::new(pb::AuthorizeRequest {
            cost: None,
            credentials: Some(bearer(&key())),
            required_scopes: vec!["graph:read".into()],
            organization: String::new(),
        });
        let id = format!("load-{task}-{}", calls.len());
        request.metadata_mut().insert("x-request-id", id.parse().expect("ascii"));
        let sent = Instant::now();
        let answer = client.authorize(request).await;
        let outcome = match answer {
            Ok(response) => {
                assert!(response.into_inner().decision.is_some(), "a decision");
                Ok(())
            }
            Err(status) => Err((status.code(), format!("{status:?}"))),
        };
        let refused = outcome.is_err();
        calls.push(Call { id, sent, ended: Instant::now(), outcome });
        if refused {
            break;
        }
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_accepted_requests_and_flushes_last_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bootstrap = keygate(dir.path(), &["bootstrap"], &[]);
    assert!(bootstrap.status.success(), "{}", String::from_utf8_lossy(&bootstrap.stderr));
    let admin_key = String::from_utf8(bootstrap.stdout).expect("utf-8").trim().to_owned();
    // last_used_at is written only at shutdown; one argon2 at a time, so wrong secrets queue and
    // are in flight when the signal comes.
    let env = [
        ("KEYGATE_KEYS_LAST_USED_FLUSH_SECS", "3600"),
        ("KEYGATE_HASHING_MAX_CONCURRENT", "1"),
        ("KEYGATE_SHUTDOWN_GRACE_SECS", "20"),
        // Every call the server takes up is logged with its request id.
        ("KEYGATE_LOG_LEVEL", "debug"),
    ];
    let path = dir.path().to_owned();
    let mut served = tokio::task::spawn_blocking(move || Served::start(&path, &env)).await.expect("started");
    let addr = served.addr.clone();

    let create =
        pb::CreateApiKeyRequest { name: "busy".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let mut admin = pb::admin_service_client::AdminServiceClient::new(connect(&addr).await);
    let created = admin.create_api_key(as_admin(create, &admin_key)).await.expect("create key").into_inner();
    let key_id = created.key.expect("key").key_id;
    let valid = created.api_key;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        // Half present the valid (cached) key, half a new wrong secret each time (an argon2 each).
        let key: Arc<dyn Fn() -> String + Send + Sync> = if i % 2 == 0 {
            let valid = valid.clone();
            Arc::new(move || valid.clone())
        } else {
            let key_id = key_id.clone();
            Arc::new(move || credential::generate_for("sk_live_", &key_id).full)
        };
        tasks.spawn(load(i, addr.clone(), key, stop.clone()));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let signalled = Instant::now();
    let terminated = tokio::task::spawn_blocking(move || {
        let ok = served.terminate();
        (ok, served.log_text())
    });
    let (exited_cleanly, log) = terminated.await.expect("terminate");
    let exit_after = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut calls = Vec::new();
    while let Some(done) = tasks.join_next().await {
        calls.extend(done.expect("load task"));
    }
    assert!(exited_cleanly, "keygate exits 0 on SIGTERM; its log:\n{log}");
    assert!(log.contains("shutting down"), "{log}");

    let before: Vec<&Call> = calls.iter().filter(|c| c.sent < signalled).collect();
    let failed: Vec<_> = before.iter().filter_map(|c| c.outcome.as_ref().err()).collect();
    assert!(failed.is_empty(), "requests sent before SIGTERM failed: {failed:?}");
    let spanning = before.iter().filter(|c| c.ended > signalled).count();
    assert!(spanning > 0, "some requests were in flight when the signal came (else the test proves nothing)");
    // A call sent after the signal may fail only if the server never took it up: no connection
    // (the listener was closed), or the client gave up on it before it was read (GOAWAY, or bytes
    // reaching a socket the server had already finished with). The server logs the request id
    // of every call it handles, so a failed call's id must be absent from its log.
    for call in calls.iter().filter(|c| c.sent >= signalled) {
        if let Err((_, message)) = &call.outcome {
            assert!(
                !log.contains(&format!("\"{}\"", call.id)),
                "the server took up {} and it failed: {message}",
                call.id
            );
        }
    }
    assert!(log.contains("\"load-0-0\""), "the server logs request ids at debug");
    let ok = calls.iter().filter(|c| c.outcome.is_ok()).count();
    let refused: Vec<String> = calls
        .iter()
        .filter_map(|c| c.outcome.as_ref().err())
        .map(|(code, message)| format!("{code:?}: {}", message.split("source").nth(1).unwrap_or(message)))
        .collect();
    eprintln!(
        "{} calls, {ok} ok, {} sent before SIGTERM, {spanning} in flight across it, exit after {exit_after:?}; refused: {refused:?}",
        calls.len(),
        before.len(),
    );

    // The flush at shutdown wrote last_used_at; a restarted server shows it.
    let path = dir.path().to_owned();
    let served = tokio::task::spawn_blocking(move || Served::start(&path, &[])).await.expect("restarted");
    let mut admin = pb::admin_service_client::AdminServiceClient::new(connect(&served.addr).await);
    let got = admin.get_api_key(as_admin(pb::GetApiKeyRequest { key_id }, &admin_key)).await.expect("get key");
    let view = got.into_inner();
    assert!(view.last_used_at.is_some(), "last_used_at was flushed at shutdown");
}
