//! The risk register: agencies submit, push and read their own records.

use std::sync::Arc;

use super::{AppError, Application};
use crate::auth::{Caller, Denied};
use crate::domain::{Actor, Invalid, RecordKey, Revision, RiskRecord};
use crate::store::{PendingSubmission, StoreError, Submitted};

/// How the writer took a submitted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored durably as a new revision.
    Accepted { revision: u32, sequence: u64 },
    /// Identical to the stored latest revision.
    Unchanged { revision: u32, sequence: u64 },
}

/// A checked record queued for the writer; its outcome arrives once it is durable, so a push
/// keeps many in flight.
pub struct QueuedRecord(PendingSubmission);

impl QueuedRecord {
    /// The writer's answer: accepted, unchanged or stale.
    pub async fn outcome(self) -> Result<Submitted, AppError> {
        Ok(self.0.await.map_err(|_| StoreError::Closed)??)
    }
}

/// Counts a record refused as invalid, for the metrics endpoint.
pub(crate) fn count_rejected(invalid: Invalid) -> AppError {
    metrics::counter!(crate::telemetry::RECORDS, "outcome" => "rejected").increment(1);
    AppError::from(invalid)
}

impl Application {
    /// Whether `key` names a record the caller's own agency has stored. The agency is checked
    /// first, so nothing is said of other agencies' records: a reference refused by today's
    /// rules is still read when it names a record stored under older ones.
    pub fn stored_by_caller(&self, caller: &Caller, key: &RecordKey) -> bool {
        caller.acts_for(&key.agency).is_ok() && matches!(self.store.record(key), Ok(Some(_)))
    }

    /// Submits one record for the caller's agency and waits until it is durable. A record
    /// older than or conflicting with the stored one is refused as stale.
    pub async fn submit_record(
        &self,
        caller: &Caller,
        record: RiskRecord,
    ) -> Result<Recorded, AppError> {
        caller.acts_for(&record.key.agency)?;
        let queued = self
            .queue(record, Arc::new(caller.actor()))
            .await
            .map_err(rejected_counted)?;
        match queued.outcome().await.map_err(rejected_counted)? {
            Submitted::Accepted { revision, sequence } => {
                Ok(Recorded::Accepted { revision, sequence })
            }
            Submitted::Unchanged { revision, sequence } => {
                Ok(Recorded::Unchanged { revision, sequence })
            }
            Submitted::Stale { reason } => Err(AppError::Stale(reason)),
        }
    }

    /// Checks one record of a push stream and queues it, as [`Application::submit_record`]
    /// does for one record. A record of another agency is refused before anything about it is
    /// looked up; the stream was admitted already, so that refusal is recorded here, naming
    /// the record. An invalid record comes back as [`AppError::Invalid`], for the stream to
    /// answer and go on.
    pub async fn push_record(
        &self,
        caller: &Caller,
        actor: Arc<Actor>,
        record: RiskRecord,
    ) -> Result<QueuedRecord, AppError> {
        if let Err(denied) = caller.acts_for(&record.key.agency) {
            self.record_pushed_refusal(caller, record.key, &denied)
                .await;
            return Err(denied.into());
        }
        self.queue(record, actor).await
    }

    /// Checks a record against the directory and queues it for the writer.
    async fn queue(&self, record: RiskRecord, actor: Arc<Actor>) -> Result<QueuedRecord, AppError> {
        self.store.check_record_now(&record).await?;
        Ok(QueuedRecord(self.store.enqueue(record, actor).await?))
    }

    async fn record_pushed_refusal(&self, caller: &Caller, key: RecordKey, denied: &Denied) {
        let status = tonic::Status::from(denied.clone());
        let mut access = caller.access(format!("{:?}: {}", status.code(), status.message()));
        access.records = vec![key];
        if let Err(error) = self.store.audit(access).await {
            tracing::error!(%error, "cannot record a refusal in the audit chain");
        }
    }

    /// The latest revision of one of the caller's agency's records.
    /// A page of the caller's agency's own records, by reference; each one listed is noted
    /// for the audit event. With the key to pass for the next page.
    pub fn own_records(
        &self,
        caller: &Caller,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<(Vec<Revision>, Option<RecordKey>), AppError> {
        let agency = caller.own_agency()?.clone();
        let after = after
            .map(|local_ref| RecordKey::parse(agency.as_str(), local_ref))
            .transpose()?;
        let (records, next) = self
            .store
            .records_of_agency(&agency, after.as_ref(), page_size)?;
        caller.touched(|t| t.records = records.iter().map(|r| r.record.key.clone()).collect());
        Ok((records, next))
    }

    pub fn record(&self, caller: &Caller, key: RecordKey) -> Result<Revision, AppError> {
        caller.acts_for(&key.agency)?;
        caller.touched(|t| t.records.push(key.clone()));
        self.store
            .record(&key)?
            .ok_or_else(|| AppError::NotFound(format!("no record {key}")))
    }

    /// Every revision of one of the caller's agency's records, oldest first.
    pub fn record_history(
        &self,
        caller: &Caller,
        key: RecordKey,
    ) -> Result<Vec<Revision>, AppError> {
        caller.acts_for(&key.agency)?;
        caller.touched(|t| t.records.push(key.clone()));
        let history = self.store.history(&key)?;
        if history.is_empty() {
            return Err(AppError::NotFound(format!("no record {key}")));
        }
        Ok(history)
    }
}

/// A submitted record refused as invalid is counted, wherever it was found so.
fn rejected_counted(error: AppError) -> AppError {
    match error {
        AppError::Invalid(invalid) | AppError::Store(StoreError::Invalid(invalid)) => {
            count_rejected(invalid)
        }
        other => other,
    }
}
