//! Serving: health, the route policy, TLS and the background tasks set up, the gRPC and HTTP
//! servers run on the bound listeners, and the shutdown that drains them and stops every task.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::background::{
    KEY_REFRESH_INTERVAL, SQLITE_RELEARN_INTERVAL, flush_last_used, flush_usage, learn_ids, probe_health,
    refresh_signing_keys, relearn_ids,
};
use super::{AppError, build_state, open_store};
use crate::adapters::policy_file;
use crate::config::{Config, ShutdownConfig};
use crate::grpc::envoy::EnvoyAuthz;
use crate::grpc::{self, HealthState, Readiness};
use keygate_core::policy::Policy;
use keygate_core::ports::Clock;

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
