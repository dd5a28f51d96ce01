//! One replica of three killed with SIGKILL while all three admit a metered key and the victim
//! is in the middle of a run of admin changes. Every change it acknowledged is in the database
//! with its audit entry, the one in flight is there with its audit entry or not at all, the
//! survivors know the victim's keys, and the quota usage lost is at most what the victim
//! admitted in its last flush interval (none counted twice).
//!
//! `quota_crash.rs` holds the single-process view (kill -9 and restart on SQLite).

use std::time::{Duration, Instant};

use keygate::proto::keygate_v1 as pb;
use pb::admin_service_client::AdminServiceClient;
use sea_orm::{ConnectionTrait, Database, Statement};
use tonic::transport::Channel;

use crate::support::load::{self, Load, Outcome};
use crate::support::process::{Served, bootstrap};
use crate::support::{Backend, TestDb, as_admin};

const SCOPE: &str = "graph:read";
const FLUSH_MS: u64 = 200;

async fn channel(replica: &Served) -> Channel {
    Channel::from_shared(format!("http://{}", replica.addr)).expect("uri").connect().await.expect("connect")
}

/// One number from `sql`.
async fn number(db: &sea_orm::DatabaseConnection, sql: String) -> i64 {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("query");
    row.expect("a row").try_get_by_index::<i64>(0).expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_of_three_killed_during_load_and_admin_changes() {
    let db = TestDb::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let flush = FLUSH_MS.to_string();
    let env = [
        ("KEYGATE_DATABASE_URL", db.url.as_str()),
        ("KEYGATE_HASHING_MEMORY_KIB", "1024"),
        ("KEYGATE_HASHING_ITERATIONS", "1"),
        ("KEYGATE_OAUTH_ISSUER", "http://keygate.test"),
        ("KEYGATE_LIMITS_FLUSH_INTERVAL_MS", flush.as_str()),
    ];
    let admin_key = bootstrap(dir.path(), &env);
    let mut replicas: Vec<Served> = (0..3).map(|_| Served::start(dir.path(), &env)).collect();
    for replica in &replicas {
        let started = Instant::now();
        while !replica.log_text().contains("listening for key changes") {
            assert!(started.elapsed() < Duration::from_secs(10), "a replica never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut admin = AdminServiceClient::new(channel(&replicas[0]).await);
    let create = pb::CreateApiKeyRequest {
        name: "metered".into(),
        scopes: vec![SCOPE.into()],
        limits: Some(pb::Limits { max_quota: Some(1_000_000), ..Default::default() }),
        ..Default::default()
    };
    let metered = admin.create_api_key(as_admin(create, &admin_key)).await.expect("create").into_inner();
    let metered_id = metered.key.expect("view").key_id;
    let mut channels = Vec::new();
    for replica in &replicas {
        channels.push(channel(replica).await);
    }
    let loads: Vec<Load> = channels
        .iter()
        .map(|c| Load::start(c, &[("metered", &metered.api_key)], SCOPE, Duration::from_millis(2)))
        .collect();

    // The victim (replica 2) makes one change after another until it dies.
    let victim = channels[2].clone();
    let admin_key_for_changes = admin_key.clone();
    let changes = tokio::spawn(async move {
        let mut admin = AdminServiceClient::new(victim);
        let mut acknowledged = Vec::new();
        for i in 0.. {
            let request = pb::CreateApiKeyRequest {
                name: format!("change-{i}"),
                scopes: vec![SCOPE.into()],
                ..Default::default()
            };
            match admin.create_api_key(as_admin(request, &admin_key_for_changes)).await {
                Ok(created) => {
                    let created = created.into_inner();
                    acknowledged.push((i, created.key.expect("view").key_id, created.api_key));
                }
                Err(_) => return (acknowledged, i),
            }
        }
        unreachable!()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    replicas[2].child.kill().expect("SIGKILL");
    let killed = Instant::now();
    replicas[2].child.wait().expect("reaped");
    let (acknowledged, attempted) = changes.await.expect("changes");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut runs = Vec::new();
    for load in loads {
        runs.push(load.stop().await.remove("metered").expect("samples"));
    }

    // The survivors know the victim's last acknowledged key, and go on deciding.
    let (_, _, last_key) = acknowledged.last().expect("some changes were made");
    for (i, samples) in runs.iter().enumerate().take(2) {
        let after = load::tally(samples, killed, Instant::now() + Duration::from_secs(1));
        assert!(after.keys().all(|o| *o == Outcome::Allowed), "survivor {i} after the kill: {}", load::show(&after));
        let mut survivor = pb::auth_service_client::AuthServiceClient::new(channels[i].clone());
        assert_eq!(load::call(&mut survivor, last_key, SCOPE).await, Outcome::Allowed, "survivor {i} knows it");
    }
    for replica in replicas.iter_mut().take(2) {
        assert!(replica.terminate(), "a survivor stops cleanly (flushing its usage)");
    }

    let sql = Database::connect(&db.url).await.expect("connect");
    let mut checked = 0;
    for i in 0..=attempted {
        let name = format!("change-{i}");
        let keys = number(&sql, format!("SELECT count(*) FROM api_keys WHERE name = '{name}'")).await;
        let key_id = acknowledged.iter().find(|(n, _, _)| *n == i).map(|(_, id, _)| id.clone());
        let audits = match &key_id {
            Some(id) => number(&sql, format!("SELECT count(*) FROM audit_events WHERE target LIKE '%{id}%'")).await,
            None => {
                let ids = format!("SELECT key_id FROM api_keys WHERE name = '{name}'");
                number(&sql, format!("SELECT count(*) FROM audit_events WHERE target IN ({ids})")).await
            }
        };
        if key_id.is_some() {
            assert_eq!((keys, audits), (1, 1), "{name} was acknowledged: the key and its audit entry are there");
            checked += 1;
        } else {
            // In flight when the process died: all or nothing.
            assert_eq!(keys, audits, "{name}: {keys} key(s) and {audits} audit entries");
            assert!(keys <= 1);
        }
    }
    let in_flight_landed =
        number(&sql, format!("SELECT count(*) FROM api_keys WHERE name = 'change-{attempted}'")).await;
    let last = acknowledged.last().map(|(n, _, _)| *n);
    assert_eq!(last, Some(attempted - 1), "changes are made one after another");

    // Quota: what every process wrote, against what was admitted.
    let recorded = number(
        &sql,
        format!("SELECT COALESCE(sum(used), 0)::bigint FROM quota_usage WHERE subject LIKE '%{metered_id}%'"),
    )
    .await;
    let recorded = u64::try_from(recorded).expect("positive");
    let admitted: Vec<u64> =
        runs.iter().map(|s| s.iter().filter(|s| s.outcome == Outcome::Allowed).count() as u64).collect();
    let total: u64 = admitted.iter().sum();
    let victim_last = runs[2]
        .iter()
        .filter(|s| {
            s.outcome == Outcome::Allowed && killed.duration_since(s.at) <= Duration::from_millis(FLUSH_MS + 300)
        })
        .count() as u64;
    let lost = total - recorded.min(total);
    println!(
        "replica killed: admitted {admitted:?} = {total}, recorded {recorded}, lost {lost} (the victim admitted \
         {victim_last} in its last flush interval + 300 ms); {} changes acknowledged by the victim, all with their \
         audit entries; the one in flight {}",
        acknowledged.len(),
        if in_flight_landed == 1 { "landed whole" } else { "left nothing" },
    );
    assert!(checked > 3, "too few changes to say anything: {checked}");
    assert!(recorded <= total, "counted twice: {recorded} recorded of {total} admitted");
    assert!(lost <= victim_last, "lost {lost}, more than the victim's last flush interval ({victim_last})");
    let _ = sql.close().await;
    drop(replicas);
    db.drop_database().await;
}
