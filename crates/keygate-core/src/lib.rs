//! The pure core: the decision engine, the admin use cases and the ports they need.
//! Nothing here knows tonic, axum, SeaORM or Redis: Cargo holds it to that, since this crate
//! does not depend on them.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod clock;
pub mod credentials;
pub mod engine;
pub mod error;
pub mod gateway;
pub mod instruments;
pub mod known_ids;
pub mod last_used;
pub mod limits;
pub mod model;
pub mod oauth;
pub mod per_second;
pub mod policy;
pub mod ports;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokens;
pub mod validate;
pub mod verdicts;
