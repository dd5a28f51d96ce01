//! The Helm chart (helm/keygate) and the container image. Helm itself lints and renders the chart
//! (helm-python-sdk, driven by tests/helm/chart.py), every manifest is validated against the
//! Kubernetes schemas (kubernetes-validate) or, for custom resources, their CRDs' schemas, and the
//! config the pods would get (the image's ENV, the pod's env, the mounted file) is loaded with
//! keygate's own loader, so a chart that renders a setting keygate rejects fails here. The chart's
//! schema for `config` is held to the loader's settings, and the alert rules' and dashboard's
//! PromQL (parsed by tests/helm/promql.py) to the series a running keygate exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use keygate::config::{Config, DefaultIs, Kind, LimitsBackend, LogFormat, RedisFailureMode, Sources};
use keygate::proto::keygate_v1::auth_service_server::SERVICE_NAME as AUTH_SERVICE;
use keygate_core::credentials::scopes::ScopeRegistry;
use keygate_core::policy::Policy;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer};

/// The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest known.
const KUBE_VERSIONS: [&str; 2] = ["1.27.0", "1.37.0"];
const RELEASE: &str = "keygate";
const NAMESPACE: &str = "auth";
const DATABASE_URL: &str = "postgres://keygate:s3cret@db.internal:5432/keygate";
/// Stands in for the URL in a Secret the chart does not render (database.existingSecret).
const EXTERNAL_DATABASE_URL: &str = "postgres://keygate@external.invalid:5432/keygate";
const REDIS_URL: &str = "redis://:s3cret@redis.internal:6379/0";
const TLS_REDIS_URL: &str = "rediss://:s3cret@redis.internal:6380/0";
const EXTERNAL_REDIS_URL: &str = "redis://redis.external.invalid:6379";
const HOOK: &str = "helm.sh/hook";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The chart's manifests for one set of values, as Helm rendered them.
pub(crate) struct Rendered {
    pub(crate) resources: Vec<Value>,
    notes: String,
}

/// Runs one of the tests/helm scripts with `request` as JSON on stdin; its JSON answer.
fn python(script: &str, request: &Value) -> Value {
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = Command::new(&python)
        .arg(root().join("tests/helm").join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python:?} ({e}): run the tests with scripts/test"));
    serde_json::to_writer(child.stdin.take().expect("stdin"), request).expect("write the request");
    let out = child.wait_with_output().expect("the script runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/helm/{script} failed with {python:?} ({}); the chart tests need helm-python-sdk, \
         kubernetes-validate and promql-parser: run them with scripts/test, or set TEST_PYTHON to a python \
         that has them\n{stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout).expect("the script answers JSON")
}

/// Lints and renders the chart with `values`; Err((stage, error)) when Helm or the Kubernetes
/// schemas reject it.
fn helm(values: &Value) -> Result<Rendered, (String, String)> {
    let request = json!({
        "chart": root().join("helm/keygate"),
        "values": values,
        "kube_versions": KUBE_VERSIONS,
        "release": RELEASE,
        "namespace": NAMESPACE,
    });
    let answer = python("chart.py", &request);
    if answer["ok"] != json!(true) {
        return Err((string(&answer["stage"]), string(&answer["error"])));
    }
    let resources = answer["resources"].as_array().expect("resources").iter().map(|r| r["object"].clone()).collect();
    Ok(Rendered { resources, notes: string(&answer["notes"]) })
}

pub(crate) fn render(values: &Value) -> Rendered {
    helm(values).unwrap_or_else(|(stage, error)| panic!("the chart failed at {stage}:\n{error}"))
}

fn string(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The smallest install: the chart's defaults plus the database URL it cannot guess.
pub(crate) fn values(overrides: Value) -> Value {
    let mut values = json!({"database": {"url": DATABASE_URL}, "redis": {"url": REDIS_URL}});
    merge(&mut values, overrides);
    values
}

pub(crate) fn merge(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, overrides) => *base = overrides,
    }
}

fn baseline() -> &'static Rendered {
    static BASELINE: OnceLock<Rendered> = OnceLock::new();
    BASELINE.get_or_init(|| render(&values(json!({}))))
}

impl Rendered {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.resources.iter().filter(|r| r["kind"] == kind).collect()
    }

    /// The one non-hook resource of `kind`.
    fn one(&self, kind: &str) -> &Value {
        let found: Vec<_> = self.all(kind).into_iter().filter(|r| !is_hook(r)).collect();
        assert_eq!(found.len(), 1, "expected one {kind}, got {found:#?}");
        found[0]
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.all(kind).into_iter().find(|r| r["metadata"]["name"] == name)
    }

    fn job(&self) -> &Value {
        let jobs = self.all("Job");
        assert_eq!(jobs.len(), 1, "expected the migration Job");
        jobs[0]
    }

    /// The configuration keygate would run with in `pod` (a Deployment's or Job's pod spec):
    /// its mounted ConfigMap as the file, its environment over the image's, its arguments,
    /// through keygate's loader.
    fn keygate_config(&self, pod: &Value) -> Config {
        let container = &pod["containers"][0];
        assert!(container.get("command").is_none(), "the image's ENTRYPOINT (keygate) must stay");
        let env = self.container_env(pod);
        let file_path = env.iter().find(|(name, _)| name == "KEYGATE_CONFIG").map(|(_, v)| v.clone());
        let file_path = file_path.expect("KEYGATE_CONFIG names the config file");
        let toml = match self.mounted_file(pod, &file_path) {
            Some(Mounted::ConfigMap { text: Some(text), .. }) => text,
            other => panic!("KEYGATE_CONFIG ({file_path}) is not a rendered ConfigMap's file: {other:?}"),
        };

        let args: Vec<String> = container["args"].as_array().expect("args").iter().map(string).collect();
        assert!(args.len() == 1 && ["serve", "migrate"].contains(&args[0].as_str()), "{args:?}");
        let sources = Sources { file: Some((PathBuf::from("keygate.toml"), toml.clone())), env, flags: Vec::new() };
        Config::load(&sources).unwrap_or_else(|e| panic!("keygate rejects the chart's configuration: {e}\n{toml}"))
    }

    /// The keygate container's environment as Kubernetes builds it: the image's ENV, then
    /// envFrom, then env, a later name replacing an earlier one. No service links: the pods turn
    /// them off (checked apart). Values from Secrets and ConfigMaps the chart does not render
    /// are the user's: stand-ins ([`STAND_INS`]) take their place, and envFrom of one adds nothing.
    fn container_env(&self, pod: &Value) -> Vec<(String, String)> {
        let container = &pod["containers"][0];
        let mut env = image_env();
        let mut set = |name: String, value: String| {
            env.retain(|(known, _)| *known != name);
            env.push((name, value));
        };
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let prefix = string(&source["prefix"]);
            let (kind, reference) = match (source.get("configMapRef"), source.get("secretRef")) {
                (Some(reference), _) => ("ConfigMap", reference),
                (_, Some(reference)) => ("Secret", reference),
                _ => panic!("envFrom without a source: {source}"),
            };
            if let Some(object) = self.named(kind, reference["name"].as_str().expect("a name")) {
                for (name, value) in data(object) {
                    set(format!("{prefix}{name}"), value);
                }
            }
        }
        for var in container["env"].as_array().expect("env") {
            let name = string(&var["name"]);
            let value = match (var.get("value"), var.get("valueFrom")) {
                (Some(value), None) => string(value),
                (None, Some(from)) => self.referenced_value(&name, from),
                _ => panic!("{name}: a literal value or a valueFrom, as the kubelet test supports: {var}"),
            };
            set(name, value);
        }
        env
    }

    /// A secretKeyRef's or configMapKeyRef's value, from a rendered object or [`STAND_INS`].
    fn referenced_value(&self, variable: &str, from: &Value) -> String {
        let (kind, reference) = match (from.get("secretKeyRef"), from.get("configMapKeyRef")) {
            (Some(reference), None) => ("Secret", reference),
            (None, Some(reference)) => ("ConfigMap", reference),
            _ => panic!("{variable}: only secretKeyRef and configMapKeyRef are supported: {from}"),
        };
        let key = string(&reference["key"]);
        match self.named(kind, reference["name"].as_str().expect("a name")) {
            Some(object) => {
                data(object).remove(&key).unwrap_or_else(|| panic!("{variable}: {kind} {reference} has no key {key}"))
            }
            None => STAND_INS
                .iter()
                .find(|(name, _)| *name == variable)
                .map(|(_, value)| (*value).to_owned())
                .unwrap_or_else(|| panic!("{variable} comes from a {kind} the chart does not render: add a stand-in")),
        }
    }

    /// What the kubelet would put at `path` in `pod`'s keygate container: the mount it falls
    /// under, the volume's source, and the key (items honoured) that becomes that file.
    fn mounted_file(&self, pod: &Value, path: &str) -> Option<Mounted> {
        let mounts = pod["containers"][0]["volumeMounts"].as_array().expect("mounts");
        // The deepest mount holding the path, as with nested mounts.
        let holding = mounts.iter().filter(|m| Path::new(path).starts_with(string(&m["mountPath"])));
        let mount = holding.max_by_key(|m| string(&m["mountPath"]).len())?;
        assert!(mount.get("subPath").is_none(), "a subPath mount never sees updates: {mount}");
        let relative = Path::new(path).strip_prefix(string(&mount["mountPath"])).ok()?.to_str()?.to_owned();
        let volumes = pod["volumes"].as_array().expect("volumes");
        let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap_or_else(|| panic!("no volume {mount}"));
        let (kind, name, source) = match (volume.get("configMap"), volume.get("secret")) {
            (Some(source), None) => ("ConfigMap", string(&source["name"]), source),
            (None, Some(source)) => ("Secret", string(&source["secretName"]), source),
            _ => return None,
        };
        let key = match source["items"].as_array() {
            Some(items) => string(&items.iter().find(|item| item["path"] == relative.as_str())?["key"]),
            None => relative,
        };
        // A key the object lacks keeps the pod from starting: the kubelet refuses the volume.
        let text = self.named(kind, &name).map(|object| {
            data(object).remove(&key).unwrap_or_else(|| panic!("{kind} {name} has no key {key} for {path}"))
        });
        Some(match kind {
            "ConfigMap" => Mounted::ConfigMap { name, key, text },
            _ => Mounted::Secret { name, key },
        })
    }
}

