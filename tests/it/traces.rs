//! OTLP traces: the built binary, pointed at a real OTLP/gRPC receiver running in the test by the
//! standard `OTEL_` variables, exports one span per call that joins the caller's trace
//! (`traceparent`), carries the decision, holds no secret, and is flushed at shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::proto::keygate_v1 as pb;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

use crate::secrets::secret_parts;
use crate::support::process::{Served, keygate};
use crate::support::{as_admin, bearer};

/// An OTLP trace receiver keeping every export request, and its encoded bytes.
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.requests.lock().expect("requests").push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    /// Starts on `127.0.0.1:0`; returns its endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Span> {
        let requests = self.requests.lock().expect("requests");
        requests
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// Everything received, as the bytes of the protobuf messages and their debug text.
    fn everything(&self) -> Vec<u8> {
        let requests = self.requests.lock().expect("requests");
        let mut bytes = Vec::new();
        for request in requests.iter() {
            bytes.extend(request.encode_to_vec());
            bytes.extend(format!("{request:?}").into_bytes());
        }
        bytes
    }

    fn service_names(&self) -> Vec<String> {
        let requests = self.requests.lock().expect("requests");
        requests
            .iter()
            .flat_map(|r| &r.resource_spans)
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
    let endpoint = receiver.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bootstrap = keygate(dir.path(), &["bootstrap"], &[]);
    assert!(bootstrap.status.success(), "{}", String::from_utf8_lossy(&bootstrap.stderr));
    let admin_key = String::from_utf8(bootstrap.stdout).expect("utf-8").trim().to_owned();
    // A long batch delay: nothing is exported before shutdown, so the spans the receiver gets
    // prove the flush at shutdown.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "keygate-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
    ];
    let mut served = tokio::task::block_in_place(|| Served::start(dir.path(), &env));
    let addr = served.addr.clone();

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

    let exported = receiver.everything();
    let exported = String::from_utf8_lossy(&exported);
    for full in [&key, &admin_key] {
        for part in secret_parts(full) {
            assert!(!exported.contains(&part), "an exported span holds a secret");
        }
    }
}
