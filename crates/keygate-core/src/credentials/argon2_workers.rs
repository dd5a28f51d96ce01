//! The threads argon2 runs on: a fixed number of their own, at a lower CPU priority than the async
//! executor, so that a burst of new or made-up credentials takes only the CPU that cached traffic
//! leaves over (tokio's blocking pool would run it at the executor's priority, and is shared).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::CoreError;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads, joined when dropped (after the work already handed to them).
pub struct Argon2Workers {
    /// `None` only while dropping: closing the channel is what ends the workers.
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Argon2Workers {
    /// Starts `threads` workers at `nice` (0 to 19; Linux only, elsewhere ignored).
    pub fn start(threads: usize, nice: i32) -> Result<Self, CoreError> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = (0..threads.max(1))
            .map(|n| {
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("keygate-argon2-{n}"))
                    .spawn(move || work(&receiver, nice))
                    .map_err(|e| CoreError::Internal(format!("argon2 worker thread: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { jobs: Some(sender), threads })
    }

    /// Runs `job` on a worker and waits for its result without blocking the executor.
    pub async fn run<T, F>(&self, job: F) -> Result<T, CoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        if self.jobs.as_ref().is_none_or(|jobs| jobs.send(job).is_err()) {
            return Err(CoreError::Internal("argon2 workers stopped".into()));
        }
        result.await.map_err(|_| CoreError::Internal("argon2 computation failed".into()))
    }
}

impl Drop for Argon2Workers {
    fn drop(&mut self) {
        // Closing the channel ends each worker once it is idle.
        self.jobs.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, nice: i32) {
    lower_priority(nice);
    loop {
        let job = match jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panicking computation drops its result sender (its caller hears of it); the worker
        // stays.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

/// Sets this thread's `nice`: on Linux a thread id given to setpriority names one thread.
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    if let Err(err) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::warn!(error = %err, nice, "could not lower the argon2 workers' priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_at_the_given_priority_and_survives_a_panic() {
        let workers = Argon2Workers::start(2, 7).expect("workers");
        let nice =
            workers.run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid()))).await.expect("runs");
        #[cfg(target_os = "linux")]
        assert_eq!(nice.ok(), Some(7), "the worker thread's own nice value");
        let failed = workers.run(|| -> u32 { panic!("boom") }).await;
        assert!(matches!(failed, Err(CoreError::Internal(_))));
        assert_eq!(workers.run(|| 41 + 1).await.expect("still works"), 42);
    }
}
