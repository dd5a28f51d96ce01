//! The core wired as `app::build_state` wires it, on the in-memory store, the in-memory counters
//! and a manual clock: for fast unit tests of the use cases, with no I/O and no sleeping.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::admin::{Admin, AdminContext, AdminParts, AdminSettings, IssuedKey, NewKey, NewOrganization, Plan};
use crate::clock::ManualClock;
use crate::credentials::hashing::{HashLimits, HashParams, SecretHasher};
use crate::credentials::scopes::{DEFAULT_SCOPES, ScopeRegistry};
use crate::engine::{Engine, EngineParts};
use crate::error::CoreError;
use crate::last_used::LastUsedRecorder;
use crate::limits::memory::MemoryCounters;
use crate::limits::{KindDefaults, LeaseSettings, LimitDefaults, Limiter};
use crate::model::{AuditEntry, Credentials, Labels, LimitOverrides, Principal, Reason, RequestOrigin};
use crate::oauth::{OAuth, OAuthParts};
use crate::ports::Clock;
use crate::testing::MemoryStore;
use crate::tokens::signing::{Algorithm, KeySource, Keyring, KeyringSettings};
use crate::tokens::{TokenSettings, TokenVerifier};
use crate::verdicts::{VerdictCache, VerdictSettings};

/// 2026-03-27T00:00:00Z, where every test clock starts.
pub(crate) fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 27, 0, 0, 0).single().expect("a valid time")
}

/// The slug `Core::bootstrap` gives the platform organization.
pub(crate) const PLATFORM: &str = "platform";

/// The lifecycle settings of the tests: the configured defaults (keys live 365 days, at most
/// 3650; grace periods of 7 days, at most 90), plans `free` (3 keys), `pro` (50) and
/// `enterprise` (1000), and the default limits.
pub(crate) fn settings() -> AdminSettings {
    AdminSettings {
        key_prefix: "sk_test_".to_owned(),
        default_expires_in_days: 365,
        max_expires_in_days: 3650,
        default_grace_period_days: 7,
        max_grace_period_days: 90,
        plans: BTreeMap::from([
            ("free".to_owned(), Plan::with_keys(3)),
            ("pro".to_owned(), Plan::with_keys(50)),
            ("enterprise".to_owned(), Plan::with_keys(1000)),
        ]),
        default_plan: "free".to_owned(),
        bootstrap_plan: "enterprise".to_owned(),
        ceiling: LimitOverrides::default(),
        limit_defaults: LimitDefaults {
            api_keys: KindDefaults { rate_per_minute: 0, rate_burst: 0, max_quota: 0, max_concurrency: 5 },
            clients: KindDefaults { rate_per_minute: 200, rate_burst: 0, max_quota: 0, max_concurrency: 5 },
            users: KindDefaults { rate_per_minute: 100, rate_burst: 0, max_quota: 0, max_concurrency: 5 },
        },
    }
}

/// An admin request made with `key` (an API key or, with `Bearer `, a token).
pub(crate) fn ctx(credential: &str) -> AdminContext {
    let credentials = if credential.contains('.') {
        Credentials { authorization: format!("Bearer {credential}"), api_key: String::new() }
    } else {
        Credentials { authorization: String::new(), api_key: credential.to_owned() }
    };
    let origin = RequestOrigin {
        request_id: format!("req-{}", uuid::Uuid::new_v4().simple()),
        client_request_id: String::new(),
        peer: "192.0.2.1:4000".to_owned(),
    };
    AdminContext { credentials, origin }
}

/// A list of scopes.
pub(crate) fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The core's components, built once per test.
pub(crate) struct Core {
    pub clock: Arc<ManualClock>,
    pub store: Arc<MemoryStore>,
    pub engine: Arc<Engine>,
    pub admin: Admin,
    pub oauth: OAuth,
    pub verdicts: Arc<VerdictCache>,
    pub keyring: Arc<Keyring>,
    pub hasher: SecretHasher,
    pub last_used: Arc<LastUsedRecorder>,
}

impl Core {
    pub(crate) async fn new() -> Self {
        Self::with_settings(settings()).await
    }

