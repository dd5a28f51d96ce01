//! `helm install keygate` as a cluster would run it, with a kubelet in the test
//! (support/kubelet.rs): the chart rendered by Helm with database and Redis URLs, the migration
//! Job run to completion, then the Deployment's container started with the environment, files and
//! probes Kubernetes would give it. Then the database is cut (a TCP proxy between keygate and
//! PostgreSQL) for 15 s: readiness and liveness keep passing and a cached key stays allowed. Then
//! SIGTERM: new connections are answered through the drain delay, readiness fails at once, and
//! the process exits 0 within terminationGracePeriodSeconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use keygate::config::{Config, Sources};
use keygate::proto::envoy_auth::authorization_client::AuthorizationClient;
use keygate::proto::keygate_v1 as pb;
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::outage::host_port;
use crate::support::free_port;
use crate::support::kubelet::{Container, Image, Namespace, Running};
use crate::support::proxy::CuttableProxy;
use crate::support::{Backend, TestDb, as_admin, bearer, redis_url};

/// How long the database stays cut while probes and a cached key are checked.
const OUTAGE: Duration = Duration::from_secs(15);

/// A deployment under test: how to reach it and what the cluster holds besides the chart.
struct Install {
    /// Values beyond the database, Redis and ports.
    values: Value,
    /// Secrets the cluster has before the install (e.g. `tls.existingSecret`).
    cluster: Vec<Value>,
    /// The CA clients trust, when the listeners speak TLS.
    ca_pem: Option<String>,
}

/// Everything a test needs from a running deployment.
struct Deployed {
    grpc: SocketAddr,
    ca_pem: Option<String>,
}

impl Deployed {
    async fn channel(&self) -> Channel {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        let mut endpoint = Channel::from_shared(format!("{scheme}://{}", self.grpc)).expect("uri");
        if let Some(ca) = &self.ca_pem {
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("keygate");
            endpoint = endpoint.tls_config(tls).expect("tls config");
        }
        endpoint.connect_timeout(Duration::from_secs(2)).connect().await.expect("connect to the pod")
    }

    async fn authorize(&self, key: &str) -> Result<bool, tonic::Status> {
        let request = pb::AuthorizeRequest {
            credentials: Some(bearer(key)),
            required_scopes: vec!["graph:read".into()],
            ..Default::default()
        };
        let mut auth = pb::auth_service_client::AuthServiceClient::new(self.channel().await);
        Ok(auth.authorize(request).await?.into_inner().decision.expect("decision").allowed)
    }
}

/// The keygate configuration in a rendered ConfigMap.
fn rendered_config(namespace: &Namespace, pod: &Value) -> Config {
    let volume = pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == "config").expect("config");
    let name = volume["configMap"]["name"].as_str().expect("name");
    let map = namespace.objects.iter().find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == name);
    let toml = map.expect("the config ConfigMap")["data"]["keygate.toml"].as_str().expect("keygate.toml").to_owned();
    Config::load(&Sources { file: Some((PathBuf::from("keygate.toml"), toml)), ..Sources::default() })
        .expect("the rendered config loads")
}

