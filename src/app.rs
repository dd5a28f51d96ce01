//! Wiring: config -> store -> keyring, limiter, engine, admin and OAuth -> the gRPC and HTTP
//! servers on bound listeners, with background tasks (health probe of the database and the
//! rate-limit counters, `last_used_at` and quota usage flushers, change listener, signing-key
//! refresh, route policy reloads) owned here and joined at shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::adapters::jwks::{FileSource, UrlSource};
use crate::adapters::policy_file::{self, PolicyFileError};
use crate::adapters::redis::{OnOutage, RedisCounters, RedisSettings};
use crate::adapters::sql::SqlStore;
use crate::config::{Config, LimitsBackend, RedisFailureMode, ShutdownConfig, chrono_duration};
use crate::grpc::envoy::EnvoyAuthz;
use crate::grpc::{self, GrpcError, HealthState, Readiness};
use crate::observability::metrics::Metrics;
use crate::tasks;
use keygate_core::admin::{Admin, AdminParts};
use keygate_core::credentials::hashing::{Fingerprints, SecretHasher};
use keygate_core::credentials::scopes::ScopeRegistry;
use keygate_core::engine::{Engine, EngineParts};
use keygate_core::error::{CoreError, StoreError};
use keygate_core::instruments::LimitsInstruments;
use keygate_core::last_used::LastUsedRecorder;
use keygate_core::limits::Limiter;
use keygate_core::limits::memory::MemoryCounters;
use keygate_core::model::SigningKeyRecord;
use keygate_core::oauth::{OAuth, OAuthParts};
use keygate_core::policy::Policy;
use keygate_core::ports::{ClientStore, Clock, Counters, JwksSource, Store};
use keygate_core::tokens::TokenVerifier;
use keygate_core::tokens::issuers::TrustedIssuer;
use keygate_core::tokens::sealing::KeyEncryptionKey;
use keygate_core::tokens::signing::{self, KeySource, Keyring, KeyringSettings};
use keygate_core::verdicts::{VerdictCache, VerdictSettings};

