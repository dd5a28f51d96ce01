//! What tests need beyond the ports: an in-memory store with the SQL store's semantics, and the
//! conformance suite that holds every store (in memory, SQLite, PostgreSQL) to the ports'
//! written contracts. Behind the `testing` feature, for the adapters' tests.

#[cfg(test)]
pub(crate) mod harness;
pub mod memory_store;
pub mod store_conformance;

#[cfg(test)]
mod gateway_tests;
#[cfg(test)]
mod issuer_tests;
#[cfg(test)]
mod limiter_tests;
#[cfg(test)]
mod oauth_tests;
#[cfg(test)]
mod verdict_tests;

pub use memory_store::MemoryStore;
