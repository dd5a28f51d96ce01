//! Logging and tracing: a `tracing` subscriber writing to standard error, as text or JSON; and,
//! when the OpenTelemetry settings ask for it, one span per gRPC call and HTTP request exported
//! over OTLP (gRPC or HTTP/protobuf, plain or TLS), sampled as `traces.sampler` says and joined to
//! the caller's trace through W3C `traceparent`.
//!
//! Only the request spans made here (target [`REQUEST_SPAN_TARGET`]) are exported, never log
//! events or other spans, so what leaves the process is exactly the fields declared below: the
//! method or route, status codes, the request id and the decision. None of them is a credential.
//!
//! JSON log lines written inside a request carry its `trace_id` and `span_id`. When spans are not
//! exported, a request whose caller sent `traceparent` still runs in the caller's trace: its log
//! lines carry the caller's `trace_id`, and no `span_id`, as keygate has no span of its own.
//!
//! The exporter is configured from [`TracesConfig`] alone: the crate also reads some `OTEL_`
//! variables by itself, so the values it would take from them are passed explicitly, and the
//! headers it would add from `OTEL_EXPORTER_OTLP_HEADERS` are replaced by keygate's on every
//! export (the gRPC interceptor and the HTTP client below).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use tracing::field::Empty;
use tracing::{Event, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogConfig, LogFormat, OtlpHeaders, OtlpProtocol, TracesConfig, TracesSampler};

/// The target of request spans: the only spans exported, and never written to the log.
pub const REQUEST_SPAN_TARGET: &str = "keygate::request";
/// How long the exporter gets at shutdown to send what it still holds.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The user agent of exports.
const USER_AGENT: &str = concat!("keygate/", env!("CARGO_PKG_VERSION"), " (opentelemetry-otlp)");

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
    let exporter = exporter(traces, &endpoint)?;
    let batch = BatchConfigBuilder::default().with_scheduled_delay(traces.schedule_delay);
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch.build()).build();
    let resource = Resource::builder_empty()
        .with_service_name(traces.service_name.clone())
        .with_attributes(traces.resource_attributes.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(traces))
        .with_resource(resource)
        .build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("keygate"))
        .with_filter(filter_fn(|meta| meta.is_span() && meta.target() == REQUEST_SPAN_TARGET));
    drop(Registry::default().with(log_layer(log)).with(spans).try_init());
    let headers = traces.headers.names().collect::<Vec<_>>().join(",");
    tracing::info!(
        endpoint,
        protocol = traces.protocol.as_str(),
        sampler = traces.sampler.as_str(),
        ratio = traces.ratio(),
        headers,
        service = %traces.service_name,
        "exporting traces over otlp"
    );
    Ok(Telemetry { provider: Some(provider) })
}

/// The sampler `traces.sampler` and `traces.sampler_arg` name.
fn sampler(traces: &TracesConfig) -> Sampler {
    let ratio = traces.ratio();
    match traces.sampler {
        TracesSampler::AlwaysOn => Sampler::AlwaysOn,
        TracesSampler::AlwaysOff => Sampler::AlwaysOff,
        TracesSampler::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
        TracesSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        TracesSampler::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TracesSampler::ParentBasedTraceIdRatio => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
    }
}

/// The OTLP exporter for `endpoint`, every option given explicitly so that none is taken from
/// the environment behind the configuration's back.
fn exporter(traces: &TracesConfig, endpoint: &str) -> Result<SpanExporter, TelemetryError> {
    let timeout = traces.timeout;
    let ca = match &traces.certificate {
        Some(path) => Some(read_certificate(path)?),
        None => None,
    };
    let tls = endpoint.starts_with("https://");
    let built = match traces.protocol {
        OtlpProtocol::Grpc => {
            let mut builder = SpanExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc)
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .with_interceptor(ExactMetadata(grpc_metadata(&traces.headers)?));
            if tls {
                let config = tonic::transport::ClientTlsConfig::new();
                builder = builder.with_tls_config(match ca {
                    Some(pem) => config.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                    None => config.with_native_roots(),
                });
            }
            builder.build()
        }
        OtlpProtocol::HttpProtobuf => {
            let runtime = tokio::runtime::Handle::try_current()
                .map_err(|_| TelemetryError("the OTLP/HTTP exporter needs the tokio runtime".to_owned()))?;
            let client = ExactHeaders {
                client: http_client(ca.as_deref(), timeout)?,
                headers: http_headers(&traces.headers)?,
                runtime,
            };
            SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .with_http_client(client)
                .build()
        }
    };
    built.map_err(|e| TelemetryError(e.to_string()))
}

