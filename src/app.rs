//! Wiring: config -> store -> engine and admin -> gRPC server on a bound listener, with
//! background tasks (health probe, `last_used_at` flusher, route policy reloads) owned here and
//! joined at shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic_health::server::HealthReporter;

use crate::config::Config;
use crate::core::admin::{Admin, AdminSettings};
use crate::core::clock::Clock;
use crate::core::engine::Engine;
use crate::core::error::{CoreError, StoreError};
use crate::core::hashing::SecretHasher;
use crate::core::last_used::LastUsedRecorder;
use crate::core::policy::Policy;
use crate::core::ports::Store;
use crate::core::scopes::ScopeRegistry;
use crate::core::verdicts::{VerdictCache, VerdictSettings};
use crate::grpc::envoy::EnvoyAuthz;
use crate::grpc::{self, GrpcError};
use crate::policy_file::{self, PolicyFileError};
use crate::store::SqlStore;
use crate::store::sql::StoreSettings;

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
}

/// Everything a running keygate holds.
pub struct State {
    pub store: Arc<SqlStore>,
    pub engine: Arc<Engine>,
    pub admin: Arc<Admin>,
    pub last_used: Arc<LastUsedRecorder>,
    pub hasher: SecretHasher,
    pub verdicts: Arc<VerdictCache>,
    pub scopes: Arc<ScopeRegistry>,
}

/// Connects to the database, migrating it when `migrate` is set, and checks it is up to date.
pub async fn open_store(config: &Config, migrate: bool) -> Result<SqlStore, AppError> {
    let settings = StoreSettings {
        url: config.database.url.clone(),
        max_connections: config.database.max_connections,
        timeout: Duration::from_secs(config.database.timeout_secs),
    };
    let store = SqlStore::connect(&settings).await?;
    if migrate {
        store.migrate().await?;
    }
    if !store.is_migrated().await? {
        return Err(AppError::NotMigrated);
    }
    Ok(store)
}

/// Builds the engine and the admin use cases over `store`.
pub fn build_state(config: &Config, store: SqlStore, clock: Arc<dyn Clock>) -> Result<State, AppError> {
    let store = Arc::new(store);
    let max_concurrent = match config.hashing.max_concurrent {
        0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        n => n as usize,
    };
    let hasher = SecretHasher::new(config.hashing.params(), max_concurrent, config.hashing.max_waiting as usize)?;
    let scopes = Arc::new(ScopeRegistry::new(config.scopes.iter().cloned()));
    let last_used = Arc::new(LastUsedRecorder::default());
    let verdicts = Arc::new(VerdictCache::new(VerdictSettings {
        max_entries: config.cache.max_entries,
        ttl: Duration::from_secs(config.cache.ttl_secs),
        negative_ttl: Duration::from_secs(config.cache.negative_ttl_secs),
    }));
    let dyn_store: Arc<dyn Store> = store.clone();
    let engine = Arc::new(Engine::new(
        dyn_store.clone(),
        hasher.clone(),
        clock.clone(),
        scopes.clone(),
        last_used.clone(),
        verdicts.clone(),
    ));
    let settings = AdminSettings {
        key_prefix: config.keys.prefix.clone(),
        default_expires_in_days: config.keys.default_expires_in_days,
        max_expires_in_days: config.keys.max_expires_in_days,
        default_grace_period_days: config.keys.default_grace_period_days,
        max_grace_period_days: config.keys.max_grace_period_days,
        plans: config.organizations.plans.clone(),
        default_plan: config.organizations.default_plan.clone(),
        bootstrap_plan: config.organizations.bootstrap_plan.clone(),
    };
    let admin = Arc::new(Admin::new(
        engine.clone(),
        dyn_store,
        hasher.clone(),
        clock,
        scopes.clone(),
        verdicts.clone(),
        settings,
    ));
    Ok(State { store, engine, admin, last_used, hasher, verdicts, scopes })
}

/// Runs keygate on `grpc_listener` until `shutdown` completes: health turns NOT_SERVING, the
/// server drains in-flight calls, background tasks stop, and pending `last_used_at` is written.
pub async fn serve(
    config: Config,
    clock: Arc<dyn Clock>,
    grpc_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    grpc::set_serving(&reporter, false).await;
    let store = open_store(&config, config.database.run_migrations).await?;
    tracing::info!(backend = store.backend_name(), "database ready");
    let state = build_state(&config, store, clock)?;
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
        let every = Duration::from_secs(config.envoy.policy_poll_secs);
        let registry = state.scopes.clone();
        tasks.spawn(policy_file::follow(path, registry, bytes, policy_tx, every, stop_rx.clone()));
    }
    tasks.spawn(probe_health(
        state.store.clone(),
        reporter.clone(),
        Duration::from_secs(config.database.health_interval_secs),
        stop_rx.clone(),
    ));
    tasks.spawn(flush_last_used(
        state.last_used.clone(),
        state.store.clone(),
        Duration::from_secs(config.keys.last_used_flush_secs),
        stop_rx.clone(),
    ));
    if state.store.backend_name() == "postgres" {
        let (listening_tx, listening) = tokio::sync::oneshot::channel();
        let url = config.database.url.clone();
        tasks.spawn(crate::store::notify::follow_key_changes(url, state.verdicts.clone(), listening_tx, stop_rx));
        let wait = Duration::from_secs(config.database.timeout_secs);
        if tokio::time::timeout(wait, listening).await.is_err() {
            tracing::warn!("not yet listening for key changes; cached verdicts may lag changes by up to the cache TTL");
        }
    }
    grpc::set_serving(&reporter, true).await;

    let drain_reporter = reporter.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down");
        grpc::set_serving(&drain_reporter, false).await;
    };
    let envoy_authz = EnvoyAuthz::new(state.engine.clone(), policy_rx, config.envoy.clone());
    let served =
        grpc::serve(grpc_listener, state.engine.clone(), state.admin.clone(), envoy_authz, health, shutdown).await;

    let _ = stop_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        if let Err(err) = joined {
            tracing::error!(error = %err, "background task failed");
        }
    }
    if let Err(err) = state.last_used.flush(state.store.as_ref()).await {
        tracing::warn!(error = %err, "final last_used_at flush failed");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Pings the database and reports health accordingly, until told to stop.
async fn probe_health(
    store: Arc<SqlStore>,
    reporter: HealthReporter,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every) => {}
        }
        let now_healthy = store.ping().await.is_ok();
        if now_healthy != healthy {
            if now_healthy {
                tracing::info!("database reachable again");
            } else {
                tracing::warn!("database unreachable");
            }
            grpc::set_serving(&reporter, now_healthy).await;
            healthy = now_healthy;
        }
    }
}

/// Writes batched `last_used_at` times every `every`, until told to stop.
async fn flush_last_used(
    recorder: Arc<LastUsedRecorder>,
    store: Arc<SqlStore>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every) => {}
        }
        match recorder.flush(store.as_ref()).await {
            Ok(0) => {}
            Ok(written) => tracing::debug!(written, "last_used_at flushed"),
            Err(err) => tracing::warn!(error = %err, "last_used_at flush failed; will retry"),
        }
    }
}

/// Creates the platform organization and its first admin key; returns the key, shown once.
pub async fn bootstrap(config: &Config, clock: Arc<dyn Clock>, org: &str, force: bool) -> Result<String, AppError> {
    let store = open_store(config, config.database.run_migrations).await?;
    let state = build_state(config, store, clock)?;
    let issued = state.admin.bootstrap(org, force).await?;
    Ok(issued.api_key)
}
