//! The only place generated protobuf code is included. Conversions live in `grpc::convert`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `keygate.v1`: AuthService and AdminService.
pub mod keygate_v1 {
    tonic::include_proto!("keygate.v1");
}

/// The encoded descriptor set of keygate's protos, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keygate_descriptor");
