//! End to end: the built `keygate` binary as an admin CLI against a running server (keys,
//! clients, organizations, the audit log), its secrets alone on stdout, its exit codes; and its
//! offline commands (`config check`, `policy check`, completions, the man page).

use std::path::Path;
use std::process::{Command, Output};

use keygate::proto::keygate_v1 as pb;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::certs::Ca;
use crate::support::process::KEYGATE;
use crate::support::{Backend, TestServer};
use crate::tls::TlsServer;

backend_tests!(keys_live_their_life_cycle_through_the_cli, clients_orgs_and_audit_through_the_cli,);

/// The variables a developer's shell might export that would change what a run means.
const SCRUBBED: &[&str] = &[
    "KEYGATE_SERVER",
    "KEYGATE_CA_FILE",
    "KEYGATE_ADMIN_KEY",
    "KEYGATE_ADMIN_KEY_FILE",
    "KEYGATE_CONFIG",
    "KEYGATE_DATABASE_URL",
];

/// Runs `keygate ARGS` with `env` (and nothing of ours) in `dir`.
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(KEYGATE);
    command.args(args).current_dir(dir);
    for name in SCRUBBED {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("keygate runs")
}

/// A finished run's stdout, stderr and exit code.
struct Ran {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl Ran {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// The one line stdout holds: a secret printed alone.
    #[track_caller]
    fn only_line(&self) -> String {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "stdout is the secret alone: {:?}", self.stdout);
        assert_eq!(self.stdout, format!("{}\n", lines[0]));
        lines[0].to_owned()
    }

    /// The value after `label: ` on stderr.
    #[track_caller]
    fn stderr_field(&self, label: &str) -> String {
        let prefix = format!("{label}: ");
        let line = self.stderr.lines().find_map(|line| line.strip_prefix(&prefix));
        line.unwrap_or_else(|| panic!("stderr names {label}: {}", self.stderr)).to_owned()
    }
}

/// Runs the CLI against `server` as its platform admin, off the runtime's threads.
async fn admin(server: &TestServer, args: &[&str]) -> Ran {
    let env = [("KEYGATE_SERVER", format!("http://{}", server.addr)), ("KEYGATE_ADMIN_KEY", server.admin_key.clone())];
    run_with(args, &env).await
}

async fn run_with(args: &[&str], env: &[(&str, String)]) -> Ran {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = run_in(dir.path(), &args, &env);
        Ran {
            stdout: String::from_utf8(out.stdout).expect("utf-8"),
            stderr: String::from_utf8(out.stderr).expect("utf-8"),
            code: out.status.code(),
        }
    })
    .await
    .expect("the CLI ran")
}

fn ran(out: Output) -> Ran {
    Ran {
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
        code: out.status.code(),
    }
}

