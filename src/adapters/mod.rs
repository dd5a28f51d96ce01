//! The adapters: the core's ports implemented on the world, grouped by port. SQL for the stores,
//! Redis for the shared rate-limit counters (the in-memory ones live in the core beside their
//! port), HTTP and files for outside issuers' JWKS, and the route-policy file.

pub mod jwks;
pub mod policy_file;
pub mod redis;
pub mod sql;
