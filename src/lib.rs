//! keygate: a gRPC authorization service. API keys, OAuth2 clients and JWTs, checked for backend
//! services over gRPC and for Envoy as an external authorizer.
//!
//! Layout: [`core`] is the pure decision logic and admin use cases over ports; [`store`] implements
//! the ports with SeaORM; [`limits_redis`] keeps rate-limit counters in Redis; [`jwks`] fetches
//! outside issuers' keys; [`grpc`] and [`http`] are the wire, over plain TCP or [`tls`]; [`app`]
//! wires them; [`healthcheck`] asks a running server how it is; [`config`] loads settings; [`telemetry`] logs and traces.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod config;
pub mod grpc;
pub mod healthcheck;
pub mod http;
pub mod jwks;
pub mod limits_redis;
pub mod policy_file;
pub mod proto;
pub mod store;
pub mod telemetry;
pub mod tls;
