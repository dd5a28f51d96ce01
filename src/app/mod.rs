//! Wiring: config -> store -> keyring, limiter, engine, admin and OAuth ([`build_state`], with
//! the keys from `keys.rs`); the servers on bound listeners ([`serve`], `serve.rs`), which owns
//! the periodic tasks of `background.rs` and joins them at shutdown; the one-shot commands
//! ([`bootstrap`], [`rotate_signing_key`], `commands.rs`).

mod background;
mod commands;
mod keys;
mod serve;

use std::sync::Arc;

use crate::adapters::policy_file::PolicyFileError;
use crate::adapters::redis::{OnOutage, RedisCounters, RedisSettings};
use crate::adapters::sql::SqlStore;
use crate::config::{Config, LimitsBackend, RedisFailureMode, chrono_duration};
use crate::grpc::GrpcError;
use crate::observability::metrics::Metrics;
use keygate_core::admin::{Admin, AdminParts};
use keygate_core::credentials::hashing::{Fingerprints, SecretHasher};
use keygate_core::credentials::scopes::ScopeRegistry;
use keygate_core::engine::{Engine, EngineParts};
use keygate_core::error::{CoreError, StoreError};
use keygate_core::instruments::LimitsInstruments;
use keygate_core::last_used::LastUsedRecorder;
use keygate_core::limits::Limiter;
use keygate_core::limits::memory::MemoryCounters;
use keygate_core::oauth::{OAuth, OAuthParts};
use keygate_core::ports::{ClientStore, Clock, Counters, Store};
use keygate_core::tokens::TokenVerifier;
use keygate_core::tokens::signing::{Keyring, KeyringSettings};
use keygate_core::verdicts::{VerdictCache, VerdictSettings};

pub use commands::{bootstrap, rotate_signing_key};
pub use serve::{Listeners, serve};

/// How long a replica waits before reloading signing keys again for an unknown `kid`.
const KEY_RELOAD_INTERVAL_SECS: i64 = 5;

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
    let kek = keys::key_encryption_key(config)?;
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
        retired_lifetime: token_settings.ttl
            + token_settings.leeway
            + chrono_duration(background::KEY_REFRESH_INTERVAL),
        min_reload_interval: chrono::Duration::seconds(KEY_RELOAD_INTERVAL_SECS),
    };
    let keyring = Arc::new(
        Keyring::open(keys::key_source(config, &store, kek, clock.as_ref())?, keyring_settings, clock.clone()).await?,
    );
    let issuers = keys::trusted_issuers(config, &clock)?;
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
