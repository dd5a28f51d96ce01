//! Logs, traces and metrics: the tracing subscriber with its OpenTelemetry export, and the
//! Prometheus registry the edges and the core's instruments report to.

pub mod denials;
pub mod metrics;
pub mod telemetry;