async fn keys_live_their_life_cycle_through_the_cli(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut seen = String::new();

    // KEY=$(keygate keys create …) captures the key alone; the rest is on stderr.
    let created = admin(
        &server,
        &[
            "keys",
            "create",
            "--name",
            "ci-runner",
            "--scope",
            "investigations:read",
            "--expires-in-days",
            "30",
            "--label",
            "owner=platform-team",
        ],
    )
    .await;
    created.ok();
    let key = created.only_line();
    assert!(key.starts_with("sk_"), "{key}");
    let key_id = created.stderr_field("key_id");
    assert!(key.contains(&key_id), "the key carries its id: {key} {key_id}");
    assert!(created.stderr.contains("shown once"), "{}", created.stderr);
    assert!(created.stderr_field("expires_at").starts_with("2026-04-26"), "{}", created.stderr);
    assert_eq!(server.reason(&key, &["investigations:read"]).await, pb::DecisionReason::Allowed);
    seen.push_str(&created.stderr);

    // Reads: JSON in snake_case, never a secret; a table for people.
    let got = admin(&server, &["keys", "get", &key_id, "--output", "json"]).await;
    let got_json = got.ok().json();
    assert_eq!(got_json["key_id"], key_id.as_str());
    assert_eq!(got_json["status"], "active");
    assert_eq!(got_json["scopes"], serde_json::json!(["investigations:read"]));
    assert_eq!(got_json["labels"], json!({"owner": "platform-team"}));
    let labelled =
        admin(&server, &["keys", "list", "--label", "owner=platform-team", "--status", "active", "--output", "json"])
            .await;
    assert_eq!(labelled.ok().json()["total"], 1);
    let soon = admin(&server, &["keys", "list", "--expiring-within-days", "31", "--output", "json"]).await;
    assert_eq!(soon.ok().json()["api_keys"][0]["key_id"], key_id.as_str(), "the 30-day key expires within 31");
    let bad_label = admin(&server, &["keys", "list", "--label", "novalue"]).await;
    assert_eq!(bad_label.code, Some(2), "a usage error: {}", bad_label.stderr);
    assert!(got_json["expires_at"].as_str().is_some_and(|at| at.starts_with("2026-04-26")), "{got_json}");
    let listed = admin(&server, &["keys", "list", "--output", "json"]).await;
    let listed_json = listed.ok().json();
    assert_eq!(listed_json["total"], 2, "the bootstrap key and the new one: {listed_json}");
    let ids: Vec<&str> =
        listed_json["api_keys"].as_array().expect("keys").iter().filter_map(|k| k["key_id"].as_str()).collect();
    assert!(ids.contains(&key_id.as_str()), "{ids:?}");
    let table = admin(&server, &["keys", "list", "--search", "ci-run"]).await;
    table.ok();
    assert!(table.stdout.starts_with("KEY_ID"), "{}", table.stdout);
    assert_eq!(table.stdout.lines().count(), 2, "a header and the one match: {}", table.stdout);
    assert!(table.stdout.contains(&key_id) && table.stderr.contains("1 in all"), "{}{}", table.stdout, table.stderr);
    for read in [&got, &listed, &table] {
        assert!(!read.stdout.contains(&key), "a read never shows the secret");
        seen.push_str(&read.stdout);
        seen.push_str(&read.stderr);
    }

    // Update, with scopes replaced and a limit set.
    let updated = admin(
        &server,
        &[
            "keys",
            "update",
            &key_id,
            "--name",
            "ci-runner-2",
            "--scope",
            "investigations:read",
            "--scope",
            "investigations:write",
            "--rate-limit-per-minute",
            "60",
            "--output",
            "json",
        ],
    )
    .await;
    let updated_json = updated.ok().json();
    assert_eq!(updated_json["name"], "ci-runner-2");
    assert_eq!(updated_json["scopes"].as_array().map(Vec::len), Some(2), "{updated_json}");
    assert_eq!(updated_json["limits"]["rate_limit_per_minute"], 60, "{updated_json}");
    assert_eq!(server.reason(&key, &["investigations:write"]).await, pb::DecisionReason::Allowed);

    // Rotate with no grace: the new key alone on stdout, the old one stops.
    let rotated = admin(&server, &["keys", "rotate", &key_id, "--grace-period-days", "0"]).await;
    rotated.ok();
    let new_key = rotated.only_line();
    assert_ne!(new_key, key);
    assert_eq!(rotated.stderr_field("key_id"), key_id);
    assert_eq!(server.reason(&new_key, &["investigations:read"]).await, pb::DecisionReason::Allowed);
    assert_ne!(server.reason(&key, &["investigations:read"]).await, pb::DecisionReason::Allowed);
    seen.push_str(&rotated.stderr);

    // Rotate as JSON: the whole answer, secret included.
    let rotated_json = admin(&server, &["keys", "rotate", &key_id, "--output", "json"]).await.ok().json();
    let newest = rotated_json["api_key"].as_str().expect("the new key").to_owned();
    assert!(rotated_json["previous_key_expires_at"].is_string(), "a 7-day grace by default: {rotated_json}");
    assert_eq!(server.reason(&newest, &["investigations:read"]).await, pb::DecisionReason::Allowed);

    // Usage: 14 days and the quota, as a table or JSON (today's counts trail by the flush).
    let usage = admin(&server, &["keys", "usage", &key_id, "--output", "json"]).await.ok().json();
    assert_eq!(usage["days"].as_array().map(Vec::len), Some(14), "{usage}");
    let table = admin(&server, &["keys", "usage", &key_id]).await;
    assert!(table.ok().stdout.contains("quota"), "{}", table.stdout);
    let missing = admin(&server, &["keys", "usage", "k_000000000000"]).await;
    assert_eq!(missing.code, Some(3), "not found: {}", missing.stderr);

    // Disable.
    let disabled = admin(&server, &["keys", "disable", &key_id, "--output", "json"]).await;
    assert_eq!(disabled.ok().json()["status"], "disabled");
    assert_ne!(server.reason(&newest, &["investigations:read"]).await, pb::DecisionReason::Allowed);

    // The server refuses: exit 3, the code and the field on stderr.
    let refused =
        admin(&server, &["keys", "create", "--name", "x", "--scope", "investigations:read", "--expires-in-days", "0"])
            .await;
    assert_eq!(refused.code, Some(3), "{}", refused.stderr);
    assert!(refused.stdout.is_empty());
    assert!(
        refused.stderr.starts_with("keygate: INVALID_ARGUMENT: ") && refused.stderr.contains("expires_in_days"),
        "{}",
        refused.stderr
    );
    let unknown = admin(&server, &["keys", "get", "k_nosuchkey000"]).await;
    assert_eq!(unknown.code, Some(3), "{}", unknown.stderr);
    assert!(
        unknown.stderr.starts_with("keygate: NOT_FOUND: ") || unknown.stderr.contains("key_id"),
        "{}",
        unknown.stderr
    );
    let no_scope = admin(&server, &["keys", "create", "--name", "x"]).await;
    assert_eq!(no_scope.code, Some(3), "{}", no_scope.stderr);
    assert!(no_scope.stderr.contains("scopes"), "{}", no_scope.stderr);
    let bogus = run_with(
        &["keys", "list"],
        &[("KEYGATE_SERVER", format!("http://{}", server.addr)), ("KEYGATE_ADMIN_KEY", "sk_live_bogus".to_owned())],
    )
    .await;
    assert_eq!(bogus.code, Some(3), "{}", bogus.stderr);
    assert!(bogus.stderr.starts_with("keygate: UNAUTHENTICATED: "), "{}", bogus.stderr);
    assert!(!bogus.stderr.contains("sk_live_bogus"), "the credential is never in an error: {}", bogus.stderr);
    for failed in [&refused, &unknown, &no_scope] {
        seen.push_str(&failed.stderr);
    }

    // The credential from a file, trimmed, and the server from the flag.
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("admin.key");
    std::fs::write(&key_file, format!("{}\n", server.admin_key)).expect("write the key file");
    let server_url = format!("http://{}", server.addr);
    let from_file = run_with(
        &["keys", "get", &key_id, "--server", &server_url, "--admin-key-file", key_file.to_str().expect("utf-8 path")],
        &[],
    )
    .await;
    from_file.ok();
    assert!(from_file.stdout.contains("disabled"), "{}", from_file.stdout);

    assert!(!seen.contains(&server.admin_key), "the admin credential is never printed");
    server.stop().await;
}

