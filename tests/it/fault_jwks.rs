//! An outside issuer's JWKS endpoint failing after its keys were fetched once: down (HTTP 503),
//! serving garbage, or slow (answering only after 30 s). The last good keys are kept and decide;
//! a failing endpoint is asked at most once per refresh however many tokens come (an unknown
//! `kid` at most once per `min_refetch_secs`); a fetch is bounded (keygate's 5 s fetch
//! timeout); and no decision waits for a refresh that another request is already making, nor
//! longer than the caller's deadline.
//!
//! The test server's clock is manual: a refresh falls due by advancing it, not by waiting.
//! `issuers.rs` holds the healthy cases (rotation, the refetch interval, never-fetched keys).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use josekit::jwk::Jwk;
use josekit::jws::RS256;
use keygate::proto::keygate_v1 as pb;
use serde_json::json;

use crate::issuers::{IN_ACME, start, user_token};
use crate::support::load::{self, Outcome};
use crate::support::start_time;

/// What the endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Good,
    Down,
    Garbage,
    /// Answers with the good document after this long.
    Slow(Duration),
}

#[derive(Clone)]
struct Endpoint {
    mode: Arc<Mutex<Mode>>,
    public: Arc<serde_json::Value>,
    fetches: Arc<AtomicUsize>,
}

async fn jwks(State(endpoint): State<Endpoint>) -> Response {
    endpoint.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = *endpoint.mode.lock().expect("mode");
    match mode {
        Mode::Good => axum::Json(json!({ "keys": [*endpoint.public] })).into_response(),
        Mode::Down => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response(),
        Mode::Garbage => {
            ([("content-type", "application/json")], "{\"keys\": [{\"kty\": \"RSA\", \"n\": 1").into_response()
        }
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            axum::Json(json!({ "keys": [*endpoint.public] })).into_response()
        }
    }
}

/// Numbers the tokens, so that each is new to the verdict cache and must be verified.
static TOKENS: AtomicUsize = AtomicUsize::new(0);

fn fresh_token(key: &Jwk) -> String {
    let n = TOKENS.fetch_add(1, Ordering::SeqCst);
    user_token(key, json!({ "sub": format!("user-{n}"), "exp": start_time().timestamp() + 86_400 }))
}

