//! OTLP traces: the built binary, pointed at real OTLP receivers running in the test (gRPC and
//! HTTP/protobuf, plain and TLS) by the standard `OTEL_` variables, exports one span per call that
//! joins the caller's trace (`traceparent`), carries the decision, holds no secret, is sampled as
//! `OTEL_TRACES_SAMPLER` says and is flushed at shutdown; its JSON log lines carry the span's ids.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use keygate::config::TlsConfig;
use keygate::proto::keygate_v1 as pb;
use keygate::transport::tls::{CurrentConfig, TlsIncoming, TlsListener};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

use crate::secrets::secret_parts;
use crate::support::certs::Ca;
use crate::support::process::{Served, keygate};
use crate::support::{as_admin, bearer};

/// An OTLP trace receiver keeping every export request and the headers (or gRPC metadata) it
/// came with; served over gRPC or HTTP/protobuf, plain or TLS.
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<(http::HeaderMap, ExportTraceServiceRequest)>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let headers = request.metadata().clone().into_headers();
        self.keep(headers, request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// A TLS server configuration for `127.0.0.1` signed by `ca`, from files in `dir`, through
/// keygate's own loader.
fn server_tls(dir: &Path, ca: &Ca) -> CurrentConfig {
    let (cert, key) = ca.sign(&["localhost", "127.0.0.1"]);
    let (cert_file, key_file) = (dir.join("receiver-cert.pem"), dir.join("receiver-key.pem"));
    std::fs::write(&cert_file, cert).expect("write cert");
    std::fs::write(&key_file, key).expect("write key");
    let config = TlsConfig { cert_file: Some(cert_file), key_file: Some(key_file), ..TlsConfig::default() };
    let (updates, current) = keygate::transport::tls::load(&config).expect("receiver tls").expect("tls on");
    // Nothing replaces the configuration: the receiver keeps the first.
    drop(updates);
    current
}

impl Receiver {
    fn keep(&self, headers: http::HeaderMap, request: ExportTraceServiceRequest) {
        self.requests.lock().expect("requests").push((headers, request));
    }

    /// Serves OTLP/gRPC on `127.0.0.1:0` (over TLS with `tls`); returns its endpoint URL.
    async fn start(&self, tls: Option<CurrentConfig>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let server = Server::builder().add_service(TraceServiceServer::new(self.clone()));
        let scheme = match tls {
            None => {
                tokio::spawn(server.serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)));
                "http"
            }
            Some(tls) => {
                tokio::spawn(server.serve_with_incoming(TlsIncoming::new(listener, tls)));
                "https"
            }
        };
        format!("{scheme}://{addr}")
    }

    /// Serves OTLP/HTTP with protobuf bodies at `/v1/traces` only, on `127.0.0.1:0` (over TLS
    /// with `tls`); returns its base URL.
    async fn start_http(&self, tls: Option<CurrentConfig>) -> String {
        let receiver = self.clone();
        let export = move |headers: http::HeaderMap, body: axum::body::Bytes| async move {
            let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                return http::StatusCode::BAD_REQUEST.into_response();
            };
            receiver.keep(headers, request);
            let answer = ExportTraceServiceResponse { partial_success: None }.encode_to_vec();
            ([(http::header::CONTENT_TYPE, "application/x-protobuf")], answer).into_response()
        };
        let routes = axum::Router::new().route("/v1/traces", axum::routing::post(export));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let scheme = match tls {
            None => {
                tokio::spawn(axum::serve(listener, routes).into_future());
                "http"
            }
            Some(tls) => {
                tokio::spawn(axum::serve(TlsListener::new(listener, tls), routes).into_future());
                "https"
            }
        };
        format!("{scheme}://{addr}")
    }

    fn spans(&self) -> Vec<Span> {
        self.spans_where(|_| true)
    }

    /// The spans of the resource whose `service.name` is `service`.
    fn spans_of(&self, service: &str) -> Vec<Span> {
        self.spans_where(|name| name == Some(service))
    }

    fn spans_where(&self, service: impl Fn(Option<&str>) -> bool) -> Vec<Span> {
        let requests = self.requests.lock().expect("requests");
        requests
            .iter()
            .flat_map(|(_, r)| &r.resource_spans)
            .filter(|r| service(r.resource.as_ref().and_then(|r| text(&r.attributes, "service.name")).as_deref()))
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// The headers of every export request.
    fn headers(&self) -> Vec<http::HeaderMap> {
        self.requests.lock().expect("requests").iter().map(|(headers, _)| headers.clone()).collect()
    }

    /// Everything received, as the bytes of the protobuf messages and their debug text.
    fn everything(&self) -> Vec<u8> {
        let requests = self.requests.lock().expect("requests");
        let mut bytes = Vec::new();
        for (_, request) in requests.iter() {
            bytes.extend(request.encode_to_vec());
            bytes.extend(format!("{request:?}").into_bytes());
        }
        bytes
    }

    fn service_names(&self) -> Vec<String> {
        let requests = self.requests.lock().expect("requests");
        requests
            .iter()
            .flat_map(|(_, r)| &r.resource_spans)
            .filter_map(|r| r.resource.as_ref())
            .filter_map(|resource| text(&resource.attributes, "service.name"))
            .collect()
    }
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref() {
        Some(Any { value: Some(AnyValue::StringValue(s)) }) => Some(s.clone()),
        _ => None,
    })
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref() {
        Some(Any { value: Some(AnyValue::IntValue(i)) }) => Some(*i),
        _ => None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Calls Authorize for `key` needing `scope`, as a caller in trace `trace_id` under span `parent`.
async fn authorize_in_trace(addr: &str, key: &str, scope: &str, trace_id: &str, parent: &str) -> pb::Decision {
    let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    let mut request = Request::new(pb::AuthorizeRequest {
        cost: None,
        credentials: Some(bearer(key)),
        required_scopes: vec![scope.to_owned()],
        organization: String::new(),
    });
    let traceparent = format!("00-{trace_id}-{parent}-01");
    request.metadata_mut().insert("traceparent", traceparent.parse().expect("ascii"));
    let response = pb::auth_service_client::AuthServiceClient::new(channel).authorize(request).await;
    response.expect("authorize answers").into_inner().decision.expect("decision")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_join_the_callers_trace_carry_the_decision_and_no_secret() {
    let receiver = Receiver::default();
    let endpoint = receiver.start(None).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bootstrap = keygate(dir.path(), &["bootstrap"], &[]);
    assert!(bootstrap.status.success(), "{}", String::from_utf8_lossy(&bootstrap.stderr));
    let admin_key = String::from_utf8(bootstrap.stdout).expect("utf-8").trim().to_owned();
    // A long batch delay: nothing is exported before shutdown, so the spans the receiver gets
    // prove the flush at shutdown.
    // The exporter crate reads OTEL_EXPORTER_OTLP_HEADERS by itself too: only keygate's headers
    // (here the signal's own variable, which replaces the general one) reach the collector.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "keygate-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-stray=1,authorization=general"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=Bearer%20collector-token"),
    ];
    let mut served = tokio::task::block_in_place(|| Served::start(dir.path(), &env));
    let addr = served.addr.clone();
    let logs = served.logs.clone();

    let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    let create =
        pb::CreateApiKeyRequest { name: "traced".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let created = pb::admin_service_client::AdminServiceClient::new(channel)
        .create_api_key(as_admin(create, &admin_key))
        .await
        .expect("create key")
        .into_inner();
    let key = created.api_key;

    let (allowed_trace, allowed_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let (denied_trace, denied_parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let allowed = authorize_in_trace(&addr, &key, "graph:read", allowed_trace, allowed_parent).await;
    assert!(allowed.allowed);
    let denied = authorize_in_trace(&addr, &key, "incidents:read", denied_trace, denied_parent).await;
    assert_eq!(denied.reason(), pb::DecisionReason::InsufficientScope);
    let http_trace = "5b8efff798038103d269b633813fc60c";
    let jwks = reqwest::Client::new()
        .get(format!("http://{}/.well-known/jwks.json", served.http_addr))
        .header("traceparent", format!("00-{http_trace}-eee19b7ec3c1b174-01"))
        .send()
        .await
        .expect("jwks");
    assert!(jwks.status().is_success());

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.spans().is_empty(), "nothing is exported before the batch delay or shutdown");
    let exited_cleanly = tokio::task::spawn_blocking(move || served.terminate()).await.expect("terminated");
    assert!(exited_cleanly, "keygate exits 0 on SIGTERM");
    let spans = receiver.spans();

    let find = |trace: &str| {
        spans
            .iter()
            .find(|s| hex(&s.trace_id) == trace)
            .unwrap_or_else(|| panic!("no span in trace {trace}: {spans:#?}"))
    };
    for (trace, parent, decision, reason) in [
        (allowed_trace, allowed_parent, "allow", "ALLOWED"),
        (denied_trace, denied_parent, "deny", "INSUFFICIENT_SCOPE"),
    ] {
        let span = find(trace);
        assert_eq!(hex(&span.parent_span_id), parent, "the span's parent is the caller's span");
        assert_eq!(span.name, "keygate.v1.AuthService/Authorize");
        assert_eq!(span.kind, 2, "a server span");
        assert_eq!(text(&span.attributes, "rpc.method").as_deref(), Some("Authorize"));
        assert_eq!(text(&span.attributes, "rpc.service").as_deref(), Some("keygate.v1.AuthService"));
        assert_eq!(text(&span.attributes, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(int(&span.attributes, "rpc.grpc.status_code"), Some(0));
        assert_eq!(text(&span.attributes, "keygate.decision").as_deref(), Some(decision));
        assert_eq!(text(&span.attributes, "keygate.reason").as_deref(), Some(reason));
        assert!(text(&span.attributes, "keygate.request_id").is_some_and(|id| !id.is_empty()));
    }
    let http = find(http_trace);
    assert_eq!(http.name, "GET /.well-known/jwks.json");
    assert_eq!(int(&http.attributes, "http.response.status_code"), Some(200));
    assert!(spans.iter().any(|s| s.name == "keygate.v1.AdminService/CreateApiKey"), "admin calls are traced too");
    assert!(receiver.service_names().iter().all(|name| name == "keygate-under-test"));
    for metadata in receiver.headers() {
        let authorization = metadata.get("authorization").and_then(|v| v.to_str().ok());
        assert_eq!(authorization, Some("Bearer collector-token"), "{metadata:?}");
        assert!(metadata.get("x-stray").is_none(), "a header keygate's configuration does not hold was sent");
    }
    assert!(!served_log_text(&logs).contains("collector-token"), "a header value was logged");

    let exported = receiver.everything();
    let exported = String::from_utf8_lossy(&exported);
    for full in [&key, &admin_key] {
        for part in secret_parts(full) {
            assert!(!exported.contains(&part), "an exported span holds a secret");
        }
    }

    // The denial's JSON log line was written in the denied call's span: it carries its ids.
    let denied = find(denied_trace);
    let lines = log_lines(&logs, "denied");
    assert_eq!(lines.len(), 1, "one denial logged: {lines:?}");
    assert_eq!(lines[0]["trace_id"], hex(&denied.trace_id), "{}", lines[0]);
    assert_eq!(lines[0]["span_id"], hex(&denied.span_id), "{}", lines[0]);
    assert_eq!(lines[0]["trace_flags"], "01");
    let outside = log_lines(&logs, "keygate listening");
    assert!(outside[0].get("trace_id").is_none(), "a line outside any request has no trace id");
}

fn served_log_text(logs: &Mutex<Vec<String>>) -> String {
    logs.lock().expect("logs").join("\n")
}

/// The JSON log lines whose message is `message`.
fn log_lines(logs: &Mutex<Vec<String>>, message: &str) -> Vec<Value> {
    let logs = logs.lock().expect("logs");
    logs.iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|json| json["message"] == message)
        .collect()
}

/// `traceparent` for a caller in `trace` under span `parent`, sampled or not.
fn traceparent(trace: &str, parent: &str, sampled: bool) -> String {
    format!("00-{trace}-{parent}-{}", if sampled { "01" } else { "00" })
}

/// A token request with made-up client credentials, as a caller in `traceparent`: refused (401),
/// and logged as "token refused" inside the request.
async fn refused_token(http_addr: &str, traceparent: Option<&str>) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{http_addr}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=kgc_nobody&client_secret=made-up");
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.expect("token endpoint answers");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
}

/// `GET /.well-known/jwks.json` as a caller in `traceparent`.
async fn jwks(http_addr: &str, traceparent: Option<&str>) {
    let mut request = reqwest::Client::new().get(format!("http://{http_addr}/.well-known/jwks.json"));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    assert!(request.send().await.expect("jwks").status().is_success());
}

/// Starts `keygate serve` in a fresh directory with `env` (off the async workers).
async fn serve(dir: &Path, env: &[(&str, &str)]) -> Served {
    tokio::task::block_in_place(|| Served::start(dir, env))
}

/// SIGTERMs `served` and waits for a clean exit (spans still batched are flushed first).
async fn terminate(mut served: Served) {
    let exited_cleanly = tokio::task::spawn_blocking(move || served.terminate()).await.expect("terminated");
    assert!(exited_cleanly, "keygate exits 0 on SIGTERM");
}

/// Waits (up to 20 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_export_sends_keygates_headers_only_and_logs_carry_the_span_ids() {
    let receiver = Receiver::default();
    let base = receiver.start_http(None).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The base endpoint gets /v1/traces (the receiver serves nothing else). The exporter crate
    // would add OTEL_EXPORTER_OTLP_HEADERS by itself; keygate's KEYGATE_TRACES_HEADERS overrides
    // them, and only keygate's are sent.
    let secret = "kg secret-2f9a4c";
    let env = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", base.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=from-the-otel-variable,x-stray=1"),
        ("KEYGATE_TRACES_HEADERS", "x-api-key=kg%20secret-2f9a4c,x-tenant=acme"),
        ("OTEL_SERVICE_NAME", "keygate-http"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let served = serve(dir.path(), &env).await;
    let (trace, parent) = ("6e0c63257de34c926f9efcd03927272e", "2f64e4b2a1c3d5e7");
    refused_token(&served.http_addr, Some(&traceparent(trace, parent, true))).await;
    // Exported while serving, not only at shutdown.
    eventually("the token span", || receiver.spans().iter().any(|s| hex(&s.trace_id) == trace)).await;
    let logs = served.logs.clone();
    let log_text = served.log_text();
    terminate(served).await;

    let spans = receiver.spans();
    let span = spans.iter().find(|s| hex(&s.trace_id) == trace).expect("span in the caller's trace");
    assert_eq!(span.name, "POST /oauth/token");
    assert_eq!(hex(&span.parent_span_id), parent);
    assert_eq!(int(&span.attributes, "http.response.status_code"), Some(401));
    assert!(receiver.service_names().iter().all(|name| name == "keygate-http"));
    for headers in receiver.headers() {
        assert_eq!(headers.get("x-api-key").and_then(|v| v.to_str().ok()), Some(secret), "{headers:?}");
        assert_eq!(headers.get_all("x-api-key").iter().count(), 1);
        assert_eq!(headers.get("x-tenant").and_then(|v| v.to_str().ok()), Some("acme"));
        assert!(headers.get("x-stray").is_none(), "a header keygate's configuration does not hold was sent");
        assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/x-protobuf"));
    }
    assert!(!log_text.contains("2f9a4c"), "a header value was logged");
    assert!(log_text.contains("x-api-key,x-tenant"), "the header names are logged: {log_text}");

    let lines = log_lines(&logs, "token refused");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["trace_id"], trace);
    assert_eq!(lines[0]["span_id"], hex(&span.span_id), "the log line names the exported span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_collectors_are_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("collector-ca");
    let ca_file = dir.path().join("collector-ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("write ca");
    let ca_file = ca_file.to_str().expect("utf-8 path").to_owned();
    let (grpc, http) = (Receiver::default(), Receiver::default());
    let grpc_url = grpc.start(Some(server_tls(dir.path(), &ca))).await;
    let http_url = format!("{}/v1/traces", http.start_http(Some(server_tls(dir.path(), &ca))).await);
    assert!(grpc_url.starts_with("https://") && http_url.starts_with("https://"));

    let cases = [
        // (service, protocol, endpoint variable, endpoint, CA variable)
        ("grpc-trusting", "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT", &grpc_url, Some("OTEL_EXPORTER_OTLP_CERTIFICATE")),
        (
            "http-trusting",
            "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &http_url,
            Some("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"),
        ),
        // The system's roots do not know the test's CA: nothing may reach either receiver.
        ("grpc-system-roots", "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT", &grpc_url, None),
        ("http-system-roots", "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &http_url, None),
    ];
    let mut running = Vec::new();
    for (service, protocol, variable, endpoint, ca_variable) in cases {
        let home = tempfile::tempdir().expect("temp dir");
        let mut env = vec![
            ("OTEL_SERVICE_NAME", service),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            (variable, endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        if let Some(ca_variable) = ca_variable {
            env.push((ca_variable, ca_file.as_str()));
        }
        let served = serve(home.path(), &env).await;
        jwks(&served.http_addr, None).await;
        running.push((served, home));
    }
    eventually("spans over TLS", || {
        !grpc.spans_of("grpc-trusting").is_empty() && !http.spans_of("http-trusting").is_empty()
    })
    .await;
    for (served, _home) in running {
        terminate(served).await;
    }
    assert_eq!(grpc.spans_of("grpc-trusting")[0].name, "GET /.well-known/jwks.json");
    assert_eq!(http.spans_of("http-trusting")[0].name, "GET /.well-known/jwks.json");
    for receiver in [&grpc, &http] {
        let names = receiver.service_names();
        assert!(names.iter().all(|name| name.ends_with("-trusting")), "an unverified collector got spans: {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samplers_decide_what_is_exported() {
    let receiver = Receiver::default();
    let endpoint = receiver.start(None).await;
    // (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; whether a sampled caller's request, an
    // unsampled caller's and one without traceparent are exported)
    let cases: [(&str, &str, [bool; 3]); 6] = [
        ("", "", [true, false, true]),
        ("always_on", "", [true, true, true]),
        ("always_off", "", [false, false, false]),
        ("traceidratio", "0", [false, false, false]),
        ("parentbased_always_off", "", [true, false, false]),
        ("parentbased_traceidratio", "0.0", [true, false, false]),
    ];
    let mut running = Vec::new();
    for (i, (sampler, arg, _)) in cases.iter().enumerate() {
        let home = tempfile::tempdir().expect("temp dir");
        let service = format!("sampler-{i}");
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", service.as_str()),
            ("OTEL_TRACES_SAMPLER", sampler),
            ("OTEL_TRACES_SAMPLER_ARG", arg),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        running.push((serve(home.path(), &env).await, home, service));
    }
    let sampled = |i: usize| format!("{:032x}", 0x5a00 + i);
    let unsampled = |i: usize| format!("{:032x}", 0x0a00 + i);
    const ROOTS: usize = 5;
    // Traffic to all of them, then wait for the default sampler's spans to arrive while the
    // others keep serving.
    for round in 0..2 {
        for (i, (served, _, _)) in running.iter().enumerate() {
            if round == 0 {
                jwks(&served.http_addr, Some(&traceparent(&sampled(i), "00f067aa0ba902b7", true))).await;
                jwks(&served.http_addr, Some(&traceparent(&unsampled(i), "00f067aa0ba902b7", false))).await;
            }
            for _ in 0..ROOTS / 2 + round {
                jwks(&served.http_addr, None).await;
            }
        }
    }
    eventually("the default sampler's spans", || receiver.spans_of("sampler-0").len() == 1 + ROOTS).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_shutdown: Vec<usize> = running.iter().map(|(_, _, service)| receiver.spans_of(service).len()).collect();
    for (served, _home, _) in running {
        terminate(served).await;
    }
    for (i, (sampler, arg, [caller_sampled, caller_unsampled, root])) in cases.into_iter().enumerate() {
        let spans = receiver.spans_of(&format!("sampler-{i}"));
        let label = format!("sampler {sampler:?} arg {arg:?}");
        let in_trace = |trace: &str| spans.iter().filter(|s| hex(&s.trace_id) == trace).count();
        assert_eq!(in_trace(&sampled(i)), usize::from(caller_sampled), "{label}: the sampled caller's request");
        assert_eq!(in_trace(&unsampled(i)), usize::from(caller_unsampled), "{label}: the unsampled caller's request");
        let roots = spans.iter().filter(|s| s.parent_span_id.is_empty()).count();
        assert_eq!(roots, if root { ROOTS } else { 0 }, "{label}: requests without traceparent");
        assert_eq!(before_shutdown[i], spans.len(), "{label}: everything was exported while serving");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_export_log_lines_carry_the_callers_trace_id_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let served = serve(dir.path(), &[]).await;
    let trace = "3c1f0e0a9b8d7c6b5a4f3e2d1c0b0a09";
    refused_token(&served.http_addr, Some(&traceparent(trace, "1a2b3c4d5e6f7a8b", false))).await;
    refused_token(&served.http_addr, None).await;
    // Over gRPC too: a malformed key is denied, and the denial logged.
    let grpc_trace = "0123456789abcdef0123456789abcdef";
    let channel =
        Channel::from_shared(format!("http://{}", served.addr)).expect("uri").connect().await.expect("connect");
    let mut request = Request::new(pb::AuthorizeRequest {
        credentials: Some(bearer("sk_live_not-a-key")),
        required_scopes: vec!["graph:read".to_owned()],
        ..Default::default()
    });
    let caller = traceparent(grpc_trace, "00f067aa0ba902b7", true);
    request.metadata_mut().insert("traceparent", caller.parse().expect("ascii"));
    let decision = pb::auth_service_client::AuthServiceClient::new(channel).authorize(request).await.expect("answered");
    assert!(!decision.into_inner().decision.expect("decision").allowed);
    let logs = served.logs.clone();
    terminate(served).await;

    let lines = log_lines(&logs, "token refused");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["trace_id"], trace, "the caller's trace id: {}", lines[0]);
    assert_eq!(lines[0]["trace_flags"], "00");
    assert!(lines[0].get("span_id").is_none(), "keygate has no span of its own to name: {}", lines[0]);
    assert!(lines[1].get("trace_id").is_none(), "no traceparent, no trace id: {}", lines[1]);
    let denied = log_lines(&logs, "denied");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["trace_id"], grpc_trace);
    assert!(denied[0].get("span_id").is_none());
}
