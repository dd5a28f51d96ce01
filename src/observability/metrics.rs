//! Metrics in the Prometheus/OpenMetrics text format. The core's components own their
//! instruments (`keygate_core::instruments`: the engine its decisions, the verdict cache its hits,
//! misses and propagation delays, the hasher its argon2 timings); [`Metrics`] registers them,
//! records requests at the edges, and renders the text for `/metrics`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use keygate_core::instruments::{
    self, CacheInstruments, HashingInstruments, LabeledCounters, LimitsInstruments, ReasonCounters,
};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The edges' latency histograms, on the core's buckets (50 µs to about 1.6 s).
fn latency_histogram() -> Histogram {
    Histogram::new(instruments::LATENCY_BUCKETS)
}

/// A decision's reason (or an admin refusal's), as a label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// One of the core's instruments, as Prometheus sees it.
#[derive(Debug)]
enum Exported {
    Counter(instruments::Counter),
    Gauge(instruments::Gauge),
    Histogram(instruments::Histogram),
    /// Counters by `reason`, only those counted so far.
    Reasons(Arc<ReasonCounters>),
    Labeled(Arc<LabeledCounters>),
}

impl Exported {
    fn by_reason(&self) -> Option<Vec<(&'static str, u64)>> {
        match self {
            Exported::Reasons(counters) => Some(counters.counted()),
            Exported::Labeled(counters) => Some(counters.counted()),
            _ => None,
        }
    }
}

impl EncodeMetric for Exported {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Exported::Counter(counter) => encoder.encode_counter::<NoLabelSet, _, u64>(&counter.get(), None),
            Exported::Gauge(gauge) => encoder.encode_gauge(&gauge.get()),
            Exported::Histogram(histogram) => {
                let snapshot = histogram.snapshot();
                encoder.encode_histogram::<NoLabelSet>(snapshot.sum, snapshot.count, &snapshot.buckets, None)
            }
            Exported::Reasons(_) | Exported::Labeled(_) => {
                for (reason, count) in self.by_reason().unwrap_or_default() {
                    let labels = ReasonLabels { reason };
                    encoder.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&count, None)?;
                }
                Ok(())
            }
        }
    }

    fn metric_type(&self) -> MetricType {
        match self {
            Exported::Gauge(_) => MetricType::Gauge,
            Exported::Histogram(_) => MetricType::Histogram,
            Exported::Counter(_) | Exported::Reasons(_) | Exported::Labeled(_) => MetricType::Counter,
        }
    }

    /// A family with nothing counted yet is left out, as prometheus-client's own families are.
    fn is_empty(&self) -> bool {
        self.by_reason().is_some_and(|counted| counted.is_empty())
    }
}

/// The edge a request came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Grpc,
    Http,
}

impl Edge {
    fn label(self) -> &'static str {
        match self {
            Edge::Grpc => "grpc",
            Edge::Http => "http",
        }
    }
}

/// One RPC's or route's instruments, looked up in their families once: its latency, and its
/// request counter for each status seen so far (a handful, so a list).
struct RouteInstruments {
    seconds: Histogram,
    requests: RwLock<Vec<(Cow<'static, str>, Counter)>>,
}

/// Each edge's routes by RPC path or route, keyed by a fast hasher (the keys are few and ours).
type RouteTable = RwLock<HashMap<Box<str>, RouteInstruments, foldhash::fast::RandomState>>;

/// One request at an edge: transport (`grpc`, `http`), the RPC or route, and its status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub transport: &'static str,
    pub rpc: String,
    pub code: Cow<'static, str>,
}

/// The latency of one RPC or route.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub transport: &'static str,
    pub rpc: String,
}

/// The database pool as seen at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

/// Reads the pool's state when metrics are scraped.
pub type PoolProbe = Arc<dyn Fn() -> PoolStats + Send + Sync>;

