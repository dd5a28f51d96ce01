//! Quota usage is durable: the built binary is killed with SIGKILL while it admits requests, and
//! the restarted process starts from what was written. At most one flush interval of usage is
//! lost, and nothing is counted twice.

use std::time::{Duration, Instant};

use keygate::proto::keygate_v1 as pb;
use pb::admin_service_client::AdminServiceClient;
use pb::auth_service_client::AuthServiceClient;
use tonic::transport::Channel;

use crate::support::process::{Served, keygate};
use crate::support::{as_admin, bearer};

const FLUSH_MS: u64 = 200;
const MAX_QUOTA: u64 = 1_000_000;

async fn auth_client(served: &Served) -> AuthServiceClient<Channel> {
    let channel =
        Channel::from_shared(format!("http://{}", served.addr)).expect("uri").connect().await.expect("connect");
    AuthServiceClient::new(channel)
}

async fn remaining(client: &mut AuthServiceClient<Channel>, key: &str) -> u64 {
    let request = pb::GetQuotaRequest { credentials: Some(bearer(key)) };
    client.get_quota(request).await.expect("get quota").into_inner().quota
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_at_most_one_flush_interval_of_usage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [
        ("KEYGATE_LIMITS_FLUSH_INTERVAL_MS", "200"),
        ("KEYGATE_HASHING_MEMORY_KIB", "1024"),
        ("KEYGATE_HASHING_ITERATIONS", "1"),
    ];
    let bootstrapped = keygate(dir.path(), &["bootstrap"], &env);
    assert!(bootstrapped.status.success(), "{}", String::from_utf8_lossy(&bootstrapped.stderr));
    let admin = String::from_utf8(bootstrapped.stdout).expect("utf-8").trim().to_owned();

    let mut served = Served::start(dir.path(), &env);
    let channel =
        Channel::from_shared(format!("http://{}", served.addr)).expect("uri").connect().await.expect("connect");
    let create = pb::CreateApiKeyRequest {
        name: "metered".into(),
        scopes: vec!["investigations:read".into()],
        limits: Some(pb::Limits { max_quota: Some(MAX_QUOTA), ..Default::default() }),
        ..Default::default()
    };
    let key = AdminServiceClient::new(channel).create_api_key(as_admin(create, &admin)).await.expect("create");
    let key = key.into_inner().api_key;

    // Admit requests one after another for a while, noting when each was answered.
    let mut client = auth_client(&served).await;
    let mut answered = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        let request = pb::AuthorizeRequest {
            credentials: Some(bearer(&key)),
            required_scopes: vec!["investigations:read".into()],
            ..Default::default()
        };
        let response = client.authorize(request).await.expect("authorize").into_inner();
        assert!(response.decision.is_some_and(|d| d.allowed));
        answered.push(Instant::now());
    }
    served.child.kill().expect("SIGKILL");
    let killed = Instant::now();
    served.child.wait().expect("reaped");
    let sent = answered.len() as u64;

    let served = Served::start(dir.path(), &env);
    let mut client = auth_client(&served).await;
    let recorded = MAX_QUOTA - remaining(&mut client, &key).await;
    let lost = sent - recorded.min(sent);
    let in_last = |window: Duration| answered.iter().filter(|at| killed.duration_since(**at) <= window).count() as u64;
    println!(
        "quota crash test: {sent} admitted in 2.5 s, {recorded} recorded after kill -9, {lost} lost; \
         {} were answered in the last flush interval ({FLUSH_MS} ms)",
        in_last(Duration::from_millis(FLUSH_MS))
    );
    assert!(recorded <= sent, "counted twice: {recorded} recorded of {sent} admitted");
    assert!(sent > 20, "too few requests to say anything: {sent}");
    // One flush interval, plus the time a flush itself takes on a busy machine.
    let bound = in_last(Duration::from_millis(FLUSH_MS + 300));
    assert!(lost <= bound, "lost {lost} of {sent}; at most {bound} were answered in the last flush interval");

    // The restarted process counts on from what was written.
    for _ in 0..3 {
        let request = pb::AuthorizeRequest {
            credentials: Some(bearer(&key)),
            required_scopes: vec!["investigations:read".into()],
            cost: Some(10),
            ..Default::default()
        };
        client.authorize(request).await.expect("authorize");
    }
    assert_eq!(MAX_QUOTA - remaining(&mut client, &key).await, recorded + 30);
}
