//! The gRPC services: each handler validates, delegates to the store and converts.

pub mod alerts;
pub mod audit;
pub mod codec;
pub mod convert;
pub mod directory;
pub mod error;
pub mod inspection;
pub mod open_data;
pub mod operations;
pub mod risk_register;

pub use error::ApiError;