/// A file in a pod, by where it comes from; `text` when the chart renders the ConfigMap.
#[derive(Debug, PartialEq)]
enum Mounted {
    ConfigMap { name: String, key: String, text: Option<String> },
    Secret { name: String, key: String },
}

/// Values of Secrets the chart does not render (the user's `existingSecret`s), by variable.
const STAND_INS: &[(&str, &str)] = &[
    ("KEYGATE_DATABASE_URL", EXTERNAL_DATABASE_URL),
    ("KEYGATE_LIMITS_REDIS_URL", EXTERNAL_REDIS_URL),
    ("KEYGATE_OAUTH_ISSUER", "https://keygate.example.com"),
    // 32 bytes, base64.
    ("KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
];

/// A ConfigMap's or Secret's data as the pod sees it: a Secret's `data` is base64, its
/// `stringData` (what the chart writes) and a ConfigMap's `data` are the text itself.
fn data(object: &Value) -> BTreeMap<String, String> {
    use base64::Engine as _;
    let mut out = BTreeMap::new();
    for (field, encoded) in [("stringData", false), ("data", object["kind"] == "Secret")] {
        for (key, value) in object[field].as_object().into_iter().flatten() {
            let text = match encoded {
                false => string(value),
                true => {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(string(value)).expect("base64");
                    String::from_utf8(bytes).expect("UTF-8")
                }
            };
            out.insert(key.clone(), text);
        }
    }
    out
}

/// The runtime stage of the Dockerfile.
fn runtime_stage() -> String {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    dockerfile.rsplit_once("\nFROM ").expect("a multi-stage build").1.to_owned()
}

/// The runtime stage's instructions, continuation lines joined.
fn instructions() -> Vec<String> {
    let joined = runtime_stage().replace("\\\n", " ");
    joined.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).map(str::to_owned).collect()
}

/// The image's ENV, which every container starts with.
fn image_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    for line in instructions().iter().filter_map(|l| l.strip_prefix("ENV ")) {
        for pair in line.split_whitespace() {
            let (name, value) = pair.split_once('=').unwrap_or_else(|| panic!("ENV NAME=VALUE only: {pair}"));
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    env
}

fn is_hook(resource: &Value) -> bool {
    resource["metadata"]["annotations"].get(HOOK).is_some()
}

fn hook_weight(resource: &Value) -> i64 {
    string(&resource["metadata"]["annotations"]["helm.sh/hook-weight"]).parse().unwrap_or(0)
}

fn pod(deployment_or_job: &Value) -> &Value {
    &deployment_or_job["spec"]["template"]["spec"]
}

fn server_config(rendered: &Rendered) -> Config {
    rendered.keygate_config(pod(rendered.one("Deployment")))
}

fn env_secret<'a>(pod: &'a Value, name: &str) -> &'a Value {
    let env = pod["containers"][0]["env"].as_array().expect("env");
    &env.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("{name} is set"))["valueFrom"]["secretKeyRef"]
}

/// Non-root, read-only root filesystem, no capabilities, no privilege escalation, seccomp.
fn assert_hardened(what: &str, pod: &Value) {
    let pod_context = &pod["securityContext"];
    assert_eq!(pod_context["runAsNonRoot"], true, "{what}");
    assert!(pod_context["runAsUser"].as_i64().is_some_and(|uid| uid > 0), "{what}: a numeric non-root UID");
    assert_eq!(pod_context["seccompProfile"]["type"], "RuntimeDefault", "{what}");
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    for container in pod["containers"].as_array().expect("containers") {
        let context = &container["securityContext"];
        assert_eq!(context["readOnlyRootFilesystem"], true, "{what}");
        assert_eq!(context["allowPrivilegeEscalation"], false, "{what}");
        assert_eq!(context["capabilities"]["drop"], json!(["ALL"]), "{what}");
        assert!(container["resources"]["limits"]["memory"].is_string(), "{what}: a memory limit");
    }
}

fn container_port(pod: &Value, name: &str) -> i64 {
    let ports = pod["containers"][0]["ports"].as_array().expect("ports");
    ports.iter().find(|p| p["name"] == name).and_then(|p| p["containerPort"].as_i64()).expect("named port")
}

#[test]
fn defaults_alone_refuse_to_render_without_a_database() {
    let (stage, error) = helm(&json!({})).err().expect("no database configured must fail the install");
    assert_eq!(stage, "render");
    assert!(error.contains("database.existingSecret") && error.contains("database.url"), "{error}");
}

#[test]
fn server_pods_are_hardened_probed_over_grpc_and_configured_for_production() {
    let rendered = baseline();
    let deployment = rendered.one("Deployment");
    let pod = pod(deployment);
    assert_hardened("Deployment", pod);
    assert!(deployment["spec"].get("replicas").is_none(), "the HPA owns the replica count");
    assert!(pod["terminationGracePeriodSeconds"].as_i64().is_some_and(|s| s >= 10));
    let checksum = string(&deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]);
    assert!(checksum.len() == 64 && checksum.bytes().all(|b| b.is_ascii_hexdigit()), "{checksum:?}");

    let grpc_port = container_port(pod, "grpc");
    let http_port = container_port(pod, "http");
    // Ready while this replica can decide (a database outage leaves it SERVING); alive while
    // the process answers, whatever the database and Redis do.
    let readiness = &pod["containers"][0]["readinessProbe"];
    assert_eq!(readiness["grpc"], json!({"port": grpc_port, "service": AUTH_SERVICE}), "{readiness}");
    let liveness = &pod["containers"][0]["livenessProbe"];
    assert_eq!(liveness["grpc"], json!({"port": grpc_port}), "the server-wide status: {liveness}");

    let config = server_config(rendered);
    assert!(!config.database.run_migrations, "the migration Job migrates, not the replicas");
    assert_eq!(config.database.url, DATABASE_URL);
    assert_eq!(config.grpc_addr.to_string(), format!("0.0.0.0:{grpc_port}"));
    assert_eq!(config.http_addr.to_string(), format!("0.0.0.0:{http_port}"));
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!((config.limits.backend, config.limits.redis_url.as_str()), (LimitsBackend::Redis, REDIS_URL));
    assert!(rendered.notes.contains("config.oauth.issuer"), "the notes ask for the issuer");

    let hpa = rendered.one("HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"]);
    assert!(hpa["spec"]["minReplicas"].as_i64().is_some_and(|n| n >= 2), "several replicas by default");
    let pdb = rendered.one("PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);
    assert!(rendered.all("NetworkPolicy").is_empty() && rendered.all("ServiceMonitor").is_empty(), "optional");
    assert!(rendered.notes.contains("grpc.health.v1.Health/Check") && rendered.notes.contains("port-forward"));
}

#[test]
fn service_exposes_grpc_and_http_to_the_server_pods_only() {
    let rendered = baseline();
    let deployment = rendered.one("Deployment");
    let service = rendered.one("Service");
    let ports = service["spec"]["ports"].as_array().expect("ports");
    let port = |name: &str| ports.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} port"));
    assert_eq!(port("grpc")["appProtocol"], "grpc");
    assert_eq!(port("grpc")["targetPort"], "grpc");
    assert_eq!(port("grpc")["port"], container_port(pod(deployment), "grpc"));
    assert_eq!(port("http")["targetPort"], "http");
    assert_eq!(port("http")["port"], container_port(pod(deployment), "http"));

    let selector = service["spec"]["selector"].as_object().expect("selector");
    assert_eq!(&Value::Object(selector.clone()), &deployment["spec"]["selector"]["matchLabels"]);
    let selects = |labels: &Value| selector.iter().all(|(k, v)| &labels[k] == v);
    assert!(selects(&deployment["spec"]["template"]["metadata"]["labels"]));
    assert!(!selects(&rendered.job()["spec"]["template"]["metadata"]["labels"]), "never the migration pods");
}

#[test]
fn migration_job_runs_before_install_and_upgrade_with_only_what_exists_by_then() {
    let rendered = baseline();
    let job = rendered.job();
    let annotations = &job["metadata"]["annotations"];
    assert_eq!(annotations[HOOK], "pre-install,pre-upgrade");
    assert!(string(&annotations["helm.sh/hook-delete-policy"]).contains("before-hook-creation"));
    let pod = pod(job);
    assert_hardened("Job", pod);
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["containers"][0]["args"], json!(["migrate"]));
    assert_eq!(rendered.keygate_config(pod).database.url, DATABASE_URL);

    // Hooks run before the release's own resources exist: everything the Job uses must be a
    // hook of a lower weight, or not the chart's at all.
    let mut used = vec![("Secret", env_secret(pod, "KEYGATE_DATABASE_URL")["name"].clone())];
    used.extend(
        pod["volumes"].as_array().expect("volumes").iter().map(|v| ("ConfigMap", v["configMap"]["name"].clone())),
    );
    if let Some(account) = pod.get("serviceAccountName") {
        used.push(("ServiceAccount", account.clone()));
    }
    for (kind, name) in used {
        if let Some(resource) = rendered.named(kind, name.as_str().expect("a name")) {
            assert!(is_hook(resource) && hook_weight(resource) < hook_weight(job), "{kind} {name} is not there yet");
        }
    }
}

#[test]
fn config_changes_roll_the_pods() {
    let checksum = |rendered: &Rendered| {
        rendered.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"].clone()
    };
    let again = render(&values(json!({})));
    assert_eq!(checksum(&again), checksum(baseline()), "same values, same checksum");
    let changed = render(&values(json!({"config": {"log": {"level": "debug"}}})));
    assert_ne!(checksum(&changed), checksum(baseline()));
}

