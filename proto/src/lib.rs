//! The `retl.v1` gRPC API: tonic/prost code generated from `proto/retl/v1/*.proto` and the file
//! descriptor set served by gRPC reflection.
//!
//! # Layout
//! - `retl/v1/*.proto`: the API (package `retl.v1`, Google AIP style), one file per service plus
//!   `common.proto`.
//! - `build.rs`: runs the vendored `protoc` and `tonic-prost-build`.
//! - [`v1`]: the generated messages, clients (`*_client`) and servers (`*_server`).
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors for `tonic-reflection`.

#![deny(missing_docs)]

/// The `retl.v1` package: messages, `*_service_client` and `*_service_server` modules.
///
/// Generated code: the `.proto` comments become its docs, but prost does not document every item
/// it emits (oneof modules, server traits' helper items), and it does not follow our clippy and
/// `unreachable_pub` settings; the lints are relaxed for this module only.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::clone_on_ref_ptr,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod v1 {
    tonic::include_proto!("retl.v1");
}

/// The encoded `FileDescriptorSet` of `retl.v1`, for `tonic_reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("retl_v1_descriptor");
