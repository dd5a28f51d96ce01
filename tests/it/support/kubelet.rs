//! A kubelet in a test: runs a rendered pod's container the way Kubernetes would, without a
//! cluster. The image's ENV, WORKDIR and USER come from the Dockerfile's runtime stage; the pod
//! adds its environment (literal values with `$(VAR)` expansion, `secretKeyRef` and
//! `configMapKeyRef` from the rendered objects or the cluster's own Secrets, `envFrom`), the
//! service-link variables of every Service in the namespace unless `enableServiceLinks: false`,
//! and its volumes (ConfigMaps and Secrets written as the kubelet writes them, through a `..data`
//! symlink that an update swaps atomically; emptyDirs), bind-mounted at their mount paths in a
//! mount namespace of its own, read-only root filesystem included. Probes run as the kubelet runs
//! them: gRPC (`grpc.health.v1` on the pod's address and the probe's `service`), exec (inside the
//! container), TCP and HTTP GET.
//!
//! Needs root (mount namespaces, switching to the pod's user), as CI has.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use super::process::KEYGATE;

/// Numbers the overlays the containers' processes mount, so that no two share a directory.
static OVERLAYS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The pod's IP as the kubelet would give it; everything listens on the machine's loopback here.
pub const POD_IP: &str = "127.0.0.1";
/// The ClusterIP every Service of the namespace gets in the service-link variables.
const CLUSTER_IP: &str = "10.96.0.10";

/// The objects of one namespace: what the chart rendered, plus the cluster's own Secrets.
pub struct Namespace {
    pub objects: Vec<Value>,
}

impl Namespace {
    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// A ConfigMap's or Secret's data, decoded.
    fn data(&self, kind: &str, name: &str) -> BTreeMap<String, Vec<u8>> {
        let object = self.find(kind, name).unwrap_or_else(|| panic!("{kind} {name} does not exist in the namespace"));
        let mut data = BTreeMap::new();
        for (key, value) in object["data"].as_object().into_iter().flatten() {
            let text = value.as_str().unwrap_or_default();
            let bytes = if kind == "Secret" {
                base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_else(|e| panic!("{name}.{key}: {e}"))
            } else {
                text.as_bytes().to_vec()
            };
            data.insert(key.clone(), bytes);
        }
        // The API server folds stringData into data.
        for (key, value) in object["stringData"].as_object().into_iter().flatten() {
            data.insert(key.clone(), value.as_str().unwrap_or_default().as_bytes().to_vec());
        }
        data
    }

    fn key(&self, kind: &str, reference: &Value) -> String {
        let name = reference["name"].as_str().expect("a reference's name");
        let key = reference["key"].as_str().expect("a reference's key");
        let data = self.data(kind, name);
        let bytes = data.get(key).unwrap_or_else(|| panic!("{kind} {name} has no key {key}"));
        String::from_utf8(bytes.clone()).expect("utf-8 value")
    }

    /// `<NAME>_SERVICE_HOST`, `<NAME>_PORT_<n>_TCP_ADDR`, … for every Service, as the kubelet sets
    /// them (docker-link style), the `kubernetes` Service's among them.
    pub fn service_links(&self) -> Vec<(String, String)> {
        let mut services: Vec<(String, Vec<Value>)> =
            vec![("kubernetes".into(), vec![serde_json::json!({"name": "https", "port": 443, "protocol": "TCP"})])];
        for service in self.objects.iter().filter(|o| o["kind"] == "Service") {
            if service["spec"]["clusterIP"] == "None" {
                continue;
            }
            let name = service["metadata"]["name"].as_str().expect("name").to_owned();
            services.push((name, service["spec"]["ports"].as_array().cloned().unwrap_or_default()));
        }
        let mut env = Vec::new();
        for (name, ports) in services {
            let prefix = name.to_ascii_uppercase().replace('-', "_");
            let Some(first) = ports.first() else { continue };
            env.push((format!("{prefix}_SERVICE_HOST"), CLUSTER_IP.to_owned()));
            env.push((format!("{prefix}_SERVICE_PORT"), first["port"].to_string()));
            for port in &ports {
                if let Some(port_name) = port["name"].as_str() {
                    let port_name = port_name.to_ascii_uppercase().replace('-', "_");
                    env.push((format!("{prefix}_SERVICE_PORT_{port_name}"), port["port"].to_string()));
                }
            }
            let protocol = |port: &Value| port["protocol"].as_str().unwrap_or("TCP").to_owned();
            env.push((
                format!("{prefix}_PORT"),
                format!("{}://{CLUSTER_IP}:{}", protocol(first).to_lowercase(), first["port"]),
            ));
            for port in &ports {
                let (number, proto) = (port["port"].to_string(), protocol(port));
                let base = format!("{prefix}_PORT_{number}_{proto}");
                env.push((base.clone(), format!("{}://{CLUSTER_IP}:{number}", proto.to_lowercase())));
                env.push((format!("{base}_PROTO"), proto.to_lowercase()));
                env.push((format!("{base}_PORT"), number));
                env.push((format!("{base}_ADDR"), CLUSTER_IP.to_owned()));
            }
        }
        env
    }
}

