//! Storage adapters implementing the core's ports (`Store`, `ClientStore`, `SigningKeyStore`,
//! `AuditStore`, `UsageStore`).

pub mod audit;
pub mod clients;
pub mod entities;
pub mod notify;
pub mod quota_usage;
pub mod signing_keys;
pub mod sql;

pub use sql::SqlStore;
