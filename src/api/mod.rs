//! The gRPC services: each handler reads the request, calls one use case of the application,
//! concludes it (which records its outcome in the audit chain) and converts the answer.

pub mod alerts;
pub mod audit;
pub mod codec;
pub mod convert;
pub mod directory;
pub mod error;
pub mod inspection;
pub mod open_data;
pub mod operations;
pub mod reviews;
pub mod risk_register;

pub use error::ApiError;
