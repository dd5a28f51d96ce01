//! keygate's integration tests: the real server on a `127.0.0.1:0` port, driven over gRPC, against
//! SQLite and PostgreSQL; end-to-end tests of the built binary with grpcurl and OAuth2/JWT client
//! libraries, behind a real Envoy; the Helm chart; the docs' links and diagrams.

mod support;

mod audit;
mod bad_input;
mod cache;
mod ceilings;
mod cli;
mod console;
mod docs;
mod e2e_grpcurl;
mod e2e_oauth;
mod envoy;
mod envoy_bypass;
mod fault_clock;
mod fault_jwks;
mod fault_postgres;
mod fault_redis;
mod fault_replica_kill;
mod fault_sqlite;
mod forged_secrets;
mod helm;
mod image;
mod issuers;
mod keys;
mod known_ids;
mod kubelet;
mod layout;
mod lifetimes;
mod limits;
mod limits_redis;
mod metrics;
mod oauth;
mod organizations;
mod outage;
mod propagation;
mod quota_crash;
mod readme;
mod reference_curl;
mod rest_admin;
mod rolling;
mod schemathesis;
mod secrets;
mod settings_table;
mod shutdown;
mod signing_keys;
mod store;
mod store_conformance;
mod tls;
mod traces;
