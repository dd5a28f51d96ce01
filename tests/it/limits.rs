//! Rate limits, monthly quotas and concurrency slots through the real server, with its manual
//! clock: `Authorize`, `GetQuota`, `AcquireSlot` and `ReleaseSlot` over gRPC. Every body runs on
//! SQLite and on PostgreSQL with the in-memory counters, and on PostgreSQL with the counters in
//! Redis (`TEST_REDIS_URL`, failing closed, so that a Redis that does not answer fails the test
//! rather than being replaced by local counting).

use chrono::{Duration, TimeZone, Utc};
use keygate::proto::keygate_v1 as pb;
use pb::DecisionReason;
use tonic::Code;

use crate::support::{Backend, TestServer, as_admin, bearer, expect_code, redis_url, violated_fields};

/// Where a test's server keeps its counters.
#[derive(Clone, Copy)]
enum Counters {
    Memory,
    Redis,
}

/// A test's database and counters.
#[derive(Clone, Copy)]
struct Setup {
    backend: Backend,
    counters: Counters,
}

impl Setup {
    /// The counters' settings with `extra`.
    fn settings<'a>(&self, redis: &'a str, extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
        let mut settings = extra.to_vec();
        if let Counters::Redis = self.counters {
            settings.extend([
                ("limits.backend", "redis"),
                ("limits.redis_url", redis),
                ("limits.redis_failure", "closed"),
            ]);
        }
        settings
    }

    async fn start(self) -> TestServer {
        self.start_with(&[]).await
    }

    async fn start_with(self, extra: &[(&'static str, &str)]) -> TestServer {
        let redis = redis_url();
        TestServer::start_with(self.backend, &self.settings(&redis, extra)).await
    }

    async fn restart(self, server: TestServer) -> TestServer {
        let redis = redis_url();
        server.restart(&self.settings(&redis, &[])).await
    }
}

/// Runs each body with in-memory counters on SQLite and PostgreSQL, and with Redis counters on
/// PostgreSQL (the production pair).
macro_rules! limit_tests {
    ($($name:ident),* $(,)?) => {
        mod memory_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Setup { backend: super::Backend::Sqlite, counters: super::Counters::Memory }).await;
                }
            )*
        }
        mod memory_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Setup { backend: super::Backend::Postgres, counters: super::Counters::Memory }).await;
                }
            )*
        }
        mod redis_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Setup { backend: super::Backend::Postgres, counters: super::Counters::Redis }).await;
                }
            )*
        }
    };
}

limit_tests!(
    rate_limits_bursts_refuse_with_retry_after_and_refill,
    quotas_count_cost_refuse_and_refresh_each_month,
    quota_usage_survives_a_restart,
    slots_are_limited_released_and_leased,
    limits_are_charged_all_or_nothing,
    limit_changes_take_effect_at_once,
    client_tokens_take_their_clients_limits,
);

/// Creates a key with `limits` and returns the full key.
async fn key_with(server: &TestServer, limits: pb::Limits) -> String {
    let request = pb::CreateApiKeyRequest {
        name: "limited".into(),
        scopes: vec!["investigations:read".into()],
        limits: Some(limits),
        ..Default::default()
    };
    let created = server.admin().await.create_api_key(as_admin(request, &server.admin_key)).await.expect("create");
    created.into_inner().api_key
}

async fn authorize_costing(server: &TestServer, key: &str, cost: Option<u32>) -> pb::AuthorizeResponse {
    let request = pb::AuthorizeRequest {
        credentials: Some(bearer(key)),
        required_scopes: vec!["investigations:read".into()],
        cost,
        ..Default::default()
    };
    server.auth().await.authorize(request).await.expect("authorize answers").into_inner()
}

async fn quota_of(server: &TestServer, key: &str) -> pb::GetQuotaResponse {
    let request = pb::GetQuotaRequest { credentials: Some(bearer(key)) };
    server.auth().await.get_quota(request).await.expect("get quota").into_inner()
}

async fn acquire(server: &TestServer, key: &str, lease_seconds: Option<u32>) -> pb::AcquireSlotResponse {
    let request = pb::AcquireSlotRequest {
        credentials: Some(bearer(key)),
        required_scopes: vec!["investigations:read".into()],
        lease_seconds,
        ..Default::default()
    };
    server.auth().await.acquire_slot(request).await.expect("acquire answers").into_inner()
}

async fn release(server: &TestServer, key: &str, slot_id: &str) -> bool {
    let request = pb::ReleaseSlotRequest { credentials: Some(bearer(key)), slot_id: slot_id.to_owned() };
    server.auth().await.release_slot(request).await.expect("release answers").into_inner().released
}