    pub(crate) async fn with_settings(settings: AdminSettings) -> Self {
        let clock = Arc::new(ManualClock::new(start()));
        let now: Arc<dyn Clock> = clock.clone();
        let store = Arc::new(MemoryStore::new());
        // argon2id at its cheapest: the tests are about rules, not cost.
        let params = HashParams { memory_kib: 8, iterations: 1, lanes: 1 };
        let hasher =
            SecretHasher::new(params, HashLimits { max_concurrent: 2, max_waiting: 64, nice: 0 }).expect("a hasher");
        let scopes = Arc::new(ScopeRegistry::new(DEFAULT_SCOPES.iter().copied()));
        let last_used = Arc::new(LastUsedRecorder::default());
        // Lifetimes far beyond any test: what a test sees is invalidation, never an expiry.
        let hour = StdDuration::from_secs(3600);
        let verdicts =
            Arc::new(VerdictCache::new(VerdictSettings { max_entries: 10_000, ttl: hour, negative_ttl: hour }));
        let token_settings = TokenSettings {
            issuer: "https://keygate.test".to_owned(),
            audience: vec!["keygate".to_owned()],
            ttl: Duration::minutes(30),
            leeway: Duration::seconds(30),
        };
        let keyring_settings = KeyringSettings {
            algorithm: Algorithm::Es256,
            retired_lifetime: token_settings.ttl + token_settings.leeway,
            min_reload_interval: Duration::seconds(10),
        };
        let source = KeySource::Stored { store: store.clone(), kek: None };
        let keyring = Arc::new(Keyring::open(source, keyring_settings, now.clone()).await.expect("a keyring"));
        let tokens = Arc::new(TokenVerifier::new(keyring.clone(), token_settings.clone(), Vec::new()));
        let leases = LeaseSettings { default: StdDuration::from_secs(300), max: StdDuration::from_secs(86_400) };
        let counters = Arc::new(MemoryCounters::default());
        let limiter =
            Arc::new(Limiter::new(settings.limit_defaults, leases, counters, store.clone(), "replica-test".to_owned()));
        let engine = Arc::new(Engine::new(EngineParts {
            store: store.clone(),
            clients: store.clone(),
            tokens,
            hasher: hasher.clone(),
            clock: now.clone(),
            scopes: scopes.clone(),
            last_used: last_used.clone(),
            verdicts: verdicts.clone(),
            limiter,
        }));
        let admin = Admin::new(AdminParts {
            engine: engine.clone(),
            store: store.clone(),
            clients: store.clone(),
            audit: store.clone(),
            keyring: keyring.clone(),
            hasher: hasher.clone(),
            clock: now.clone(),
            scopes,
            verdicts: verdicts.clone(),
            usage: store.clone(),
            settings,
        });
        let oauth = OAuth::new(OAuthParts {
            engine: engine.clone(),
            clients: store.clone(),
            hasher: hasher.clone(),
            verdicts: verdicts.clone(),
            keyring: keyring.clone(),
            settings: token_settings,
            clock: now,
            last_used: last_used.clone(),
        });
        Self { clock, store, engine, admin, oauth, verdicts, keyring, hasher, last_used }
    }

    /// Runs `keygate bootstrap`: the platform organization and its admin key (`*`).
    pub(crate) async fn bootstrap(&self) -> String {
        self.admin.bootstrap(PLATFORM, false).await.expect("bootstrap").api_key
    }

    /// Creates organization `slug` on `plan` as the platform admin `admin`.
    pub(crate) async fn organization(&self, admin: &str, slug: &str, plan: &str) {
        let request = NewOrganization { slug: slug.to_owned(), name: format!("Org {slug}"), plan: plan.to_owned() };
        self.admin.create_organization(&ctx(admin), request).await.expect("create organization");
    }

    /// Creates a key holding `scopes` in `organization` (empty: the caller's own) as `admin`.
    pub(crate) async fn key(&self, admin: &str, organization: &str, scopes: &[&str]) -> IssuedKey {
        self.admin.create_key(&ctx(admin), new_key(organization, scopes)).await.expect("create key")
    }

    /// Who `key` authenticates as now, or why not.
    pub(crate) async fn authenticate(&self, key: &str) -> Result<Principal, Reason> {
        let credentials = ctx(key).credentials;
        self.engine.authenticate(&credentials).await.expect("a decision").map_err(|failure| failure.reason)
    }

    /// The audit entries of `organization` with `action`, oldest first.
    pub(crate) fn audit(&self, organization: &str, action: &str) -> Vec<AuditEntry> {
        self.store
            .audit_entries()
            .into_iter()
            .filter(|entry| entry.organization == organization && entry.action == action)
            .collect()
    }

    /// Moves the clock by `days`.
    pub(crate) fn advance_days(&self, days: i64) {
        self.clock.advance(Duration::days(days));
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// What `CreateApiKey` asks for a key holding `scopes` in `organization`.
pub(crate) fn new_key(organization: &str, scopes: &[&str]) -> NewKey {
    NewKey {
        name: "test key".to_owned(),
        description: String::new(),
        scopes: self::scopes(scopes),
        expires_in_days: None,
        organization: organization.to_owned(),
        limits: LimitOverrides::default(),
        labels: Labels::new(),
    }
}

/// The error code of a refusal, e.g. `PERMISSION_DENIED`, or `ok`.
pub(crate) fn code<T>(result: &Result<T, CoreError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => err.code().as_str(),
    }
}
