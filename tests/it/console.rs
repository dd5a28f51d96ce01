//! End to end: the admin console in a real browser. The built `keygate` binary serves it on a
//! free port; Debian's Chromium, driven by playwright-core (`tests/console/console.mjs`), signs
//! in, manages keys and clients, reads the audit log, and checks every secret it reads from a
//! page with grpcurl and the token endpoint. Screenshots of the main pages are written to
//! `target/console-screenshots/` for a reviewer to look at.

use std::path::Path;
use std::process::Command;

use crate::e2e_grpcurl::call;
use crate::support::process::{Served, bootstrap};
use crate::support::{Backend, TestServer};

/// The scopes of an organization's own admin.
const ORG_ADMIN_SCOPES: &[&str] =
    &["admin:keys:read", "admin:keys:write", "admin:clients:read", "admin:audit:read", "incidents:read"];

fn run_browser(served: &Served, env: &[(&str, &str)]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists() && root.join("tests/console/node_modules/playwright-core").exists(),
        "the console's browser tests need Debian's chromium and playwright-core: run them with scripts/test, \
         which installs both"
    );
    let grpcurl = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned());
    let shots = root.join("target/console-screenshots");
    let mut command = Command::new("node");
    command
        .arg("console.mjs")
        .current_dir(root.join("tests/console"))
        .env("BASE_URL", format!("http://{}", served.http_addr))
        .env("GRPC_ADDR", &served.addr)
        .env("GRPCURL", grpcurl)
        .env("CHROMIUM", chromium)
        .env("SCREENSHOTS", &shots);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nkeygate's log:\n{}",
        served.log_text()
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
}

#[test]
fn the_console_works_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Uses are counted within a second, for the usage chart.
    let env = [("KEYGATE_KEYS_LAST_USED_FLUSH_SECS", "1")];
    let root = bootstrap(dir.path(), &env);
    let served = Served::start(dir.path(), &env);

    // A second organization, its admin and one of its keys, made with grpcurl as an operator would.
    let org = r#"{"slug": "acme", "name": "Acme", "plan": "pro"}"#;
    call(&served.addr, &root, "keygate.v1.AdminService/CreateOrganization", org);
    let admin = serde_json::json!({"name": "Acme admin", "scopes": ORG_ADMIN_SCOPES, "organization": "acme"});
    let admin = call(&served.addr, &root, "keygate.v1.AdminService/CreateApiKey", &admin.to_string());
    let org_admin = admin["apiKey"].as_str().expect("the admin's key").to_owned();
    let key = r#"{"name": "Acme ingest", "scopes": ["incidents:read"]}"#;
    call(&served.addr, &org_admin, "keygate.v1.AdminService/CreateApiKey", key);

    // A key of the platform's that expires within a week, for the list's flag.
    let short = r#"{"name": "Short-lived", "scopes": ["incidents:read"], "expires_in_days": 7}"#;
    call(&served.addr, &root, "keygate.v1.AdminService/CreateApiKey", short);

    run_browser(&served, &[("ADMIN_KEY", &root), ("ORG_ADMIN_KEY", &org_admin), ("ACME_KEY_NAME", "Acme ingest")]);

    // The same figures over gRPC: the organization admin's own key, used by every page it read.
    let key_id = admin["key"]["keyId"].as_str().expect("the admin's key id");
    let usage = call(
        &served.addr,
        &org_admin,
        "keygate.v1.AdminService/GetApiKeyUsage",
        &format!(r#"{{"key_id": "{key_id}"}}"#),
    );
    let days = usage["days"].as_array().expect("days");
    assert_eq!(days.len(), 14, "{usage}");
    let today = days[13]["requests"].as_str().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    assert!(today > 0, "the pages it read were counted: {usage}");

    // Nothing the browser was shown stayed anywhere it should not.
    let log = served.log_text();
    assert!(!log.contains(&root) && !log.contains(&org_admin), "no admin key in keygate's log");
}

#[tokio::test]
async fn the_console_can_be_turned_off() {
    let on = TestServer::start(Backend::Sqlite).await;
    let page = reqwest::get(on.url("/console/sign-in")).await.expect("get");
    assert_eq!(page.status(), reqwest::StatusCode::OK, "on by default");
    on.stop().await;
    let off = TestServer::start_with(Backend::Sqlite, &[("console.enabled", "false")]).await;
    for path in ["/console", "/console/sign-in", "/console/assets/console.css"] {
        let page = reqwest::get(off.url(path)).await.expect("get");
        assert_eq!(page.status(), reqwest::StatusCode::NOT_FOUND, "{path}");
    }
    let api = reqwest::get(off.url("/api/openapi.json")).await.expect("get");
    assert!(api.status().is_success(), "the APIs stay");
    off.stop().await;
}
