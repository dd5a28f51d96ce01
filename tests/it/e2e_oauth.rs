//! End to end: the built binary as an OAuth2 authorization server for real client libraries. An
//! admin creates a client with grpcurl; Authlib gets tokens from `/oauth/token` and PyJWT
//! verifies them against `/.well-known/jwks.json` (tests/oauth/client_credentials.py); grpcurl
//! gets one over `IssueToken` and uses it with `Authorize`; the signing key is rotated with the
//! admin RPC and the `keygate rotate-signing-key` command.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::e2e_grpcurl::{authorize, call, grpcurl};
use crate::support::process::{Served, keygate};

/// Runs the Python client against `served`; what it saw.
fn python_client(served: &Served, client_id: &str, secret: &str, scope: &str) -> Value {
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth/client_credentials.py");
    let base = format!("http://{}", served.http_addr);
    let out = Command::new(&python)
        .arg(&script)
        .args([base.as_str(), client_id, secret, scope, "keygate"])
        .output()
        .unwrap_or_else(|e| panic!("{python} runs: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the OAuth2 client failed; run the tests with scripts/test (it installs Authlib and PyJWT) \
         or set TEST_PYTHON to a python that has them:\n{stderr}"
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

#[test]
fn real_oauth2_and_jwt_libraries_use_keygate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let bootstrapped = keygate(dir, &["bootstrap"], &[]);
    assert!(bootstrapped.status.success(), "{}", String::from_utf8_lossy(&bootstrapped.stderr));
    let admin_key = String::from_utf8(bootstrapped.stdout).expect("utf-8").trim().to_owned();
    let served = Served::start(dir, &[]);
    let addr = served.addr.as_str();

    let created = call(
        addr,
        &admin_key,
        "keygate.v1.AdminService/CreateApiClient",
        r#"{"name": "XSOAR Production", "scopes": ["investigations:read", "incidents:read"]}"#,
    );
    let client_id = created["clientId"].as_str().expect("clientId").to_owned();
    let secret = created["clientSecret"].as_str().expect("clientSecret").to_owned();
    assert_eq!(created["tokenEndpoint"], format!("http://{}/oauth/token", served.http_addr));

    let seen = python_client(&served, &client_id, &secret, "investigations:read");
    assert_eq!(seen["tokens"].as_array().expect("tokens").len(), 2, "Basic and form authentication");
    for token in seen["tokens"].as_array().expect("tokens") {
        let claims = &token["claims"];
        assert_eq!(claims["sub"], client_id.as_str(), "{token}");
        assert_eq!(claims["client_id"], client_id.as_str());
        assert_eq!(claims["scope"], "investigations:read");
        assert_eq!(claims["org"], "platform");
        assert_eq!(token["header"]["typ"], "at+jwt");
        assert_eq!(token["token"]["token_type"], "Bearer");
        assert_eq!(token["token"]["expires_in"], 1800);
    }
    assert_eq!(seen["tampered"], "rejected");
    assert_eq!(seen["wrong_secret"]["status"], 401);
    assert_eq!(seen["wrong_secret"]["body"]["error"], "invalid_client");
    assert!(seen["wrong_secret"]["www_authenticate"].as_str().is_some_and(|c| c.starts_with("Basic")));

    // The library's token authorizes over gRPC as a CLIENT principal.
    let from_python = seen["tokens"][0]["token"]["access_token"].as_str().expect("token").to_owned();
    let decision = authorize(addr, &from_python, "investigations:read");
    assert_eq!(decision["decision"]["allowed"], true, "{decision}");
    assert_eq!(decision["principal"]["type"], "CLIENT");
    assert_eq!(decision["principal"]["keyId"], client_id.as_str());

    // grpcurl over IssueToken.
    let body = serde_json::json!({
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "incidents:read",
    });
    let (ok, out, err) = grpcurl(addr, &["-d", &body.to_string()], &["keygate.v1.AuthService/IssueToken"]);
    assert!(ok, "IssueToken: {err}");
    let issued: Value = serde_json::from_str(&out).expect("json");
    let grpc_token = issued["accessToken"].as_str().expect("accessToken").to_owned();
    assert_eq!(authorize(addr, &grpc_token, "incidents:read")["decision"]["allowed"], true);
    assert_eq!(authorize(addr, &grpc_token, "investigations:read")["decision"]["reason"], "INSUFFICIENT_SCOPE");
    let wrong = body.to_string().replace(&secret, "kgcs_nope");
    let (ok, _, err) = grpcurl(addr, &["-d", &wrong], &["keygate.v1.AuthService/IssueToken"]);
    assert!(!ok && err.contains("Unauthenticated"), "{err}");

    // Rotation: the admin RPC takes effect at once; old tokens keep verifying, with both keys
    // published; the library picks the new key by kid.
    let rotated = call(addr, &admin_key, "keygate.v1.AdminService/RotateSigningKey", "{}");
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    let after = python_client(&served, &client_id, &secret, "incidents:read");
    assert_eq!(after["tokens"][0]["header"]["kid"], new_kid.as_str());
    assert_eq!(authorize(addr, &from_python, "investigations:read")["decision"]["allowed"], true);

    // The command-line rotation (for operators) prints the new key id.
    let cli = keygate(dir, &["rotate-signing-key"], &[]);
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli_kid = String::from_utf8(cli.stdout).expect("utf-8").trim().to_owned();
    assert!(!cli_kid.is_empty() && cli_kid != new_kid);

    // Nothing secret reached the logs.
    let logs = served.log_text();
    for secret in [secret.as_str(), admin_key.as_str(), from_python.as_str(), grpc_token.as_str()] {
        assert!(!logs.contains(secret), "a secret or token appeared in the logs");
    }
}
