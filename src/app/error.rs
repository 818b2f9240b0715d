//! The application's one error type: why a use case refused or failed. Each front maps it
//! once: gRPC to `tonic::Status` (`api::error`), the web to an HTTP status through the same
//! gRPC code, so a refusal reads the same on both.

use crate::auth::Denied;
use crate::domain::Invalid;
use crate::store::StoreError;

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    NotFound(String),
    /// Asked for published figures before any were released.
    #[error("{0}")]
    NotReleased(String),
    #[error("{0}")]
    Exhausted(String),
    /// The server cannot serve this now (it is stopping): come back and resume.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Denied(#[from] Denied),
}
