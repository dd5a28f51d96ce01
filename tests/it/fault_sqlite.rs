//! SQLite's file on a disk that fills up, and on a read-only mount: the built binary in a mount
//! namespace of its own (`unshare -m`, as `support/kubelet.rs` runs pods; needs root, as CI
//! has), its database on a small tmpfs there that the test fills through `/proc/PID/root`, or
//! on a read-only bind mount. Writes fail with a clear error, decisions go on from what is
//! stored, the file stays sound, and writes work again once there is room, with nothing
//! acknowledged lost.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keygate::proto::keygate_v1 as pb;
use pb::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

use crate::support::as_admin;
use crate::support::load::{self, Outcome};
use crate::support::process::{KEYGATE, Served, bootstrap};

const SCOPE: &str = "graph:read";

fn env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KEYGATE_DATABASE_URL", url.to_owned()),
        ("KEYGATE_HASHING_MEMORY_KIB", "1024".to_owned()),
        ("KEYGATE_HASHING_ITERATIONS", "1".to_owned()),
        ("KEYGATE_KEYS_LAST_USED_FLUSH_SECS", "1".to_owned()),
        ("KEYGATE_DATABASE_TIMEOUT_SECS", "2".to_owned()),
    ]
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn channel(served: &Served) -> Channel {
    Channel::from_shared(format!("http://{}", served.addr)).expect("uri").connect().await.expect("connect")
}

async fn create(
    admin: &mut AdminServiceClient<Channel>,
    admin_key: &str,
    name: &str,
) -> Result<(String, String), tonic::Status> {
    let request = pb::CreateApiKeyRequest { name: name.into(), scopes: vec![SCOPE.into()], ..Default::default() };
    let created = admin.create_api_key(as_admin(request, admin_key)).await?.into_inner();
    Ok((created.api_key, created.key.expect("view").key_id))
}