/// An issuer's signing key, its JWKS endpoint (publishing it), and keygate trusting that issuer
/// with a 10 s refresh and a 1 s minimum between fetches.
async fn served_with_a_jwks_endpoint() -> (Jwk, Endpoint, crate::support::TestServer) {
    let pair = RS256.generate_key_pair(2048).expect("keypair");
    let mut key = pair.to_jwk_private_key();
    key.set_key_id("k1");
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("k1");
    let endpoint = Endpoint {
        mode: Arc::new(Mutex::new(Mode::Good)),
        public: Arc::new(serde_json::to_value(public.as_ref()).expect("json")),
        fetches: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
    let app = Router::new().route("/jwks", get(jwks)).with_state(endpoint.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut settings = IN_ACME.to_vec();
    settings.extend([("oauth.issuers.idp.refresh_secs", "10"), ("oauth.issuers.idp.min_refetch_secs", "1")]);
    let server = start(&url, &settings).await;
    (key, endpoint, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_jwks_endpoint_keeps_the_last_good_keys_and_stalls_no_decision() {
    let (key, endpoint, server) = served_with_a_jwks_endpoint().await;
    let mut auth = server.auth().await;
    assert_eq!(load::call(&mut auth, &fresh_token(&key), "incidents:read").await, Outcome::Allowed);
    assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 1);

    // An unknown kid while the endpoint is down: refused (the key is not published), and a
    // flood of them asks the endpoint once per min_refetch_secs at most.
    let pair = RS256.generate_key_pair(2048).expect("keypair");
    let mut rogue = pair.to_jwk_private_key();
    rogue.set_key_id("rogue");

    for mode in [Mode::Down, Mode::Garbage, Mode::Slow(Duration::from_secs(30))] {
        *endpoint.mode.lock().expect("mode") = mode;
        let fetches_before = endpoint.fetches.load(Ordering::SeqCst);
        // The keys fall due for a refresh.
        server.clock.advance(chrono::Duration::seconds(11));
        // Concurrent new tokens: one of them makes the refresh, none waits for it long.
        let started = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (mut auth, token) = (server.auth().await, fresh_token(&key));
            calls.spawn(async move {
                let sent = Instant::now();
                let outcome = load::call(&mut auth, &token, "incidents:read").await;
                (outcome, sent.elapsed())
            });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = calls.join_next().await {
            outcomes.push(joined.expect("call"));
        }
        let burst = started.elapsed();
        // Then a steady stream of new tokens and of unknown kids.
        let mut latencies = Vec::new();
        for _ in 0..20 {
            let sent = Instant::now();
            assert_eq!(load::call(&mut auth, &fresh_token(&key), "incidents:read").await, Outcome::Allowed, "{mode:?}");
            latencies.push(sent.elapsed());
            let unknown = load::call(&mut auth, &fresh_token(&rogue), "incidents:read").await;
            assert_eq!(unknown, Outcome::Denied(pb::DecisionReason::InvalidToken), "{mode:?}");
        }
        let fetches = endpoint.fetches.load(Ordering::SeqCst) - fetches_before;
        let slowest = outcomes.iter().map(|(_, took)| *took).max().unwrap_or_default();
        let waited = outcomes.iter().filter(|(_, took)| *took > Duration::from_secs(1)).count();
        println!(
            "jwks {mode:?}: 8 concurrent new tokens at the refresh: [{}] in {burst:?}, slowest {slowest:?}, \
             {waited} waited over 1 s; then 20 new tokens (slowest {:?}) and 20 unknown kids: {fetches} fetch(es)",
            outcomes.iter().map(|(o, _)| o.to_string()).collect::<Vec<_>>().join(", "),
            latencies.iter().max().unwrap_or(&Duration::ZERO),
        );
        // The last good keys decide. The one request that makes the refresh may instead meet
        // its own deadline (5 s, as long as the fetch timeout) against a slow endpoint.
        let deadline = |o: &Outcome| {
            [tonic::Code::Cancelled, tonic::Code::DeadlineExceeded].iter().any(|c| *o == Outcome::Error(*c as i32))
        };
        for (outcome, took) in &outcomes {
            let refresher = matches!(mode, Mode::Slow(_)) && deadline(outcome) && *took >= Duration::from_secs(4);
            assert!(*outcome == Outcome::Allowed || refresher, "{mode:?}: {outcome} after {took:?}");
        }
        // One fetch for the refresh; the unknown kids within the same second of the manual clock
        // (min_refetch_secs = 1) add none.
        assert_eq!(fetches, 1, "{mode:?}: a failing endpoint is asked once per refresh");
        // Down and garbage are answered at once. A slow endpoint holds the one request that
        // refreshes for at most the fetch timeout (5 s); no other request waits for it.
        let bound = if matches!(mode, Mode::Slow(_)) { Duration::from_secs(8) } else { Duration::from_secs(2) };
        assert!(slowest < bound, "{mode:?}: a decision waited {slowest:?}");
        assert!(waited <= 1, "{mode:?}: {waited} requests waited on one refresh");
    }

    // Back to good: the next refresh takes the keys again.
    *endpoint.mode.lock().expect("mode") = Mode::Good;
    server.clock.advance(chrono::Duration::seconds(11));
    assert_eq!(load::call(&mut auth, &fresh_token(&key), "incidents:read").await, Outcome::Allowed);
    server.stop().await;
}

/// A caller's deadline bounds the wait for a slow refresh: the caller that happens to make it
/// gets an answer (or its deadline) within its deadline, not the fetch timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_jwks_refresh_waits_no_longer_than_the_callers_deadline() {
    let (key, endpoint, server) = served_with_a_jwks_endpoint().await;
    let mut auth = server.auth().await;
    assert_eq!(load::call(&mut auth, &fresh_token(&key), "incidents:read").await, Outcome::Allowed);

    *endpoint.mode.lock().expect("mode") = Mode::Slow(Duration::from_secs(30));
    server.clock.advance(chrono::Duration::seconds(11));
    let mut request = tonic::Request::new(pb::AuthorizeRequest {
        credentials: Some(crate::support::bearer(&fresh_token(&key))),
        required_scopes: vec!["incidents:read".into()],
        ..Default::default()
    });
    let deadline = Duration::from_millis(700);
    request.set_timeout(deadline);
    let sent = Instant::now();
    let answer = auth.authorize(request).await;
    let took = sent.elapsed();
    println!(
        "jwks slow: the caller that met the refresh (deadline {deadline:?}) got {} after {took:?}",
        match &answer {
            Ok(response) => format!("{:?}", response.get_ref().decision.as_ref().map(|d| d.reason())),
            Err(status) => format!("{:?} {:?}", status.code(), status.message()),
        }
    );
    assert!(took < deadline + Duration::from_millis(500), "waited {took:?} with a deadline of {deadline:?}");
    // Whatever that caller got, the keys are still there for the next one.
    let sent = Instant::now();
    assert_eq!(load::call(&mut auth, &fresh_token(&key), "incidents:read").await, Outcome::Allowed);
    assert!(sent.elapsed() < Duration::from_secs(2), "the next decision waited {:?}", sent.elapsed());
    server.stop().await;
}
