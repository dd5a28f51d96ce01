//! The `traces.*` settings: OTLP trace export as the OpenTelemetry SDK's own variables describe
//! it (the endpoint rules, the protocol, TLS, headers, the sampler), parsed and checked here so
//! that the exporter is configured from them alone.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The default OTLP/gRPC endpoint, used when the exporter is named but no endpoint is given.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// The default OTLP/HTTP traces URL.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
/// The path OTLP/HTTP appends to a base endpoint for traces.
const HTTP_TRACES_PATH: &str = "v1/traces";
/// The sampler names keygate accepts, as `OTEL_TRACES_SAMPLER` spells them.
const SAMPLERS: &str = "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, \
                        parentbased_traceidratio";
/// Headers the exporter sets itself: one given here would corrupt the request.
const RESERVED_HEADERS: &[&str] =
    &["content-type", "content-length", "content-encoding", "host", "te", "transfer-encoding", "connection"];

/// Trace export over OTLP. Set by the standard OpenTelemetry variables
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_TRACES_EXPORTER`,
/// `OTEL_TRACES_SAMPLER`, `OTEL_SERVICE_NAME`, …) or the `traces.*` settings; off unless an
/// endpoint is given or the exporter is asked for by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracesConfig {
    /// `OTEL_TRACES_EXPORTER`: `otlp`, `none`, or unset (export when an endpoint is set).
    pub exporter: Option<TracesExporter>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the URL spans are sent to, used as is; empty when
    /// none was given. It wins over `base_endpoint`.
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL, for every signal; OTLP/HTTP
    /// appends `/v1/traces`, OTLP/gRPC uses it as is. Empty when none was given.
    pub base_endpoint: String,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (or its `_TRACES_` form).
    pub protocol: OtlpProtocol,
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`: PEM CA certificates that an `https://` collector's
    /// certificate must chain to, instead of the system's roots.
    pub certificate: Option<PathBuf>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: sent with every export (a hosted collector's API key).
    pub headers: OtlpHeaders,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`: how long one export may take.
    pub timeout: Duration,
    /// `OTEL_TRACES_SAMPLER`: which spans are recorded and exported.
    pub sampler: TracesSampler,
    /// `OTEL_TRACES_SAMPLER_ARG`: the ratio of the `traceidratio` samplers (1 when unset).
    pub sampler_arg: Option<Ratio>,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Further resource attributes (`OTEL_RESOURCE_ATTRIBUTES`, `key=value,…`).
    pub resource_attributes: Vec<(String, String)>,
    /// Time between batch exports (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay: Duration,
    /// `OTEL_SDK_DISABLED`: no export whatever else is set.
    pub disabled: bool,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            exporter: None,
            endpoint: String::new(),
            base_endpoint: String::new(),
            protocol: OtlpProtocol::Grpc,
            certificate: None,
            headers: OtlpHeaders::default(),
            timeout: Duration::from_millis(10_000),
            sampler: TracesSampler::ParentBasedAlwaysOn,
            sampler_arg: None,
            service_name: "keygate".to_owned(),
            resource_attributes: Vec::new(),
            schedule_delay: Duration::from_millis(5000),
            disabled: false,
        }
    }
}

/// Which trace exporter `OTEL_TRACES_EXPORTER` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracesExporter {
    Otlp,
    None,
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`grpc`), the default.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`).
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name `OTEL_EXPORTER_OTLP_PROTOCOL` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }

    /// Parses a protocol name; empty is the default.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "grpc" | "" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Err("http/json is not supported; use \"grpc\" or \"http/protobuf\"".to_owned()),
            _ => Err(format!("expected \"grpc\" or \"http/protobuf\", got {text:?}")),
        }
    }
}

/// The samplers of the OpenTelemetry specification that keygate offers (`OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracesSampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio,
    /// The default: follow the caller's sampled flag; sample every trace keygate starts.
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio,
}

impl TracesSampler {
    /// The name `OTEL_TRACES_SAMPLER` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlwaysOn => "always_on",
            Self::AlwaysOff => "always_off",
            Self::TraceIdRatio => "traceidratio",
            Self::ParentBasedAlwaysOn => "parentbased_always_on",
            Self::ParentBasedAlwaysOff => "parentbased_always_off",
            Self::ParentBasedTraceIdRatio => "parentbased_traceidratio",
        }
    }

    /// Parses a sampler name (case-insensitively, as the specification asks); empty is the
    /// default.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let sampler = match text.trim().to_ascii_lowercase().as_str() {
            "" | "parentbased_always_on" => Self::ParentBasedAlwaysOn,
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio,
            "parentbased_always_off" => Self::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio,
            "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => {
                return Err(format!("{text:?} is not supported; use one of {SAMPLERS}"));
            }
            _ => return Err(format!("expected one of {SAMPLERS}, got {text:?}")),
        };
        Ok(sampler)
    }
}

/// A sampling ratio: a finite number from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio(f64);

// Never NaN (checked when made), so equality is an equivalence.
impl Eq for Ratio {}