fn decision(response: &pb::AuthorizeResponse) -> &pb::Decision {
    response.decision.as_ref().expect("decision")
}

async fn rate_limits_bursts_refuse_with_retry_after_and_refill(setup: Setup) {
    let server = setup.start().await;
    let key = key_with(
        &server,
        pb::Limits { rate_limit_per_minute: Some(60), rate_limit_burst: Some(3), ..Default::default() },
    )
    .await;
    for remaining in [2, 1, 0] {
        let response = authorize_costing(&server, &key, None).await;
        assert!(decision(&response).allowed, "{response:?}");
        let rate = response.rate_limit.expect("rate limit state");
        assert_eq!((rate.limit, rate.remaining), (60, remaining));
    }
    let refused = authorize_costing(&server, &key, None).await;
    let refusal = decision(&refused);
    assert_eq!(refusal.reason(), DecisionReason::RateLimited);
    assert_eq!(refusal.http_status, 429);
    assert_eq!(refusal.error_code, "rate_limited");
    assert_eq!(refusal.retry_after_seconds, 1);
    assert_eq!(refused.rate_limit.map(|r| r.remaining), Some(0));
    // The principal is still named: the credential was fine.
    assert!(refused.principal.is_some());

    server.clock.advance(Duration::seconds(1));
    assert!(decision(&authorize_costing(&server, &key, None).await).allowed);
    assert_eq!(decision(&authorize_costing(&server, &key, None).await).reason(), DecisionReason::RateLimited);
    // A quiet minute refills the burst, and no more.
    server.clock.advance(Duration::minutes(1));
    let allowed = (0..5).map(|_| authorize_costing(&server, &key, None));
    let mut admitted = 0;
    for response in allowed {
        admitted += usize::from(decision(&response.await).allowed);
    }
    assert_eq!(admitted, 3);
    server.stop().await;
}

async fn quotas_count_cost_refuse_and_refresh_each_month(setup: Setup) {
    let server = setup.start().await;
    let key = key_with(&server, pb::Limits { max_quota: Some(10), ..Default::default() }).await;
    let april = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).single().expect("time");

    let first = authorize_costing(&server, &key, Some(4)).await;
    assert!(decision(&first).allowed);
    let quota = first.quota.expect("quota state");
    assert_eq!((quota.quota, quota.max_quota), (6, 10));
    assert_eq!(quota.next_window_refresh.map(|t| t.seconds), Some(april.timestamp()));
    // Unset cost is 1; 0 is free.
    assert_eq!(authorize_costing(&server, &key, None).await.quota.map(|q| q.quota), Some(5));
    assert_eq!(authorize_costing(&server, &key, Some(0)).await.quota.map(|q| q.quota), Some(5));
    assert_eq!(authorize_costing(&server, &key, Some(4)).await.quota.map(|q| q.quota), Some(1));

    let exhausted = authorize_costing(&server, &key, Some(2)).await;
    let refusal = decision(&exhausted);
    assert_eq!(refusal.reason(), DecisionReason::QuotaExceeded);
    assert_eq!(refusal.http_status, 429);
    let until_april = u32::try_from((april - crate::support::start_time()).num_seconds()).expect("fits");
    assert_eq!(refusal.retry_after_seconds, until_april);
    // More than the whole quota can never succeed: 403, not 429.
    let too_big = authorize_costing(&server, &key, Some(11)).await;
    assert_eq!(decision(&too_big).reason(), DecisionReason::InsufficientMaxQuota);
    assert_eq!(decision(&too_big).http_status, 403);

    // GetQuota tells the same, and costs nothing.
    for _ in 0..2 {
        let quota = quota_of(&server, &key).await;
        assert_eq!((quota.quota, quota.max_quota, quota.unlimited), (1, 10, false));
        assert_eq!(quota.next_window_refresh.map(|t| t.seconds), Some(april.timestamp()));
    }
    assert!(decision(&authorize_costing(&server, &key, Some(1)).await).allowed);
    assert_eq!(quota_of(&server, &key).await.quota, 0);

    // One second before April it is still spent; in April it is whole again.
    server.clock.set(april - Duration::seconds(1));
    assert_eq!(decision(&authorize_costing(&server, &key, Some(1)).await).reason(), DecisionReason::QuotaExceeded);
    server.clock.set(april);
    assert_eq!(quota_of(&server, &key).await.quota, 10);
    assert_eq!(authorize_costing(&server, &key, Some(3)).await.quota.map(|q| q.quota), Some(7));

    // A key without a quota says so; a bad credential is UNAUTHENTICATED.
    let (unlimited, _) = server.create_key(&server.admin_key, "plain", &["investigations:read"]).await;
    let quota = quota_of(&server, &unlimited).await;
    assert!(quota.unlimited);
    let bad = pb::GetQuotaRequest { credentials: Some(bearer("sk_live_nope")) };
    expect_code(server.auth().await.get_quota(bad).await, Code::Unauthenticated);
    server.stop().await;
}