/// Fills the filesystem holding `dir` with `filler` until it is full; the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // Page-granular leftovers too.
    while let Ok(n) = file.write(&chunk[..512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = file.sync_all();
    written
}

/// SQLite's `PRAGMA integrity_check` of the file, through Python's sqlite3 (the file is reached
/// through `/proc/PID/root`, where sqlx's URL handling does not open it).
fn integrity(path: &Path) -> String {
    let script =
        "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])";
    let out = std::process::Command::new("python3").args(["-c", script]).arg(path).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `keygate serve` with its SQLite file on a 4 MiB tmpfs that only it sees (and the test,
/// through `/proc/PID/root`): the server, its admin key, the tmpfs's path from outside, and the
/// directory that must outlive them.
fn on_a_small_disk() -> (Served, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = dir.path().join("seed");
    let disk = dir.path().join("disk");
    std::fs::create_dir_all(&seed).expect("seed dir");
    std::fs::create_dir_all(&disk).expect("mount point");
    let seed_env = env(&format!("sqlite://{}/keygate.db?mode=rwc", seed.display()));
    let admin_key = bootstrap(dir.path(), &borrowed(&seed_env));
    let disk_env = env(&format!("sqlite://{}/keygate.db?mode=rwc", disk.display()));
    let script = r#"set -e; mount -t tmpfs -o size=4m,mode=0700 keygate-disk "$1"; cp "$2"/keygate.db* "$1"/; shift 2; exec "$@""#;
    let (disk_text, seed_text) = (disk.display().to_string(), seed.display().to_string());
    let wrapper = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "sh", &disk_text, &seed_text];
    let served = Served::start_under(dir.path(), &borrowed(&disk_env), &wrapper);
    let inside = PathBuf::from(format!("/proc/{}/root{}", served.child.id(), disk.display()));
    assert!(inside.join("keygate.db").exists(), "{}", served.log_text());
    (served, admin_key, inside, dir)
}

/// Creates `name` until it is acknowledged (up to 10 s); the key and its id.
async fn create_until_acknowledged(
    admin: &mut AdminServiceClient<Channel>,
    admin_key: &str,
    name: &str,
) -> (String, String) {
    let started = Instant::now();
    loop {
        match create(admin, admin_key, name).await {
            Ok(made) => return made,
            Err(status) => {
                assert!(started.elapsed() < Duration::from_secs(10), "writes did not recover: {status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_clearly_and_recovers_without_a_restart() {
    let (served, admin_key, inside, _dir) = on_a_small_disk();
    let mut admin = AdminServiceClient::new(channel(&served).await);
    let mut auth = pb::auth_service_client::AuthServiceClient::new(channel(&served).await);
    let (cached, cached_id) = create(&mut admin, &admin_key, "cached").await.expect("create");
    let (cold, _) = create(&mut admin, &admin_key, "cold").await.expect("create");
    assert_eq!(load::call(&mut auth, &cached, SCOPE).await, Outcome::Allowed);

    let filled = fill(&inside.join("filler"));
    // Writes until one fails: SQLite reuses its write-ahead log's pages, so the first few may
    // still find room.
    let mut made = Vec::new();
    let mut failure = None;
    for i in 0..500 {
        match create(&mut admin, &admin_key, &format!("while-full-{i}")).await {
            Ok((_, id)) => made.push(id),
            Err(status) => {
                failure = Some((i, status));
                break;
            }
        }
    }
    let (failed_at, status) = failure.expect("a write fails on a full disk");
    println!(
        "disk full: filled {filled} bytes; {} key(s) still fit, then {:?} {:?}",
        made.len(),
        status.code(),
        status.message()
    );
    assert_ne!(status.code(), tonic::Code::Ok);
    assert!(
        matches!(status.code(), tonic::Code::Unavailable | tonic::Code::ResourceExhausted),
        "a full disk is the operator's to fix, not a client mistake or a bug: {status:?}"
    );
    // A disable on the full disk either lands or fails as a whole.
    let disable = pb::DisableApiKeyRequest { key_id: cached_id.clone() };
    let disabled = admin.disable_api_key(as_admin(disable, &admin_key)).await;
    let expected = if disabled.is_ok() { Outcome::Denied(pb::DecisionReason::ExpiredApiKey) } else { Outcome::Allowed };
    // Decisions go on from what is stored: the cached key as the disable left it, the
    // never-used one read from the file.
    assert_eq!(load::call(&mut auth, &cached, SCOPE).await, expected, "disable answered {disabled:?}");
    assert_eq!(load::call(&mut auth, &cold, SCOPE).await, Outcome::Allowed, "reads work on a full disk");
    println!(
        "disk full: a disable {}; decisions: cached key {expected}, uncached key allowed",
        if disabled.is_ok() { "landed" } else { "failed" }
    );

    // Room again: writes work, without a restart.
    std::fs::remove_file(inside.join("filler")).expect("free the disk");
    let freed = Instant::now();
    create_until_acknowledged(&mut admin, &admin_key, &format!("while-full-{failed_at}")).await;
    let recovered = freed.elapsed();
    let verdict = integrity(&inside.join("keygate.db"));
    println!("disk full: writes back {recovered:?} after the disk was freed; integrity_check: {verdict}");
    assert_eq!(verdict, "ok");
    assert!(!served.log_text().contains("panicked"), "{}", served.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_refused_at_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let env = env(&format!("sqlite://{}/keygate.db?mode=rwc", data.display()));
    let admin_key = bootstrap(dir.path(), &borrowed(&env));
    assert!(!admin_key.is_empty());
    let before = std::fs::read(data.join("keygate.db")).expect("read");
    // `data` read-only for this process alone (root ignores file modes, so chmod would not do).
    let script = r#"set -e; mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; shift; exec "$@""#;
    let data_text = data.display().to_string();
    let log = dir.path().join("serve.log");
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-m", "--propagation", "private", "--", "sh", "-c", script, "sh", &data_text, KEYGATE])
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("KEYGATE_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    for (name, value) in &env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("unshare runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let last = text.lines().last().unwrap_or_default().to_owned();
    println!("read-only database: after {:?}, {status:?}: {last}", started.elapsed());
    let status = status.unwrap_or_else(|| panic!("keygate served on a read-only database:\n{text}"));
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("read-only") || text.contains("readonly") || text.contains("Read-only"),
        "the error says the database is read-only:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert_eq!(std::fs::read(data.join("keygate.db")).expect("read"), before, "the file is untouched");
}

/// A creation acknowledged once the disk has room again must be there. It was not: after a
/// write failed with SQLITE_FULL, a pool connection could go back to the pool still inside a
/// transaction, and the next CreateApiKey on it ran as a savepoint inside that transaction:
/// acknowledged (the caller got a key), never committed, refused as INVALID_API_KEY. The pool
/// now discards such a connection before handing it out. Five rounds of fill, fail and free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_acknowledged_after_a_full_disk_is_not_lost() {
    let (served, admin_key, inside, _dir) = on_a_small_disk();
    let mut admin = AdminServiceClient::new(channel(&served).await);
    let mut auth = pb::auth_service_client::AuthServiceClient::new(channel(&served).await);
    for round in 0..5 {
        fill(&inside.join("filler"));
        for i in 0..500 {
            if create(&mut admin, &admin_key, &format!("round-{round}-{i}")).await.is_err() {
                break;
            }
        }
        std::fs::remove_file(inside.join("filler")).expect("free the disk");
        let (key, _) = create_until_acknowledged(&mut admin, &admin_key, &format!("after-{round}")).await;
        let outcome = load::call(&mut auth, &key, SCOPE).await;
        assert_eq!(outcome, Outcome::Allowed, "round {round}: an acknowledged key is {outcome}");
    }
}
