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

use crate::store::StoreError;

/// Runs store work that scans or replays the log off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Store(StoreError::WriterFailed(e.to_string())))?
        .map_err(ApiError::from)
}