/// The image's runtime configuration: the Dockerfile's runtime stage, exec forms only (the
/// image has no shell).
pub struct Image {
    pub env: Vec<(String, String)>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub healthcheck: Vec<String>,
    pub workdir: String,
    pub user: Option<(u32, u32)>,
}

impl Image {
    pub fn from_dockerfile() -> Self {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).expect("Dockerfile");
        let runtime = text.rsplit_once("\nFROM ").expect("a multi-stage build").1.replace("\\\n", " ");
        let mut image = Self {
            env: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            healthcheck: Vec::new(),
            workdir: "/".into(),
            user: None,
        };
        for line in runtime.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            let Some((instruction, rest)) = line.split_once(' ') else { continue };
            let rest = rest.trim();
            match instruction {
                "ENV" => image.env.extend(rest.split_whitespace().map(|pair| {
                    let (name, value) = pair.split_once('=').expect("ENV NAME=VALUE");
                    (name.to_owned(), value.trim_matches('"').to_owned())
                })),
                "ENTRYPOINT" => image.entrypoint = exec_form(rest),
                "CMD" => image.cmd = exec_form(rest),
                "HEALTHCHECK" => {
                    let (_, command) = rest.split_once("CMD ").expect("HEALTHCHECK ... CMD [...]");
                    image.healthcheck = exec_form(command.trim());
                }
                "WORKDIR" => image.workdir = rest.to_owned(),
                "USER" => {
                    let (uid, gid) = rest.split_once(':').expect("USER uid:gid");
                    image.user = Some((uid.parse().expect("numeric uid"), gid.parse().expect("numeric gid")));
                }
                _ => {}
            }
        }
        image
    }
}

/// A JSON-array (exec form) instruction.
fn exec_form(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text} is not exec form: {e}"))
}

/// One container of a pod, prepared to run: its argv, environment, user and mounts.
pub struct Container {
    /// Where its volumes live, by volume name.
    root: tempfile::TempDir,
    argv: Vec<String>,
    pub env: Vec<(String, String)>,
    user: (u32, u32),
    mounts: Vec<Mount>,
    read_only_root: bool,
    pub spec: Value,
}

struct Mount {
    source: PathBuf,
    target: String,
    read_only: bool,
}

/// A running container's process, its log drained as the container runtime would.
pub struct Running {
    pub child: Child,
    pub container: Container,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    /// What it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|lines| lines.join("\n")).unwrap_or_default()
    }

    /// Panics with the log when the process has exited.
    pub fn still_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!("the container exited ({status}):\n{}", self.logs());
        }
    }
}

