//! Dependencies of a test's own, for fault tests that stop them: a PostgreSQL 15 cluster in a
//! temporary directory and a `redis-server`, each on a free port, stopped and started again on
//! that same port, and stopped for good when dropped. The machine's shared PostgreSQL and Redis
//! are never touched.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// Where the PostgreSQL 15 binaries are (`TEST_POSTGRES_BIN` overrides).
fn postgres_bin(name: &str) -> PathBuf {
    let dir = std::env::var("TEST_POSTGRES_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_owned());
    Path::new(&dir).join(name)
}

/// Waits until `port` accepts connections (`up`) or refuses them (`!up`), for at most 30 s.
pub fn wait_port(port: u16, up: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() != up {
        assert!(Instant::now() < deadline, "{what} did not {} within 30 s", if up { "start" } else { "stop" });
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `command` as the `postgres` user when the test runs as root (initdb refuses root).
fn as_postgres(program: PathBuf) -> Command {
    let root = Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL cluster of the test's own, trusting local connections.
pub struct OwnPostgres {
    pub port: u16,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    data: PathBuf,
    _dir: tempfile::TempDir,
    running: bool,
}

impl OwnPostgres {
    /// Makes a cluster (a second or two of `initdb`, with `fsync` off) and starts it.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
        let out = as_postgres(postgres_bin("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb runs (PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin or TEST_POSTGRES_BIN)");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let mut own = Self { port, url, data, _dir: dir, running: false };
        own.start_again();
        own
    }

    /// Starts the (stopped) cluster on its port and waits until it accepts connections.
    pub fn start_again(&mut self) {
        let log = self.data.join("../postgres.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=100",
            self.port
        );
        let out = as_postgres(postgres_bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "-w", "-t", "30", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        wait_port(self.port, true, "PostgreSQL");
        self.running = true;
    }

    /// Stops the cluster (`fast`: open connections are closed, as in a restart or failover).
    pub fn stop(&mut self) {
        let out = as_postgres(postgres_bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .output()
            .expect("pg_ctl runs");
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
        wait_port(self.port, false, "PostgreSQL");
        self.running = false;
    }

    /// Runs `sql` through `psql` on database `db`; its output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(postgres_bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = as_postgres(postgres_bin("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// A `redis-server` of the test's own, without persistence: a restart loses every counter.
pub struct OwnRedis {
    pub port: u16,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = free_port();
        let mut own = Self { port, url: format!("redis://127.0.0.1:{port}"), child: None };
        own.start_again();
        own
    }

    /// Starts the (stopped) server on its port, empty, and waits until it accepts connections.
    pub fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test and .ci/run install it)");
        self.child = Some(child);
        wait_port(self.port, true, "Redis");
    }

    /// Kills the server (SIGKILL: what it held is gone) and waits until the port refuses.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_port(self.port, false, "Redis");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
