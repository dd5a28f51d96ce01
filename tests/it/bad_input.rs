//! The bad-input matrix: every field of every request of AuthService, AdminService and Envoy's
//! `Check` (generated from their descriptors), every parameter and body property of the REST admin
//! API (from its OpenAPI document), the OAuth form endpoints and the console's forms, each sent
//! with the hostile values of its type on an otherwise valid request. Every answer must be a
//! normal answer or a client error (INVALID_ARGUMENT or 400/422 naming the field, or the client
//! error the value makes right: not found, unauthenticated, ...); never INTERNAL, UNKNOWN, a 5xx, a
//! hang or a dropped connection; and the server answers correctly afterwards. Prints the size of
//! the matrix and the count per outcome; against SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keygate::proto::envoy_auth as envoy;
use keygate::proto::keygate_v1 as pb;
use prost::Message as _;
use prost::bytes::Bytes;
use prost_reflect::{DescriptorPool, ReflectMessage as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::backend_tests;
use crate::support::hostile::{self, CALL_TIMEOUT, Case, RawCodec, Tally, names_field};
use crate::support::hostile_http::{self, HttpCase, Operation};
use crate::support::{Backend, TestDb, TestServer, as_admin, bearer};

backend_tests!(every_field_of_every_endpoint_survives_hostile_values);

/// The scope every credential of the matrix holds.
const SCOPE: &str = "investigations:read";

/// What the matrix's valid requests are made of.
struct Fixture {
    /// For AuthService and Envoy: a key with no rate limit, quota or slot limit.
    auth_key: String,
    /// For IssueToken: a client and its secret.
    auth_client: (String, String),
    /// A slot the auth key holds, for ReleaseSlot.
    slot_id: String,
    /// What the admin RPCs change: a key and a client of their own.
    target_key: String,
    target_client: String,
    /// What the REST admin API changes.
    rest_key: String,
    rest_client: String,
    /// For the OAuth endpoints: a client, its secret and one of its tokens.
    oauth_client: (String, String),
    /// An organization to read and rename.
    organization: String,
}

async fn every_field_of_every_endpoint_survives_hostile_values(backend: Backend) {
    // MATRIX_LOG=h2=debug,keygate=debug (an env filter) shows the server's side of a failing case.
    let _ = tracing_subscriber::fmt().with_env_filter(std::env::var("MATRIX_LOG").unwrap_or_default()).try_init();
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, crate::envoy::POLICY).expect("write policy");
    let db = TestDb::create(backend).await;
    let config = crate::support::test_config(
        &db.url,
        // ES256: RotateSigningKey runs a few times, and an RSA key takes long to make in a debug build.
        &[("envoy.policy_file", policy.to_str().expect("utf-8 path")), ("oauth.algorithm", "ES256")],
    );
    let server = TestServer::start_on(db, config).await;
    let fixture = fixture(&server).await;
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };

    let grpc = grpc_matrix(&server, &fixture).await;
    println!("bad-input matrix ({name}): grpc {}", grpc.summary());
    let grpc_time = started.elapsed();
    let http = http_matrix(&server, &fixture).await;
    println!("bad-input matrix ({name}): http {}", http.summary());
    println!(
        "bad-input matrix ({name}): {} cases in {:.1?} (grpc {:.1?})",
        grpc.total() + http.total(),
        started.elapsed(),
        grpc_time
    );
    for (surface, tally) in [("grpc", &grpc), ("http", &http)] {
        for unnamed in &tally.unnamed {
            println!("bad-input matrix ({name}): {surface} unnamed: {unnamed}");
        }
    }

    // The server still answers, and answers right.
    still_serving(&server, &fixture).await;
    let failures: Vec<&String> = grpc.failures.iter().chain(&http.failures).collect();
    for failure in &failures {
        println!("bad-input matrix ({name}): FAILED {failure}");
    }
    assert!(failures.is_empty(), "{} cases failed, listed above", failures.len());
    server.stop().await;
}

async fn fixture(server: &TestServer) -> Fixture {
    let admin = server.admin_key.clone();
    let unlimited = pb::Limits {
        rate_limit_per_minute: Some(0),
        rate_limit_burst: None,
        max_quota: Some(0),
        max_concurrency: Some(0),
    };
    let request = pb::CreateApiKeyRequest {
        name: "matrix auth".into(),
        scopes: vec![SCOPE.into()],
        limits: Some(unlimited),
        ..Default::default()
    };
    let created = server.admin().await.create_api_key(as_admin(request, &admin)).await.expect("create key");
    let auth_key = created.into_inner().api_key;
    let (target_key, rest_key) = (
        server.create_key(&admin, "matrix target", &[SCOPE]).await.1,
        server.create_key(&admin, "matrix rest", &[SCOPE]).await.1,
    );
    let auth_client = create_client(server, "matrix auth client").await;
    let target_client = create_client(server, "matrix target client").await.0;
    let rest_client = create_client(server, "matrix rest client").await.0;
    let oauth_client = create_client(server, "matrix oauth client").await;
    let acquire = pb::AcquireSlotRequest {
        credentials: Some(bearer(&auth_key)),
        required_scopes: vec![SCOPE.into()],
        lease_seconds: Some(300),
        ..Default::default()
    };
    let slot = server.auth().await.acquire_slot(acquire).await.expect("acquire").into_inner();
    assert!(slot.decision.as_ref().is_some_and(|d| d.allowed), "{slot:?}");
    let organization =
        pb::CreateOrganizationRequest { slug: "matrix-org".into(), name: "Matrix".into(), plan: String::new() };
    server.admin().await.create_organization(as_admin(organization, &admin)).await.expect("create organization");
    Fixture {
        auth_key,
        auth_client,
        slot_id: slot.slot_id,
        target_key,
        target_client,
        rest_key,
        rest_client,
        oauth_client,
        organization: "matrix-org".into(),
    }
}