impl Ratio {
    /// The ratio, checked to lie in [0, 1].
    pub(super) fn new(value: f64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&value) {
            return Err(format!("must be a number from 0 to 1, got {value}"));
        }
        Ok(Self(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// Headers sent with every export. Their values are often credentials, so `Debug` shows the
/// names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OtlpHeaders(pub Vec<(String, String)>);

impl fmt::Debug for OtlpHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl OtlpHeaders {
    /// The header names, lowercase.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// Parses `name=value,name=value` as `OTEL_EXPORTER_OTLP_HEADERS` (values percent-decoded,
    /// a later name replacing an earlier one). Problems never quote a value, nor a pair that is
    /// not `name=value`: either may be a secret.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut headers: Vec<(String, String)> = Vec::new();
        let entries = text.split(',').map(str::trim).enumerate().filter(|(_, entry)| !entry.is_empty());
        for (i, entry) in entries {
            let n = i + 1;
            let Some((name, value)) = entry.split_once('=') else {
                return Err(format!("entry {n} is not name=value (it is not shown, as it may hold a secret)"));
            };
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("entry {n}: the name is not an HTTP header name (it is not shown)"));
            }
            if RESERVED_HEADERS.contains(&name.as_str()) || name.starts_with("grpc-") {
                return Err(format!("entry {n}: {name:?} is set by the exporter itself"));
            }
            let Ok(value) = percent_encoding::percent_decode_str(value.trim()).decode_utf8() else {
                return Err(format!("header {name:?}: the value is not UTF-8 once percent-decoded"));
            };
            if value.is_empty() || http::HeaderValue::from_str(&value).is_err() {
                return Err(format!(
                    "header {name:?}: the value is empty or holds characters a header cannot carry (it is not shown)"
                ));
            }
            headers.retain(|(earlier, _)| *earlier != name);
            headers.push((name, value.into_owned()));
        }
        Ok(Self(headers))
    }
}

impl TracesConfig {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        if self.disabled {
            return false;
        }
        match self.exporter {
            Some(TracesExporter::None) => false,
            Some(TracesExporter::Otlp) => true,
            None => !self.endpoint.is_empty() || !self.base_endpoint.is_empty(),
        }
    }

    /// The URL spans are sent to, or `None` when traces are off: `endpoint` as is; else
    /// `base_endpoint` (with `/v1/traces` appended for OTLP/HTTP); else the protocol's default.
    pub fn export_endpoint(&self) -> Option<String> {
        if !self.exporting() {
            return None;
        }
        let url = match (self.endpoint.is_empty(), self.base_endpoint.is_empty(), self.protocol) {
            (false, _, _) => self.endpoint.clone(),
            (true, false, OtlpProtocol::Grpc) => self.base_endpoint.clone(),
            (true, false, OtlpProtocol::HttpProtobuf) => {
                format!("{}/{HTTP_TRACES_PATH}", self.base_endpoint.trim_end_matches('/'))
            }
            (true, true, OtlpProtocol::Grpc) => DEFAULT_GRPC_ENDPOINT.to_owned(),
            (true, true, OtlpProtocol::HttpProtobuf) => DEFAULT_HTTP_ENDPOINT.to_owned(),
        };
        Some(url)
    }

    /// The ratio of the `traceidratio` samplers.
    pub fn ratio(&self) -> f64 {
        self.sampler_arg.map_or(1.0, Ratio::get)
    }

    /// The checks that need several settings at once.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if self.service_name.trim().is_empty() {
            problems.push("traces.service_name (OTEL_SERVICE_NAME) must not be empty".to_owned());
        }
        let Some(target) = self.export_endpoint() else { return };
        let given = [
            ("traces.endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)", &self.endpoint),
            ("traces.base_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)", &self.base_endpoint),
        ];
        for (setting, url) in given.into_iter().filter(|(_, url)| !url.is_empty()) {
            if let Err(problem) = check_url(url) {
                problems.push(format!("{setting}: {problem}"));
            }
        }
        if self.certificate.is_some() && target.starts_with("http://") {
            problems.push(format!(
                "traces.certificate (OTEL_EXPORTER_OTLP_CERTIFICATE) is set, but spans would go to {target} in \
                 plain text: use an https:// endpoint, or remove the certificate"
            ));
        }
    }
}

/// An OTLP collector URL: `http://` or `https://`, a host, and no credentials in it (they would
/// be logged with the endpoint; headers are the place for them).
fn check_url(url: &str) -> Result<(), String> {
    if url.contains('@') {
        return Err("the URL must not carry credentials (it is not shown); send them as traces.headers".to_owned());
    }
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Err(format!("{url:?} is not a URL"));
    };
    let Some(authority) = uri.authority() else {
        return Err(format!("{url:?} must be an http:// or https:// URL with a host"));
    };
    match uri.scheme_str() {
        Some("http" | "https") if !authority.host().is_empty() => Ok(()),
        _ => Err(format!("{url:?} must be an http:// or https:// URL with a host")),
    }
}
