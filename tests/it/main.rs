//! keygate's integration tests: the real server on a `127.0.0.1:0` port, driven over gRPC, against
//! SQLite and PostgreSQL; and end-to-end tests of the built binary with grpcurl and behind a real Envoy.

mod support;

mod cache;
mod e2e_grpcurl;
mod envoy;
mod keys;
mod organizations;
mod outage;
mod propagation;
mod readme;
mod secrets;
mod store;
