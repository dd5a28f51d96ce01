//! One copy of what many cached keys have in common: a million keys of ten organizations hold
//! ten organization names, and as many scope lists as differ. What no verdict holds any more is
//! let go once the sets have doubled since they were last pruned, so they stay bounded by what
//! is cached however many organizations and scope lists come and go.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The shared organization names and scope lists.
#[derive(Debug, Default)]
pub(super) struct Shared {
    organizations: Mutex<Interned<str>>,
    scopes: Mutex<Interned<[String]>>,
}

impl Shared {
    pub(super) fn organization(&self, name: &str) -> Arc<str> {
        lock(&self.organizations).get(name, |name| Arc::from(name))
    }

    pub(super) fn scopes(&self, scopes: &[String]) -> Arc<[String]> {
        lock(&self.scopes).get(scopes, |scopes| Arc::from(scopes))
    }

    /// How many distinct organization names and scope lists are held (for tests).
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn held(&self) -> (usize, usize) {
        (lock(&self.organizations).values.len(), lock(&self.scopes).values.len())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Values handed out as shared copies.
#[derive(Debug)]
struct Interned<T: ?Sized> {
    values: HashSet<Arc<T>, foldhash::fast::RandomState>,
    /// The size at which to let go of what only this set still holds.
    prune_at: usize,
}

impl<T: ?Sized> Default for Interned<T> {
    fn default() -> Self {
        Self { values: HashSet::default(), prune_at: MIN_PRUNE_AT }
    }
}

/// Below this many values, pruning is not worth a pass.
const MIN_PRUNE_AT: usize = 64;

impl<T: ?Sized + Hash + Eq> Interned<T> {
    fn get(&mut self, value: &T, copy: impl FnOnce(&T) -> Arc<T>) -> Arc<T> {
        if let Some(shared) = self.values.get(value) {
            return shared.clone();
        }
        if self.values.len() >= self.prune_at {
            self.values.retain(|shared| Arc::strong_count(shared) > 1);
            self.prune_at = (self.values.len() * 2).max(MIN_PRUNE_AT);
        }
        let shared = copy(value);
        self.values.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy() {
        let shared = Shared::default();
        let a = shared.organization("platform");
        let b = shared.organization("platform");
        assert!(Arc::ptr_eq(&a, &b));
        let scopes = vec!["graph:read".to_owned(), "graph:write".to_owned()];
        assert!(Arc::ptr_eq(&shared.scopes(&scopes), &shared.scopes(&scopes.clone())));
        assert!(!Arc::ptr_eq(&shared.scopes(&scopes), &shared.scopes(&scopes[..1])));
        assert_eq!(shared.held(), (1, 2));
    }

    #[test]
    fn what_nothing_holds_is_let_go() {
        let shared = Shared::default();
        let kept: Vec<Arc<str>> = (0..10).map(|n| shared.organization(&format!("kept-{n}"))).collect();
        for n in 0..10_000 {
            drop(shared.organization(&format!("gone-{n}")));
        }
        let (organizations, _) = shared.held();
        assert!(organizations < 2 * MIN_PRUNE_AT + kept.len(), "{organizations} held");
        for (n, kept) in kept.iter().enumerate() {
            assert!(Arc::ptr_eq(kept, &shared.organization(&format!("kept-{n}"))), "still shared");
        }
    }
}
