//! Compiles `proto/` into Rust (prost + tonic) and a descriptor set for server reflection.
//! protoc comes from the `protoc-bin-vendored` crate, so a fresh machine needs nothing installed.

use std::path::PathBuf;

const PROTOS: &[&str] = &["proto/keygate/v1/auth.proto", "proto/keygate/v1/admin.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Labels are the core's sorted `BTreeMap`s, passed through without conversion.
    config.btree_map(["."]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("keygate_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