/// How long a replica waits before reloading signing keys again for an unknown `kid`.
const KEY_RELOAD_INTERVAL_SECS: i64 = 5;
/// How often the signing keys are read again, so that a rotation made elsewhere (the
/// `rotate-signing-key` command, a lost notification) reaches this replica.
const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// How often SQLite's key and client ids are read again (see `relearn_ids`).
const SQLITE_RELEARN_INTERVAL: Duration = Duration::from_secs(10);
/// How often the rate-limit counters are pinged: how soon an outage of Redis shows in health, and
/// how soon the counters find Redis again after one (never sooner, so a down Redis is not hammered).
const COUNTERS_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long fetching an outside issuer's JWKS may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why keygate could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Core(#[from] CoreError),
    #[error("{0}")]
    Grpc(#[from] GrpcError),
    #[error("{0}")]
    Policy(#[from] PolicyFileError),
    #[error("the database is not migrated; run `keygate migrate` or set database.run_migrations = true")]
    NotMigrated,
    #[error("{0}")]
    Startup(String),
    #[error("http server: {0}")]
    Http(std::io::Error),
    #[error("tls: {0}")]
    Tls(#[from] crate::transport::tls::TlsError),
}

/// Everything a running keygate holds.
pub struct State {
    pub store: Arc<SqlStore>,
    pub engine: Arc<Engine>,
    pub admin: Arc<Admin>,
    pub oauth: Arc<OAuth>,
    pub keyring: Arc<Keyring>,
    pub last_used: Arc<LastUsedRecorder>,
    pub hasher: SecretHasher,
    pub verdicts: Arc<VerdictCache>,
    pub scopes: Arc<ScopeRegistry>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<Limiter>,
}

/// Connects to the database, migrating it when `migrate` is set, and checks it is up to date.
pub async fn open_store(config: &Config, migrate: bool) -> Result<SqlStore, AppError> {
    let store = SqlStore::connect(&config.database).await?;
    // A migration either applies every pending step or fails; only without one is there
    // something to check.
    if migrate {
        store.migrate().await?;
    } else if !store.is_migrated().await? {
        return Err(AppError::NotMigrated);
    }
    Ok(store)
}

/// Builds the keyring, the engine, and the admin and OAuth use cases over `store`.
pub async fn build_state(config: &Config, store: SqlStore, clock: Arc<dyn Clock>) -> Result<State, AppError> {
    let store = Arc::new(store);
    let kek = key_encryption_key(config)?;
    // Keyed by the KEK, fingerprints made with a copy of the database alone are of no use.
    let fingerprints =
        kek.as_ref().map_or_else(Fingerprints::default, |kek| Fingerprints::keyed(&kek.fingerprint_key()));
    let hasher = SecretHasher::new(config.hashing.params(), config.hashing.limits())?.with_fingerprints(fingerprints);
    let scopes = Arc::new(ScopeRegistry::new(config.scopes.iter().cloned()));
    let last_used = Arc::new(LastUsedRecorder::default());
    let verdicts = Arc::new(VerdictCache::new(VerdictSettings {
        max_entries: config.cache.max_entries,
        ttl: config.cache.ttl,
        negative_ttl: config.cache.negative_ttl,
    }));
    let dyn_store: Arc<dyn Store> = store.clone();
    let clients: Arc<dyn ClientStore> = store.clone();
    let token_settings = config.token_settings();
    let keyring_settings = KeyringSettings {
        algorithm: config.oauth.algorithm,
        // A replica that missed the rotation's notification signs with the old key until its
        // next periodic reload, so the old key stays published that much longer.
        retired_lifetime: token_settings.ttl + token_settings.leeway + chrono_duration(KEY_REFRESH_INTERVAL),
        min_reload_interval: chrono::Duration::seconds(KEY_RELOAD_INTERVAL_SECS),
    };
    let keyring = Arc::new(
        Keyring::open(key_source(config, &store, kek, clock.as_ref())?, keyring_settings, clock.clone()).await?,
    );
    let issuers = trusted_issuers(config, &clock)?;
    let tokens = Arc::new(TokenVerifier::new(keyring.clone(), token_settings.clone(), issuers));
    let (counters, limits_instruments) = counters(config).await?;
    let limiter = Arc::new(Limiter::new(
        config.limits.defaults,
        config.limits.lease,
        counters,
        store.clone(),
        // A new name per start: a restarted process adds to what its earlier life recorded.
        format!("replica-{}", uuid::Uuid::new_v4().simple()),
    ));
    let engine = Arc::new(Engine::new(EngineParts {
        store: dyn_store.clone(),
        clients: clients.clone(),
        tokens,
        hasher: hasher.clone(),
        clock: clock.clone(),
        scopes: scopes.clone(),
        last_used: last_used.clone(),
        verdicts: verdicts.clone(),
        limiter: limiter.clone(),
    }));
    let admin = Arc::new(Admin::new(AdminParts {
        engine: engine.clone(),
        store: dyn_store,
        clients: clients.clone(),
        audit: store.clone(),
        keyring: keyring.clone(),
        hasher: hasher.clone(),
        clock: clock.clone(),
        scopes: scopes.clone(),
        verdicts: verdicts.clone(),
        usage: store.clone(),
        settings: config.admin_settings(),
    }));
    let oauth = Arc::new(OAuth::new(OAuthParts {
        engine: engine.clone(),
        clients,
        hasher: hasher.clone(),
        verdicts: verdicts.clone(),
        keyring: keyring.clone(),
        settings: token_settings,
        clock,
        last_used: last_used.clone(),
    }));
    let pool = store.clone();
    let metrics = Arc::new(Metrics::new(
        engine.decision_counters(),
        admin.refusal_counters(),
        verdicts.instruments(),
        hasher.instruments(),
        limits_instruments,
        Arc::new(move || pool.pool_stats()),
    ));
    Ok(State { store, engine, admin, oauth, keyring, last_used, hasher, verdicts, scopes, metrics, limiter })
}

/// The configured home of rate-limit, quota and concurrency counters, and what they report.
async fn counters(config: &Config) -> Result<(Arc<dyn Counters>, LimitsInstruments), AppError> {
    match config.limits.backend {
        LimitsBackend::Memory => {
            let instruments = LimitsInstruments::default();
            // Memory is always there.
            instruments.backend_up.set(1);
            Ok((Arc::new(MemoryCounters::default()), instruments))
        }
        LimitsBackend::Redis => {
            let ca_pem = match &config.limits.redis_ca_file {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| AppError::Startup(format!("limits.redis_ca_file: {}: {e}", path.display())))?,
                ),
                None => None,
            };
            let settings = RedisSettings {
                url: config.limits.redis_url.clone(),
                ca_pem,
                timeout: config.limits.redis_timeout,
                on_outage: match config.limits.redis_failure {
                    RedisFailureMode::Open => OnOutage::LocalLimits,
                    RedisFailureMode::Closed => OnOutage::Refuse,
                },
            };
            let counters = RedisCounters::new(&settings).map_err(|err| AppError::Startup(err.to_string()))?;
            // Connects now rather than on the first request; an outage is logged by the counters
            // and does not stop start-up (health reports it).
            if counters.ping().await.is_ok() {
                tracing::info!("redis counters ready");
            }
            let instruments = counters.instruments();
            Ok((Arc::new(counters), instruments))
        }
    }
}