#[test]
fn existing_secret_is_used_and_no_secret_is_rendered() {
    let overrides = json!({"database": {"url": "", "existingSecret": "keygate-db", "existingSecretKey": "uri"},
                           "redis": {"url": "", "existingSecret": "keygate-redis"},
                           "signingKeys": {"existingSecret": "keygate-signing", "files": ["2026.pem", "2025.pem"]}});
    let rendered = render(&values(overrides));
    assert!(rendered.all("Secret").is_empty(), "the user's Secrets only");
    for workload in [rendered.one("Deployment"), rendered.job()] {
        assert_eq!(env_secret(pod(workload), "KEYGATE_DATABASE_URL"), &json!({"name": "keygate-db", "key": "uri"}));
        assert_eq!(rendered.keygate_config(pod(workload)).database.url, EXTERNAL_DATABASE_URL);
    }
    let server = pod(rendered.one("Deployment"));
    assert_eq!(env_secret(server, "KEYGATE_LIMITS_REDIS_URL"), &json!({"name": "keygate-redis", "key": "url"}));
    let config = rendered.keygate_config(server);
    assert_eq!(config.limits.redis_url, EXTERNAL_REDIS_URL);
    let files: Vec<_> = config.oauth.signing_key_files.iter().map(|f| f.display().to_string()).collect();
    assert_eq!(files, ["/etc/keygate/signing-keys/2026.pem", "/etc/keygate/signing-keys/2025.pem"]);
    let volumes = server["volumes"].as_array().expect("volumes").clone();
    assert!(volumes.iter().any(|v| v["secret"]["secretName"] == "keygate-signing"), "{volumes:?}");
}

#[test]
fn single_replica_without_autoscaling_still_drains() {
    // One replica counts its limits alone: no Redis needed.
    let overrides = json!({"replicaCount": 1, "autoscaling": {"enabled": false}, "redis": {"url": ""}});
    let rendered = render(&values(overrides));
    assert_eq!(rendered.one("Deployment")["spec"]["replicas"], 1);
    assert_eq!(server_config(&rendered).limits.backend, LimitsBackend::Memory);
    assert!(rendered.all("HorizontalPodAutoscaler").is_empty());
    let budget = &rendered.one("PodDisruptionBudget")["spec"];
    assert!(budget.get("minAvailable").is_none() && budget["maxUnavailable"].as_i64() >= Some(1), "{budget}");
}

