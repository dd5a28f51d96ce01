//! Storage adapters implementing the core's ports (`Store`, `ClientStore`, `SigningKeyStore`,
//! `AuditStore`).

pub mod audit;
pub mod clients;
pub mod entities;
pub mod notify;
pub mod signing_keys;
pub mod sql;

pub use sql::SqlStore;