/// The configured key-encryption key: given in the environment, or read from its file.
fn key_encryption_key(config: &Config) -> Result<Option<KeyEncryptionKey>, AppError> {
    if let Some(kek) = &config.oauth.signing_key_encryption_key {
        return Ok(Some(kek.clone()));
    }
    let Some(path) = &config.oauth.signing_key_encryption_key_file else {
        return Ok(None);
    };
    let problem =
        |e: String| AppError::Startup(format!("oauth.signing_key_encryption_key_file: {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let kek = KeyEncryptionKey::parse(&text).map_err(problem)?;
    tracing::info!(kek = kek.id(), "key-encryption key loaded");
    Ok(Some(kek))
}

/// Signing keys from the configured PEM files, else from the database (sealed with `kek`).
fn key_source(
    config: &Config,
    store: &Arc<SqlStore>,
    kek: Option<KeyEncryptionKey>,
    clock: &dyn Clock,
) -> Result<KeySource, AppError> {
    if config.oauth.signing_key_files.is_empty() {
        return Ok(KeySource::Stored { store: store.clone(), kek });
    }
    let mut records: Vec<SigningKeyRecord> = Vec::new();
    let mut problems = Vec::new();
    for path in &config.oauth.signing_key_files {
        let loaded = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| signing::from_pem(&pem, clock.now()));
        match loaded {
            Ok(record) => records.push(record),
            Err(err) => problems.push(format!("oauth.signing_key_files: {}: {err}", path.display())),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Startup(problems.join("\n")));
    }
    Ok(KeySource::Files(records))
}

/// The configured outside issuers of user tokens.
fn trusted_issuers(config: &Config, clock: &Arc<dyn Clock>) -> Result<Vec<Arc<TrustedIssuer>>, AppError> {
    let mut issuers = Vec::new();
    for (name, issuer) in &config.oauth.issuers {
        let source: Arc<dyn JwksSource> = match &issuer.jwks_file {
            Some(path) => Arc::new(FileSource::new(path.clone())),
            None => Arc::new(
                UrlSource::new(issuer.jwks_url.clone(), JWKS_FETCH_TIMEOUT)
                    .map_err(|e| AppError::Startup(format!("oauth.issuers.{name}.jwks_url: {e}")))?,
            ),
        };
        issuers.push(Arc::new(TrustedIssuer::new(issuer.settings(name), source, clock.clone())));
    }
    Ok(issuers)
}

/// The bound sockets keygate serves on.
pub struct Listeners {
    /// AuthService, AdminService, health, reflection.
    pub grpc: TcpListener,
    /// The OAuth2 token endpoint, JWKS, metadata and introspection (and `/metrics` unless it
    /// has its own listener).
    pub http: TcpListener,
    /// `/metrics` alone, when `metrics_addr` is set.
    pub metrics: Option<TcpListener>,
}

/// Runs keygate on `listeners` until `shutdown` completes: health turns NOT_SERVING, the servers
/// drain in-flight calls, background tasks stop, and pending `last_used_at` is written.
pub async fn serve(
    config: Config,
    clock: Arc<dyn Clock>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let health_state = Arc::new(HealthState::new(reporter));
    let store = open_store(&config, config.database.run_migrations).await?;
    tracing::info!(backend = store.backend_name(), "database ready");
    let state = build_state(&config, store, clock.clone()).await?;
    if config.oauth.issuer.is_empty() && state.store.is_postgres() {
        tracing::warn!(issuer = %config.token_issuer(), "oauth.issuer is not set; replicas must share one issuer, so set it to keygate's public URL");
    }
    // Bad TLS files stop start-up here, before anything is served.
    let tls_files = crate::transport::tls::load(&config.tls)?;
    if let Some(cert) = &config.tls.cert_file {
        let mtls = config.tls.client_ca_file.is_some();
        tracing::info!(cert = %cert.display(), client_certificates = mtls, "tls on both listeners");
    }
    // A bad policy stops start-up here, before anything is served.
    let initial = match &config.envoy.policy_file {
        Some(path) => {
            let (policy, bytes) = policy_file::load(path, &state.scopes)?;
            tracing::info!(path = %path.display(), routes = policy.len(), "route policy loaded");
            Some((path.clone(), policy, bytes))
        }
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let (policy_tx, policy_rx) = watch::channel(Arc::new(Policy::default()));
    if let Some((path, policy, bytes)) = initial {
        policy_tx.send_replace(Arc::new(policy));
        let every = config.envoy.policy_poll;
        let registry = state.scopes.clone();
        tasks.spawn(policy_file::follow(path, registry, bytes, policy_tx, every, stop_rx.clone()));
    }
    // The counters may be down from the start (Redis with `limits.redis_failure = "closed"`).
    let counters_ok = state.limiter.ping().await.is_ok();
    state.metrics.database_up().set(1);
    let readiness = Readiness { alive: true, decide: counters_ok, admin: true };
    tasks.spawn(probe_health(
        state.store.clone(),
        state.limiter.clone(),
        readiness,
        health_state.clone(),
        state.metrics.database_up().clone(),
        config.database.health_interval,
        stop_rx.clone(),
    ));
    tasks.spawn(flush_last_used(
        state.last_used.clone(),
        state.store.clone(),
        clock.clone(),
        config.keys.last_used_flush,
        stop_rx.clone(),
    ));
    tasks.spawn(flush_usage(state.limiter.clone(), clock.clone(), config.limits.flush_interval, stop_rx.clone()));
    tasks.spawn(refresh_signing_keys(state.keyring.clone(), KEY_REFRESH_INTERVAL, stop_rx.clone()));
    if !state.store.is_postgres() {
        // PostgreSQL's change listener reads the ids when it starts listening.
        learn_ids(&state.store, &state.verdicts).await;
        let (store, verdicts) = (state.store.clone(), state.verdicts.clone());
        tasks.spawn(relearn_ids(store, verdicts, SQLITE_RELEARN_INTERVAL, stop_rx.clone()));
    }
    let tls = match tls_files {
        Some((current, tls)) => {
            let every = config.tls.reload_poll;
            tasks.spawn(crate::transport::tls::follow(config.tls.clone(), current, every, stop_rx.clone()));
            Some(tls)
        }
        None => None,
    };
    if state.store.is_postgres() {
        let (listening_tx, listening) = tokio::sync::oneshot::channel();
        let url = config.database.url.clone();
        let (verdicts, keyring) = (state.verdicts.clone(), state.keyring.clone());
        let store = state.store.clone();
        let follow =
            crate::adapters::sql::notify::follow_key_changes(url, store, verdicts, keyring, listening_tx, stop_rx);
        tasks.spawn(follow);
        let wait = config.database.timeout;
        if tokio::time::timeout(wait, listening).await.is_err() {
            tracing::warn!("not yet listening for key changes; cached verdicts may lag changes by up to the cache TTL");
        }
    }
    health_state.set(readiness).await;

    // SIGTERM: NOT_SERVING at once, the listeners closed after the drain delay, then in-flight
    // requests get the grace period.
    let ShutdownConfig { drain_delay, grace } = config.shutdown;
    let (draining_tx, draining) = watch::channel(false);
    let announce = async move {
        shutdown.await;
        tracing::info!(drain_delay_secs = drain_delay.as_secs(), grace_secs = grace.as_secs(), "shutting down");
        health_state.drain().await;
        tokio::time::sleep(drain_delay).await;
        tracing::info!("listeners closed; finishing in-flight requests");
        let _ = draining_tx.send(true);
        tokio::time::sleep(grace).await;
    };
    let traced = config.traces.exporting();
    let transport =
        |tls: &Option<crate::transport::tls::CurrentConfig>| crate::transport::Transport { tls: tls.clone(), traced };
    let envoy_authz = EnvoyAuthz::new(state.engine.clone(), policy_rx, config.envoy.clone());
    let token_endpoint = format!("{}{}", state.oauth.settings().issuer.trim_end_matches('/'), crate::http::TOKEN_PATH);
    let services = grpc::Services {
        engine: state.engine.clone(),
        admin: state.admin.clone(),
        oauth: state.oauth.clone(),
        envoy_authz,
        token_endpoint: token_endpoint.clone(),
    };
    let grpc_served = grpc::serve(
        listeners.grpc,
        services,
        state.metrics.clone(),
        transport(&tls),
        health,
        wait_for(draining.clone()),
    );
    let console = config.console.enabled.then(|| crate::http::console::Console {
        admin: state.admin.clone(),
        sessions: crate::http::console::sessions::Sessions::new(
            config.console.session_idle,
            config.console.session_max,
        ),
        clock: clock.clone(),
        secure: tls.is_some(),
        token_endpoint: token_endpoint.clone(),
    });
    let rest =
        crate::http::admin::AdminRest { admin: state.admin.clone(), engine: state.engine.clone(), token_endpoint };
    let edges = crate::http::Edges {
        oauth: state.oauth.clone(),
        rest,
        console,
        metrics: state.metrics.clone(),
        with_metrics: listeners.metrics.is_none(),
    };
    let http_served = crate::http::serve(listeners.http, edges, transport(&tls), wait_for(draining.clone()));
    let metrics_served = async {
        match listeners.metrics {
            Some(listener) => crate::http::serve_metrics(listener, state.metrics.clone(), wait_for(draining)).await,
            None => Ok(()),
        }
    };
    let servers = async { tokio::join!(grpc_served, http_served, metrics_served) };
    let (grpc_served, http_served, metrics_served) = tokio::select! {
        served = servers => served,
        () = announce => {
            // Dropping the servers cuts the connections still open.
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; cutting connections still open");
            (Ok(()), Ok(()), Ok(()))
        }
    };

    let _ = stop_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        if let Err(err) = joined {
            tracing::error!(error = %err, "background task failed");
        }
    }
    let store = state.store.as_ref();
    if let Err(err) = state.last_used.flush(store, store, store, clock.now()).await {
        tracing::warn!(error = %err, "final last_used_at flush failed");
    }
    if let Err(err) = state.limiter.flush(clock.now()).await {
        tracing::warn!(error = %err, "final quota usage flush failed");
    }
    grpc_served?;
    http_served.map_err(AppError::Http)?;
    metrics_served.map_err(AppError::Http)?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes once `flag` turns true (or its sender is gone).
async fn wait_for(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// Pings the database every `every` and the rate-limit counters every
/// [`COUNTERS_PROBE_INTERVAL`] (how Redis counters find Redis again), and reports what this
/// replica can do: decide while the counters can (a database outage leaves cached credentials
/// decidable), administer while the database answers. Runs until told to stop.
async fn probe_health(
    store: Arc<SqlStore>,
    limiter: Arc<Limiter>,
    mut readiness: Readiness,
    health: Arc<HealthState>,
    database_up: Gauge,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let first = |period: Duration| tokio::time::Instant::now() + period;
    let mut database_tick = tokio::time::interval_at(first(every), every);
    let mut counters_tick = tokio::time::interval_at(first(COUNTERS_PROBE_INTERVAL), COUNTERS_PROBE_INTERVAL);
    // A slow ping delays the next one instead of bunching the missed ones up.
    database_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    counters_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let before = readiness;
        tokio::select! {
            _ = stop.changed() => return,
            _ = database_tick.tick() => {
                readiness.admin = store.ping().await.is_ok();
                database_up.set(i64::from(readiness.admin));
                if readiness.admin != before.admin {
                    if readiness.admin {
                        tracing::info!("database reachable again");
                    } else {
                        tracing::warn!("database unreachable; deciding cached credentials only, admin calls unavailable");
                    }
                }
            }
            // The counters log their own outages, once each.
            _ = counters_tick.tick() => readiness.decide = limiter.ping().await.is_ok(),
        }
        if readiness != before {
            health.set(readiness).await;
        }
    }
}

/// Reads the signing keys again every `every`, until told to stop.
async fn refresh_signing_keys(keyring: Arc<Keyring>, every: Duration, mut stop: watch::Receiver<bool>) {
    while tasks::next_turn(every, &mut stop).await {
        if let Err(err) = keyring.reload().await {
            tracing::warn!(error = %err, "signing keys could not be reloaded; will retry");
        }
    }
}

/// Reads every key and client id into the known ids, so that made-up ids cost no database read.
async fn learn_ids(store: &SqlStore, verdicts: &VerdictCache) {
    match verdicts.known().learn_all(store, store).await {
        Ok(known) => tracing::debug!(known, "key and client ids read"),
        Err(err) => tracing::warn!(error = %err, "cannot read the key and client ids; will retry"),
    }
}

/// On SQLite, every `every` until told to stop: reads the ids again, for keys another process
/// added to the file (`keygate bootstrap` beside a running server), which no one announces.
async fn relearn_ids(
    store: Arc<SqlStore>,
    verdicts: Arc<VerdictCache>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    while tasks::next_turn(every, &mut stop).await {
        learn_ids(&store, &verdicts).await;
    }
}

/// Writes batched `last_used_at` times and daily use counts every `every`, until told to stop.
async fn flush_last_used(
    recorder: Arc<LastUsedRecorder>,
    store: Arc<SqlStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    while tasks::next_turn(every, &mut stop).await {
        let store = store.as_ref();
        match recorder.flush(store, store, store, clock.now()).await {
            Ok(0) => {}
            Ok(written) => tracing::debug!(written, "last_used_at flushed"),
            Err(err) => tracing::warn!(error = %err, "last_used_at flush failed; will retry"),
        }
    }
}

/// Writes quota usage every `every` and lets idle counters go, until told to stop.
async fn flush_usage(limiter: Arc<Limiter>, clock: Arc<dyn Clock>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut last_sweep = clock.now();
    while tasks::next_turn(every, &mut stop).await {
        let now = clock.now();
        match limiter.flush(now).await {
            Ok(0) => {}
            Ok(written) => tracing::debug!(written, "quota usage flushed"),
            Err(err) => tracing::warn!(error = %err, "quota usage flush failed; will retry"),
        }
        // A sweep walks every counter: once a minute is enough to keep memory to active subjects.
        if now - last_sweep >= chrono::Duration::minutes(1) {
            limiter.sweep(now);
            last_sweep = now;
        }
    }
}

/// Creates the platform organization and its first admin key; returns the key, shown once.
pub async fn bootstrap(config: &Config, clock: Arc<dyn Clock>, org: &str, force: bool) -> Result<String, AppError> {
    let store = open_store(config, config.database.run_migrations).await?;
    let state = build_state(config, store, clock).await?;
    let issued = state.admin.bootstrap(org, force).await?;
    Ok(issued.api_key)
}

/// Rotates the token signing key from the command line (the operator has the database); returns
/// the new key id.
pub async fn rotate_signing_key(config: &Config, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let store = open_store(config, config.database.run_migrations).await?;
    let state = build_state(config, store, clock).await?;
    Ok(state.admin.rotate_signing_key_as_operator().await?.kid)
}
