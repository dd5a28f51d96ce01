//! The pure core: the decision engine, the admin use cases and the ports they need.
//! Nothing here knows tonic, axum, SeaORM or Redis: Cargo holds it to that, since this crate
//! does not depend on them.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod argon2_workers;
pub mod audit;
pub mod client_credential;
pub mod clock;
pub mod credential;
pub mod engine;
pub mod error;
pub mod gateway;
pub mod hashing;
pub mod issuers;
pub mod last_used;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod oauth;
pub mod policy;
pub mod ports;
pub mod scopes;
pub mod sealing;
pub mod signing;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokens;
pub mod validate;
pub mod verdicts;
