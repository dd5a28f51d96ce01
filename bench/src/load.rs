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

/// What one request came to.
pub enum Outcome {
    Answered { allowed: bool, latency_us: u64 },
    Failed(String),
}

impl Stats {
    /// Counts one request's outcome (a few words, so that recording costs the client nothing).
    fn add(&mut self, outcome: Outcome, expect_allowed: Option<bool>) {
        match outcome {
            Outcome::Answered { allowed, latency_us } => {
                if expect_allowed.is_some_and(|expected| expected != allowed) {
                    self.unexpected += 1;
                }
                self.ok += 1;
                let _ = self.latency_us.record(latency_us.max(1));
            }
            Outcome::Failed(error) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(error);
                }
            }
        }
    }
}

async fn one(client: &mut AuthServiceClient<Channel>, request: pb::AuthorizeRequest, started: Instant) -> Outcome {
    match client.authorize(request).await {
        Ok(response) => Outcome::Answered {
            allowed: response.into_inner().decision.is_some_and(|d| d.allowed),
            latency_us: started.elapsed().as_micros() as u64,
        },
        Err(status) => Outcome::Failed(format!("{:?}: {}", status.code(), status.message())),
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
    closed_loop_until(clients, concurrency, Some(duration), u64::MAX, make, expect_allowed).await
}

/// A closed loop that sends requests `0..count` once each, however long that takes: for work that
/// must not repeat (the first use of each of `count` keys).
pub async fn closed_loop_each(
    clients: &[AuthServiceClient<Channel>],
    concurrency: usize,
    count: u64,
    make: MakeRequest,
    expect_allowed: Option<bool>,
) -> Stats {
    closed_loop_until(clients, concurrency, None, count, make, expect_allowed).await
}

async fn closed_loop_until(
    clients: &[AuthServiceClient<Channel>],
    concurrency: usize,
    duration: Option<Duration>,
    count: u64,
    make: MakeRequest,
    expect_allowed: Option<bool>,
) -> Stats {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = duration.map(|duration| start + duration);
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let mut client = clients[worker % clients.len()].clone();
        let (make, counter) = (make.clone(), counter.clone());
        workers.spawn(async move {
            let mut stats = Stats::new();
            while deadline.is_none_or(|deadline| Instant::now() < deadline) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let sent = Instant::now();
                stats.add(one(&mut client, make(n), sent).await, expect_allowed);
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
    // Each request's task returns a few words, recorded here into one histogram.
    let mut inflight = JoinSet::new();
    let mut total = Stats::new();
    for n in 0..total_requests {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let mut client = clients[(n as usize) % clients.len()].clone();
        let request = make(n);
        inflight.spawn(async move { one(&mut client, request, scheduled).await });
        while let Some(Ok(outcome)) = inflight.try_join_next() {
            total.add(outcome, expect_allowed);
        }
    }
    while let Some(Ok(outcome)) = inflight.join_next().await {
        total.add(outcome, expect_allowed);
    }
    total.elapsed = start.elapsed();
    total
}