#[test]
fn network_policy_and_service_monitor_select_keygate() {
    let peer = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy"}}});
    let overrides = json!({"networkPolicy": {"enabled": true, "from": [peer]},
                           "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}}});
    let rendered = render(&values(overrides));
    let deployment = rendered.one("Deployment");
    let policy = &rendered.one("NetworkPolicy")["spec"];
    assert_eq!(policy["podSelector"], deployment["spec"]["selector"]);
    assert_eq!(policy["ingress"][0]["from"], json!([peer]));
    let ports: Vec<&Value> =
        policy["ingress"][0]["ports"].as_array().expect("ports").iter().map(|p| &p["port"]).collect();
    assert_eq!(ports, [&json!("grpc"), &json!("http")]);
    // The scrapers have a rule of their own: the callers above never reach /metrics through it.
    assert_eq!(policy["ingress"][1]["from"], json!([{"podSelector": {}}]), "metricsFrom's default: the namespace");
    assert_eq!(policy["ingress"][1]["ports"], json!([{"port": "metrics", "protocol": "TCP"}]));
    assert_eq!(policy["ingress"].as_array().map(Vec::len), Some(2));

    let monitor = rendered.one("ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let service_labels = &rendered.one("Service")["metadata"]["labels"];
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().expect("selector");
    assert!(selector.iter().all(|(k, v)| &service_labels[k] == v), "selects the Service: {selector:?}");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics", "the metrics port, not the public one");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn custom_config_reaches_keygate_as_written() {
    let config = json!({
        "database": {"max_connections": 20, "timeout_secs": 3},
        "log": {"level": "keygate=debug,info"},
        "keys": {"prefix": "kg_", "default_expires_in_days": 90},
        "scopes": {"registry": ["reports:read", "reports:write"]},
        "organizations": {
            "plans": {"team": {"max_active_keys": 10, "rate_per_minute": 600}, "free": {"max_concurrency": 2}},
            "default_plan": "team",
        },
        "hashing": {"max_concurrent": 2, "memory_kib": 65536},
        "cache": {"max_entries": 250000, "ttl_secs": 60},
        "oauth": {"issuer": "https://keygate.example.com", "token_ttl_secs": 600},
        "limits": {
            "redis_failure": "closed",
            "clients": {"rate_per_minute": 1000},
            "ceiling": {"rate_per_minute": 6000},
        },
        "envoy": {"policy_file": "/etc/keygate/policy/policy.toml", "default_action": "deny"},
        "shutdown": {"grace_secs": 20},
    });
    let rendered = render(&values(json!({"config": config, "migrations": {"enabled": false}})));
    assert!(rendered.all("Job").is_empty());
    let loaded = server_config(&rendered);
    assert!(loaded.database.run_migrations, "without the Job, serve migrates");
    assert_eq!((loaded.database.max_connections, loaded.database.timeout), (20, Duration::from_secs(3)));
    assert_eq!(loaded.log.level, "keygate=debug,info");
    assert_eq!((loaded.keys.prefix.as_str(), loaded.keys.default_expires_in_days), ("kg_", 90));
    assert_eq!(loaded.scopes, ["reports:read", "reports:write"]);
    let team = loaded.organizations.plans.get("team").copied().expect("team");
    assert_eq!((team.max_active_keys, team.ceiling.rate_per_minute), (10, Some(600)));
    assert_eq!(loaded.organizations.plans.get("free").and_then(|plan| plan.ceiling.max_concurrency), Some(2));
    assert_eq!(loaded.limits.ceiling.rate_per_minute, Some(6000));
    assert_eq!(loaded.organizations.default_plan, "team");
    assert_eq!((loaded.hashing.max_concurrent, loaded.hashing.memory_kib), (2, 65536));
    assert_eq!((loaded.cache.max_entries, loaded.cache.ttl), (250_000, Duration::from_secs(60)));
    assert_eq!(
        (loaded.oauth.issuer.as_str(), loaded.oauth.token_ttl),
        ("https://keygate.example.com", Duration::from_secs(600))
    );
    assert_eq!(loaded.limits.redis_failure, RedisFailureMode::Closed);
    assert_eq!(loaded.limits.defaults.clients.rate_per_minute, 1000);
    assert_eq!(loaded.shutdown.grace, Duration::from_secs(20));
    assert!(!rendered.notes.contains("config.oauth.issuer"), "no reminder once the issuer is set");
}

#[test]
fn schema_rejects_bad_values() {
    let bad = [
        (json!({"replicaCount": "three"}), "replicaCount"),
        (json!({"replicas": 3}), "replicas"),
        (json!({"image": {"pullPolicy": "Sometimes"}}), "pullPolicy"),
        (json!({"database": {"url": "sqlite://keygate.db?mode=rwc"}}), "url"),
        (json!({"config": {"grpc_addr": "0.0.0.0:1"}}), "grpc_addr"),
        (json!({"config": {"keys": {"prefx": "kg_"}}}), "prefx"),
        (json!({"config": {"log": {"format": "xml"}}}), "format"),
        (json!({"config": {"cache": {"ttl_secs": 0}}}), "ttl_secs"),
        (json!({"config": {"limits": {"backend": "memory"}}}), "backend"),
        (json!({"config": {"oauth": {"algorithm": "HS256"}}}), "algorithm"),
        (json!({"redis": {"url": "http://redis:6379"}}), "url"),
        (json!({"autoscaling": {"targetCPUUtilizationPercentage": 150}}), "targetCPUUtilizationPercentage"),
        (json!({"config": {"metrics_addr": "0.0.0.0:1"}}), "metrics_addr"),
        (json!({"config": {"tls": {"cert_fil": "/x"}}}), "cert_fil"),
        (json!({"ports": {"metrics": 0}}), "metrics"),
        (json!({"policy": {"key": "../policy.toml"}}), "key"),
        (json!({"policy": {"configMap": "routes"}}), "configMap"),
        (json!({"tls": {"clientCa": true}}), "clientCa"),
        (json!({"sidecars": [{"image": "otel/opentelemetry-collector"}]}), "name"),
        (json!({"extraEnv": [{"value": "x"}]}), "name"),
        (json!({"extraVolumeMounts": [{"name": "x"}]}), "mountPath"),
        (json!({"terminationGracePeriodSeconds": -1}), "terminationGracePeriodSeconds"),
        (json!({"networkPolicy": {"metricsfrom": []}}), "metricsfrom"),
        (json!({"ingress": {"paths": ["/metrics"]}}), "paths"),
        (json!({"httpRoute": {"parentRefs": [{"namespace": "gateways"}]}}), "name"),
        (json!({"prometheusRule": {"enabled": "yes"}}), "enabled"),
        (json!({"grafanaDashboard": {"folder": "auth"}}), "folder"),
    ];
    for (overrides, field) in bad {
        let values = values(overrides.clone());
        let (stage, error) = helm(&values).err().unwrap_or_else(|| panic!("{overrides} was accepted"));
        assert_eq!(stage, "schema", "{overrides}: {error}");
        assert!(error.contains(field), "{overrides}: the error should name {field}: {error}");
    }
}

/// The image (Dockerfile) and the chart agree: user, ports, entrypoint. No Docker engine runs
/// where these tests run, so the image itself is not built here.
#[test]
fn image_agrees_with_the_chart() {
    let runtime = runtime_stage();
    let instruction = |name: &str| -> String {
        let lines: Vec<&str> = runtime.lines().filter(|l| l.starts_with(&format!("{name} "))).collect();
        assert_eq!(lines.len(), 1, "one {name} in the runtime stage");
        lines[0][name.len() + 1..].trim().to_owned()
    };
    let pod = pod(baseline().one("Deployment"));
    let uid = pod["securityContext"]["runAsUser"].as_i64().expect("uid");
    assert_eq!(instruction("USER"), format!("{uid}:{uid}"), "numeric, so runAsNonRoot can check it");
    let exposed = instruction("EXPOSE");
    for port in [container_port(pod, "grpc"), container_port(pod, "http")] {
        assert!(exposed.split_whitespace().any(|p| p == port.to_string()), "EXPOSE {exposed} lacks {port}");
    }
    assert_eq!(instruction("ENTRYPOINT"), r#"["keygate"]"#);
    assert_eq!(instruction("CMD"), r#"["serve"]"#, "addresses come from ENV, so `docker run -e` can change them");

    let ignored = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    for path in ["target", ".tools", ".git"] {
        assert!(ignored.lines().any(|l| l.trim_start_matches('/') == path), ".dockerignore lacks {path}");
    }
}

#[test]
fn several_replicas_need_redis_unless_told_otherwise() {
    for overrides in [
        json!({"redis": {"url": ""}}),
        json!({"redis": {"url": ""}, "replicaCount": 2, "autoscaling": {"enabled": false}}),
    ] {
        let (stage, error) = helm(&values(overrides.clone())).err().unwrap_or_else(|| panic!("{overrides} rendered"));
        assert_eq!(stage, "render", "{error}");
        assert!(error.contains("needs Redis") && error.contains("redis.perReplicaLimits"), "{error}");
    }
    let rendered = render(&values(json!({"redis": {"url": "", "perReplicaLimits": true}})));
    assert_eq!(server_config(&rendered).limits.backend, LimitsBackend::Memory);
    assert!(rendered.notes.contains("counts rate limits, quotas and slots on its own"), "{}", rendered.notes);
}

#[test]
fn every_pod_turns_service_links_off() {
    // A Service called keygate gives every pod KEYGATE_SERVICE_HOST, KEYGATE_PORT_50051_TCP, ...
    let rendered = baseline();
    for (what, workload) in [("Deployment", rendered.one("Deployment")), ("Job", rendered.job())] {
        assert_eq!(pod(workload)["enableServiceLinks"], false, "{what}");
    }
}

#[test]
fn listen_addresses_follow_ports_over_the_image_env() {
    // The image sets KEYGATE_GRPC_ADDR and KEYGATE_HTTP_ADDR in its ENV, which beat a config file.
    assert!(image_env().iter().any(|(name, _)| name == "KEYGATE_GRPC_ADDR"), "{:?}", image_env());
    let rendered = render(&values(json!({"ports": {"grpc": 6000, "http": 6001, "metrics": 6002}})));
    let pod = pod(rendered.one("Deployment"));
    let config = rendered.keygate_config(pod);
    assert_eq!(config.grpc_addr.to_string(), "0.0.0.0:6000");
    assert_eq!(config.http_addr.to_string(), "0.0.0.0:6001");
    assert_eq!(config.metrics_addr.map(|a| a.to_string()).as_deref(), Some("0.0.0.0:6002"));
    for (name, port) in [("grpc", 6000), ("http", 6001), ("metrics", 6002)] {
        assert_eq!(container_port(pod, name), port);
    }
    assert_eq!(pod["containers"][0]["readinessProbe"]["grpc"]["port"], 6000);
}

#[test]
fn metrics_are_served_on_a_port_of_their_own() {
    let rendered = render(&values(json!({"serviceMonitor": {"enabled": true}})));
    let pod = pod(rendered.one("Deployment"));
    let config = rendered.keygate_config(pod);
    let metrics_port = container_port(pod, "metrics");
    assert_eq!(config.metrics_addr.map(|a| a.to_string()), Some(format!("0.0.0.0:{metrics_port}")));
    assert_ne!(config.metrics_addr.map(|a| a.port()), Some(config.http_addr.port()), "apart from the public port");
    let ports = rendered.one("Service")["spec"]["ports"].as_array().expect("ports").clone();
    let service_port = ports.iter().find(|p| p["name"] == "metrics").expect("a metrics Service port");
    assert_eq!((service_port["port"].as_i64(), &service_port["targetPort"]), (Some(metrics_port), &json!("metrics")));
    assert_eq!(rendered.one("ServiceMonitor")["spec"]["endpoints"][0]["port"], "metrics");

    // Scrapers apart from callers: a peer allowed to the public ports does not get /metrics.
    let envoy = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy"}}});
    let prometheus = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}});
    let overrides = json!({"networkPolicy": {"enabled": true, "from": [envoy], "metricsFrom": [prometheus]}});
    let rendered = render(&values(overrides));
    let rules = rendered.one("NetworkPolicy")["spec"]["ingress"].as_array().expect("rules").clone();
    let reaching = |port: &str| -> Vec<Value> {
        let opens = |rule: &&Value| rule["ports"].as_array().is_some_and(|p| p.iter().any(|p| p["port"] == port));
        rules.iter().filter(opens).flat_map(|rule| rule["from"].as_array().expect("from").clone()).collect()
    };
    assert_eq!(reaching("metrics"), [prometheus]);
    assert_eq!(reaching("grpc"), reaching("http"));
    assert_eq!(reaching("http"), [envoy]);
}

#[test]
fn tls_makes_both_probes_keygate_healthcheck_execs() {
    let rendered = render(&values(json!({"tls": {"existingSecret": "keygate-tls"}})));
    let container = &pod(rendered.one("Deployment"))["containers"][0];
    // Native gRPC probes cannot speak TLS; distroless has no shell, so the binary itself.
    assert_eq!(
        container["readinessProbe"]["exec"]["command"],
        json!(["keygate", "healthcheck", "--service", AUTH_SERVICE])
    );
    assert_eq!(container["livenessProbe"]["exec"]["command"], json!(["keygate", "healthcheck"]));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert!(container[probe].get("grpc").is_none(), "{}", container[probe]);
        assert_eq!(container[probe]["periodSeconds"], baseline_probe(probe)["periodSeconds"], "the same timings");
    }
    // TLS wired by hand (config.tls + extraVolumes) is TLS too.
    let by_hand = json!({
        "config": {"tls": {"cert_file": "/certs/tls.crt", "key_file": "/certs/tls.key"}},
        "extraVolumes": [{"name": "certs", "secret": {"secretName": "mine"}}],
        "extraVolumeMounts": [{"name": "certs", "mountPath": "/certs", "readOnly": true}],
    });
    let rendered = render(&values(by_hand));
    let pod = pod(rendered.one("Deployment"));
    assert!(pod["containers"][0]["readinessProbe"].get("exec").is_some());
    let config = rendered.keygate_config(pod);
    assert_eq!(config.tls.cert_file, Some(PathBuf::from("/certs/tls.crt")));
    let cert = rendered.mounted_file(pod, "/certs/tls.crt");
    assert_eq!(cert, Some(Mounted::Secret { name: "mine".into(), key: "tls.crt".into() }));
}

fn baseline_probe(probe: &str) -> &'static Value {
    &pod(baseline().one("Deployment"))["containers"][0][probe]
}

#[test]
fn termination_grace_covers_the_drain_delay_and_the_grace_period() {
    let grace = |rendered: &Rendered| pod(rendered.one("Deployment"))["terminationGracePeriodSeconds"].as_i64();
    let config = server_config(baseline());
    assert_eq!(config.shutdown.drain_delay, Duration::from_secs(5), "endpoint removal takes about that long");
    assert_eq!(config.shutdown.grace, Duration::from_secs(30));
    assert_eq!(grace(baseline()), Some(5 + 30 + 10), "computed: drain + grace + 10 s for the last writes");

    let longer = render(&values(json!({"config": {"shutdown": {"drain_delay_secs": 15, "grace_secs": 60}}})));
    assert_eq!(grace(&longer), Some(15 + 60 + 10));
    assert_eq!(server_config(&longer).shutdown.drain_delay, Duration::from_secs(15));
    let given = render(&values(json!({"terminationGracePeriodSeconds": 120})));
    assert_eq!(grace(&given), Some(120));

    let (stage, error) = helm(&values(json!({"terminationGracePeriodSeconds": 30}))).err().expect("30 < 5 + 30");
    assert_eq!(stage, "render", "{error}");
    assert!(error.contains("terminationGracePeriodSeconds (30)") && error.contains("drain_delay_secs (5)"), "{error}");
}

const POLICY: &str = r#"
[[routes]]
name = "health"
path = "/healthz"
public = true

[[routes]]
methods = ["GET"]
path = "/api/v1/reports/**"
scopes = ["reports:read"]
"#;

