//! The gRPC layer's one error type and its single, exhaustive mapping to `tonic::Status`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Invalid;
use crate::domain::lookup::LookupError;
use crate::domain::neighbours::NeighboursError;
use crate::domain::population::PopulationError;
use crate::store::StoreError;

/// The gRPC layer speaks of the application's error under its own name.
pub use crate::app::AppError as ApiError;

/// INVALID_ARGUMENT carrying a `google.rpc.BadRequest` with one violation per field.
fn bad_request(invalid: Invalid) -> Status {
    let violations: Vec<tonic_types::FieldViolation> = invalid
        .0
        .iter()
        .map(|v| tonic_types::FieldViolation::new(v.field.clone(), v.reason.clone()))
        .collect();
    Status::with_error_details(
        Code::InvalidArgument,
        invalid.to_string(),
        ErrorDetails::with_bad_request(violations),
    )
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Invalid(invalid) => bad_request(invalid),
            ApiError::Stale(reason) => Status::failed_precondition(reason),
            ApiError::NotFound(what) => Status::not_found(what),
            ApiError::NotReleased(what) => Status::failed_precondition(what),
            ApiError::Exhausted(limit) => Status::resource_exhausted(limit),
            ApiError::Unavailable(reason) => Status::unavailable(reason),
            ApiError::Denied(denied) => denied.into(),
            ApiError::Store(store) => match store {
                StoreError::Invalid(invalid) => bad_request(invalid),
                StoreError::Conflict(reason) => Status::failed_precondition(reason),
                StoreError::Missing(what) => Status::not_found(what),
                StoreError::Full(limit) => Status::resource_exhausted(limit),
                StoreError::NotAccountable(reason) => Status::permission_denied(reason),
                StoreError::Lookup(
                    lookup
                    @ (LookupError::NoHeader { .. } | LookupError::UnrecognisedLayout { .. }),
                ) => bad_request(Invalid::one("header", lookup.to_string())),
                StoreError::Population(
                    population @ (PopulationError::NoHeader { .. }
                    | PopulationError::UnrecognisedLayout { .. }),
                ) => bad_request(Invalid::one("header", population.to_string())),
                StoreError::Population(population @ PopulationError::NoTables) => {
                    bad_request(Invalid::one("table", population.to_string()))
                }
                StoreError::Neighbours(
                    neighbours @ (NeighboursError::NoHeader { .. }
                    | NeighboursError::UnrecognisedLayout { .. }),
                ) => bad_request(Invalid::one("header", neighbours.to_string())),
                StoreError::Neighbours(neighbours @ NeighboursError::NoTables) => {
                    bad_request(Invalid::one("table", neighbours.to_string()))
                }
                StoreError::Closed => Status::unavailable(store.to_string()),
                // What failed below (a host, a server's message) is for the log, not callers.
                StoreError::WriterFailed(_) | StoreError::Unavailable(_) => {
                    tracing::warn!(error = %store, "storage unavailable");
                    Status::unavailable(
                        "the register's storage cannot be reached just now; retry shortly",
                    )
                }
                StoreError::Storage(_)
                | StoreError::Database(_)
                | StoreError::Codec(_)
                | StoreError::Corrupt(_) => {
                    tracing::error!(error = %store, "storage error");
                    Status::internal(
                        "the register could not complete the request; it has been logged",
                    )
                }
            },
        }
    }
}

/// tonic refuses a message over a method's size limit with OUT_OF_RANGE; the contract answers
/// every limit with RESOURCE_EXHAUSTED. Other statuses pass through unchanged.
pub fn limit_as_exhausted(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("message length too large") {
        Status::resource_exhausted(format!(
            "the message is larger than this method accepts ({})",
            status.message()
        ))
    } else {
        status
    }
}

/// The contract's word for a status that tonic or a third-party service (health, reflection)
/// made up: limits are RESOURCE_EXHAUSTED (see [`limit_as_exhausted`]), and bytes that do not
/// decode are the caller's INVALID_ARGUMENT, not INTERNAL (the contract's own services say so
/// through `api::codec`). `None` when the status stands as it is.
pub fn in_contract_terms(status: &Status) -> Option<Status> {
    match status.code() {
        Code::OutOfRange if status.message().contains("message length too large") => {
            Some(limit_as_exhausted(status.clone()))
        }
        Code::Internal
            if status
                .message()
                .starts_with("failed to decode Protobuf message") =>
        {
            Some(Status::invalid_argument(format!(
                "the message does not decode: {}",
                status.message()
            )))
        }
        _ => None,
    }
}
