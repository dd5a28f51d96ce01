//! The run bodies of keygate's fuzz targets: one plain function per target that takes any bytes,
//! feeds them to the public function real input reaches, and asserts what must hold. The cargo-fuzz
//! project in `fuzz/` calls them from libFuzzer; `tests/replay.rs` replays the committed corpora
//! and regressions through them in the normal test command, so that a found crash stays fixed.
//!
//! A run body never panics on any input except where it asserts a property on purpose.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api_key;
pub mod config;
pub mod envoy_check;
pub mod jwt;
pub mod oauth_forms;
pub mod policy;
pub mod rest_bodies;

use std::borrow::Cow;

/// A target's run body.
pub type RunBody = fn(&[u8]);

/// Every target: its name (the directory of its corpus) and its run body.
pub const TARGETS: &[(&str, RunBody)] = &[
    ("api_key", api_key::run),
    ("config", config::run),
    ("envoy_check", envoy_check::run),
    ("jwt", jwt::run),
    ("oauth_forms", oauth_forms::run),
    ("policy", policy::run),
    ("rest_bodies", rest_bodies::run),
];

/// The fields of an input made of several: separated by NUL bytes, which no header value, path,
/// environment variable or TOML text holds (so hand-made seeds stay readable).
fn fields(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|byte| *byte == 0)
}

/// Bytes as text, the way an edge that accepts them lossily would see them.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