async fn create_client(server: &TestServer, name: &str) -> (String, String) {
    let request = pb::CreateApiClientRequest { name: name.into(), scopes: vec![SCOPE.into()], ..Default::default() };
    let created =
        server.admin().await.create_api_client(as_admin(request, &server.admin_key)).await.expect("create client");
    let created = created.into_inner();
    (created.client_id, created.client_secret)
}

// --- gRPC ---

/// The descriptors of keygate's services and of Envoy's (from the `envoy-types` crate, which
/// ships its descriptor set beside its generated code without exporting it).
fn descriptor_pool() -> DescriptorPool {
    let mut pool = DescriptorPool::decode(keygate::proto::FILE_DESCRIPTOR_SET).expect("keygate's descriptors");
    // Offline, for this machine's platform only: a build downloads only the crates its
    // platform needs, and the whole graph's would need the network.
    let rustc = std::process::Command::new("rustc").arg("-vV").output().expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&rustc.stdout).lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_owned);
    let metadata = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform"])
        .arg(host.expect("rustc names its host"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(metadata.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&metadata.stderr));
    let metadata: Value = serde_json::from_slice(&metadata.stdout).expect("cargo metadata is JSON");
    let manifest = metadata["packages"]
        .as_array()
        .and_then(|packages| packages.iter().find(|p| p["name"] == "envoy-types"))
        .and_then(|p| p["manifest_path"].as_str())
        .expect("envoy-types is a dependency")
        .to_owned();
    let types = std::path::Path::new(&manifest).with_file_name("src/generated/types.bin");
    let envoy = std::fs::read(&types).unwrap_or_else(|e| panic!("{}: {e}", types.display()));
    let envoy = prost_types::FileDescriptorSet::decode(envoy.as_slice()).expect("Envoy's descriptors");
    let wanted = "envoy/service/auth/v3/external_auth.proto";
    // Only the files Check needs: the whole set holds all of Envoy's APIs.
    let by_name: BTreeMap<&str, &prost_types::FileDescriptorProto> = envoy.file.iter().map(|f| (f.name(), f)).collect();
    let mut needed = vec![wanted];
    let mut files = Vec::new();
    while let Some(name) = needed.pop() {
        if files.iter().any(|f: &prost_types::FileDescriptorProto| f.name() == name)
            || pool.get_file_by_name(name).is_some()
        {
            continue;
        }
        let file = by_name.get(name).unwrap_or_else(|| panic!("{name} is in Envoy's descriptors"));
        needed.extend(file.dependency.iter().map(String::as_str));
        files.push((*file).clone());
    }
    pool.add_file_descriptor_protos(files).expect("Envoy's descriptors fit");
    pool
}

