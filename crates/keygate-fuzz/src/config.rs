//! Target `config`: the configuration loader, [`Config::load`], over a TOML file and the
//! environment.
//!
//! Input: the file's text, then NUL-separated environment entries `NAME=VALUE` (the environment
//! holds no NUL either). What must hold: loading answers, a configuration or the list of its
//! problems, and never panics; loading the same sources again gives the same answer.

use std::path::PathBuf;

use keygate::config::{Config, Sources};

use crate::{fields, text};

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut parts = fields(data);
    let file = text(parts.next().unwrap_or_default()).into_owned();
    let env: Vec<(String, String)> = parts
        .map(|entry| {
            let entry = text(entry);
            let (name, value) = entry.split_once('=').unwrap_or((&entry, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let sources = Sources { file: Some((PathBuf::from("keygate.toml"), file)), env, flags: Vec::new() };
    match (Config::load(&sources), Config::load(&sources)) {
        (Ok(first), Ok(second)) => assert_eq!(first, second, "loading is deterministic"),
        (Err(mut first), Err(mut second)) => {
            // Problems may come in the order of a hash map.
            first.0.sort();
            second.0.sort();
            assert_eq!(first, second, "loading is deterministic");
        }
        (first, second) => assert!(first.is_ok() == second.is_ok(), "loading is deterministic: {first:?} {second:?}"),
    }
}