async fn quota_usage_survives_a_restart(setup: Setup) {
    let server = setup.start().await;
    let key = key_with(&server, pb::Limits { max_quota: Some(100), ..Default::default() }).await;
    for _ in 0..7 {
        assert!(decision(&authorize_costing(&server, &key, Some(3)).await).allowed);
    }
    // A clean stop writes the tally; the restarted process starts from it.
    let server = setup.restart(server).await;
    assert_eq!(quota_of(&server, &key).await.quota, 79);
    assert_eq!(authorize_costing(&server, &key, Some(9)).await.quota.map(|q| q.quota), Some(70));
    let server = setup.restart(server).await;
    assert_eq!(quota_of(&server, &key).await.quota, 70);
    server.stop().await;
}

async fn slots_are_limited_released_and_leased(setup: Setup) {
    let server = setup.start().await;
    let key = key_with(&server, pb::Limits { max_concurrency: Some(2), ..Default::default() }).await;
    let first = acquire(&server, &key, Some(60)).await;
    assert!(first.decision.as_ref().expect("decision").allowed, "{first:?}");
    assert!(first.slot_id.starts_with("slot_"));
    let lease_end = crate::support::start_time() + Duration::seconds(60);
    assert_eq!(first.lease_expires_at.map(|t| t.seconds), Some(lease_end.timestamp()));
    let second = acquire(&server, &key, Some(600)).await;
    assert!(second.decision.as_ref().expect("decision").allowed);

    let full = acquire(&server, &key, Some(60)).await;
    let refusal = full.decision.expect("decision");
    assert_eq!(refusal.reason(), DecisionReason::ConcurrencyLimit);
    assert_eq!(refusal.http_status, 429);
    // The first lease ends soonest: in 60 s.
    assert_eq!(refusal.retry_after_seconds, 60);
    assert!(full.slot_id.is_empty());

    // Another key cannot release this key's slot; its holder can, once.
    let (other, _) = server.create_key(&server.admin_key, "other", &["investigations:read"]).await;
    assert!(!release(&server, &other, &first.slot_id).await);
    assert!(release(&server, &key, &first.slot_id).await);
    assert!(!release(&server, &key, &first.slot_id).await);
    let third = acquire(&server, &key, None).await;
    assert!(third.decision.as_ref().expect("decision").allowed);
    assert_eq!(
        acquire(&server, &key, None).await.decision.expect("decision").reason(),
        DecisionReason::ConcurrencyLimit
    );
    // The default lease is 300 s: a holder that never releases loses the slot when it ends.
    server.clock.advance(Duration::seconds(300));
    assert!(acquire(&server, &key, None).await.decision.expect("decision").allowed);

    // Bad input names the field.
    let request = pb::AcquireSlotRequest {
        credentials: Some(bearer(&key)),
        required_scopes: vec!["investigations:read".into()],
        lease_seconds: Some(0),
        ..Default::default()
    };
    let status = expect_code(server.auth().await.acquire_slot(request).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["lease_seconds".to_owned()]);
    let request = pb::ReleaseSlotRequest { credentials: Some(bearer(&key)), slot_id: String::new() };
    let status = expect_code(server.auth().await.release_slot(request).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["slot_id".to_owned()]);
    server.stop().await;
}

async fn limits_are_charged_all_or_nothing(setup: Setup) {
    let server = setup.start().await;
    let limits = pb::Limits {
        rate_limit_per_minute: Some(60),
        rate_limit_burst: Some(2),
        max_quota: Some(100),
        max_concurrency: Some(1),
    };
    let key = key_with(&server, limits).await;
    assert!(acquire(&server, &key, None).await.decision.expect("decision").allowed);
    // The slot is full: this refusal charges neither the rate limit nor the quota.
    assert_eq!(
        acquire(&server, &key, None).await.decision.expect("decision").reason(),
        DecisionReason::ConcurrencyLimit
    );
    assert_eq!(quota_of(&server, &key).await.quota, 99);
    let last = authorize_costing(&server, &key, None).await;
    assert!(decision(&last).allowed);
    assert_eq!(last.rate_limit.map(|r| r.remaining), Some(0));
    // The rate limit refuses: the quota is not charged.
    assert_eq!(decision(&authorize_costing(&server, &key, Some(5)).await).reason(), DecisionReason::RateLimited);
    assert_eq!(quota_of(&server, &key).await.quota, 98);
    server.stop().await;
}

