//! Replays every committed fuzz input, `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`,
//! through its target's run body, so that the normal test command keeps found crashes fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The inputs of `target` in `fuzz/<kind>/<target>/`, sorted; none when the directory is absent.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|entry| entry.expect("a directory entry").path()).collect();
    files.retain(|path| path.is_file());
    files.sort();
    files
}

/// Runs every input of `target`; fails naming each input that panicked.
fn replay(target: &str) {
    let (_, run) = keygate_fuzz::TARGETS.iter().find(|(name, _)| *name == target).expect("a known target");
    let corpus = inputs("corpus", target);
    let regressions = inputs("regressions", target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ holds no seed");
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a corpus file");
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    println!("{target}: {} corpus inputs, {} regressions replayed", corpus.len(), regressions.len());
    assert!(failed.is_empty(), "{target}: these inputs panic:\n{}", failed.join("\n"));
}

#[test]
fn every_target_has_a_replay() {
    let mut names: Vec<&str> = keygate_fuzz::TARGETS.iter().map(|(name, _)| *name).collect();
    names.sort();
    let expected = ["api_key", "config", "envoy_check", "jwt", "oauth_forms", "policy", "rest_bodies"];
    assert_eq!(names, expected, "a new target needs its replay test below");
}

#[test]
fn api_key() {
    replay("api_key");
}

#[test]
fn config() {
    replay("config");
}

#[test]
fn envoy_check() {
    replay("envoy_check");
}

#[test]
fn jwt() {
    replay("jwt");
}

#[test]
fn oauth_forms() {
    replay("oauth_forms");
}

#[test]
fn policy() {
    replay("policy");
}

#[test]
fn rest_bodies() {
    replay("rest_bodies");
}