#[test]
fn inline_route_policy_is_mounted_wired_and_reloads_without_rolling_the_pods() {
    let overrides =
        |policy: &str| json!({"policy": {"inline": policy}, "config": {"scopes": {"registry": ["reports:read"]}}});
    let rendered = render(&values(overrides(POLICY)));
    let deployment = rendered.one("Deployment");
    let pod = pod(deployment);
    let config = rendered.keygate_config(pod);
    let policy_file = config.envoy.policy_file.clone().expect("envoy.policy_file is set");
    let policy_file = policy_file.to_str().expect("utf-8");
    assert!(policy_file.starts_with("/etc/keygate/policy/"), "{policy_file}");
    let Some(Mounted::ConfigMap { name, text: Some(text), .. }) = rendered.mounted_file(pod, policy_file) else {
        panic!("envoy.policy_file ({policy_file}) is not a file of a rendered ConfigMap");
    };
    assert_eq!(name, format!("{RELEASE}-policy"));
    let registry = ScopeRegistry::new(config.scopes.iter().cloned());
    Policy::parse(&text, &registry).unwrap_or_else(|e| panic!("keygate rejects the mounted policy: {e}\n{text}"));
    assert_eq!(text.trim(), POLICY.trim());
    let mounts = pod["containers"][0]["volumeMounts"].as_array().expect("mounts");
    let mount = mounts.iter().find(|m| m["mountPath"] == "/etc/keygate/policy").expect("the policy mount");
    assert_eq!(mount["readOnly"], true);
    let map = rendered.named("ConfigMap", &name).expect("the policy ConfigMap");
    assert!(!is_hook(map), "a release resource, updated in place by helm upgrade");

    // keygate re-reads the file every envoy.policy_poll_secs: a new policy must not roll the pods.
    let checksum = |rendered: &Rendered| {
        rendered.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"].clone()
    };
    let edited = render(&values(overrides(&POLICY.replace("/healthz", "/livez"))));
    assert_eq!(checksum(&edited), checksum(&rendered), "the policy is not in the pods' checksum");
    let edited_map = edited.named("ConfigMap", &name).expect("the policy ConfigMap");
    assert!(string(&edited_map["data"]["policy.toml"]).contains("/livez"));

    // The Job runs before the policy's ConfigMap exists and needs no policy.
    let job = self::pod(rendered.job());
    assert!(job["volumes"].as_array().expect("volumes").iter().all(|v| v["configMap"]["name"] != name.as_str()));
}

#[test]
fn route_policy_from_an_existing_config_map() {
    let rendered = render(&values(json!({"policy": {"existingConfigMap": "routes", "key": "envoy-policy.toml"}})));
    assert!(rendered.named("ConfigMap", &format!("{RELEASE}-policy")).is_none(), "the user's ConfigMap only");
    let pod = pod(rendered.one("Deployment"));
    let config = rendered.keygate_config(pod);
    let policy_file = config.envoy.policy_file.expect("envoy.policy_file is set");
    assert_eq!(policy_file, PathBuf::from("/etc/keygate/policy/envoy-policy.toml"));
    let mounted = rendered.mounted_file(pod, policy_file.to_str().expect("utf-8"));
    let expected = Mounted::ConfigMap { name: "routes".into(), key: "envoy-policy.toml".into(), text: None };
    assert_eq!(mounted, Some(expected));

    let both = json!({"policy": {"existingConfigMap": "routes", "inline": POLICY}});
    let (stage, error) = helm(&values(both)).err().expect("both at once must fail");
    assert_eq!(stage, "render");
    assert!(error.contains("policy.inline") && error.contains("policy.existingConfigMap"), "{error}");
}

#[test]
fn tls_secret_is_mounted_and_wired_to_both_listeners() {
    let rendered = render(&values(json!({"tls": {"existingSecret": "keygate-tls", "clientCA": true}})));
    let pod = pod(rendered.one("Deployment"));
    let config = rendered.keygate_config(pod);
    let file = |path: &Option<PathBuf>| path.as_ref().and_then(|p| p.to_str()).expect("a path").to_owned();
    for (path, key) in [
        (file(&config.tls.cert_file), "tls.crt"),
        (file(&config.tls.key_file), "tls.key"),
        (file(&config.tls.client_ca_file), "ca.crt"),
    ] {
        let mounted = rendered.mounted_file(pod, &path);
        assert_eq!(mounted, Some(Mounted::Secret { name: "keygate-tls".into(), key: key.into() }), "{path}");
    }
    assert_eq!(config.token_issuer().split_once("://").map(|(scheme, _)| scheme), Some("https"));
    assert!(rendered.notes.contains("grpcurl -insecure"), "the notes check over TLS: {}", rendered.notes);
    let ports = rendered.one("Service")["spec"]["ports"].as_array().expect("ports").clone();
    assert_eq!(ports.iter().find(|p| p["name"] == "http").expect("http")["appProtocol"], "https");

    // Without clientCA, no mTLS: ca.crt is neither mounted nor configured.
    let rendered = render(&values(json!({"tls": {"existingSecret": "keygate-tls"}})));
    let pod = self::pod(rendered.one("Deployment"));
    let config = rendered.keygate_config(pod);
    assert!(config.tls.cert_file.is_some() && config.tls.client_ca_file.is_none());
    assert_eq!(rendered.mounted_file(pod, "/etc/keygate/tls/ca.crt"), None);
    // The Job migrates and never listens: no TLS volume, so it needs nothing that is not there yet.
    let job = self::pod(rendered.job());
    assert!(job["volumes"].as_array().expect("volumes").iter().all(|v| v.get("secret").is_none()));
}

/// The key-encryption key of the stored signing keys reaches the server from the user's Secret,
/// in the environment (keygate refuses it in the ConfigMap); the migration Job needs none.
#[test]
fn signing_key_encryption_key_comes_from_a_secret() {
    assert!(server_config(baseline()).oauth.signing_key_encryption_key.is_none());
    let rendered = render(&values(json!({"signingKeys": {"encryptionKeySecret": "keygate-kek"}})));
    let pod = pod(rendered.one("Deployment"));
    let reference = env_secret(pod, "KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY");
    assert_eq!((reference["name"].as_str(), reference["key"].as_str()), (Some("keygate-kek"), Some("kek")));
    assert!(rendered.keygate_config(pod).oauth.signing_key_encryption_key.is_some());
    let job = self::pod(rendered.job());
    let job_env = job["containers"][0]["env"].as_array().expect("env");
    assert!(job_env.iter().all(|v| v["name"] != "KEYGATE_OAUTH_SIGNING_KEY_ENCRYPTION_KEY"));
}

#[test]
fn extension_points_reach_the_pods() {
    let secret_env =
        json!({"name": "KEYGATE_OAUTH_ISSUER", "valueFrom": {"secretKeyRef": {"name": "issuer", "key": "url"}}});
    let literal_env = json!({"name": "OTEL_SERVICE_NAME", "value": "keygate-eu"});
    let env_from = json!({"secretRef": {"name": "keygate-extra"}});
    let volume = json!({"name": "jwks", "configMap": {"name": "corp-jwks"}});
    let mount = json!({"name": "jwks", "mountPath": "/etc/keygate/jwks", "readOnly": true});
    let init = json!({"name": "wait-for-db", "image": "busybox:1.36", "args": ["true"]});
    let sidecar = json!({"name": "otel-collector", "image": "otel/opentelemetry-collector:0.120.0"});
    let toleration = json!({"key": "dedicated", "operator": "Equal", "value": "auth", "effect": "NoSchedule"});
    let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}});
    let overrides = json!({
        "extraEnv": [secret_env, literal_env], "extraEnvFrom": [env_from],
        "extraVolumes": [volume], "extraVolumeMounts": [mount],
        "initContainers": [init], "sidecars": [sidecar],
        "podLabels": {"team": "identity"}, "podAnnotations": {"example.com/owner": "identity"},
        "nodeSelector": {"pool": "auth"}, "tolerations": [toleration], "affinity": affinity,
    });
    let rendered = render(&values(overrides));
    let deployment = rendered.one("Deployment");
    let server = pod(deployment);
    let container = &server["containers"][0];
    let env = container["env"].as_array().expect("env");
    assert!(env.contains(&secret_env) && env.contains(&literal_env), "{env:?}");
    assert_eq!(container["envFrom"], json!([env_from]));
    assert!(server["volumes"].as_array().expect("volumes").contains(&volume));
    assert!(container["volumeMounts"].as_array().expect("mounts").contains(&mount));
    assert_eq!(server["initContainers"], json!([init]));
    let containers = server["containers"].as_array().expect("containers");
    assert_eq!((containers.len(), &containers[0]["name"], &containers[1]), (2, &json!("keygate"), &sidecar));
    let template = &deployment["spec"]["template"]["metadata"];
    assert_eq!(template["labels"]["team"], "identity");
    assert_eq!(template["annotations"]["example.com/owner"], "identity");
    assert!(template["annotations"]["checksum/config"].is_string(), "the chart's annotation stays");
    assert_eq!(
        (&server["nodeSelector"], &server["tolerations"], &server["affinity"]),
        (&json!({"pool": "auth"}), &json!([toleration]), &affinity)
    );
    let config = rendered.keygate_config(server);
    assert_eq!(config.traces.service_name, "keygate-eu");
    assert_eq!(config.oauth.issuer, "https://keygate.example.com");

    // The Job loads the same settings, on the same kind of node, but runs nothing beside it.
    let job_template = &rendered.job()["spec"]["template"];
    let job = &job_template["spec"];
    let job_env = job["containers"][0]["env"].as_array().expect("env");
    assert!(job_env.contains(&secret_env) && job_env.contains(&literal_env));
    assert_eq!(job["containers"][0]["envFrom"], json!([env_from]));
    assert_eq!(job_template["metadata"]["labels"]["team"], "identity");
    assert_eq!(job_template["metadata"]["labels"]["app.kubernetes.io/component"], "migrate");
    assert_eq!(job_template["metadata"]["annotations"]["example.com/owner"], "identity");
    assert_eq!((&job["nodeSelector"], &job["tolerations"]), (&json!({"pool": "auth"}), &json!([toleration])));
    assert_eq!(job["containers"].as_array().map(Vec::len), Some(1), "a sidecar would keep the Job from ending");
    assert!(job.get("initContainers").is_none() && job.get("affinity").is_none());
    assert_eq!(rendered.keygate_config(job).oauth.issuer, "https://keygate.example.com");
}

/// The paths the world may reach: keygate's own constants.
fn public_paths() -> BTreeSet<&'static str> {
    use keygate::http::{INTROSPECTION_PATH, JWKS_PATH, METADATA_PATH, TOKEN_PATH};
    BTreeSet::from([TOKEN_PATH, INTROSPECTION_PATH, JWKS_PATH, METADATA_PATH])
}

