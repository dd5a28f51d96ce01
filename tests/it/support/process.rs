//! The built `keygate` binary as a child process whose log lines are collected.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// The binary cargo built for this test run.
pub const KEYGATE: &str = env!("CARGO_BIN_EXE_keygate");

/// Runs a one-shot `keygate` command in `dir`.
pub fn keygate(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(KEYGATE);
    command.args(args).current_dir(dir).env_remove("KEYGATE_DATABASE_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("keygate runs")
}

/// Runs `keygate bootstrap` in `dir` with `env`; the platform admin key it prints.
pub fn bootstrap(dir: &Path, env: &[(&str, &str)]) -> String {
    let out = keygate(dir, &["bootstrap"], env);
    assert!(out.status.success(), "bootstrap failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// A running `keygate serve`.
pub struct Served {
    pub child: Child,
    pub addr: String,
    /// The HTTP listener's address.
    pub http_addr: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `keygate serve` in `dir` on a free port, with JSON logs and `env`; waits until it
    /// says where it listens.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_under(dir, env, &[])
    }

    /// As [`Served::start`], with `keygate serve …` run by `wrapper` (its program and first
    /// arguments, e.g. `unshare -m -- sh -c SCRIPT sh`), which must end by `exec`ing it.
    pub fn start_under(dir: &Path, env: &[(&str, &str)], wrapper: &[&str]) -> Self {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(KEYGATE);
                command
            }
            None => Command::new(KEYGATE),
        };
        command
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("KEYGATE_DATABASE_URL")
            .env("KEYGATE_LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("keygate serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(json) = serde_json::from_str::<Value>(&line)
                    && json["message"] == "keygate listening"
                {
                    let addr = |name: &str| json[name].as_str().unwrap_or_default().to_owned();
                    let _ = tx.send((addr("grpc_addr"), addr("http_addr")));
                }
                sink.lock().expect("logs").push(line);
            }
        });
        let (addr, http_addr) = rx.recv_timeout(Duration::from_secs(60)).expect("keygate logs its listening address");
        Self { child, addr, http_addr, logs }
    }

    /// Sends SIGTERM and waits; whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().map(|status| status.success()).unwrap_or(false)
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
