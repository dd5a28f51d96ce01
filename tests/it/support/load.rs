//! Steady Authorize traffic for fault tests: one loop per credential, each call with a deadline,
//! every answer recorded with when it came and how long it took, so that a test can say what
//! was answered before, during and after a fault, and how fast.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keygate::proto::keygate_v1 as pb;
use pb::auth_service_client::AuthServiceClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

use super::bearer;

/// What one call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Allowed,
    Denied(pb::DecisionReason),
    /// No decision, and the caller's failure mode applies.
    Unavailable,
    /// Any other error (a deadline exceeded included), by its code's number: never acceptable
    /// in these tests.
    Error(i32),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allowed => f.write_str("allowed"),
            Self::Denied(reason) => write!(f, "denied {}", reason.as_str_name()),
            Self::Unavailable => f.write_str("UNAVAILABLE"),
            Self::Error(code) => write!(f, "error {:?}", Code::from(*code)),
        }
    }
}

/// One answer.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the call was sent.
    pub at: Instant,
    pub took: Duration,
    pub outcome: Outcome,
}

/// What every call of a loop got, in order.
pub type Samples = Arc<Mutex<Vec<Sample>>>;

/// The deadline every call carries.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// Sends one Authorize for `credential` needing `scope`, with [`CALL_DEADLINE`].
pub async fn call(client: &mut AuthServiceClient<Channel>, credential: &str, scope: &str) -> Outcome {
    let mut request = tonic::Request::new(pb::AuthorizeRequest {
        credentials: Some(bearer(credential)),
        required_scopes: vec![scope.to_owned()],
        ..Default::default()
    });
    request.set_timeout(CALL_DEADLINE);
    match client.authorize(request).await {
        Ok(response) => match response.into_inner().decision {
            Some(decision) if decision.allowed => Outcome::Allowed,
            Some(decision) => Outcome::Denied(decision.reason()),
            None => Outcome::Error(Code::Internal as i32),
        },
        Err(status) if status.code() == Code::Unavailable => Outcome::Unavailable,
        Err(status) => Outcome::Error(status.code() as i32),
    }
}

/// Loops of Authorize calls, one per credential, until stopped.
pub struct Load {
    loops: BTreeMap<String, Samples>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts a loop per `(label, credential)`, each needing `scope` and pausing `pause`
    /// between calls (so that two cores also run the server and the fault).
    pub fn start(channel: &Channel, credentials: &[(&str, &str)], scope: &str, pause: Duration) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut loops = BTreeMap::new();
        let mut tasks = Vec::new();
        for (label, credential) in credentials {
            let samples: Samples = Arc::default();
            loops.insert((*label).to_owned(), samples.clone());
            let (mut client, credential, scope) =
                (AuthServiceClient::new(channel.clone()), (*credential).to_owned(), scope.to_owned());
            let stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                while !*stopped.borrow() {
                    let at = Instant::now();
                    let outcome = call(&mut client, &credential, &scope).await;
                    samples.lock().expect("samples").push(Sample { at, took: at.elapsed(), outcome });
                    tokio::time::sleep(pause).await;
                }
            }));
        }
        Self { loops, stop, tasks }
    }

    /// A copy of what `label`'s loop got so far.
    pub fn samples(&self, label: &str) -> Vec<Sample> {
        self.loops[label].lock().expect("samples").clone()
    }

    /// The first answer of `label`'s loop sent at or after `since` that satisfies `wanted`,
    /// waited for up to `within`.
    pub async fn first(
        &self,
        label: &str,
        since: Instant,
        within: Duration,
        wanted: impl Fn(Outcome) -> bool,
    ) -> Option<Sample> {
        let deadline = Instant::now() + within;
        loop {
            let found = self.samples(label).into_iter().find(|s| s.at >= since && wanted(s.outcome));
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every loop and waits for them.
    pub async fn stop(self) -> BTreeMap<String, Vec<Sample>> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.expect("load loop");
        }
        self.loops.into_iter().map(|(label, samples)| (label, samples.lock().expect("samples").clone())).collect()
    }
}

/// The outcomes of the calls answered in `[from, to)`, counted.
pub fn tally(samples: &[Sample], from: Instant, to: Instant) -> BTreeMap<Outcome, usize> {
    let mut counts = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.at + s.took >= from && s.at + s.took < to) {
        *counts.entry(sample.outcome).or_insert(0) += 1;
    }
    counts
}

/// `tally` as `allowed 12, UNAVAILABLE 3`.
pub fn show(counts: &BTreeMap<Outcome, usize>) -> String {
    if counts.is_empty() {
        return "nothing".to_owned();
    }
    counts.iter().map(|(outcome, n)| format!("{outcome} {n}")).collect::<Vec<_>>().join(", ")
}

/// The longest a call sent in `[from, to)` took.
pub fn slowest(samples: &[Sample], from: Instant, to: Instant) -> Duration {
    samples.iter().filter(|s| s.at >= from && s.at < to).map(|s| s.took).max().unwrap_or_default()
}