#[test]
fn ingress_and_http_route_expose_the_public_http_paths_only() {
    assert!(baseline().all("Ingress").is_empty() && baseline().all("HTTPRoute").is_empty(), "optional");
    let gateway = json!({"name": "public", "namespace": "gateways", "sectionName": "https"});
    let overrides = json!({
        "ingress": {"enabled": true, "className": "nginx", "hosts": ["auth.example.com", "login.example.com"],
                    "tls": [{"secretName": "auth-example-com", "hosts": ["auth.example.com"]}]},
        "httpRoute": {"enabled": true, "parentRefs": [gateway], "hostnames": ["auth.example.com"]},
    });
    let rendered = render(&values(overrides));
    let service = rendered.one("Service");
    let service_name = &service["metadata"]["name"];
    let http_port =
        service["spec"]["ports"].as_array().expect("ports").iter().find(|p| p["name"] == "http").expect("http")["port"]
            .clone();

    let ingress = &rendered.one("Ingress")["spec"];
    assert_eq!(ingress["ingressClassName"], "nginx");
    assert_eq!(ingress["tls"][0]["secretName"], "auth-example-com");
    let rules = ingress["rules"].as_array().expect("rules");
    assert_eq!(
        rules.iter().map(|r| r["host"].clone()).collect::<Vec<_>>(),
        [json!("auth.example.com"), json!("login.example.com")]
    );
    for rule in rules {
        let paths = rule["http"]["paths"].as_array().expect("paths");
        let exposed: BTreeSet<&str> = paths.iter().map(|p| p["path"].as_str().expect("a path")).collect();
        assert_eq!(exposed, public_paths(), "never {}", keygate::http::METRICS_PATH);
        for path in paths {
            assert_eq!(path["pathType"], "Exact", "{path}");
            assert_eq!(path["backend"]["service"], json!({"name": service_name, "port": {"number": http_port}}));
        }
    }

    let route = &rendered.one("HTTPRoute");
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    let spec = &route["spec"];
    assert_eq!((&spec["parentRefs"], &spec["hostnames"]), (&json!([gateway]), &json!(["auth.example.com"])));
    let route_rules = spec["rules"].as_array().expect("rules");
    assert_eq!(route_rules.len(), 1);
    let matches = route_rules[0]["matches"].as_array().expect("matches");
    assert!(matches.iter().all(|m| m["path"]["type"] == "Exact" && m.get("method").is_none()), "{matches:?}");
    let exposed: BTreeSet<&str> = matches.iter().map(|m| m["path"]["value"].as_str().expect("a path")).collect();
    assert_eq!(exposed, public_paths());
    assert_eq!(route_rules[0]["backendRefs"], json!([{"name": service_name, "port": http_port}]));

    let (stage, error) = helm(&values(json!({"httpRoute": {"enabled": true}}))).err().expect("no Gateway named");
    assert_eq!(stage, "render");
    assert!(error.contains("httpRoute.parentRefs"), "{error}");
}

/// What a running keygate exports: every series name (a counter's `_total`, a histogram's
/// `_bucket`, `_sum` and `_count`) and every label name its samples carry, from `/metrics` of a
/// real server with the Redis backend (so that `keygate_redis_up` is there) after one decision.
struct Exported {
    series: BTreeSet<String>,
    labels: BTreeSet<String>,
}

async fn exported() -> Exported {
    let redis = crate::support::redis_url();
    let server =
        TestServer::start_with(Backend::Sqlite, &[("limits.backend", "redis"), ("limits.redis_url", &redis)]).await;
    let (key, _) = server.create_key(&server.admin_key, "scraped", &["graph:read"]).await;
    server.authorize(&key, &["graph:read"]).await;
    let text = reqwest::get(server.url(keygate::http::METRICS_PATH)).await.expect("scrape").text().await.expect("text");
    server.stop().await;
    let (mut series, mut labels) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            let (name, kind) = family.split_once(' ').expect("# TYPE NAME KIND");
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "gauge" | "unknown" => &[""],
                other => panic!("a {other} family: teach this test its series names"),
            };
            series.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if let Some((_, rest)) = line.split_once('{').filter(|_| !line.starts_with('#')) {
            let inner = rest.rsplit_once('}').expect("labels close").0;
            labels.extend(inner.split(',').filter_map(|pair| pair.split_once('=')).map(|(name, _)| name.to_owned()));
        }
    }
    assert!(labels.contains("rpc") && labels.contains("reason"), "the scrape saw traffic: {text}");
    Exported { series, labels }
}

/// Labels Prometheus adds to every scraped series (the ServiceMonitor's target labels).
const TARGET_LABELS: &[&str] = &["namespace", "job", "service", "pod", "instance", "endpoint", "container"];

/// Every series an expression reads: (name, labels matched or grouped by); panics on PromQL
/// that does not parse.
fn read_series(expressions: &[String]) -> Vec<(String, Vec<String>)> {
    let answers = python("promql.py", &json!(expressions));
    let answers = answers.as_array().expect("one answer per expression");
    let mut read = Vec::new();
    for (expression, answer) in expressions.iter().zip(answers) {
        assert!(answer.get("error").is_none(), "not PromQL: {expression}\n{}", answer["error"]);
        let grouping: Vec<String> = answer["grouping"].as_array().expect("grouping").iter().map(string).collect();
        for selector in answer["selectors"].as_array().expect("selectors") {
            let mut labels: Vec<String> = selector["labels"].as_array().expect("labels").iter().map(string).collect();
            labels.extend(grouping.iter().cloned());
            read.push((string(&selector["name"]), labels));
        }
    }
    read
}