async fn limit_changes_take_effect_at_once(setup: Setup) {
    let server = setup.start().await;
    let (key, key_id) = server.create_key(&server.admin_key, "changing", &["investigations:read"]).await;
    for _ in 0..5 {
        assert!(decision(&authorize_costing(&server, &key, None).await).allowed);
    }
    let update = pb::UpdateApiKeyRequest {
        key_id: key_id.clone(),
        limits: Some(pb::Limits { rate_limit_per_minute: Some(1), rate_limit_burst: Some(1), ..Default::default() }),
        ..Default::default()
    };
    let updated = server.admin().await.update_api_key(as_admin(update, &server.admin_key)).await.expect("update");
    let limits = updated.into_inner().limits.expect("limits shown");
    assert_eq!((limits.rate_limit_per_minute, limits.rate_limit_burst, limits.max_quota), (Some(1), Some(1), None));
    assert!(decision(&authorize_costing(&server, &key, None).await).allowed);
    assert_eq!(decision(&authorize_costing(&server, &key, None).await).reason(), DecisionReason::RateLimited);

    // Reset to the configured default (keys: no rate limit): shown unset, and admitted again.
    let reset = pb::UpdateApiKeyRequest {
        key_id: key_id.clone(),
        limits: Some(pb::Limits { max_quota: Some(1000), ..Default::default() }),
        reset_limits: vec!["rate_limit_per_minute".into(), "rate_limit_burst".into()],
        ..Default::default()
    };
    let updated = server.admin().await.update_api_key(as_admin(reset, &server.admin_key)).await.expect("reset");
    let limits = updated.into_inner().limits.expect("limits shown");
    assert_eq!((limits.rate_limit_per_minute, limits.rate_limit_burst, limits.max_quota), (None, None, Some(1000)));
    for _ in 0..5 {
        assert!(decision(&authorize_costing(&server, &key, None).await).allowed, "the rate limit is gone");
    }
    // An unknown name, a repeat, and a limit both set and reset: each named.
    let bad = pb::UpdateApiKeyRequest {
        key_id: key_id.clone(),
        limits: Some(pb::Limits { max_quota: Some(5), ..Default::default() }),
        reset_limits: vec!["max_quota".into(), "speed".into(), "max_concurrency".into(), "max_concurrency".into()],
        ..Default::default()
    };
    let status =
        expect_code(server.admin().await.update_api_key(as_admin(bad, &server.admin_key)).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["reset_limits[0]", "reset_limits[1]", "reset_limits[3]"]);
    assert_eq!(quota_of(&server, &key).await.max_quota, 1000, "a refused update changes nothing");

    // Out of range: INVALID_ARGUMENT naming every field.
    let request = pb::CreateApiKeyRequest {
        name: "too much".into(),
        scopes: vec!["investigations:read".into()],
        limits: Some(pb::Limits {
            rate_limit_per_minute: Some(u32::MAX),
            max_concurrency: Some(1_000_000),
            ..Default::default()
        }),
        ..Default::default()
    };
    let status = expect_code(
        server.admin().await.create_api_key(as_admin(request, &server.admin_key)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["rate_limit_per_minute".to_owned(), "max_concurrency".to_owned()]);
    server.stop().await;
}

async fn client_tokens_take_their_clients_limits(setup: Setup) {
    // Users and clients get the configured defaults: clients 2 a minute here.
    let server = setup.start_with(&[("limits.clients.rate_per_minute", "2")]).await;
    let mut tokens = Vec::new();
    for (name, limits) in
        [("defaulted", None), ("own-limit", Some(pb::Limits { rate_limit_per_minute: Some(1), ..Default::default() }))]
    {
        let request = pb::CreateApiClientRequest {
            name: name.into(),
            scopes: vec!["investigations:read".into()],
            limits,
            ..Default::default()
        };
        let client = server
            .admin()
            .await
            .create_api_client(as_admin(request, &server.admin_key))
            .await
            .expect("client")
            .into_inner();
        let grant = pb::IssueTokenRequest {
            grant_type: "client_credentials".into(),
            client_id: client.client_id,
            client_secret: client.client_secret,
            scope: String::new(),
        };
        tokens.push(server.auth().await.issue_token(grant).await.expect("token").into_inner().access_token);
    }
    let mut seen = Vec::new();
    for token in &tokens {
        let mut reasons = Vec::new();
        for _ in 0..3 {
            reasons.push(decision(&authorize_costing(&server, token, None).await).reason());
        }
        seen.push(reasons);
    }
    use DecisionReason::{Allowed, RateLimited};
    assert_eq!(seen, vec![vec![Allowed, Allowed, RateLimited], vec![Allowed, RateLimited, RateLimited]]);
    server.stop().await;
}