/// The PEM CA file of `traces.certificate`.
fn read_certificate(path: &Path) -> Result<Vec<u8>, TelemetryError> {
    let pem = std::fs::read(path).map_err(|e| TelemetryError(format!("cannot read {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(TelemetryError(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(pem)
}

/// The HTTP client of OTLP/HTTP exports: rustls, trusting `ca` alone when given, else the
/// system's roots (and the bundled Mozilla ones). It follows no redirect, which would carry the
/// headers elsewhere, and no proxy: keygate's environment is read in `config/load.rs` only.
fn http_client(ca: Option<&[u8]>, timeout: Duration) -> Result<reqwest::Client, TelemetryError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(pem) = ca {
        let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| TelemetryError(e.to_string()))?;
        builder = builder.tls_built_in_root_certs(false);
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| TelemetryError(e.to_string()))
}

/// `traces.headers` as HTTP headers, with keygate's user agent.
fn http_headers(headers: &OtlpHeaders) -> Result<http::HeaderMap, TelemetryError> {
    let mut map = http::HeaderMap::new();
    map.insert(http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT));
    for (name, value) in &headers.0 {
        // The loader checked both; a failure here names the header, never its value.
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| TelemetryError(format!("header {name:?} is not a header name")))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| TelemetryError(format!("header {name:?} has a bad value")))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// `traces.headers` as gRPC metadata.
fn grpc_metadata(headers: &OtlpHeaders) -> Result<tonic::metadata::MetadataMap, TelemetryError> {
    Ok(tonic::metadata::MetadataMap::from_headers(http_headers(headers)?))
}

/// Sets each export's gRPC metadata to keygate's headers, replacing what the exporter added from
/// the environment.
#[derive(Clone)]
struct ExactMetadata(tonic::metadata::MetadataMap);

impl tonic::service::Interceptor for ExactMetadata {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        *request.metadata_mut() = self.0.clone();
        Ok(request)
    }
}

/// Sends OTLP/HTTP exports with keygate's headers only: the exporter's own content type and
/// encoding are kept, the headers it added from the environment are replaced.
struct ExactHeaders {
    client: reqwest::Client,
    headers: http::HeaderMap,
    /// The batch processor exports from a thread of its own, outside the runtime reqwest's I/O
    /// needs: each request runs on the runtime, and the export waits for it.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for ExactHeaders {
    // The headers may hold credentials: their names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactHeaders").field("headers", &self.headers.keys().collect::<Vec<_>>()).finish()
    }
}

#[async_trait::async_trait]
impl HttpClient for ExactHeaders {
    async fn send_bytes(&self, mut request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let mut headers = self.headers.clone();
        for name in [http::header::CONTENT_TYPE, http::header::CONTENT_ENCODING] {
            if let Some(value) = request.headers().get(&name) {
                headers.insert(name, value.clone());
            }
        }
        *request.headers_mut() = headers;
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(request).await?;
            let (status, headers) = (response.status(), response.headers().clone());
            let mut answer = http::Response::new(response.bytes().await?);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok::<_, reqwest::Error>(answer)
        });
        Ok(sent.await??)
    }
}

/// The log writer, filtered by `log.level`; request spans stay out of log lines.
fn log_layer(config: &LogConfig) -> Box<dyn Layer<Registry> + Send + Sync> {
    let filter = crate::config::log_filter(&config.level).unwrap_or_else(|| EnvFilter::new("info"));
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
        LogFormat::Json => {
            let format = tracing_subscriber::fmt::format().json().flatten_event(true).with_target(false);
            layer.json().event_format(WithTraceIds(format)).with_filter(filter).boxed()
        }
    }
}

/// A JSON event format that adds the active trace's `trace_id`, `span_id` and `trace_flags`
/// (lowercase hex, as in `traceparent`) to the line. The active trace is OpenTelemetry's current
/// context: keygate's request span while it runs (entering it attaches it), or the caller's
/// trace when spans are not exported ([`caller_context`]); that one is remote, so its span id is
/// the caller's and is left out.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let Some(ids) = Context::map_current(|cx| trace_ids(cx.span().span_context())) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The JSON format writes one object per event, starting with its timestamp: the ids go
        // first in it.
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{{ids}{rest}"),
            None => writer.write_str(&line),
        }
    }
}

/// `"trace_id":"…","span_id":"…","trace_flags":"01",` for a valid context, with no `span_id`
/// for a remote one.
fn trace_ids(context: &SpanContext) -> Option<String> {
    if !context.is_valid() {
        return None;
    }
    let mut ids = format!("\"trace_id\":\"{}\",", context.trace_id());
    if !context.is_remote() {
        let _ = write!(ids, "\"span_id\":\"{}\",", context.span_id());
    }
    let _ = write!(ids, "\"trace_flags\":\"{:02x}\",", context.trace_flags().to_u8());
    Some(ids)
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

/// The caller's trace, when spans are not exported and the caller sent a valid `traceparent`:
/// a request run in it (`opentelemetry::context::FutureExt::with_context`) logs the caller's
/// trace id.
pub fn caller_context(headers: &http::HeaderMap) -> Option<Context> {
    if !headers.contains_key("traceparent") {
        return None;
    }
    let caller = TraceContextPropagator::new().extract_with_context(&Context::new(), &HeaderExtractor(headers));
    caller.span().span_context().is_valid().then_some(caller)
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