impl Container {
    /// The `index`th container of `pod` (a pod spec) in `namespace`, as the kubelet would start it.
    pub fn new(namespace: &Namespace, image: &Image, pod: &Value, index: usize) -> Self {
        let spec = pod["containers"][index].clone();
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");

        // The image's entrypoint is the binary under test; a pod's `command` would replace it.
        let mut argv = match spec["command"].as_array() {
            Some(command) => command.iter().map(|v| v.as_str().expect("command").to_owned()).collect(),
            None => image.entrypoint.clone(),
        };
        argv.extend(spec["args"].as_array().into_iter().flatten().map(|v| v.as_str().expect("args").to_owned()));

        // Environment: the image's, then service links, then envFrom, then env (later wins).
        let mut env: Vec<(String, String)> = image.env.clone();
        env.push(("HOSTNAME".into(), "keygate-0".into()));
        if pod["enableServiceLinks"] != false {
            env.extend(namespace.service_links());
        }
        for source in spec["envFrom"].as_array().into_iter().flatten() {
            let prefix = source["prefix"].as_str().unwrap_or_default();
            let (kind, reference) = match (source.get("secretRef"), source.get("configMapRef")) {
                (Some(secret), _) => ("Secret", secret),
                (_, Some(map)) => ("ConfigMap", map),
                _ => panic!("envFrom without secretRef or configMapRef: {source}"),
            };
            for (key, value) in namespace.data(kind, reference["name"].as_str().expect("name")) {
                env.push((format!("{prefix}{key}"), String::from_utf8(value).expect("utf-8")));
            }
        }
        for var in spec["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().expect("env name").to_owned();
            let value = if let Some(value) = var.get("value") {
                expand(value.as_str().unwrap_or_default(), &env)
            } else if let Some(reference) = var["valueFrom"].get("secretKeyRef") {
                namespace.key("Secret", reference)
            } else if let Some(reference) = var["valueFrom"].get("configMapKeyRef") {
                namespace.key("ConfigMap", reference)
            } else if let Some(field) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match field {
                    "status.podIP" | "status.hostIP" => POD_IP.to_owned(),
                    "metadata.name" => "keygate-0".to_owned(),
                    "metadata.namespace" => "auth".to_owned(),
                    other => panic!("fieldRef {other} is not simulated"),
                }
            } else {
                panic!("env {name} has a source the simulator does not know: {var}");
            };
            env.retain(|(existing, _)| *existing != name);
            env.push((name, value));
        }