async fn clients_orgs_and_audit_through_the_cli(backend: Backend) {
    let server = TestServer::start(backend).await;
    let issue = |client_id: &str, secret: &str| pb::IssueTokenRequest {
        grant_type: "client_credentials".to_owned(),
        client_id: client_id.to_owned(),
        client_secret: secret.to_owned(),
        scope: String::new(),
    };

    // SECRET=$(keygate clients create …) captures the secret alone.
    let created =
        admin(&server, &["clients", "create", "--name", "XSOAR production", "--scope", "investigations:read"]).await;
    created.ok();
    let secret = created.only_line();
    let client_id = created.stderr_field("client_id");
    assert!(client_id.starts_with("xsoar-production-"), "{client_id}");
    assert!(created.stderr_field("token_endpoint").ends_with("/oauth/token"), "{}", created.stderr);
    server.auth().await.issue_token(issue(&client_id, &secret)).await.expect("the secret gets a token");

    // Regenerate: a new secret alone on stdout; the old one stops at once.
    let regenerated = admin(&server, &["clients", "regenerate-secret", &client_id]).await;
    regenerated.ok();
    let new_secret = regenerated.only_line();
    assert_ne!(new_secret, secret);
    assert_eq!(regenerated.stderr_field("tokens_revoked"), "true");
    server.auth().await.issue_token(issue(&client_id, &new_secret)).await.expect("the new secret gets a token");
    assert!(server.auth().await.issue_token(issue(&client_id, &secret)).await.is_err(), "the old secret stopped");

    // Reads never show a secret.
    let listed = admin(&server, &["clients", "list", "--output", "json"]).await;
    let listed_json = listed.ok().json();
    assert_eq!(listed_json["total"], 1, "{listed_json}");
    assert_eq!(listed_json["clients"][0]["client_id"], client_id.as_str());
    assert_eq!(listed_json["clients"][0]["status"], "active");
    let got = admin(&server, &["clients", "get", &client_id]).await;
    got.ok();
    assert!(got.stdout.contains(&client_id) && got.stdout.contains("investigations:read"), "{}", got.stdout);
    for read in [&listed, &got] {
        assert!(!read.stdout.contains(&secret) && !read.stdout.contains(&new_secret), "{}", read.stdout);
    }
    let update = ["clients", "update", &client_id, "--description", "nightly", "--rate-limit-per-minute", "30"];
    let updated = admin(&server, &[&update[..], &["--output", "json"]].concat()).await.ok().json();
    assert_eq!((&updated["description"], &updated["limits"]["rate_limit_per_minute"]), (&json!("nightly"), &json!(30)));
    let usage = admin(&server, &["clients", "usage", &client_id, "--output", "json"]).await.ok().json();
    assert_eq!(usage["days"].as_array().map(Vec::len), Some(14), "{usage}");
    let disabled = admin(&server, &["clients", "disable", &client_id, "--revoke-tokens", "--output", "json"]).await;
    let disabled_json = disabled.ok().json();
    assert_eq!(disabled_json["status"], "disabled");
    assert!(disabled_json["tokens_revoked_at"].is_string(), "{disabled_json}");

    // Organizations.
    let org = admin(&server, &["orgs", "create", "acme", "--name", "Acme Corp"]).await;
    org.ok();
    assert!(org.stdout.lines().any(|line| line.starts_with("slug") && line.ends_with("acme")), "{}", org.stdout);
    let orgs = admin(&server, &["orgs", "list", "--output", "json"]).await.ok().json();
    let slugs: Vec<&str> =
        orgs["organizations"].as_array().expect("orgs").iter().filter_map(|o| o["slug"].as_str()).collect();
    assert!(slugs.contains(&"platform") && slugs.contains(&"acme"), "{orgs}");
    assert_eq!(orgs["total"], 2);
    let acme = admin(&server, &["orgs", "get", "acme", "--output", "json"]).await.ok().json();
    assert_eq!(acme["name"], "Acme Corp");
    assert_eq!(acme["platform"], false);
    let moved = admin(&server, &["orgs", "update", "acme", "--plan", "pro", "--output", "json"]).await.ok().json();
    assert_eq!((&moved["plan"], &moved["max_active_keys"]), (&json!("pro"), &json!(50)), "{moved}");
    let unknown = admin(&server, &["orgs", "update", "acme", "--plan", "gold"]).await;
    assert_eq!(unknown.code, Some(3), "{}", unknown.stderr);
    assert!(unknown.stderr.contains("plan"), "the field is named: {}", unknown.stderr);
    let taken = admin(&server, &["orgs", "create", "acme", "--name", "Again"]).await;
    assert_eq!(taken.code, Some(3), "{}", taken.stderr);
    assert!(taken.stderr.starts_with("keygate: ALREADY_EXISTS: "), "{}", taken.stderr);

    // The audit log saw it all.
    let audit = admin(&server, &["audit", "list", "--output", "json", "--limit", "100"]).await.ok().json();
    let actions: Vec<&str> =
        audit["events"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["api_client.create", "api_client.regenerate_secret", "api_client.disable", "organization.create"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let audit_table = admin(&server, &["audit", "list", "--target", &client_id]).await;
    audit_table.ok();
    assert!(audit_table.stdout.starts_with("ID"), "{}", audit_table.stdout);
    assert!(audit_table.stdout.contains("api_client.regenerate_secret"), "{}", audit_table.stdout);
    assert!(!audit_table.stdout.contains("organization.create"), "filtered by target: {}", audit_table.stdout);
    let bad_time = admin(&server, &["audit", "list", "--since", "yesterday"]).await;
    assert_eq!(bad_time.code, Some(2), "a usage error: {}", bad_time.stderr);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_servers_are_trusted_through_the_ca_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("private");
    let (cert, key) = ca.sign(&["127.0.0.1"]);
    std::fs::write(dir.path().join("cert.pem"), cert).expect("write");
    std::fs::write(dir.path().join("key.pem"), key).expect("write");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("write");
    let server = TlsServer::start(dir.path(), false).await;
    let ca_file = ca_file.to_str().expect("utf-8 path").to_owned();
    let env = |url: String| [("KEYGATE_SERVER", url), ("KEYGATE_ADMIN_KEY", server.admin_key.clone())];
    let https = format!("https://{}", server.grpc);

    let mut trusted = run_with(&["orgs", "list", "--ca-file", &ca_file], &env(https.clone())).await;
    for _ in 0..50 {
        if trusted.code == Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        trusted = run_with(&["orgs", "list", "--ca-file", &ca_file], &env(https.clone())).await;
    }
    trusted.ok();
    assert!(trusted.stdout.contains("platform"), "{}", trusted.stdout);
    let mut with_ca = env(https.clone()).to_vec();
    with_ca.push(("KEYGATE_CA_FILE", ca_file.clone()));
    run_with(&["orgs", "list"], &with_ca).await.ok();

    // The system's roots do not know the private CA; a plain connection is no TLS one.
    let untrusted = run_with(&["orgs", "list"], &env(https.clone())).await;
    assert_eq!(untrusted.code, Some(4), "{}", untrusted.stderr);
    assert!(untrusted.stderr.starts_with("keygate: UNAVAILABLE: "), "{}", untrusted.stderr);
    let plain = run_with(&["orgs", "list"], &env(format!("http://{}", server.grpc))).await;
    assert_eq!(plain.code, Some(4), "{}", plain.stderr);
    let not_tls = run_with(&["orgs", "list", "--ca-file", &ca_file], &env(format!("http://{}", server.grpc))).await;
    assert_eq!(not_tls.code, Some(1), "--ca-file needs https: {}", not_tls.stderr);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_exits_4_and_no_credential_says_where_to_put_one() {
    // A port nobody listens on.
    let port = crate::support::free_port();
    let nowhere = format!("http://127.0.0.1:{port}");
    let down =
        run_with(&["keys", "list"], &[("KEYGATE_SERVER", nowhere.clone()), ("KEYGATE_ADMIN_KEY", "sk_x".into())]).await;
    assert_eq!(down.code, Some(4), "{}", down.stderr);
    assert!(down.stderr.starts_with("keygate: UNAVAILABLE: cannot connect to "), "{}", down.stderr);
    assert!(!down.stderr.contains("sk_x"));

    let anonymous = run_with(&["keys", "list"], &[("KEYGATE_SERVER", nowhere.clone())]).await;
    assert_eq!(anonymous.code, Some(1), "{}", anonymous.stderr);
    assert!(
        anonymous.stderr.contains("no admin credential") && anonymous.stderr.contains("KEYGATE_ADMIN_KEY"),
        "{}",
        anonymous.stderr
    );
    let missing_file = run_with(&["clients", "list", "--admin-key-file", "/nonexistent/key"], &[]).await;
    assert_eq!(missing_file.code, Some(1), "{}", missing_file.stderr);
    assert!(missing_file.stderr.contains("/nonexistent/key"), "{}", missing_file.stderr);

    let usage = run_with(&["keys", "create", "--scope", "a:read"], &[("KEYGATE_ADMIN_KEY", "sk_x".into())]).await;
    assert_eq!(usage.code, Some(2), "clap's usage error: {}", usage.stderr);
    let bad_url = run_with(&["orgs", "list", "--server", "ftp://x"], &[("KEYGATE_ADMIN_KEY", "sk_x".into())]).await;
    assert_eq!(bad_url.code, Some(1), "{}", bad_url.stderr);
}

#[test]
fn config_check_prints_every_problem_and_policy_check_every_bad_route() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The CLI's own variables are not settings: an admin's shell may export them.
    let clean = ran(run_in(dir.path(), &["config", "check"], &[("KEYGATE_ADMIN_KEY", "sk_x")]));
    clean.ok();
    assert_eq!(clean.stdout, "config ok\n");
    assert!(!dir.path().join("keygate.db").exists(), "config check opens no database");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "grpc_addr = \"nowhere\"\nno_such_setting = 1\n[keys]\ndefault_expires_in_days = \"soon\"\n")
        .expect("write");
    let checked = ran(run_in(
        dir.path(),
        &["config", "check", "--config", bad.to_str().expect("utf-8")],
        &[("KEYGATE_NO_SUCH_VARIABLE", "1")],
    ));
    assert_eq!(checked.code, Some(1), "{}", checked.stderr);
    assert!(checked.stdout.is_empty());
    for problem in ["grpc_addr", "no_such_setting", "keys.default_expires_in_days", "KEYGATE_NO_SUCH_VARIABLE"] {
        assert!(checked.stderr.contains(problem), "{problem} in {}", checked.stderr);
    }

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/envoy/policy.toml");
    let good = ran(run_in(dir.path(), &["policy", "check", shipped.to_str().expect("utf-8")], &[]));
    good.ok();
    assert!(good.stdout.starts_with("policy ok: ") && good.stdout.ends_with(" routes\n"), "{}", good.stdout);

    let policy = dir.path().join("policy.toml");
    let text = "[[routes]]\nname = \"a\"\nmethods = [\"GET\"]\npath = \"/a\"\nscopes = [\"no:such:scope\"]\n\n\
                [[routes]]\nname = \"b\"\npath = \"/b\"\nspeed = 3\n";
    std::fs::write(&policy, text).expect("write");
    let refused = ran(run_in(dir.path(), &["policy", "check", policy.to_str().expect("utf-8")], &[]));
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("routes[0]") && refused.stderr.contains("routes[1]"), "{}", refused.stderr);
    let absent = ran(run_in(dir.path(), &["policy", "check", "/nonexistent/policy.toml"], &[]));
    assert_eq!(absent.code, Some(1), "{}", absent.stderr);
}

#[test]
fn completions_the_man_page_and_help_with_examples() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bash = ran(run_in(dir.path(), &["completions", "bash"], &[]));
    bash.ok();
    assert!(bash.stdout.contains("keygate") && bash.stdout.contains("regenerate-secret"), "{}", bash.stdout);
    let zsh = ran(run_in(dir.path(), &["completions", "zsh"], &[]));
    assert!(zsh.ok().stdout.contains("#compdef keygate"));
    let man = ran(run_in(dir.path(), &["man"], &[]));
    man.ok();
    assert!(man.stdout.contains(".TH keygate") && man.stdout.contains("keys"), "{}", man.stdout);
    for group in ["keys", "clients"] {
        let help = ran(run_in(dir.path(), &[group, "--help"], &[]));
        help.ok();
        assert!(help.stdout.contains("Examples:") && help.stdout.contains("$(keygate"), "{}", help.stdout);
        assert!(help.stdout.contains("KEYGATE_SERVER"), "{}", help.stdout);
    }
    let top = ran(run_in(dir.path(), &["--help"], &[]));
    assert!(top.ok().stdout.contains("Exit codes"), "{}", top.stdout);
}
