//! The credentials keygate issues and checks: API keys (format, parsing, checksum), OAuth2
//! clients' ids and secrets, scopes, and the argon2id hashing of stored secrets on workers of
//! their own.

pub mod api_key;
pub mod argon2_workers;
pub mod client;
pub mod hashing;
pub mod scopes;
