//! The application: the register's use cases, under both fronts. A use case takes the
//! [`Caller`] a front admitted, checks its scope, joins agencies and places into a domain
//! answer and notes what it touched; [`Application::conclude`] then records the outcome in the
//! audit chain as the policy table says. The gRPC handlers and the web pages are adapters that
//! turn requests into these calls and answers into messages or pages.

pub mod alerts;
pub mod audit;
pub mod directory;
pub mod error;
pub mod inspection;
pub mod learning;
pub mod open_data;
pub mod operations;
pub mod records;
pub mod reviews;
pub mod trail;

use std::sync::Arc;

use tonic::Status;

pub use error::AppError;
pub use trail::AuditTrail;

use crate::auth::policy::{self, Audit};
use crate::auth::{Caller, Denied, Principal};
use crate::domain::Role;
use crate::store::{Store, StoreError};

/// The use cases, over one store and one audit trail.
#[derive(Clone)]
pub struct Application {
    store: Store,
    trail: Arc<AuditTrail>,
    /// Past month-end totals for trends: a view as of a sequence never changes.
    trends: Arc<inspection::TrendCache>,
}

impl Application {
    /// The use cases over `store`, recording outcomes in `trail` (shared with the guard).
    pub fn new(store: Store, trail: Arc<AuditTrail>) -> Self {
        Self {
            store,
            trail,
            trends: Arc::default(),
        }
    }

    /// The store under the use cases, for a front's own reading of requests (codes named in
    /// a request are read against the directory held now).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where outcomes are recorded.
    pub fn trail(&self) -> &Arc<AuditTrail> {
        &self.trail
    }

    /// Admits `principal` to `method` exactly when the policy table admits it to the gRPC
    /// method of that name, so a page is allowed when its call is. A refusal is recorded.
    pub async fn admit(
        &self,
        principal: Arc<Principal>,
        method: &str,
        address: &str,
    ) -> Result<Caller, Status> {
        let Some(rule) = policy::rule_for(method) else {
            // Pages name their method in code; one without a rule is a defect, refused.
            return Err(Status::unimplemented(format!(
                "the server has no method {method}"
            )));
        };
        let caller = Caller::new(Arc::clone(&principal), rule, address);
        if rule.admits(principal.role) {
            return Ok(caller);
        }
        let denied = if principal.role == Role::Public {
            Denied::Unauthenticated(format!("{} needs credentials", rule.name()))
        } else {
            Denied::PermissionDenied(format!(
                "{} ({}) may not call {}",
                principal.name,
                principal.role,
                rule.name()
            ))
        };
        self.conclude::<()>(&caller, Err(denied.into()))
            .await
            .map(|()| caller)
    }

    /// Records a use case's outcome as its rule says and hands it on in the contract's terms:
    /// every refusal is recorded; a record-level read is recorded before it is given, and not
    /// given if it cannot be.
    pub async fn conclude<T>(
        &self,
        caller: &Caller,
        outcome: Result<T, AppError>,
    ) -> Result<T, Status> {
        caller.conclude();
        match outcome {
            Err(error) => {
                let refusal = Status::from(error);
                let access = caller.access(format!("{:?}: {}", refusal.code(), refusal.message()));
                self.trail
                    .record_refusal(&caller.address, access, &refusal)
                    .await;
                Err(refusal)
            }
            Ok(answer) if caller.rule.audit == Audit::Read => {
                self.trail.record_read(caller.access("OK".into())).await?;
                Ok(answer)
            }
            Ok(answer) => Ok(answer),
        }
    }
}

/// Runs store work that scans or replays the log off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::Store(StoreError::WriterFailed(e.to_string())))?
        .map_err(AppError::from)
}
