//! keygate: a gRPC authorization service. API keys, OAuth2 clients and JWTs, checked for backend
//! services over gRPC and for Envoy as an external authorizer.
//!
//! Layout, read from the bottom up: the core (crate `keygate_core`) decides and runs the admin
//! use cases over its ports; [`adapters`] implement those ports (SQL, Redis, JWKS, the policy
//! file); [`transport`] is TLS and the listeners both edges share; [`grpc`] and [`http`] are the
//! edges; [`observability`] is logs, traces and the metrics registry; [`config`] loads settings;
//! [`app`] wires it all; [`healthcheck`] asks a running server how it is; [`cli`] is the admin
//! command line, a gRPC client of a running server.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod adapters;
pub mod app;
pub mod cli;
pub mod config;
pub mod grpc;
pub mod healthcheck;
pub mod http;
pub mod observability;
pub mod proto;
pub mod tasks;
pub mod transport;