/// Every instrument, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// The instruments of `requests` and `request_seconds` per edge (by [`Edge`]) and route.
    routes: [RouteTable; 2],
    pool_size: Gauge,
    pool_idle: Gauge,
    pool: PoolProbe,
    database_up: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers the components' instruments and the edges' own.
    pub fn new(
        decisions: Arc<ReasonCounters>,
        admin_refusals: Arc<LabeledCounters>,
        cache: CacheInstruments,
        hashing: HashingInstruments,
        limits: LimitsInstruments,
        pool: PoolProbe,
    ) -> Self {
        let mut registry = Registry::with_prefix("keygate");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let (pool_size, pool_idle) = (Gauge::default(), Gauge::default());
        registry.register("requests", "Requests by transport, RPC or route, and status", requests.clone());
        registry.register("request_duration_seconds", "Request latency by transport and RPC", request_seconds.clone());
        registry.register("decisions", "Authorization decisions by reason", Exported::Reasons(decisions));
        registry.register(
            "admin_refusals",
            "Admin calls refused without an audit entry: unauthenticated, or by a credential with no admin scope",
            Exported::Labeled(admin_refusals),
        );
        registry.register(
            "verdict_cache_lookups",
            "Credential look-ups in the verdict cache",
            Exported::Counter(cache.lookups),
        );
        registry.register(
            "verdict_cache_misses",
            "Look-ups that had to verify (database, argon2)",
            Exported::Counter(cache.misses),
        );
        registry.register(
            "verdict_cache_rejudged",
            "Verdicts of a changed key judged again from its record, with no argon2",
            Exported::Counter(cache.rejudged),
        );
        registry.register(
            "unknown_credentials_refused",
            "Credentials refused with no database read because no key or client has their id",
            Exported::Counter(cache.unknown_refused),
        );
        registry.register(
            "unknown_credential_reads",
            "Database reads that found no key or client with the presented id",
            Exported::Counter(cache.unknown_reads),
        );
        registry.register(
            "known_credential_ids",
            "Key and client ids this replica knows to exist",
            Exported::Gauge(cache.known_ids),
        );
        registry.register(
            "revocation_propagation_seconds",
            "Delay from a change committed on any replica to its cache invalidation here",
            Exported::Histogram(cache.propagation),
        );
        registry.register(
            "argon2_verifications",
            "argon2id verifications run",
            Exported::Counter(hashing.verifications),
        );
        registry.register(
            "argon2_refused",
            "Verifications refused because the queue was full",
            Exported::Counter(hashing.refused),
        );
        registry.register(
            "argon2_duration_seconds",
            "argon2id verification time",
            Exported::Histogram(hashing.seconds),
        );
        registry.register(
            "limits_backend_up",
            "Whether the rate-limit counters' backend answers",
            Exported::Gauge(limits.backend_up.clone()),
        );
        registry.register(
            "limits_fallback_decisions",
            "Admissions decided with local limits because Redis was unreachable",
            Exported::Counter(limits.fallback_decisions),
        );
        if limits.redis {
            registry.register(
                "redis_up",
                "Whether Redis, home of the shared counters, answers",
                Exported::Gauge(limits.backend_up),
            );
        }
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "Whether the database answers this replica's health probe",
            database_up.clone(),
        );
        registry.register("db_pool_connections", "Open database connections", pool_size.clone());
        registry.register("db_pool_idle_connections", "Idle database connections", pool_idle.clone());
        let routes = Default::default();
        Self { registry, requests, request_seconds, routes, pool_size, pool_idle, pool, database_up }
    }

    /// 1 while the database answers the health probe, 0 while it does not.
    pub fn database_up(&self) -> &Gauge {
        &self.database_up
    }

    /// Records one request at an edge.
    pub fn request(&self, edge: Edge, rpc: &str, code: Cow<'static, str>, took: Duration) {
        let table = &self.routes[edge as usize];
        // Under the read lock once the route has been seen (every request but its first).
        if let Some(route) = table.read().unwrap_or_else(PoisonError::into_inner).get(rpc) {
            return self.record(route, edge, rpc, code, took);
        }
        let mut routes = table.write().unwrap_or_else(PoisonError::into_inner);
        let route = routes.entry(rpc.into()).or_insert_with(|| {
            let labels = RouteLabels { transport: edge.label(), rpc: rpc.to_owned() };
            RouteInstruments {
                seconds: self.request_seconds.get_or_create(&labels).clone(),
                requests: RwLock::default(),
            }
        });
        self.record(route, edge, rpc, code, took);
    }

    fn record(&self, route: &RouteInstruments, edge: Edge, rpc: &str, code: Cow<'static, str>, took: Duration) {
        route.seconds.observe(took.as_secs_f64());
        let seen = route.requests.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = seen.iter().find(|(seen, _)| *seen == code) {
            counter.inc();
            return;
        }
        drop(seen);
        let mut seen = route.requests.write().unwrap_or_else(PoisonError::into_inner);
        let labels = RequestLabels { transport: edge.label(), rpc: rpc.to_owned(), code };
        let counter = self.requests.get_or_create(&labels).clone();
        counter.inc();
        // Another request may have added the same status meanwhile: its counter is this one.
        if !seen.iter().any(|(seen, _)| *seen == labels.code) {
            seen.push((labels.code, counter));
        }
    }

    /// The OpenMetrics text of every instrument.
    pub fn render(&self) -> String {
        let pool = (self.pool)();
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle.set(i64::from(pool.idle));
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %err, "metrics could not be rendered");
        }
        text
    }
}