/// Each method with its valid base request, in the order the matrix runs them (what disables
/// its target last).
fn grpc_methods(pool: &DescriptorPool, f: &Fixture) -> Vec<(String, prost_reflect::DynamicMessage)> {
    let credentials = || Some(bearer(&f.auth_key));
    let labels = || BTreeMap::from([("env".to_owned(), "test".to_owned())]);
    let limits = || Some(pb::Limits { rate_limit_per_minute: Some(600), ..Default::default() });
    let since = Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 });
    let scopes = || vec![SCOPE.to_owned()];
    let d = |name: &str, message: &dyn Fn() -> Vec<u8>| {
        let descriptor = pool.get_message_by_name(name).unwrap_or_else(|| panic!("{name} is in the descriptors"));
        prost_reflect::DynamicMessage::decode(descriptor, message().as_slice()).expect("the base decodes")
    };
    let auth = "keygate.v1.AuthService";
    let admin = "keygate.v1.AdminService";
    let bases: Vec<(String, prost_reflect::DynamicMessage)> = vec![
        (
            format!("{auth}/Authenticate"),
            d("keygate.v1.AuthenticateRequest", &|| {
                pb::AuthenticateRequest { credentials: credentials() }.encode_to_vec()
            }),
        ),
        (
            format!("{auth}/Authorize"),
            d("keygate.v1.AuthorizeRequest", &|| {
                pb::AuthorizeRequest {
                    credentials: credentials(),
                    required_scopes: scopes(),
                    organization: "platform".into(),
                    cost: Some(1),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{auth}/IssueToken"),
            d("keygate.v1.IssueTokenRequest", &|| {
                pb::IssueTokenRequest {
                    grant_type: "client_credentials".into(),
                    client_id: f.auth_client.0.clone(),
                    client_secret: f.auth_client.1.clone(),
                    scope: SCOPE.into(),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{auth}/GetQuota"),
            d("keygate.v1.GetQuotaRequest", &|| pb::GetQuotaRequest { credentials: credentials() }.encode_to_vec()),
        ),
        (
            format!("{auth}/AcquireSlot"),
            d("keygate.v1.AcquireSlotRequest", &|| {
                pb::AcquireSlotRequest {
                    credentials: credentials(),
                    required_scopes: scopes(),
                    organization: String::new(),
                    cost: Some(1),
                    lease_seconds: Some(60),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{auth}/ReleaseSlot"),
            d("keygate.v1.ReleaseSlotRequest", &|| {
                pb::ReleaseSlotRequest { credentials: credentials(), slot_id: f.slot_id.clone() }.encode_to_vec()
            }),
        ),
        (
            "envoy.service.auth.v3.Authorization/Check".into(),
            d("envoy.service.auth.v3.CheckRequest", &|| {
                let headers = [("x-api-key", f.auth_key.as_str()), ("x-request-id", "matrix")];
                crate::envoy::check_request("/api/v1/sessions/1", &headers).encode_to_vec()
            }),
        ),
        (
            format!("{admin}/CreateApiKey"),
            d("keygate.v1.CreateApiKeyRequest", &|| {
                pb::CreateApiKeyRequest {
                    name: "matrix created".into(),
                    description: "made by the matrix".into(),
                    scopes: scopes(),
                    expires_in_days: Some(30),
                    organization: String::new(),
                    limits: limits(),
                    labels: labels(),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/GetApiKey"),
            d("keygate.v1.GetApiKeyRequest", &|| pb::GetApiKeyRequest { key_id: f.target_key.clone() }.encode_to_vec()),
        ),
        (
            format!("{admin}/ListApiKeys"),
            d("keygate.v1.ListApiKeysRequest", &|| {
                pb::ListApiKeysRequest {
                    search: "matrix".into(),
                    offset: 0,
                    limit: 10,
                    organization: String::new(),
                    status: 1,
                    expiring_within_days: Some(30),
                    unused_since: since,
                    labels: labels(),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/UpdateApiKey"),
            d("keygate.v1.UpdateApiKeyRequest", &|| {
                pb::UpdateApiKeyRequest {
                    key_id: f.target_key.clone(),
                    name: Some("matrix renamed".into()),
                    description: Some("d".into()),
                    scopes: Some(pb::ScopeList { values: scopes() }),
                    limits: limits(),
                    reset_limits: vec!["max_quota".into()],
                    labels: Some(pb::LabelMap { values: labels() }),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/RotateApiKey"),
            d("keygate.v1.RotateApiKeyRequest", &|| {
                pb::RotateApiKeyRequest {
                    key_id: f.target_key.clone(),
                    grace_period_days: Some(1),
                    expires_in_days: Some(30),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/GetApiKeyUsage"),
            d("keygate.v1.GetApiKeyUsageRequest", &|| {
                pb::GetApiKeyUsageRequest { key_id: f.target_key.clone() }.encode_to_vec()
            }),
        ),
        (
            format!("{admin}/CreateOrganization"),
            d("keygate.v1.CreateOrganizationRequest", &|| {
                pb::CreateOrganizationRequest {
                    slug: "matrix-made".into(),
                    name: "Matrix made".into(),
                    plan: String::new(),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/GetOrganization"),
            d("keygate.v1.GetOrganizationRequest", &|| {
                pb::GetOrganizationRequest { slug: f.organization.clone() }.encode_to_vec()
            }),
        ),
        (
            format!("{admin}/ListOrganizations"),
            d("keygate.v1.ListOrganizationsRequest", &|| {
                pb::ListOrganizationsRequest { offset: 0, limit: 10 }.encode_to_vec()
            }),
        ),
        (
            format!("{admin}/UpdateOrganization"),
            d("keygate.v1.UpdateOrganizationRequest", &|| {
                pb::UpdateOrganizationRequest {
                    slug: f.organization.clone(),
                    name: Some("Matrix renamed".into()),
                    plan: None,
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/CreateApiClient"),
            d("keygate.v1.CreateApiClientRequest", &|| {
                pb::CreateApiClientRequest {
                    name: "matrix made client".into(),
                    description: "d".into(),
                    scopes: scopes(),
                    organization: String::new(),
                    limits: limits(),
                    labels: labels(),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/GetApiClient"),
            d("keygate.v1.GetApiClientRequest", &|| {
                pb::GetApiClientRequest { client_id: f.target_client.clone() }.encode_to_vec()
            }),
        ),
        (
            format!("{admin}/ListApiClients"),
            d("keygate.v1.ListApiClientsRequest", &|| {
                pb::ListApiClientsRequest {
                    search: "matrix".into(),
                    offset: 0,
                    limit: 10,
                    organization: String::new(),
                    status: 1,
                    unused_since: since,
                    labels: labels(),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/UpdateApiClient"),
            d("keygate.v1.UpdateApiClientRequest", &|| {
                pb::UpdateApiClientRequest {
                    client_id: f.target_client.clone(),
                    name: Some("renamed".into()),
                    description: Some("d".into()),
                    scopes: Some(pb::ScopeList { values: scopes() }),
                    limits: limits(),
                    reset_limits: vec!["max_quota".into()],
                    labels: Some(pb::LabelMap { values: labels() }),
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/RegenerateClientSecret"),
            d("keygate.v1.RegenerateClientSecretRequest", &|| {
                pb::RegenerateClientSecretRequest { client_id: f.target_client.clone(), revoke_tokens: Some(true) }
                    .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/GetApiClientUsage"),
            d("keygate.v1.GetApiClientUsageRequest", &|| {
                pb::GetApiClientUsageRequest { client_id: f.target_client.clone() }.encode_to_vec()
            }),
        ),
        (
            format!("{admin}/RotateSigningKey"),
            d("keygate.v1.RotateSigningKeyRequest", &|| pb::RotateSigningKeyRequest {}.encode_to_vec()),
        ),
        (
            format!("{admin}/ListAuditEvents"),
            d("keygate.v1.ListAuditEventsRequest", &|| {
                pb::ListAuditEventsRequest {
                    start_time: since,
                    end_time: Some(prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 }),
                    actor: "bootstrap".into(),
                    action: "api_key.create".into(),
                    target: f.target_key.clone(),
                    organization: String::new(),
                    offset: 0,
                    limit: 10,
                }
                .encode_to_vec()
            }),
        ),
        (
            format!("{admin}/DisableApiKey"),
            d("keygate.v1.DisableApiKeyRequest", &|| {
                pb::DisableApiKeyRequest { key_id: f.target_key.clone() }.encode_to_vec()
            }),
        ),
        (
            format!("{admin}/DisableApiClient"),
            d("keygate.v1.DisableApiClientRequest", &|| {
                pb::DisableApiClientRequest { client_id: f.target_client.clone(), revoke_tokens: false }.encode_to_vec()
            }),
        ),
    ];
    // Every method the descriptors name has a base: a new RPC cannot be left out of the matrix.
    for service in ["keygate.v1.AuthService", "keygate.v1.AdminService", "envoy.service.auth.v3.Authorization"] {
        let service = pool.get_service_by_name(service).expect("the service is described");
        for method in service.methods() {
            let path = format!("{}/{}", service.full_name(), method.name());
            let base = bases.iter().find(|(p, _)| *p == path);
            let base = base.unwrap_or_else(|| panic!("the matrix has no base request for {path}"));
            assert_eq!(base.1.descriptor(), method.input(), "{path}: the base is of the method's input type");
        }
    }
    bases
}

/// A Check whose metadata nests `Struct`s 200 deep: past prost's recursion limit.
fn deeply_nested_check(f: &Fixture) -> Vec<u8> {
    let mut value = envoy::Value { kind: Some(envoy::Kind::StringValue("bottom".into())) };
    for _ in 0..200 {
        let inner = envoy::Struct { fields: [("a".to_owned(), value)].into() };
        value = envoy::Value { kind: Some(envoy::Kind::StructValue(inner)) };
    }
    let Some(envoy::Kind::StructValue(deep)) = value.kind else { unreachable!() };
    let mut check = crate::envoy::check_request("/api/v1/sessions/1", &[("x-api-key", &f.auth_key)]);
    if let Some(attributes) = check.attributes.as_mut() {
        let metadata = envoy_types::pb::envoy::config::core::v3::Metadata {
            filter_metadata: [("deep".to_owned(), deep)].into(),
            ..Default::default()
        };
        attributes.metadata_context = Some(metadata);
    }
    check.encode_to_vec()
}

/// Sends `body` to `path` as is; the answer, or `None` when none came within [`CALL_TIMEOUT`].
async fn raw_call(channel: &Channel, path: &str, body: Vec<u8>, admin_key: &str) -> Option<Result<Bytes, Status>> {
    let mut grpc = tonic::client::Grpc::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut request = tonic::Request::new(Bytes::from(body));
    request.set_timeout(CALL_TIMEOUT);
    request.metadata_mut().insert("x-api-key", admin_key.parse().expect("ascii key"));
    let path = http::uri::PathAndQuery::try_from(format!("/{path}")).expect("a path");
    let call = async {
        grpc.ready().await.map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
        grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
    };
    tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), call).await.ok()
}

/// The outcome of one gRPC case, and whether it is a failure.
fn grpc_outcome(case: &Case, answer: &Option<Result<Bytes, Status>>) -> (String, bool) {
    let Some(answer) = answer else { return ("FAIL timeout".into(), true) };
    let status = match answer {
        Ok(_) => return ("ok".into(), false),
        Err(status) => status,
    };
    let said: Vec<String> = status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([status.message().to_owned()])
        .collect();
    let outcome = match status.code() {
        Code::InvalidArgument if case.field.is_none() => "invalid_argument_whole_message",
        Code::InvalidArgument if names_field(&said, &case.names) => "invalid_argument_naming_field",
        Code::InvalidArgument => "invalid_argument_other",
        Code::NotFound => "not_found",
        Code::FailedPrecondition => "failed_precondition",
        Code::PermissionDenied => "permission_denied",
        Code::Unauthenticated => "unauthenticated",
        Code::AlreadyExists => "already_exists",
        Code::ResourceExhausted => "resource_exhausted",
        code if std::error::Error::source(status).is_some() => return (format!("FAIL transport {code:?}"), true),
        code => return (format!("FAIL {code:?}"), true),
    };
    (outcome.into(), false)
}

async fn grpc_matrix(server: &TestServer, f: &Fixture) -> Tally {
    let pool = descriptor_pool();
    let channel = server.channel().await;
    let mut tally = Tally::default();
    let mut per_method: Vec<(String, usize, Duration)> = Vec::new();
    for (path, base) in grpc_methods(&pool, f) {
        let started = Instant::now();
        let mut cases = hostile::cases(&base);
        if path.ends_with("/Check") {
            cases.push(Case {
                field: Some("attributes.metadata_context.filter_metadata".into()),
                names: vec!["attributes".into(), "metadata_context".into(), "filter_metadata".into()],
                value: "Structs nested 200 deep".into(),
                body: deeply_nested_check(f),
            });
        }
        let count = cases.len();
        for case in cases {
            let answer = raw_call(&channel, &path, case.body.clone(), &server.admin_key).await;
            let (outcome, failed) = grpc_outcome(&case, &answer);
            let describe = || {
                let said = match &answer {
                    Some(Err(status)) => format!("{:?}: {}", status.code(), truncate(status.message())),
                    Some(Ok(_)) => "OK".into(),
                    None => "no answer".into(),
                };
                format!("{path} {} = {}: {said}", case.field.as_deref().unwrap_or("(message)"), case.value)
            };
            if failed {
                if let Some(Err(status)) = &answer {
                    println!("bad-input matrix: failing status: {status:?}");
                }
                tally.failures.push(describe());
            } else if outcome == "invalid_argument_other" {
                tally.unnamed.push(describe());
            }
            tally.count(&outcome);
        }
        per_method.push((path, count, started.elapsed()));
    }
    for (path, count, took) in per_method {
        println!("bad-input matrix: {path}: {count} cases in {took:.1?}");
    }
    tally
}

fn truncate(text: &str) -> String {
    let cut: String = text.chars().take(240).collect();
    if cut.len() < text.len() { format!("{cut}…") } else { cut }
}

/// After the matrix: health SERVING, a valid Authorize allowed, a valid Check allowed.
async fn still_serving(server: &TestServer, f: &Fixture) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
    let status = status.expect("health answers").into_inner().status;
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    let response = server.authorize(&f.auth_key, &[SCOPE]).await;
    assert!(response.decision.as_ref().is_some_and(|d| d.allowed), "{response:?}");
    let mut check = envoy::authorization_client::AuthorizationClient::new(server.channel().await);
    let request = crate::envoy::check_request("/api/v1/sessions/1", &[("x-api-key", &f.auth_key)]);
    let response = check.check(request).await.expect("check answers").into_inner();
    assert_eq!(response.status.map(|s| s.code), Some(0), "a valid Check is allowed");
    let (status, body) = get_json(server, "/.well-known/jwks.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// --- HTTP ---

async fn get_json(server: &TestServer, path: &str) -> (StatusCode, Value) {
    let response = http_client().get(server.url(path)).bearer_auth(&server.admin_key).send().await.expect("get");
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

/// What an HTTP answer was: its status and its body.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

async fn send(
    client: &reqwest::Client,
    server: &TestServer,
    case: &HttpCase,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let mut request = client.request(case.method.clone(), server.url(&case.target));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("reading the body: {e:?}"))?;
    Ok(Answer { status, body: body.to_vec() })
}

/// The REST admin API's outcome: a 2xx, or a client error naming the field for 400 and 422.
fn rest_outcome(case: &HttpCase, answer: &Answer) -> (String, bool) {
    let code = answer.status.as_u16();
    let outcome = match code {
        200..=299 => "ok".to_owned(),
        400 | 422 => {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            let fields: Vec<String> = body["errors"]
                .as_array()
                .map(|e| e.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            if body["code"].as_str().is_none() {
                return (format!("FAIL {code} without the error shape"), true);
            }
            match &case.field {
                Some(_) if names_field(&fields, &case.names) => format!("{code}_naming_field"),
                _ => format!("{code}_other"),
            }
        }
        401 | 403 | 404 | 405 | 409 | 413 | 415 => code.to_string(),
        _ => return (format!("FAIL {code}"), true),
    };
    (outcome, false)
}

/// A valid value for each path parameter of the REST admin API.
fn path_values(f: &Fixture) -> impl Fn(&str) -> String + '_ {
    move |name| match name {
        "key_id" => f.rest_key.clone(),
        "client_id" => f.rest_client.clone(),
        "slug" => f.organization.clone(),
        other => panic!("no valid value known for path parameter {other}"),
    }
}

/// A valid body for each operation that takes one.
fn base_body(method: &str, template: &str) -> Option<Value> {
    let labels = json!({"env": "test"});
    let limits = json!({"rate_limit_per_minute": 600});
    Some(match (method, template) {
        ("post", "/api/admin/api-keys") => json!({
            "name": "rest matrix", "description": "d", "scopes": [SCOPE], "expires_in_days": 30,
            "limits": limits, "labels": labels, "organization": "platform"}),
        ("patch", "/api/admin/api-keys/{key_id}") | ("patch", "/api/admin/api-clients/{client_id}") => json!({
            "name": "rest renamed", "description": "d", "scopes": [SCOPE], "limits": limits, "labels": labels}),
        ("post", "/api/admin/api-keys/{key_id}/rotate") => json!({"grace_period_days": 1, "expires_in_days": 30}),
        ("post", "/api/admin/api-clients") => json!({
            "name": "rest matrix client", "description": "d", "scopes": [SCOPE], "limits": limits, "labels": labels,
            "organization": "platform"}),
        ("post", "/api/admin/api-clients/{client_id}/regenerate-secret") => json!({"revoke_tokens": true}),
        ("post", "/api/admin/organizations") => json!({"slug": "rest-matrix", "name": "Rest matrix"}),
        ("patch", "/api/admin/organizations/{slug}") => json!({"name": "Matrix"}),
        _ => return None,
    })
}

async fn http_matrix(server: &TestServer, f: &Fixture) -> Tally {
    let client = http_client();
    let mut tally = Tally::default();
    let (status, document) = get_json(server, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let values = path_values(f);
    let mut operations = Vec::new();
    for (template, item) in document["paths"].as_object().expect("paths") {
        for (method, spec) in item.as_object().expect("a path item") {
            if matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                operations.push((method.clone(), template.clone(), spec.clone()));
            }
        }
    }
    // What disables its target goes last, so that the others act on a live one.
    operations.sort_by_key(|(method, template, _)| (method == "delete", template.clone(), method.clone()));
    let admin = format!("Bearer {}", server.admin_key);
    let mut cases: Vec<HttpCase> = Vec::new();
    for (method, template, spec) in &operations {
        let operation =
            Operation { method, template, spec, path_values: &values, base_body: base_body(method, template) };
        let generated = hostile_http::cases(&document, &operation);
        assert!(!generated.is_empty() || template == "/quota", "{method} {template}: no cases");
        cases.extend(generated);
    }
    println!("bad-input matrix: REST admin API: {} operations, {} cases", operations.len(), cases.len());
    for case in &cases {
        let answer = send(&client, server, case, &[("authorization", &admin)]).await;
        record(
            &mut tally,
            case,
            answer.map(|a| {
                let o = rest_outcome(case, &a);
                (o, a)
            }),
        );
    }
    oauth_matrix(server, f, &client, &mut tally).await;
    console_matrix(server, f, &client, &mut tally).await;
    tally
}

/// A body larger than any of keygate's HTTP limits (64 KiB for the admin API, 2 MB for forms).
const OVER_ANY_LIMIT: usize = 2 << 20;

/// Counts one HTTP case.
fn record(tally: &mut Tally, case: &HttpCase, answer: Result<((String, bool), Answer), String>) {
    let describe = |said: String| {
        format!(
            "{} {} {} = {}: {said}",
            case.operation,
            case.target.chars().take(120).collect::<String>(),
            case.field.as_deref().unwrap_or("-"),
            case.value
        )
    };
    match answer {
        // A server may answer a body over its limit before the body is all sent, and close
        // the connection (as it says, `Connection: close`); the client, still writing, may then
        // see the write fail before it reads the answer. Only for such bodies is that a close,
        // not a drop.
        Err(error) if error.contains("BodyWrite") && case.body.as_ref().is_some_and(|b| b.len() > OVER_ANY_LIMIT) => {
            tally.count("closed_while_sending_a_body_over_the_limit");
        }
        Err(error) => {
            tally.failures.push(describe(format!("no answer: {error}")));
            tally.count("FAIL no answer");
        }
        Ok(((outcome, failed), answer)) => {
            let said = || format!("{} {}", answer.status, truncate(&String::from_utf8_lossy(&answer.body)));
            if failed {
                tally.failures.push(describe(said()));
            } else if outcome.ends_with("_other") {
                tally.unnamed.push(describe(said()));
            }
            tally.count(&outcome);
        }
    }
}

/// An OAuth endpoint's outcome: 200, or an RFC 6749 error (400 or 401, `{"error": ...}`), a body
/// over the limit included.
fn oauth_outcome(answer: &Answer) -> (String, bool) {
    let code = answer.status.as_u16();
    match code {
        200 => ("ok".into(), false),
        400 | 401 => {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            match body["error"].as_str() {
                Some(error) if !error.is_empty() => (format!("oauth_{code}_{error}"), false),
                _ => (format!("FAIL {code} without an RFC 6749 error"), true),
            }
        }
        _ => (format!("FAIL {code}"), true),
    }
}

async fn oauth_matrix(server: &TestServer, f: &Fixture, client: &reqwest::Client, tally: &mut Tally) {
    let (client_id, secret) = &f.oauth_client;
    let base = |fields: &[(&str, &str)]| fields.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    let token_form: hostile_http::FormFields = base(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", SCOPE),
    ]);
    let answer = client
        .post(server.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(hostile_http::encode_form(
            &token_form.iter().map(|(n, v)| (n.clone(), v.clone().into_bytes())).collect::<Vec<_>>(),
        ))
        .send()
        .await
        .expect("token");
    let token: Value = serde_json::from_slice(&answer.bytes().await.expect("a token answer")).expect("JSON");
    let token = token["access_token"].as_str().expect("a token").to_owned();
    let introspect_form: hostile_http::FormFields = base(&[
        ("token", &token),
        ("token_type_hint", "access_token"),
        ("client_id", client_id),
        ("client_secret", secret),
    ]);
    let mut count = 0;
    for (path, form) in [("/oauth/token", &token_form), ("/oauth/introspect", &introspect_form)] {
        let mut variants: Vec<(Option<String>, String, Vec<u8>, &'static str)> =
            hostile_http::form_variants(form, true)
                .into_iter()
                .map(|(field, value, fields)| {
                    (Some(field), value, hostile_http::encode_form(&fields), "application/x-www-form-urlencoded")
                })
                .collect();
        let valid = hostile_http::encode_form(
            &form.iter().map(|(n, v)| (n.clone(), v.clone().into_bytes())).collect::<Vec<_>>(),
        );
        variants.push((None, "an empty body".into(), Vec::new(), "application/x-www-form-urlencoded"));
        variants.push((None, "content type JSON".into(), valid.clone(), "application/json"));
        variants.push((None, "a 3 MiB body".into(), vec![b'a'; 3 << 20], "application/x-www-form-urlencoded"));
        variants.push((
            None,
            "raw bytes that are not UTF-8".into(),
            vec![0xff, 0x3d, 0xfe, 0x26, 0x00],
            "application/x-www-form-urlencoded",
        ));
        variants.push((
            None,
            "a bare percent".into(),
            b"grant_type=%&client_id=%zz".to_vec(),
            "application/x-www-form-urlencoded",
        ));
        let authorization = [
            ("Basic !!!not-base64", "a Basic header that is not base64"),
            ("Basic /w==", "a Basic header that is not UTF-8"),
            ("Basic Og==", "a Basic header of an empty id and secret"),
            ("Bearer \u{1}", "a bearer header with a control character"),
        ];
        for (field, value, body, content_type) in variants {
            let case = HttpCase {
                operation: format!("POST {path}"),
                method: reqwest::Method::POST,
                target: path.to_owned(),
                content_type: Some(content_type),
                body: Some(body),
                names: field.iter().cloned().collect(),
                field,
                value,
            };
            let answer = send(client, server, &case, &[]).await;
            record(tally, &case, answer.map(|a| (oauth_outcome(&a), a)));
            count += 1;
        }
        for (header, description) in authorization {
            let case = HttpCase {
                operation: format!("POST {path}"),
                method: reqwest::Method::POST,
                target: path.to_owned(),
                content_type: Some("application/x-www-form-urlencoded"),
                body: Some(b"grant_type=client_credentials&token=x".to_vec()),
                field: Some("authorization".into()),
                names: vec!["authorization".into()],
                value: description.into(),
            };
            // reqwest refuses control characters in a header value: those go as bytes.
            let Ok(header) = reqwest::header::HeaderValue::from_bytes(header.as_bytes()) else { continue };
            let answer = async {
                let response = client
                    .post(server.url(path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("authorization", header)
                    .body(case.body.clone().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let status = response.status();
                Ok(Answer { status, body: response.bytes().await.map_err(|e| format!("{e:?}"))?.to_vec() })
            }
            .await;
            record(tally, &case, answer.map(|a| (oauth_outcome(&a), a)));
            count += 1;
        }
    }
    // The documents: whatever the query, they answer.
    for path in
        ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server", "/metrics", "/api/openapi.json", "/quota"]
    {
        for (query, description) in [
            ("?%00=%FF%FE&x=", "a query of NUL and bytes that are not UTF-8"),
            ("?a=1&a=2&a=3", "a repeated parameter"),
            ("?%", "a bare percent"),
        ] {
            let case = HttpCase {
                operation: format!("GET {path}"),
                method: reqwest::Method::GET,
                target: format!("{path}{query}"),
                content_type: None,
                body: None,
                field: None,
                names: Vec::new(),
                value: description.into(),
            };
            let answer =
                send(client, server, &case, &[("authorization", &format!("Bearer {}", server.admin_key))]).await;
            record(
                tally,
                &case,
                answer.map(|a| {
                    let ok = a.status.is_success();
                    ((if ok { "ok".into() } else { format!("FAIL {}", a.status.as_u16()) }, !ok), a)
                }),
            );
            count += 1;
        }
    }
    println!("bad-input matrix: OAuth and documents: {count} cases");
}

/// The console's outcome: any page but a 5xx (its forms answer with pages, not error bodies).
fn console_outcome(answer: &Answer) -> (String, bool) {
    let code = answer.status.as_u16();
    if code >= 500 { (format!("FAIL {code}"), true) } else { (format!("console_{code}"), false) }
}

async fn console_matrix(server: &TestServer, f: &Fixture, client: &reqwest::Client, tally: &mut Tally) {
    let origin = server.url("");
    let origin = origin.trim_end_matches('/');
    let form = "application/x-www-form-urlencoded";
    // Sign-in, with hostile credentials.
    let mut count = 0;
    let sign_in: hostile_http::FormFields = vec![("credential".into(), server.admin_key.clone())];
    for (field, value, fields) in hostile_http::form_variants(&sign_in, true) {
        let case = HttpCase {
            operation: "POST /console/sign-in".into(),
            method: reqwest::Method::POST,
            target: "/console/sign-in".into(),
            content_type: Some(form),
            body: Some(hostile_http::encode_form(&fields)),
            names: vec![field.clone()],
            field: Some(field),
            value,
        };
        let answer = send(client, server, &case, &[("origin", origin)]).await;
        record(tally, &case, answer.map(|a| (console_outcome(&a), a)));
        count += 1;
    }
    // Signed in: every post form of the pages, each field hostile.
    let body = format!("credential={}", hostile_http::encode(server.admin_key.as_bytes()));
    let response = client
        .post(server.url("/console/sign-in"))
        .header("content-type", form)
        .header("origin", origin)
        .body(body)
        .send()
        .await
        .expect("sign in");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|c| c.starts_with("keygate_console=")))
        .expect("a session cookie")
        .to_owned();
    let pages = [
        "/console/keys/new".to_owned(),
        format!("/console/keys/{}", f.rest_key),
        "/console/clients/new".to_owned(),
        format!("/console/clients/{}", f.rest_client),
        "/console/organizations".to_owned(),
        format!("/console/organizations/{}", f.organization),
    ];
    for page in &pages {
        let html = client
            .get(server.url(page))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        for (action, fields) in hostile_http::page_forms(&html) {
            // Disabling and signing out would end what the rest of the forms act on.
            if action.ends_with("/disable") || action.ends_with("/sign-out") || action.ends_with("/regenerate") {
                continue;
            }
            let mut fields = fields;
            for (name, value) in &mut fields {
                if value.is_empty() {
                    *value = match name.as_str() {
                        "name" => "console matrix".into(),
                        "slug" => "console-matrix".into(),
                        _ => String::new(),
                    };
                }
            }
            for (field, value, hostile) in hostile_http::form_variants(&fields, false) {
                if field == "csrf" && value != "left out" {
                    continue;
                }
                let case = HttpCase {
                    operation: format!("POST {action} (from {page})"),
                    method: reqwest::Method::POST,
                    target: action.clone(),
                    content_type: Some(form),
                    body: Some(hostile_http::encode_form(&hostile)),
                    names: vec![field.clone()],
                    field: Some(field),
                    value,
                };
                let answer = send(client, server, &case, &[("origin", origin), ("cookie", &cookie)]).await;
                record(tally, &case, answer.map(|a| (console_outcome(&a), a)));
                count += 1;
            }
        }
        // The page itself, with a hostile query.
        let case = HttpCase {
            operation: format!("GET {page}"),
            method: reqwest::Method::GET,
            target: format!("{page}?offset=-1&limit=%FF&search=%00&status=zz"),
            content_type: None,
            body: None,
            field: None,
            names: Vec::new(),
            value: "a hostile query".into(),
        };
        let answer = send(client, server, &case, &[("cookie", &cookie)]).await;
        record(tally, &case, answer.map(|a| (console_outcome(&a), a)));
        count += 1;
    }
    println!("bad-input matrix: console: {count} cases");
}
