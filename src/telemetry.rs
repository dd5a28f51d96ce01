//! Logging and tracing: a `tracing` subscriber writing to standard error, as text or JSON; and,
//! when the OpenTelemetry settings ask for it, one span per gRPC call and HTTP request exported
//! over OTLP/gRPC, joined to the caller's trace through W3C `traceparent`.
//!
//! Only the request spans made here (target [`REQUEST_SPAN_TARGET`]) are exported, never log
//! events or other spans, so what leaves the process is exactly the fields declared below: the
//! method or route, status codes, the request id and the decision. None of them is a credential.

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogConfig, LogFormat, TracesConfig};

/// The target of request spans: the only spans exported, and never written to the log.
pub const REQUEST_SPAN_TARGET: &str = "keygate::request";
/// How long the exporter gets at shutdown to send what it still holds.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("traces: {0}")]
pub struct TelemetryError(String);

/// The installed trace pipeline, if any; flush it with [`Telemetry::shutdown`] before exiting.
#[must_use = "spans still batched are lost unless shutdown is called"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still batched (waiting at most a few seconds) and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // Shutting down blocks until the batch is sent, which needs the runtime's I/O.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT)).await;
        match flushed {
            Ok(Ok(())) => tracing::debug!("trace exporter flushed"),
            Ok(Err(err)) => tracing::warn!(error = %err, "trace exporter did not flush cleanly"),
            Err(err) => tracing::warn!(error = %err, "trace exporter flush task failed"),
        }
    }
}

/// Installs the global subscriber, logs only. A second call (tests start several servers) is a
/// no-op.
pub fn init(config: &LogConfig) {
    // Already installed: keep the first subscriber.
    drop(Registry::default().with(log_layer(config)).try_init());
}

/// Installs the global subscriber with trace export when `traces` asks for it (exporting starts
/// with the first span; an unreachable collector only costs dropped spans and a warning).
pub fn init_with_traces(log: &LogConfig, traces: &TracesConfig) -> Result<Telemetry, TelemetryError> {
    let Some(endpoint) = traces.export_endpoint() else {
        init(log);
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let batch = BatchConfigBuilder::default().with_scheduled_delay(Duration::from_millis(traces.schedule_delay_ms));
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch.build()).build();
    let resource = Resource::builder_empty()
        .with_service_name(traces.service_name.clone())
        .with_attributes(traces.resource_attributes.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(resource)
        .build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("keygate"))
        .with_filter(filter_fn(|meta| meta.is_span() && meta.target() == REQUEST_SPAN_TARGET));
    drop(Registry::default().with(log_layer(log)).with(spans).try_init());
    tracing::info!(endpoint, service = %traces.service_name, "exporting traces over otlp");
    Ok(Telemetry { provider: Some(provider) })
}

/// The log writer, filtered by `log.level`; request spans stay out of log lines.
fn log_layer(config: &LogConfig) -> Box<dyn Layer<Registry> + Send + Sync> {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = match format!("{REQUEST_SPAN_TARGET}=off").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match config.format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_filter(filter).boxed(),
    }
}

/// A request's span, carried in the request's extensions so handlers can record the decision.
#[derive(Clone, Debug)]
pub struct RequestSpan(pub Span);

impl RequestSpan {
    /// Records a decision (`allow` or `deny`) and its reason.
    pub fn record_decision(&self, allowed: bool, reason: &str) {
        self.0.record("keygate.decision", if allowed { "allow" } else { "deny" });
        self.0.record("keygate.reason", reason);
    }

    /// Records the request id the response carries.
    pub fn record_request_id(&self, request_id: &str) {
        self.0.record("keygate.request_id", request_id);
    }
}

/// W3C trace context from request headers (gRPC metadata are HTTP/2 headers).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes the caller's trace (from `traceparent`, `tracestate`) the parent of `span`.
fn join_caller_trace(span: &Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // Fails only for a span that already started, which this one has not.
    let _ = span.set_parent(parent);
}

/// The span of one gRPC call to `service`/`method`.
pub fn grpc_span(headers: &http::HeaderMap, service: &str, method: &str) -> Span {
    let span = tracing::info_span!(
        target: REQUEST_SPAN_TARGET,
        "grpc",
        otel.name = format!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        keygate.request_id = Empty,
        keygate.decision = Empty,
        keygate.reason = Empty,
    );
    join_caller_trace(&span, headers);
    span
}

/// Records a gRPC call's final status code on its span.
pub fn record_grpc_status(span: &Span, code: tonic::Code) {
    span.record("rpc.grpc.status_code", code as i64);
    // Server errors only; a refusal (UNAUTHENTICATED, …) is the service working.
    let failed = matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    );
    if failed {
        span.record("otel.status_code", "error");
    }
}

/// The span of one HTTP request to `route` (the matched route, or `other`).
pub fn http_span(headers: &http::HeaderMap, method: &http::Method, route: &str) -> Span {
    let span = tracing::info_span!(
        target: REQUEST_SPAN_TARGET,
        "http",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method.as_str(),
        http.route = route,
        http.response.status_code = Empty,
    );
    join_caller_trace(&span, headers);
    span
}

/// Records an HTTP response's status on its span.
pub fn record_http_status(span: &Span, status: http::StatusCode) {
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}
