//! Verifications in flight, one per digest: callers that miss together wait for one
//! verification and share its result, an error included (a database timing out is waited for
//! once, not once per caller in turn). Nothing here outlives its callers: the last one to leave
//! takes the flight away, finished or not, so cancelled requests leave nothing behind.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;

use super::Digest;

/// The result a flight's callers share.
pub(super) type Outcome<V, E> = OnceCell<Result<V, E>>;

/// Flights by digest. Each is an [`Outcome`] of the error type its callers use, kept as `Any`
/// so that one map serves them all.
#[derive(Default)]
pub(super) struct Flights {
    flights: Mutex<HashMap<Digest, Arc<dyn Any + Send + Sync>, foldhash::fast::RandomState>>,
}

/// A caller's place in a flight; leaving (dropping it) takes the flight away if it was the last.
pub(super) struct Seat<'a, V: Send + Sync + 'static, E: Send + Sync + 'static> {
    flights: &'a Flights,
    digest: Digest,
    pub(super) outcome: Arc<Outcome<V, E>>,
}

impl Flights {
    /// A seat on the flight for `digest`, started if none is in the air.
    pub(super) fn join<V: Send + Sync + 'static, E: Send + Sync + 'static>(&self, digest: Digest) -> Seat<'_, V, E> {
        let mut flights = self.lock();
        let joined = flights.get(&digest).and_then(|flight| flight.clone().downcast::<Outcome<V, E>>().ok());
        let outcome = match joined {
            Some(outcome) => outcome,
            // A flight of another error type for the same digest (never, in practice) is left
            // alone: this caller flies on its own.
            None if flights.contains_key(&digest) => Arc::new(OnceCell::new()),
            None => {
                let outcome = Arc::new(OnceCell::new());
                flights.insert(digest, outcome.clone());
                outcome
            }
        };
        Seat { flights: self, digest, outcome }
    }

    /// Flights in the air, and the callers seated on the one for `digest` (for tests).
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn in_air(&self, digest: Digest) -> (usize, usize) {
        let flights = self.lock();
        // Every seat holds the flight once, and the map once more.
        let seated = flights.get(&digest).map_or(0, |flight| Arc::strong_count(flight) - 1);
        (flights.len(), seated)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Digest, Arc<dyn Any + Send + Sync>, foldhash::fast::RandomState>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<V: Send + Sync + 'static, E: Send + Sync + 'static> Drop for Seat<'_, V, E> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock();
        let Some(flight) = flights.get(&self.digest) else { return };
        // The map's reference and this seat's are the last two: nobody else waits on it.
        let ours = std::ptr::addr_eq(Arc::as_ptr(flight), Arc::as_ptr(&self.outcome));
        if ours && Arc::strong_count(&self.outcome) <= 2 {
            flights.remove(&self.digest);
        }
    }
}