/// `read` uses only series keygate exports (or, named in `outside`, other exporters'), and
/// only labels they carry.
fn assert_reads_only_exported(what: &str, read: &[(String, Vec<String>)], exported: &Exported, outside: &[&str]) {
    for (name, labels) in read {
        if outside.contains(&name.as_str()) {
            continue;
        }
        assert!(
            exported.series.contains(name),
            "{what} reads {name}, which keygate does not export: {:?}",
            exported.series
        );
        for label in labels {
            let known = exported.labels.contains(label) || TARGET_LABELS.contains(&label.as_str()) || label == "le";
            assert!(known, "{what} uses label {label} on {name}, which keygate's series do not carry");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_rule_alerts_on_what_the_docs_list_with_real_series() {
    assert!(baseline().all("PrometheusRule").is_empty(), "optional");
    let rendered = render(&values(json!({"prometheusRule": {"enabled": true, "labels": {"release": "prometheus"}}})));
    let rule = rendered.one("PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus", "what the Prometheus Operator selects by");
    let rules: Vec<&Value> = rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect();
    let expressions: Vec<String> = rules.iter().map(|r| string(&r["expr"])).collect();
    for rule in &rules {
        assert!(rule["alert"].as_str().is_some_and(|a| a.starts_with("Keygate")), "{rule}");
        assert!(["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap_or_default()), "{rule}");
        assert!(rule["annotations"]["summary"].is_string(), "{rule}");
    }
    let read = read_series(&expressions);
    // Pods not ready come from kube-state-metrics, not from keygate.
    assert_reads_only_exported(
        "the PrometheusRule",
        &read,
        &exported().await,
        &["kube_deployment_status_replicas_unavailable"],
    );
    for (name, labels) in &read {
        assert!(labels.iter().any(|l| l == "namespace"), "{name}: this release's series only, by namespace");
    }

    // Every metric the operations page's "Watching" asks to alert on has an alert, and so have
    // the database and Redis gauges.
    let operations = std::fs::read_to_string(root().join("docs/operations.md")).expect("docs/operations.md");
    let watching = operations.split("- **Watching.**").nth(1).expect("docs/operations.md's Watching item");
    let listed = watching.split("alerts on").nth(1).expect("Watching says what the chart alerts on");
    let end = listed.match_indices('.').find(|(i, _)| listed[i + 1..].starts_with(char::is_whitespace));
    let listed = &listed[..end.expect("the list ends with its sentence").0];
    let mut wanted: BTreeSet<String> = listed
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("keygate_"))
        .map(str::to_owned)
        .collect();
    assert!(wanted.len() >= 4, "docs/operations.md lists the alerts: {listed}");
    wanted.extend(["keygate_database_up".to_owned(), "keygate_redis_up".to_owned()]);
    let alerted: BTreeSet<&String> = read.iter().map(|(name, _)| name).collect();
    for metric in &wanted {
        let base = metric.trim_end_matches("_bucket");
        assert!(alerted.iter().any(|name| name.trim_end_matches("_bucket") == base), "no alert reads {metric}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_only_what_keygate_exports() {
    let file = std::fs::read_to_string(root().join("helm/keygate/dashboards/keygate.json")).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&file).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "keygate");

    let rendered = render(&values(json!({"grafanaDashboard": {"enabled": true}})));
    let map = rendered.named("ConfigMap", &format!("{RELEASE}-dashboard")).expect("the dashboard's ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "the label Grafana's sidecar looks for");
    let shipped: Value = serde_json::from_str(&string(&map["data"]["keygate.json"])).expect("JSON in the ConfigMap");
    assert_eq!(shipped, dashboard, "the file, as is");
    assert!(baseline().named("ConfigMap", &format!("{RELEASE}-dashboard")).is_none(), "optional");

    // Grafana's own variables are not PromQL: give them what Grafana would.
    let grafana =
        |expr: &str| expr.replace("$__rate_interval", "5m").replace("$namespace", "auth").replace("$job", "keygate");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut expressions: Vec<String> = Vec::new();
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} queries nothing", panel["title"]);
        expressions.extend(targets.iter().map(|t| grafana(t["expr"].as_str().expect("a PromQL target"))));
    }
    for variable in dashboard["templating"]["list"].as_array().expect("variables") {
        let Some(query) = variable["query"]["query"].as_str() else { continue };
        // label_values(SELECTOR, LABEL): the selector is PromQL, the label one keygate's series carry.
        let inner = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')).expect("label_values");
        let (selector, label) = inner.rsplit_once(',').expect("label_values(SELECTOR, LABEL)");
        expressions.push(format!("count by ({}) ({})", label.trim(), grafana(selector)));
    }
    let read = read_series(&expressions);
    let exported = exported().await;
    assert_reads_only_exported("the dashboard", &read, &exported, &[]);
    // Each family keygate exports is on the dashboard.
    let shown: BTreeSet<&str> = read.iter().map(|(name, _)| name.as_str()).collect();
    for name in &exported.series {
        let family = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        let on_dashboard = shown.iter().any(|s| s.starts_with(family));
        assert!(on_dashboard, "{name} is exported but not on the dashboard");
    }
}

/// Settings the chart sets itself from other values, so not in the schema's `config`.
const CHART_OWNED: &[&str] = &[
    "grpc_addr",
    "http_addr",
    "metrics_addr",
    "database.url",
    "database.run_migrations",
    "limits.backend",
    "limits.redis_url",
    "oauth.signing_key_files",
    // From signingKeys.encryptionKeySecret, in the environment only (keygate refuses it in a file).
    "oauth.signing_key_encryption_key",
];
/// The map keys the tests use for `organizations.plans.<name>` and `oauth.issuers.<name>`.
const PLAN: &str = "team";
const ISSUER: &str = "corp";

fn config_schema() -> Value {
    let text = std::fs::read_to_string(root().join("helm/keygate/values.schema.json")).expect("the schema");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    schema["properties"]["config"].clone()
}

/// The schema's settings under `config`: dotted paths (`<name>` for a map's key) and their schemas.
fn schema_leaves(schema: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    let join = |key: &str| if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
    if schema["type"] != "object" {
        out.insert(prefix.to_owned(), schema.clone());
        return;
    }
    for (key, property) in schema["properties"].as_object().into_iter().flatten() {
        schema_leaves(property, &join(key), out);
    }
    match &schema["additionalProperties"] {
        Value::Bool(false) => {}
        map @ Value::Object(_) => schema_leaves(map, &join("<name>"), out),
        _ => panic!("config.{prefix}: the schema must be strict (additionalProperties false or a schema)"),
    }
}

/// Every setting the loader takes, maps' keys as `<name>`.
fn loader_paths() -> BTreeSet<String> {
    let mut paths: BTreeSet<String> = keygate::config::setting_paths().map(str::to_owned).collect();
    paths.extend(keygate::config::plan_fields().map(|field| format!("organizations.plans.<name>.{field}")));
    paths.extend(keygate::config::issuer_fields().map(|field| format!("oauth.issuers.<name>.{field}")));
    paths
}

fn concrete(path: &str) -> String {
    path.replace("organizations.plans.<name>", &format!("organizations.plans.{PLAN}"))
        .replace("oauth.issuers.<name>", &format!("oauth.issuers.{ISSUER}"))
}

/// Values the schema accepts for a leaf: its default, examples, every enum value, its bounds.
fn accepted_by_schema(schema: &Value) -> Vec<Value> {
    let mut values: Vec<Value> = schema.get("default").into_iter().cloned().collect();
    values.extend(schema["examples"].as_array().into_iter().flatten().cloned());
    values.extend(schema["enum"].as_array().into_iter().flatten().cloned());
    values.extend(["minimum", "maximum"].iter().filter_map(|bound| schema.get(*bound)).cloned());
    if schema["type"] == "boolean" {
        values.extend([json!(true), json!(false)]);
    }
    if schema["type"] == "array" {
        values.extend(schema["items"]["enum"].as_array().into_iter().flatten().map(|item| json!([item])));
    }
    values.dedup();
    values
}

/// Values the schema rejects for a leaf that keygate's loader rejects too: out of bounds, not
/// among the choices, against the pattern, of another type.
fn rejected_by_schema(schema: &Value) -> Vec<Value> {
    const BAD: &str = "Not Valid!";
    let mut values = Vec::new();
    match schema["type"].as_str() {
        Some("integer") => {
            values.extend(schema["minimum"].as_i64().map(|min| json!(min - 1)));
            values.extend(schema["maximum"].as_i64().map(|max| json!(max + 1)));
            values.extend([json!("1"), json!(1.5)]);
        }
        Some("string") => {
            values.push(json!(1));
            if schema.get("enum").is_some() {
                values.push(json!("not-a-choice"));
            }
            if schema.get("pattern").is_some() {
                values.push(json!(BAD));
            }
        }
        Some("number") => {
            values.extend(schema["minimum"].as_f64().map(|min| json!(min - 0.5)));
            values.extend(schema["maximum"].as_f64().map(|max| json!(max + 0.5)));
            values.push(json!("0.5"));
        }
        Some("boolean") => values.push(json!("yes")),
        Some("array") => {
            values.push(json!("a,b"));
            let items = &schema["items"];
            if items.get("enum").is_some() {
                values.push(json!(["not-a-choice"]));
            }
            if items.get("pattern").is_some() {
                values.push(json!([BAD]));
            }
            values.extend(items["not"].get("const").map(|forbidden| json!([forbidden])));
            if schema["minItems"].as_u64() == Some(1) {
                values.push(json!([]));
            }
        }
        other => panic!("a leaf of type {other:?}: teach this test its wrong values"),
    }
    values
}

/// What else a setting needs to be loadable on its own (the loader's cross checks).
fn context(path: &str, value: &Value, issuer_schema: &Value) -> Vec<(String, Value)> {
    let text = value.as_str().filter(|s| !s.is_empty());
    let mut context: Vec<(String, Value)> = match (path, text) {
        ("limits.default_lease_secs", _) => vec![("limits.max_lease_secs".into(), json!(604_800))],
        ("limits.max_lease_secs", _) => vec![("limits.default_lease_secs".into(), json!(1))],
        ("keys.default_expires_in_days", _) => vec![("keys.max_expires_in_days".into(), json!(36_500))],
        ("keys.max_expires_in_days", _) => vec![("keys.default_expires_in_days".into(), json!(1))],
        ("keys.default_grace_period_days", _) => vec![("keys.max_grace_period_days".into(), json!(365))],
        ("keys.max_grace_period_days", _) => vec![("keys.default_grace_period_days".into(), json!(0))],
        ("hashing.lanes", _) => vec![("hashing.memory_kib".into(), json!(4 * 1024 * 1024))],
        ("tls.cert_file", Some(_)) => vec![("tls.key_file".into(), json!("key.pem"))],
        ("tls.key_file", Some(_)) => vec![("tls.cert_file".into(), json!("cert.pem"))],
        ("tls.client_ca_file", Some(_)) => {
            vec![("tls.cert_file".into(), json!("cert.pem")), ("tls.key_file".into(), json!("key.pem"))]
        }
        // A new plan's ceiling needs the plan's key limit, which a new plan must name.
        (ceiling, _)
            if ceiling.starts_with("organizations.plans.<name>.") && !ceiling.ends_with(".max_active_keys") =>
        {
            vec![(format!("organizations.plans.{PLAN}.max_active_keys"), json!(1))]
        }
        ("organizations.default_plan" | "organizations.bootstrap_plan", Some(plan)) => {
            vec![(format!("organizations.plans.{plan}.max_active_keys"), json!(1))]
        }
        _ => Vec::new(),
    };
    if let Some(field) = path.strip_prefix("oauth.issuers.<name>.") {
        // An issuer is a table: its required settings (and one JWKS source) from the schema.
        let required = issuer_schema["required"].as_array().expect("an issuer's required settings");
        let jwks = if field == "jwks_file" { "jwks_file" } else { "jwks_url" };
        // And one binding to organizations: a fixed one, or the allow-list being tried.
        let binding = if field == "organizations" { "organizations" } else { "organization" };
        let needed = required.iter().map(string).chain([jwks.to_owned(), binding.to_owned()]);
        for name in needed.filter(|name| name != field) {
            let example = issuer_schema["properties"][&name]["examples"][0].clone();
            assert!(!example.is_null(), "oauth.issuers.<name>.{name}: the schema needs an example");
            context.push((format!("oauth.issuers.{ISSUER}.{name}"), example));
        }
        // Lasting credentials are for admins: they need the issuer's admin scopes.
        if field == "lasting_credentials" && value == &json!(true) {
            context.push((format!("oauth.issuers.{ISSUER}.allow_admin_scopes"), json!(true)));
        }
    }
    context
}

fn to_toml(value: &Value) -> toml::Value {
    match value {
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) if n.is_i64() => toml::Value::Integer(n.as_i64().expect("i64")),
        Value::Number(n) => toml::Value::Float(n.as_f64().expect("f64")),
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(items.iter().map(to_toml).collect()),
        other => panic!("not a setting's value: {other}"),
    }
}

/// `settings` (dotted paths) as nested JSON objects, as they sit under `config` in values.
fn nested(settings: &[(String, Value)]) -> Value {
    let mut root = json!({});
    for (path, value) in settings {
        let mut node = &mut root;
        let mut keys = path.split('.').peekable();
        while let Some(key) = keys.next() {
            if keys.peek().is_none() {
                node[key] = value.clone();
            } else {
                node = node.as_object_mut().expect("a table").entry(key).or_insert_with(|| json!({}));
            }
        }
    }
    root
}

/// keygate's loader on a config file holding `settings`.
fn load_settings(settings: &[(String, Value)]) -> Result<Config, String> {
    let text = toml::to_string(&json_to_toml_table(&nested(settings))).expect("TOML");
    let sources = Sources { file: Some((PathBuf::from("keygate.toml"), text)), env: Vec::new(), flags: Vec::new() };
    Config::load(&sources).map_err(|e| e.to_string())
}

fn json_to_toml_table(value: &Value) -> toml::Value {
    match value {
        Value::Object(map) => toml::Value::Table(map.iter().map(|(k, v)| (k.clone(), json_to_toml_table(v))).collect()),
        leaf => to_toml(leaf),
    }
}

/// Helm's own schema check of `config` = each of `configs`; None where it passes.
fn schema_errors(configs: &[Value]) -> Vec<Option<String>> {
    let check: Vec<Value> = configs.iter().map(|config| json!({"config": config})).collect();
    let answer = python("chart.py", &json!({"chart": root().join("helm/keygate"), "check_values": check}));
    answer["schema"].as_array().expect("one answer per set").iter().map(|a| a.as_str().map(str::to_owned)).collect()
}

#[test]
fn config_schema_covers_exactly_the_settings_keygate_loads() {
    let mut leaves = BTreeMap::new();
    schema_leaves(&config_schema(), "", &mut leaves);
    let schema: BTreeSet<String> = leaves.keys().cloned().collect();
    let loader = loader_paths();
    let owned: BTreeSet<String> = CHART_OWNED.iter().map(|s| (*s).to_owned()).collect();
    assert!(owned.is_subset(&loader), "the chart sets settings keygate does not have: {:?}", &owned - &loader);
    let missing: Vec<_> = loader.difference(&schema).filter(|path| !owned.contains(*path)).collect();
    assert!(
        missing.is_empty(),
        "keygate takes settings the chart's schema refuses (add them to values.schema.json): {missing:?}"
    );
    let unknown: Vec<_> = schema.difference(&loader).collect();
    assert!(unknown.is_empty(), "the chart's schema allows settings keygate does not have: {unknown:?}");
    let both: Vec<_> = schema.intersection(&owned).collect();
    assert!(both.is_empty(), "the chart sets these itself, so values must not: {both:?}");
}

/// What a declared setting's schema must say: its type, bounds and choices, from its kind.
fn declared_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Text | Kind::Path | Kind::Pairs | Kind::Addr => json!({"type": "string"}),
        Kind::Int { min, max, .. } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::Number { min, max } => json!({"type": "number", "minimum": min, "maximum": max}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::List => json!({"type": "array", "items": {"type": "string"}}),
        Kind::Choice(names) => json!({"type": "string", "enum": names}),
        Kind::Choices(names) => json!({"type": "array", "items": {"type": "string", "enum": names}}),
    }
}

/// Whether two schema values agree, numbers by value (the schema writes `0` for a declared `0.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Object(a), Value::Object(b)) => {
            a.iter().all(|(key, value)| b.get(key).is_some_and(|other| same(value, other)))
        }
        _ => a == b,
    }
}

