//! marr, the multi-agency risk register: partner agencies share safeguarding risk records keyed
//! by client group and place, over gRPC.

pub mod api;
pub mod app;
pub mod auth;
pub mod charts;
pub mod cli;
pub mod config;
pub mod domain;
pub mod rules;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod web;

/// The `marr.v1` contract, generated from `proto/marr/v1`.
pub mod proto {
    tonic::include_proto!("marr.v1");
    /// Descriptors for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("marr_descriptor");
}

pub use server::{ServeError, serve, serve_opening, serve_with_web};
