//! The load generator: closed loop (fixed concurrency, as fast as answers come) for throughput,
//! and open loop (requests sent on a fixed schedule, latency measured from the scheduled send
//! time, so a stalled server cannot hide its queueing) for latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use keygate::proto::keygate_v1 as pb;
use pb::auth_service_client::AuthServiceClient;
use tokio::task::JoinSet;
use tonic::transport::Channel;

/// Makes the n-th request.
pub type MakeRequest = Arc<dyn Fn(u64) -> pb::AuthorizeRequest + Send + Sync>;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    /// Answers whose decision did not match what the run expected.
    pub unexpected: u64,
    /// The first error's text, to say what went wrong.
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            ok: 0,
            errors: 0,
            unexpected: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.unexpected += other.unexpected;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        let _ = self.latency_us.add(&other.latency_us);
    }

    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Merges what the workers measured; the run took from `start` until the last finished.
pub async fn gather(mut workers: JoinSet<Stats>, start: Instant) -> Stats {
    let mut total = Stats::new();
    while let Some(Ok(stats)) = workers.join_next().await {
        total.merge(&stats);
    }
    total.elapsed = start.elapsed();
    total
}

/// Opens `connections` HTTP/2 connections to `addr`.
pub async fn connect(addr: &str, connections: usize) -> Vec<AuthServiceClient<Channel>> {
    let mut clients = Vec::new();
    for _ in 0..connections.max(1) {
        let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
        clients.push(AuthServiceClient::new(channel));
    }
    clients
}

async fn one(
    client: &mut AuthServiceClient<Channel>,
    request: pb::AuthorizeRequest,
    expect_allowed: Option<bool>,
    stats: &mut Stats,
    started: Instant,
) {
    match client.authorize(request).await {
        Ok(response) => {
            let allowed = response.into_inner().decision.is_some_and(|d| d.allowed);
            if expect_allowed.is_some_and(|expected| expected != allowed) {
                stats.unexpected += 1;
            }
            stats.ok += 1;
            let _ = stats.latency_us.record(started.elapsed().as_micros().max(1) as u64);
        }
        Err(status) => {
            stats.errors += 1;
            if stats.first_error.is_none() {
                stats.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }
}

/// `concurrency` workers each send the next request as soon as the last is answered.
pub async fn closed_loop(
    clients: &[AuthServiceClient<Channel>],
    concurrency: usize,
    duration: Duration,
    make: MakeRequest,
    expect_allowed: Option<bool>,
) -> Stats {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let mut client = clients[worker % clients.len()].clone();
        let (make, counter) = (make.clone(), counter.clone());
        workers.spawn(async move {
            let mut stats = Stats::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                one(&mut client, make(n), expect_allowed, &mut stats, sent).await;
            }
            stats
        });
    }
    gather(workers, start).await
}

/// Sends `rate` requests per second for `duration`, each on its schedule whether or not earlier
/// ones were answered; latency counts from the scheduled send time.
pub async fn open_loop(
    clients: &[AuthServiceClient<Channel>],
    rate: f64,
    duration: Duration,
    make: MakeRequest,
    expect_allowed: Option<bool>,
) -> Stats {
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let total_requests = (rate * duration.as_secs_f64()) as u64;
    let mut inflight = JoinSet::new();
    let mut total = Stats::new();
    for n in 0..total_requests {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let mut client = clients[(n as usize) % clients.len()].clone();
        let request = make(n);
        inflight.spawn(async move {
            let mut stats = Stats::new();
            one(&mut client, request, expect_allowed, &mut stats, scheduled).await;
            stats
        });
        while let Some(Ok(stats)) = inflight.try_join_next() {
            total.merge(&stats);
        }
    }
    while let Some(Ok(stats)) = inflight.join_next().await {
        total.merge(&stats);
    }
    total.elapsed = start.elapsed();
    total
}