async fn wait_for_probe(running: &mut Running, which: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match running.container.probe(which).await {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < deadline, "{which} never passed: {why}\n{}", running.logs()),
        }
        running.still_running();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn install_and_run(install: Install) {
    let db = TestDb::create(Backend::Postgres).await;
    let target: SocketAddr =
        host_port(&db.url).replace("localhost", "127.0.0.1").parse().expect("TEST_POSTGRES_URL names an IP:port");
    let proxy = CuttableProxy::start(target).await;
    let proxied = db.url.replacen(host_port(&db.url), &proxy.addr.to_string(), 1);
    let (grpc_port, http_port, metrics_port) = (free_port(), free_port(), free_port());
    let mut values = json!({
        "database": {"url": proxied},
        "redis": {"url": redis_url()},
        "ports": {"grpc": grpc_port, "http": http_port, "metrics": metrics_port},
    });
    crate::helm::merge(&mut values, install.values);
    let rendered = crate::helm::render(&values);
    let mut objects = rendered.resources.clone();
    objects.extend(install.cluster);
    let namespace = Namespace { objects };
    let image = Image::from_dockerfile();

    // The migration Job (a pre-install hook), to completion; and the reproduction, a
    // pod given every Service's service links, which must not break it either.
    let job = namespace.objects.iter().find(|o| o["kind"] == "Job").expect("the migration Job");
    let job_pod = &job["spec"]["template"]["spec"];
    assert_eq!(job_pod["enableServiceLinks"], false, "the Job's pod turns service links off");
    let deadline = Duration::from_secs(job["spec"]["activeDeadlineSeconds"].as_u64().unwrap_or(600));
    for links in [false, true] {
        let mut pod = job_pod.clone();
        pod["enableServiceLinks"] = json!(links);
        let container = Container::new(&namespace, &image, &pod, 0);
        assert_eq!(container.env.iter().any(|(name, _)| name == "KEYGATE_SERVICE_HOST"), links);
        let out = container.run_to_completion(deadline);
        assert!(out.status.success(), "the migration Job failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    // The Deployment's container.
    let deployment = namespace.objects.iter().find(|o| o["kind"] == "Deployment").expect("the Deployment");
    let pod = deployment["spec"]["template"]["spec"].clone();
    assert_eq!(pod["enableServiceLinks"], false, "the server's pod turns service links off");
    let config = rendered_config(&namespace, &pod);
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    let drain = config.shutdown.drain_delay;
    assert!(drain >= Duration::from_secs(5), "the chart drains for at least 5 s, got {drain:?}");
    assert!(grace > drain + config.shutdown.grace, "terminationGracePeriodSeconds covers both");
    let mut running = Container::new(&namespace, &image, &pod, 0).start();
    wait_for_probe(&mut running, "readinessProbe", Duration::from_secs(60)).await;
    let container = &running.container;
    let deployed =
        Deployed { grpc: SocketAddr::from(([127, 0, 0, 1], container.port(&json!("grpc")))), ca_pem: install.ca_pem };
    container.probe("livenessProbe").await.expect("liveness passes");

    // An operator makes the first admin key with `kubectl exec ... keygate bootstrap`.
    let out = container.exec(&["keygate".into(), "bootstrap".into()], Duration::from_secs(60));
    assert!(out.status.success(), "bootstrap: {}", String::from_utf8_lossy(&out.stderr));
    let admin_key = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    let create =
        pb::CreateApiKeyRequest { name: "cached".into(), scopes: vec!["graph:read".into()], ..Default::default() };
    let mut admin = pb::admin_service_client::AdminServiceClient::new(deployed.channel().await);
    let key = admin.create_api_key(as_admin(create, &admin_key)).await.expect("create a key").into_inner().api_key;
    assert!(deployed.authorize(&key).await.expect("authorize"), "a fresh key is allowed");

    check_policy(&deployed, container, &config, &key).await;

    // The database goes away: every probe keeps passing, the cached key stays allowed.
    proxy.cut().await;
    let cut = Instant::now();
    let mut rounds = 0;
    while cut.elapsed() < OUTAGE {
        container.probe("readinessProbe").await.unwrap_or_else(|e| panic!("readiness failed during the outage: {e}"));
        container.probe("livenessProbe").await.unwrap_or_else(|e| panic!("liveness failed during the outage: {e}"));
        assert!(deployed.authorize(&key).await.expect("a cached key is decided"), "the cached key stays allowed");
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(rounds >= 10, "{rounds} rounds in {OUTAGE:?}");

    // SIGTERM: readiness fails at once, new connections are answered through the drain delay,
    // then the process exits 0 within the grace period.
    let mut running = running;
    let container = &running.container;
    let signalled = Instant::now();
    let _ = std::process::Command::new("kill").args(["-TERM", &running.child.id().to_string()]).status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(container.probe("readinessProbe").await.is_err(), "readiness fails once SIGTERM arrived");
    let mut answered = 0;
    while signalled.elapsed() + Duration::from_millis(700) < drain {
        assert!(deployed.authorize(&key).await.expect("answered during the drain delay"), "still allowed");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered > 0, "the drain delay answered no new connection");
    let status = loop {
        if let Some(status) = running.child.try_wait().expect("wait") {
            break status;
        }
        assert!(signalled.elapsed() < grace, "still running after terminationGracePeriodSeconds ({grace:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit {status}:\n{}", running.logs());
    db.drop_database().await;
}

/// With a route policy mounted, Envoy's Check follows it, and a changed ConfigMap is followed
/// without a restart.
async fn check_policy(deployed: &Deployed, container: &Container, config: &Config, key: &str) {
    let Some(path) = &config.envoy.policy_file else { return };
    let mut envoy = AuthorizationClient::new(deployed.channel().await);
    let check = |path: &str| crate::envoy::check_request(path, &[("authorization", &format!("Bearer {key}"))]);
    let status = |response: keygate::proto::envoy_auth::CheckResponse| response.status.map_or(-1, |s| s.code);
    let allowed = envoy.check(check("/api/v1/graph/nodes")).await.expect("check").into_inner();
    assert_eq!(status(allowed), 0, "the mounted policy allows graph:read on /api/v1/graph/**");

    // `kubectl apply` of a new policy: the kubelet swaps the volume's ..data; keygate follows.
    let mount = container.spec["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| path.starts_with(m["mountPath"].as_str().expect("mountPath")))
        .expect("the policy file is under a mount");
    let volume = mount["name"].as_str().expect("name");
    let file = path.file_name().expect("file name").to_str().expect("utf-8");
    container.update_config_map(
        volume,
        file,
        "[[routes]]\nname = \"graph\"\npath = \"/api/v1/graph/**\"\nscopes = [\"incidents:read\"]\n",
    );
    let deadline = Instant::now() + config.envoy.policy_poll * 3 + Duration::from_secs(10);
    loop {
        let response = envoy.check(check("/api/v1/graph/nodes")).await.expect("check").into_inner();
        if status(response) != 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the changed policy was not followed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_values_run_survive_a_database_outage_and_drain() {
    install_and_run(Install {
        values: json!({"config": {"shutdown": {"drain_delay_secs": 5}}, "terminationGracePeriodSeconds": 40}),
        cluster: Vec::new(),
        ca_pem: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_policy_and_tls_are_mounted_followed_and_probed() {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["keygate".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "keygate-tls"},
        "data": {"tls.crt": b64(cert.pem()), "tls.key": b64(key.serialize_pem())},
    });
    let policy = "[[routes]]\nname = \"graph\"\npath = \"/api/v1/graph/**\"\nscopes = [\"graph:read\"]\n";
    let values = json!({
        "policy": {"inline": policy},
        "tls": {"existingSecret": "keygate-tls"},
        "config": {"envoy": {"policy_poll_secs": 1}},
    });
    install_and_run(Install { values, cluster: vec![secret], ca_pem: Some(cert.pem()) }).await;
}
