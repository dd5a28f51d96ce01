//! schemathesis (PyPI) against the live REST admin API and its own OpenAPI document: no 5xx for
//! any generated input, and every answer matches the document (status, content type, headers,
//! body schema); against SQLite and PostgreSQL.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::backend_tests;
use crate::support::{Backend, TestServer};

backend_tests!(the_admin_api_keeps_to_its_openapi_document);

/// Test cases per operation and phase: the whole run stays well under two minutes.
const MAX_EXAMPLES: &str = "30";
/// A fixed seed, so that a failure found once is found again.
const SEED: &str = "1";

/// Every check schemathesis has, but one that cannot hold by design.
///
/// `positive_data_acceptance` wants every request the document allows to succeed (or be a 401,
/// 403, 404 or 409). keygate's admin rules depend on its configuration and its data, which a
/// schema cannot carry: a scope must be one the configuration registers and the caller holds
/// (the reference: "Invalid scopes are rejected with a 400 error"), an organization or plan must
/// exist, an expiry must be within the configured maximum, `end_time` must follow `start_time`.
/// Those are 400s naming the field, as the reference's status table has them.
const CHECKS: [&str; 4] = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"];

async fn the_admin_api_keeps_to_its_openapi_document(backend: Backend) {
    let server = TestServer::start(backend).await;
    unique_operation_ids(&server).await;
    let protected = own_key_id(&server).await;
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    // The venv's own entry point, next to its python (schemathesis has no `python -m`).
    let program = Path::new(&python).with_file_name("schemathesis");
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/hooks.py");
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(&program);
    command
        .arg("run")
        .arg(server.url("/api/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {}", server.admin_key)])
        .args(CHECKS)
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1"])
        .args(["--generation-database", "none", "--request-timeout", "10", "--no-color"])
        // Only 127.0.0.1: no proxy on the way, nothing written into the repository.
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env("NO_PROXY", "*")
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("KEYGATE_PROTECTED_KEY_ID", &protected)
        .current_dir(scratch.path());
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.find("SUMMARY").map_or(stdout.as_ref(), |at| &stdout[at..]);
    println!("schemathesis, {backend:?}:\n{summary}");
    assert!(
        out.status.success(),
        "schemathesis found failures (run the tests with scripts/test, which installs it, or set \
         TEST_PYTHON to a python that has it):\n{stdout}\n{stderr}"
    );
    // The hooks kept the run's own credential working to the end: a run that had locked itself
    // out would pass on 401s alone.
    let still = reqwest::Client::new()
        .get(server.url("/api/admin/api-keys"))
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .expect("send");
    assert_eq!(still.status(), reqwest::StatusCode::OK, "the admin key survived the run");
    server.stop().await;
}

/// OpenAPI requires it, and schemathesis's links and reports name operations by it.
async fn unique_operation_ids(server: &TestServer) {
    let text = reqwest::get(server.url("/api/openapi.json")).await.expect("get").text().await.expect("text");
    let document: Value = serde_json::from_str(&text).expect("json");
    let mut ids: Vec<&str> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "every operationId is unique: {ids:?}");
}

/// The key id of the admin key the run uses, found in the list of keys.
async fn own_key_id(server: &TestServer) -> String {
    let response = reqwest::Client::new()
        .get(server.url("/api/admin/api-keys"))
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .expect("send");
    let listed: Value = serde_json::from_str(&response.text().await.expect("body")).expect("json");
    let keys = listed["api_keys"].as_array().expect("api_keys");
    let own = keys
        .iter()
        .find(|k| k["key_prefix"].as_str().is_some_and(|prefix| server.admin_key.starts_with(prefix)))
        .expect("the admin key is listed");
    own["key_id"].as_str().expect("key_id").to_owned()
}
