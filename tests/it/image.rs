//! The container image as `docker run` would run it, without a container engine: the runtime
//! stage's ENV, WORKDIR, USER, ENTRYPOINT and CMD read from the Dockerfile, the built binary where
//! the image puts it, `-e` overrides applied over ENV, and the HEALTHCHECK command run as Docker
//! runs it (directly, no shell, with the container's environment).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::kubelet::Image;
use crate::support::process::KEYGATE;

/// A container's root: the binary at the image's path, a working directory owned by the image's
/// user, and the environment `docker run -e` gives.
struct Container {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
    user: Option<(u32, u32)>,
}

impl Container {
    fn new(image: &Image, overrides: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let bin = dir.path().join("usr/local/bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        std::fs::copy(KEYGATE, bin.join("keygate")).expect("copy the binary");
        std::fs::set_permissions(bin.join("keygate"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let workdir = dir.path().join(image.workdir.trim_start_matches('/'));
        std::fs::create_dir_all(&workdir).expect("workdir");
        // The image's user exists only where we may switch to it (root, as CI runs).
        let user = image.user.filter(|_| rustix::process::geteuid().is_root());
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&workdir, Some(uid), Some(gid)).expect("chown workdir");
        }
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        // distroless's PATH, rooted in the container directory.
        let path = ["/usr/local/bin", "/usr/bin", "/bin"].map(|p| format!("{}{p}", dir.path().display()));
        env.insert("PATH".into(), path.join(":"));
        env.extend(image.env.iter().cloned());
        env.extend(overrides.iter().map(|(name, value)| ((*name).to_owned(), value.clone())));
        Self { dir, env, user }
    }

    fn workdir(&self, image: &Image) -> PathBuf {
        self.dir.path().join(image.workdir.trim_start_matches('/'))
    }

    /// A process of the container: `argv` with the container's environment, user and directory;
    /// the first word resolved on the container's PATH (as the runtime does).
    fn command(&self, image: &Image, argv: &[String]) -> Command {
        let program = argv[0].strip_prefix('/').map_or_else(
            || self.dir.path().join("usr/local/bin").join(&argv[0]),
            |absolute| self.dir.path().join(absolute),
        );
        assert!(program.exists(), "{} is not where the image puts it", argv[0]);
        let mut command = match self.user {
            Some((uid, gid)) => {
                let mut setpriv = Command::new("/usr/bin/setpriv");
                setpriv.args([
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--clear-groups".into(),
                    "--".into(),
                ]);
                setpriv.arg(&program);
                setpriv
            }
            None => Command::new(&program),
        };
        command.args(&argv[1..]).env_clear().envs(&self.env).current_dir(self.workdir(image));
        command
    }

    fn run(&self, image: &Image) -> Child {
        let argv: Vec<String> = image.entrypoint.iter().chain(&image.cmd).cloned().collect();
        self.command(image, &argv).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("the container starts")
    }

    fn healthcheck(&self, image: &Image, extra: &[&str]) -> Output {
        let mut argv = image.healthcheck.clone();
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        self.command(image, &argv).output().expect("the health check runs")
    }
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

#[test]
fn the_image_runs_as_docker_runs_it_and_its_healthcheck_tells_the_truth() {
    let image = Image::from_dockerfile();
    assert_eq!(image.entrypoint, ["keygate"]);
    assert_eq!(image.cmd, ["serve"], "the addresses come from ENV, so `docker run -e` can change them");
    let env: BTreeMap<_, _> = image.env.iter().cloned().collect();
    assert_eq!(env.get("KEYGATE_GRPC_ADDR").map(String::as_str), Some("0.0.0.0:50051"));
    assert_eq!(env.get("KEYGATE_HTTP_ADDR").map(String::as_str), Some("0.0.0.0:8080"));

    // `docker run -e KEYGATE_GRPC_ADDR=... -e KEYGATE_HTTP_ADDR=... keygate` (free ports here).
    let (grpc, http) = (free_addr(), free_addr());
    let container = Container::new(
        &image,
        &[
            ("KEYGATE_GRPC_ADDR", grpc.clone()),
            ("KEYGATE_HTTP_ADDR", http.clone()),
            ("KEYGATE_LOG_FORMAT", "json".into()),
        ],
    );
    let mut child = container.run(&image);
    // Docker's start period: failures before the first success do not count.
    let deadline = Instant::now() + Duration::from_secs(60);
    let healthy = loop {
        let out = container.healthcheck(&image, &[]);
        if out.status.success() {
            break out;
        }
        assert!(child.try_wait().expect("wait").is_none(), "keygate exited: {:?}", child.wait_with_output());
        assert!(Instant::now() < deadline, "never healthy: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(String::from_utf8_lossy(&healthy.stdout).trim(), "SERVING");
    // The -e addresses were obeyed: the health check found the server there, and so does HTTP.
    let reply = crate::support::http::request(http.parse().expect("addr"), "GET", "/.well-known/jwks.json", &[]);
    assert_eq!(reply.status, 200);
    // The embedded default wrote its database in WORKDIR, as the image's user, readable by that
    // user alone (it holds hashes, signing keys and the audit log), and so are SQLite's own files.
    for name in ["keygate.db", "keygate.db-wal", "keygate.db-shm"] {
        let metadata =
            std::fs::metadata(container.workdir(&image).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{name} is its owner's alone");
    }

    let ready = container.healthcheck(&image, &["--service", "keygate.v1.AuthService"]);
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));
    let unknown = container.healthcheck(&image, &["--service", "no.such.Service"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no.such.Service"));

    // `docker stop`: SIGTERM, exit 0; the health check then fails.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
    let gone = container.healthcheck(&image, &["--timeout-ms", "500"]);
    assert_eq!(gone.status.code(), Some(1), "a stopped server is not healthy");
    assert!(String::from_utf8_lossy(&gone.stderr).contains(&grpc), "{}", String::from_utf8_lossy(&gone.stderr));
}