        // Volumes, written under the container's root, and where they are mounted.
        let mut mounts = Vec::new();
        for mount in spec["volumeMounts"].as_array().into_iter().flatten() {
            let name = mount["name"].as_str().expect("mount name");
            let volume = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("volume {name} is mounted but not declared"));
            let dir = root.path().join("volumes").join(name);
            if !dir.exists() {
                write_volume(namespace, volume, &dir);
            }
            let source = match mount["subPath"].as_str() {
                Some(sub) => dir.join(sub),
                None => dir,
            };
            let target = mount["mountPath"].as_str().expect("mountPath").to_owned();
            mounts.push(Mount { source, target, read_only: mount["readOnly"] == true });
        }

        let security = |field: &str| spec["securityContext"][field].as_u64().or(pod["securityContext"][field].as_u64());
        let user = (
            u32::try_from(security("runAsUser").unwrap_or(0)).expect("uid"),
            u32::try_from(security("runAsGroup").unwrap_or(0)).expect("gid"),
        );
        if pod["securityContext"]["runAsNonRoot"] == true || spec["securityContext"]["runAsNonRoot"] == true {
            assert_ne!(user.0, 0, "runAsNonRoot with uid 0 would not start");
        }
        // fsGroup: volumes are readable by the pod's group.
        if let Some(group) = pod["securityContext"]["fsGroup"].as_u64() {
            chown_tree(&root.path().join("volumes"), u32::try_from(group).expect("gid"));
        }
        let read_only_root = spec["securityContext"]["readOnlyRootFilesystem"] == true;
        let workdir = root.path().join("workdir");
        std::fs::create_dir_all(&workdir).expect("workdir");
        std::os::unix::fs::chown(&workdir, Some(user.0), Some(user.1)).expect("chown workdir");
        let binary = root.path().join("keygate");
        std::fs::copy(KEYGATE, &binary).expect("copy the binary");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self { root, argv, env, user, mounts, read_only_root, spec }
    }

    /// Updates a ConfigMap volume as the kubelet does: the new contents in a new directory, then
    /// `..data` swapped to it in one rename.
    pub fn update_config_map(&self, volume: &str, key: &str, contents: &str) {
        let dir = self.root.path().join("volumes").join(volume);
        let fresh = dir.join(format!("..{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&fresh).expect("new data dir");
        let previous = std::fs::read_link(dir.join("..data")).expect("..data");
        for entry in std::fs::read_dir(dir.join(&previous)).expect("old data") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), fresh.join(entry.file_name())).expect("copy key");
        }
        std::fs::write(fresh.join(key), contents).expect("write key");
        let link = dir.join("..data_tmp");
        std::os::unix::fs::symlink(fresh.file_name().expect("name"), &link).expect("symlink");
        std::fs::rename(&link, dir.join("..data")).expect("swap ..data");
        let _ = std::fs::remove_dir_all(dir.join(previous));
    }

    /// The container's process: a private mount namespace with the volumes mounted, the root
    /// read-only when asked, the pod's user, the container's environment and nothing else.
    fn command(&self, argv: &[String]) -> Command {
        let mut script = String::from("set -e\n");
        let mut overlaid: Vec<PathBuf> = Vec::new();
        for mount in &self.mounts {
            // A mount path the host lacks is made in an overlay of its nearest existing
            // ancestor, so the host's tree is never changed.
            let target = Path::new(&mount.target);
            let existing = target.ancestors().find(|a| a.exists()).expect("/ exists").to_owned();
            if existing != target && !overlaid.iter().any(|o| target.starts_with(o)) {
                // Upper and work directories of its own for every process started, never shared:
                // a probe's exec or a restart overlays the same path while the container runs,
                // and overlayfs refuses an upper or work directory another mount is using.
                let n = OVERLAYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let upper = self.root.path().join(format!("overlay-{n}"));
                std::fs::create_dir_all(upper.join("upper")).expect("overlay dir");
                std::fs::create_dir_all(upper.join("work")).expect("overlay dir");
                script.push_str(&format!(
                    "mount -t overlay overlay -o lowerdir={e},upperdir={u}/upper,workdir={u}/work {e}\n",
                    e = existing.display(),
                    u = upper.display()
                ));
                overlaid.push(existing);
            }
            if mount.source.is_dir() {
                script.push_str(&format!("mkdir -p '{}'\n", mount.target));
            } else {
                script.push_str(&format!("mkdir -p '{}' && touch '{}'\n", parent(&mount.target), mount.target));
            }
            let options = if mount.read_only { "bind,ro" } else { "bind" };
            script.push_str(&format!("mount --bind '{}' '{}'\n", mount.source.display(), mount.target));
            script.push_str(&format!("mount -o remount,{options} '{}'\n", mount.target));
        }
        if self.read_only_root {
            script.push_str("mount -o remount,bind,ro /\n");
        }
        let (uid, gid) = self.user;
        script.push_str(&format!(
            "cd '{}'\nexec /usr/bin/setpriv --reuid={uid} --regid={gid} --clear-groups -- \"$@\"\n",
            self.root.path().join("workdir").display()
        ));
        let mut command = Command::new("/usr/bin/unshare");
        command.args(["--mount", "--propagation", "private", "/bin/sh", "-c", &script, "container"]);
        // The image's `keygate` is the binary under test.
        let program = match argv[0].as_str() {
            "keygate" | "/usr/local/bin/keygate" => self.root.path().join("keygate").display().to_string(),
            other => panic!("{other} is not in the image"),
        };
        command.arg(program).args(&argv[1..]).env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts the container's main process.
    pub fn start(self) -> Running {
        let mut child =
            self.command(&self.argv).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("container starts");
        let stderr = child.stderr.take().expect("stderr");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                }
            }
        });
        Running { child, container: self, logs }
    }

    /// Runs the container to completion (a Job's pod); its exit status and output.
    pub fn run_to_completion(self, deadline: Duration) -> std::process::Output {
        let mut child = self.command(&self.argv).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("job");
        let started = std::time::Instant::now();
        while child.try_wait().expect("wait").is_none() {
            assert!(started.elapsed() < deadline, "the Job's pod ran past its activeDeadlineSeconds");
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().expect("output")
    }

    /// Runs `argv` inside the container (as `kubectl exec` or an exec probe would).
    pub fn exec(&self, argv: &[String], timeout: Duration) -> std::process::Output {
        let mut child = self.command(argv).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("exec");
        let started = std::time::Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if started.elapsed() > timeout {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    }

    /// Runs the probe named `which` (`readinessProbe`, `livenessProbe`) once, as the kubelet
    /// does; whether it passed, and why not.
    pub async fn probe(&self, which: &str) -> Result<(), String> {
        let probe = &self.spec[which];
        let timeout = Duration::from_secs(probe["timeoutSeconds"].as_u64().unwrap_or(1));
        if let Some(grpc) = probe.get("grpc") {
            let port = self.port(&grpc["port"]);
            let service = grpc["service"].as_str().unwrap_or_default().to_owned();
            return grpc_probe(port, service, timeout).await;
        }
        if let Some(exec) = probe.get("exec") {
            let argv: Vec<String> = exec["command"]
                .as_array()
                .expect("exec command")
                .iter()
                .map(|v| v.as_str().expect("word").to_owned())
                .collect();
            let out = self.exec(&argv, timeout);
            return if out.status.success() {
                Ok(())
            } else {
                Err(format!("exec {argv:?}: {} {}", out.status, String::from_utf8_lossy(&out.stderr)))
            };
        }
        if let Some(tcp) = probe.get("tcpSocket") {
            let port = self.port(&tcp["port"]);
            let connect = tokio::net::TcpStream::connect((POD_IP, port));
            return match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(_)) => Ok(()),
                other => Err(format!("tcp {port}: {other:?}")),
            };
        }
        panic!("{which}: a probe kind the simulator does not know: {probe}")
    }

    /// A probe's port: a number, or the name of a container port.
    pub fn port(&self, port: &Value) -> u16 {
        let number = match port.as_str() {
            Some(name) => {
                let ports = self.spec["ports"].as_array().expect("ports");
                ports.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
                    .clone()
            }
            None => port.clone(),
        };
        u16::try_from(number.as_u64().expect("a port number")).expect("port")
    }
}

