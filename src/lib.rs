//! marr, the multi-agency risk register.

pub mod domain;
pub mod store;

/// The `marr.v1` contract, generated from `proto/marr/v1`.
pub mod proto {
    tonic::include_proto!("marr.v1");
    /// Descriptors for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("marr_descriptor");
}
