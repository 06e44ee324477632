//! Generates the `retl.v1` tonic/prost code and the file descriptor set for gRPC reflection,
//! with the vendored `protoc` so that no system install is needed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "retl/v1/common.proto",
    "retl/v1/source.proto",
    "retl/v1/model.proto",
    "retl/v1/destination.proto",
    "retl/v1/mapping.proto",
    "retl/v1/sync.proto",
    "retl/v1/query.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    // The vendored protoc, set on the config instead of through the PROTOC environment variable
    // (setting it would need `unsafe` in edition 2024).
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    let protos: Vec<PathBuf> = PROTOS.iter().map(PathBuf::from).collect();
    let includes = [PathBuf::from("."), well_known];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("retl_v1_descriptor.bin"))
        .compile_with_config(config, &protos, &includes)?;
    Ok(())
}