impl Drop for Running {
    /// A failed test leaves no container behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kubelet's gRPC probe: `grpc.health.v1.Health/Check` on the pod's IP, plain HTTP/2.
async fn grpc_probe(port: u16, service: String, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{POD_IP}:{port}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest { service: service.clone() };
        let status = client.check(request).await.map_err(|e| format!("{service:?}: {e}"))?.into_inner().status();
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
            Ok(())
        } else {
            Err(format!("{service:?} is {}", status.as_str_name()))
        }
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| format!("{service:?}: timed out"))?
}

/// `$(NAME)` references to earlier variables, as the kubelet expands them.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = value.to_owned();
    for (name, replacement) in env {
        out = out.replace(&format!("$({name})"), replacement);
    }
    out
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("/", |(dir, _)| if dir.is_empty() { "/" } else { dir })
}

/// Writes a volume's files: a ConfigMap's or Secret's keys (all, or the listed `items`) as the
/// kubelet's atomic writer lays them out (`key -> ..data/key`), or an empty directory.
fn write_volume(namespace: &Namespace, volume: &Value, dir: &Path) {
    std::fs::create_dir_all(dir).expect("volume dir");
    let (kind, source, name_field) = if let Some(map) = volume.get("configMap") {
        ("ConfigMap", map, "name")
    } else if let Some(secret) = volume.get("secret") {
        ("Secret", secret, "secretName")
    } else if volume.get("emptyDir").is_some() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        return;
    } else {
        panic!("a volume kind the simulator does not know: {volume}");
    };
    let data = namespace.data(kind, source[name_field].as_str().expect("volume source name"));
    let mode = u32::try_from(source["defaultMode"].as_u64().unwrap_or(0o644)).expect("mode");
    let stamp = dir.join("..initial");
    std::fs::create_dir(&stamp).expect("data dir");
    let items: Vec<(String, String)> = match source["items"].as_array() {
        Some(items) => items
            .iter()
            .map(|i| (i["key"].as_str().expect("key").to_owned(), i["path"].as_str().expect("path").to_owned()))
            .collect(),
        None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
    };
    for (key, path) in items {
        let bytes = data.get(&key).unwrap_or_else(|| panic!("{kind} has no key {key}"));
        std::fs::write(stamp.join(&path), bytes).expect("write key");
        std::fs::set_permissions(stamp.join(&path), std::fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::symlink(format!("..data/{path}"), dir.join(&path)).expect("key symlink");
    }
    std::os::unix::fs::symlink("..initial", dir.join("..data")).expect("..data");
}

fn chown_tree(dir: &Path, group: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let _ = std::os::unix::fs::lchown(dir, None, Some(group));
    for entry in entries.flatten() {
        let path = entry.path();
        let _ = std::os::unix::fs::lchown(&path, None, Some(group));
        if path.is_dir() && !path.is_symlink() {
            chown_tree(&path, group);
        }
    }
}
