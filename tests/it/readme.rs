//! The README's quick-start walkthroughs (CLI, curl against the REST API, grpcurl), each run as
//! written (with the binary this test run built in place of its `cargo build` lines), so that
//! they keep working when pasted.

use std::path::Path;
use std::process::Command;

/// The walkthrough named `name`'s script, its build lines left out.
fn walkthrough(name: &str) -> String {
    let marker = format!("<!-- walkthrough {name}: run as written by tests/it/readme.rs -->");
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let after = readme.split_once(&marker).expect("README has the walkthrough marker").1;
    let block = after.split_once("```bash\n").expect("a bash block follows the marker").1;
    let script = block.split_once("\n```").expect("the block ends").0;
    assert!(script.starts_with("cargo build --release --quiet\nexport PATH=\"$PWD/target/release:$PATH\"\n"));
    // This run's binary stands in for the release build.
    script.lines().skip(2).collect::<Vec<_>>().join("\n")
}

/// Runs walkthrough `name` in bash on free ports; its stdout.
fn run(name: &str) -> String {
    let script = walkthrough(name);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_keygate")).parent().expect("bin dir").to_owned();
    let free_port = crate::support::free_port;
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
        .env_remove("KEYGATE_SERVER")
        .env_remove("KEYGATE_ADMIN_KEY")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the {name} walkthrough failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn the_cli_walkthrough_works_when_pasted() {
    let stdout = run("cli");
    assert!(stdout.contains("SOAR Integration"), "the list shows the key: {stdout}");
    assert!(stdout.contains("\"max_quota\""), "the key read its quota: {stdout}");
    assert!(stdout.contains("api_key.rotate") && stdout.contains("api_client.create"), "the audit log: {stdout}");
}

#[test]
fn the_rest_walkthrough_works_when_pasted() {
    let stdout = run("rest");
    assert!(stdout.contains("\"total\":1"), "the search finds the key: {stdout}");
    assert!(stdout.contains("\"previous_key_expires_at\""), "the rotation answers: {stdout}");
    assert!(stdout.lines().any(|line| line == "204"), "DELETE is 204: {stdout}");
    assert!(stdout.contains("\"status\":\"disabled\""), "{stdout}");
    assert!(stdout.contains("\"code\":\"invalid_api_key\""), "{stdout}");
    assert!(stdout.contains("\"unlimited\":true"), "the key read its quota over Basic: {stdout}");
}

#[test]
fn the_grpcurl_walkthrough_works_when_pasted() {
    let stdout = run("grpcurl");
    assert!(stdout.contains("keygate.v1.AdminService"), "{stdout}");
    assert_eq!(stdout.matches("\"allowed\": true").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("INSUFFICIENT_SCOPE").count(), 2, "{stdout}");
    assert!(stdout.contains("\"type\": \"CLIENT\""), "{stdout}");
    assert!(stdout.contains("\"kty\":\"RSA\""), "{stdout}");
    assert_eq!(stdout.matches("EXPIRED_API_KEY").count(), 2, "{stdout}");
    assert!(stdout.contains("\"status\": \"DISABLED\""), "{stdout}");
}
