//! The Helm chart (helm/keygate) and the container image. Helm itself lints and renders the chart
//! (helm-python-sdk, driven by tests/helm/chart.py), every manifest is validated against the
//! Kubernetes schemas (kubernetes-validate), and the config the pods would get is loaded with
//! keygate's own loader, so a chart that renders a setting keygate rejects fails here.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use keygate::config::{Config, LimitsBackend, LogFormat, RedisFailureMode, Sources};
use serde_json::{Value, json};

/// The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest known.
const KUBE_VERSIONS: [&str; 2] = ["1.27.0", "1.37.0"];
const RELEASE: &str = "keygate";
const NAMESPACE: &str = "auth";
const DATABASE_URL: &str = "postgres://keygate:s3cret@db.internal:5432/keygate";
/// Stands in for the URL in a Secret the chart does not render (database.existingSecret).
const EXTERNAL_DATABASE_URL: &str = "postgres://keygate@external.invalid:5432/keygate";
const REDIS_URL: &str = "redis://:s3cret@redis.internal:6379/0";
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

/// Lints and renders the chart with `values`; Err((stage, error)) when Helm or the Kubernetes
/// schemas reject it.
fn helm(values: &Value) -> Result<Rendered, (String, String)> {
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let request = json!({
        "chart": root().join("helm/keygate"),
        "values": values,
        "kube_versions": KUBE_VERSIONS,
        "release": RELEASE,
        "namespace": NAMESPACE,
    });
    let mut child = Command::new(&python)
        .arg(root().join("tests/helm/chart.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python:?} ({e}): run the tests with scripts/test"));
    serde_json::to_writer(child.stdin.take().expect("stdin"), &request).expect("write the request");
    let out = child.wait_with_output().expect("chart.py runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/helm/chart.py failed with {python:?} ({}); the chart tests need helm-python-sdk and \
         kubernetes-validate: run them with scripts/test, or set TEST_PYTHON to a python that has them\n{stderr}",
        out.status
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("chart.py answers JSON");
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

fn merge(base: &mut Value, overrides: Value) {
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
    /// its mounted ConfigMap as the file, its environment, its arguments, through keygate's loader.
    fn keygate_config(&self, pod: &Value) -> Config {
        let container = &pod["containers"][0];
        assert!(container.get("command").is_none(), "the image's ENTRYPOINT (keygate) must stay");
        let mount = container["volumeMounts"].as_array().expect("mounts").iter().find(|m| m["name"] == "config");
        let mount_path = string(&mount.expect("the config volume is mounted")["mountPath"]);
        let volume = pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == "config");
        let map_name = string(&volume.expect("a config volume")["configMap"]["name"]);
        let map = self.named("ConfigMap", &map_name).unwrap_or_else(|| panic!("ConfigMap {map_name} is rendered"));
        let toml = string(&map["data"]["keygate.toml"]);

        let mut env = Vec::new();
        for var in container["env"].as_array().expect("env") {
            let name = string(&var["name"]);
            let value = match var.get("value") {
                Some(value) => string(value),
                None => self.secret_value(&name, &var["valueFrom"]["secretKeyRef"]),
            };
            env.push((name, value));
        }
        let file_path = env.iter().find(|(name, _)| name == "KEYGATE_CONFIG").map(|(_, v)| v.clone());
        assert_eq!(file_path, Some(format!("{mount_path}/keygate.toml")), "KEYGATE_CONFIG names the mounted file");

        let args: Vec<String> = container["args"].as_array().expect("args").iter().map(string).collect();
        assert!(args.len() == 1 && ["serve", "migrate"].contains(&args[0].as_str()), "{args:?}");
        let sources = Sources { file: Some((PathBuf::from("keygate.toml"), toml.clone())), env, flags: Vec::new() };
        Config::load(&sources).unwrap_or_else(|e| panic!("keygate rejects the chart's configuration: {e}\n{toml}"))
    }

    /// A value from a Secret the chart renders, or a stand-in for one it does not.
    fn secret_value(&self, variable: &str, reference: &Value) -> String {
        match self.named("Secret", reference["name"].as_str().expect("secret name")) {
            Some(secret) => string(&secret["stringData"][reference["key"].as_str().expect("secret key")]),
            None if variable == "KEYGATE_LIMITS_REDIS_URL" => EXTERNAL_REDIS_URL.to_owned(),
            None => EXTERNAL_DATABASE_URL.to_owned(),
        }
    }
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
    for probe in ["readinessProbe", "livenessProbe"] {
        let probe = &pod["containers"][0][probe];
        assert_eq!(probe["grpc"]["port"], grpc_port, "native gRPC probe on the gRPC port: {probe}");
        assert!(probe["grpc"].get("service").is_none(), "the server-wide status: {probe}");
    }

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

    let monitor = rendered.one("ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let service_labels = &rendered.one("Service")["metadata"]["labels"];
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().expect("selector");
    assert!(selector.iter().all(|(k, v)| &service_labels[k] == v), "selects the Service: {selector:?}");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
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
    assert_eq!((loaded.database.max_connections, loaded.database.timeout_secs), (20, 3));
    assert_eq!(loaded.log.level, "keygate=debug,info");
    assert_eq!((loaded.keys.prefix.as_str(), loaded.keys.default_expires_in_days), ("kg_", 90));
    assert_eq!(loaded.scopes, ["reports:read", "reports:write"]);
    let team = loaded.organizations.plans.get("team").copied().expect("team");
    assert_eq!((team.max_active_keys, team.ceiling.rate_per_minute), (10, Some(600)));
    assert_eq!(loaded.organizations.plans.get("free").and_then(|plan| plan.ceiling.max_concurrency), Some(2));
    assert_eq!(loaded.limits.ceiling.rate_per_minute, Some(6000));
    assert_eq!(loaded.organizations.default_plan, "team");
    assert_eq!((loaded.hashing.max_concurrent, loaded.hashing.memory_kib), (2, 65536));
    assert_eq!((loaded.cache.max_entries, loaded.cache.ttl_secs), (250_000, 60));
    assert_eq!((loaded.oauth.issuer.as_str(), loaded.oauth.token_ttl_secs), ("https://keygate.example.com", 600));
    assert_eq!(loaded.limits.redis_failure, RedisFailureMode::Closed);
    assert_eq!(loaded.limits.defaults.clients.rate_per_minute, 1000);
    assert_eq!(loaded.shutdown.grace_secs, 20);
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
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let runtime = dockerfile.rsplit_once("\nFROM ").expect("a multi-stage build").1;
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