/// A schema default as the text a variable would hold, to compare with the declared default.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[test]
fn config_schema_has_the_declared_types_bounds_choices_and_defaults() {
    let mut leaves = BTreeMap::new();
    schema_leaves(&config_schema(), "", &mut leaves);
    let mut problems = Vec::new();
    for setting in keygate::config::declared() {
        let path = setting.path.replace(".NAME.", ".<name>.");
        if CHART_OWNED.contains(&path.as_str()) {
            continue;
        }
        let Some(schema) = leaves.get(&path) else {
            problems.push(format!("config.{path}: declared, not in the schema"));
            continue;
        };
        let expected = declared_schema(&setting.kind);
        if !same(&expected, schema) {
            problems.push(format!("config.{path}: declared as {expected}, the schema says {schema}"));
        }
        // Bounds the declaration does not have would refuse what keygate takes.
        for bound in ["minimum", "maximum", "enum"] {
            if schema.get(bound).is_some() && expected.get(bound).is_none() {
                problems.push(format!("config.{path}: the schema has a {bound} keygate does not declare"));
            }
        }
        match (setting.default, schema.get("default")) {
            (DefaultIs::Value(declared), Some(default)) if as_text(default) != declared => {
                problems.push(format!("config.{path}: the schema's default {default} is not the declared {declared:?}"))
            }
            (DefaultIs::Unset(_), Some(default)) => {
                problems.push(format!("config.{path}: the schema has a default ({default}); keygate's is unset"))
            }
            _ => {}
        }
    }
    assert!(problems.is_empty(), "values.schema.json and src/config/settings.rs disagree:\n{}", problems.join("\n"));
}

/// A value tried at a schema path: the path, the value, whether the schema accepts it, and the
/// settings to load (the value at its path plus what the loader's cross checks need).
type Case = (String, Value, bool, Vec<(String, Value)>);

#[test]
fn config_schema_and_loader_agree_on_every_value() {
    let config_schema = config_schema();
    let issuer_schema = config_schema["properties"]["oauth"]["properties"]["issuers"]["additionalProperties"].clone();
    let mut leaves = BTreeMap::new();
    schema_leaves(&config_schema, "", &mut leaves);

    let mut cases: Vec<Case> = Vec::new();
    for (path, schema) in &leaves {
        let accepted = accepted_by_schema(schema);
        assert!(!accepted.is_empty(), "config.{path}: give it a default or examples, so it can be tried");
        for (values, accepts) in [(accepted, true), (rejected_by_schema(schema), false)] {
            for value in values {
                let mut settings = context(path, &value, &issuer_schema);
                settings.push((concrete(path), value.clone()));
                cases.push((path.clone(), value, accepts, settings));
            }
        }
    }
    let configs: Vec<Value> = cases.iter().map(|(_, _, _, settings)| nested(settings)).collect();
    let verdicts = schema_errors(&configs);
    let mut problems = Vec::new();
    for ((path, value, accepts, settings), schema_error) in cases.iter().zip(verdicts) {
        let at = concrete(path);
        match (accepts, schema_error, load_settings(settings)) {
            (true, None, Ok(_)) => {}
            (true, Some(error), _) => {
                problems.push(format!("config.{at} = {value}: the schema's own value fails it: {error}"))
            }
            (true, None, Err(error)) => {
                problems.push(format!("config.{at} = {value}: the schema accepts it, keygate does not: {error}"))
            }
            (false, None, _) => problems.push(format!("config.{at} = {value}: expected the schema to refuse it")),
            (false, Some(_), Ok(_)) => {
                problems.push(format!("config.{at} = {value}: the schema refuses what keygate accepts"))
            }
            (false, Some(_), Err(error)) if !error.contains(&at) => {
                problems.push(format!("config.{at} = {value}: keygate refuses it, but not for {at}: {error}"))
            }
            (false, Some(_), Err(_)) => {}
        }
    }
    assert!(problems.is_empty(), "{} of {} cases:\n{}", problems.len(), cases.len(), problems.join("\n"));

    // A schema default is keygate's default: setting it changes nothing.
    for (path, schema) in leaves.iter().filter(|(path, _)| !path.starts_with("organizations.plans.")) {
        let Some(default) = schema.get("default") else { continue };
        let context = context(path, default, &issuer_schema);
        let mut with_default = context.clone();
        with_default.push((concrete(path), default.clone()));
        let (without, with) = (load_settings(&context).expect("the context loads"), load_settings(&with_default));
        assert_eq!(with.as_ref(), Ok(&without), "config.{path}: the schema's default {default} is not keygate's");
    }
}

#[test]
fn every_setting_at_its_schema_default_renders_as_keygate_reads_it() {
    // One value for every leaf, written by the chart's TOML writer and read back by keygate.
    let config_schema = config_schema();
    let issuer_schema = config_schema["properties"]["oauth"]["properties"]["issuers"]["additionalProperties"].clone();
    let mut leaves = BTreeMap::new();
    schema_leaves(&config_schema, "", &mut leaves);
    let mut settings: Vec<(String, Value)> = context("oauth.issuers.<name>.issuer", &json!(""), &issuer_schema);
    // An issuer takes one JWKS source (jwks_url) and one binding (organization), from the context.
    let other_choice = |path: &str| path.ends_with(".jwks_file") || path.ends_with(".organizations");
    for (path, schema) in leaves.iter().filter(|(path, _)| !other_choice(path)) {
        let value = accepted_by_schema(schema).remove(0);
        if !settings.iter().any(|(known, _)| *known == concrete(path)) {
            settings.push((concrete(path), value));
        }
    }
    // The default plan and a big number, so that plans and 64-bit integers are written too.
    settings.retain(|(path, _)| !path.starts_with("organizations.plans."));
    settings.push((format!("organizations.plans.{PLAN}.max_active_keys"), json!(7)));
    settings.retain(|(path, _)| path != "limits.users.max_quota");
    settings.push(("limits.users.max_quota".into(), json!(1_000_000_000_000i64)));
    // limits.redis_ca_file goes with a rediss:// URL, which the chart takes from redis.url.
    let mut expected_settings = settings.clone();
    expected_settings.push(("limits.backend".into(), json!("redis")));
    expected_settings.push(("limits.redis_url".into(), json!(TLS_REDIS_URL)));
    let expected =
        load_settings(&expected_settings).unwrap_or_else(|e| panic!("the schema's values do not load together: {e}"));
    let overrides =
        json!({"config": nested(&settings), "migrations": {"enabled": false}, "redis": {"url": TLS_REDIS_URL}});
    let rendered = render(&values(overrides));
    let mut loaded = server_config(&rendered);
    assert_eq!(loaded.organizations.plans.get(PLAN).map(|plan| plan.max_active_keys), Some(7));
    assert_eq!(loaded.limits.defaults.users.max_quota, 1_000_000_000_000);
    assert!(loaded.oauth.issuers.contains_key(ISSUER));
    // What the chart owns comes from other values; everything else as written.
    loaded.grpc_addr = expected.grpc_addr;
    loaded.http_addr = expected.http_addr;
    loaded.metrics_addr = expected.metrics_addr;
    loaded.database.url = expected.database.url.clone();
    loaded.database.run_migrations = expected.database.run_migrations;
    loaded.limits.backend = expected.limits.backend;
    loaded.limits.redis_url = expected.limits.redis_url.clone();
    loaded.oauth.signing_key_files = expected.oauth.signing_key_files.clone();
    assert_eq!(loaded, expected);
}
