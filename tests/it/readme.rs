//! The README's grpcurl walkthrough, run as written (with the binary this test run built in place
//! of its `cargo build` lines), so that it keeps working when pasted.

use std::path::Path;
use std::process::Command;

const MARKER: &str = "<!-- walkthrough: run as written by tests/it/readme.rs -->";

fn walkthrough() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let after = readme.split_once(MARKER).expect("README has the walkthrough marker").1;
    let block = after.split_once("```bash\n").expect("a bash block follows the marker").1;
    let script = block.split_once("\n```").expect("the block ends").0;
    assert!(script.starts_with("cargo build --release --quiet\nexport PATH=\"$PWD/target/release:$PATH\"\n"));
    // This run's binary stands in for the release build.
    script.lines().skip(2).collect::<Vec<_>>().join("\n")
}

#[test]
fn readme_walkthrough_works_when_pasted() {
    let script = walkthrough();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_keygate")).parent().expect("bin dir").to_owned();
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (port, http_port) = (free_port(), free_port());
    let mut path = bin_dir.display().to_string();
    if let Ok(grpcurl) = std::env::var("GRPCURL")
        && let Some(dir) = Path::new(&grpcurl).parent()
    {
        path = format!("{path}:{}", dir.display());
    }
    path = format!("{path}:{}", std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("PATH", path)
        .env("KEYGATE_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("KEYGATE_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env_remove("KEYGATE_DATABASE_URL")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the walkthrough failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("keygate.v1.AdminService"), "{stdout}");
    assert_eq!(stdout.matches("\"allowed\": true").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("INSUFFICIENT_SCOPE").count(), 2, "{stdout}");
    assert!(stdout.contains("\"type\": \"CLIENT\""), "{stdout}");
    assert!(stdout.contains("\"kty\":\"RSA\""), "{stdout}");
    assert_eq!(stdout.matches("EXPIRED_API_KEY").count(), 2, "{stdout}");
    assert!(stdout.contains("\"status\": \"DISABLED\""), "{stdout}");
}
