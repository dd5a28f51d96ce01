//! Storage adapters implementing `core::ports::Store`.

pub mod entities;
pub mod notify;
pub mod sql;

pub use sql::SqlStore;
