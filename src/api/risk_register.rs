//! `marr.v1.RiskRegister`: agencies submit, push and read their records.

use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{record_from_proto_or_known, record_key, revision_to_proto};
use super::error::{ApiError, limit_as_exhausted};
use crate::auth::Caller;
use crate::domain::{Actor, Invalid};
use crate::proto::risk_register_server::RiskRegister;
use crate::proto::{self, Outcome};
use crate::store::{PendingSubmission, Store, StoreError, Submitted};

/// Records of one push stream that may be in flight at once; large enough that the writer
/// sees full batches from a single stream.
const PUSH_IN_FLIGHT: usize = 8192;

pub struct RiskRegisterService {
    store: Store,
}

impl RiskRegisterService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// One record's place in a push stream's answer, in arrival order.
enum Pending {
    Answered(proto::PushRecordsResponse),
    Queued(u64, PendingSubmission),
    Failed(Status),
}

/// Counts a record refused as invalid, for the metrics endpoint.
fn count_rejected(invalid: Invalid) -> ApiError {
    metrics::counter!(crate::telemetry::RECORDS, "outcome" => "rejected").increment(1);
    ApiError::from(invalid)
}

fn rejected(index: u64, invalid: &Invalid) -> proto::PushRecordsResponse {
    metrics::counter!(crate::telemetry::RECORDS, "outcome" => "rejected").increment(1);
    proto::PushRecordsResponse {
        index,
        outcome: Outcome::Rejected as i32,
        field: invalid.first_field().to_string(),
        reason: match invalid.0.as_slice() {
            [only] => only.reason.clone(),
            _ => invalid.to_string(),
        },
        ..Default::default()
    }
}

fn answered(index: u64, submitted: Submitted) -> proto::PushRecordsResponse {
    match submitted {
        Submitted::Accepted { revision, sequence } => proto::PushRecordsResponse {
            index,
            outcome: Outcome::Accepted as i32,
            revision,
            sequence,
            ..Default::default()
        },
        Submitted::Unchanged { revision, sequence } => proto::PushRecordsResponse {
            index,
            outcome: Outcome::Unchanged as i32,
            revision,
            sequence,
            ..Default::default()
        },
        Submitted::Stale { reason } => proto::PushRecordsResponse {
            index,
            outcome: Outcome::Stale as i32,
            field: "source_updated_at".into(),
            reason,
            ..Default::default()
        },
    }
}

/// Reads the client's records, checks each and queues the valid ones for the writer.
async fn take_in(
    store: Store,
    caller: Caller,
    mut inbound: Streaming<proto::PushRecordsRequest>,
    pending: mpsc::Sender<Pending>,
) {
    let actor = Arc::new(caller.actor());
    let mut index = 0u64;
    while let Some(message) = inbound.next().await {
        let next = match message {
            Ok(request) => admit(&store, &caller, &actor, index, request.record).await,
            // The client's side of the stream broke; what was queued is still answered.
            Err(status) => Pending::Failed(limit_as_exhausted(status)),
        };
        let failed = matches!(next, Pending::Failed(_));
        if pending.send(next).await.is_err() || failed {
            return;
        }
        index += 1;
    }
}

/// Whether a local reference refused by today's rules names a record the caller's own agency
/// stored under older rules (the agency is checked first, so nothing is said of others').
fn stored_by<'a>(
    store: &'a Store,
    caller: &'a Caller,
) -> impl Fn(&crate::domain::RecordKey) -> bool + 'a {
    move |key| caller.acts_for(&key.agency).is_ok() && matches!(store.record(key), Ok(Some(_)))
}

/// Checks one pushed record and queues it. A record of another agency ends the stream (the
/// records before it are still answered), before anything about it is looked up.
async fn admit(
    store: &Store,
    caller: &Caller,
    actor: &Arc<Actor>,
    index: u64,
    record: Option<proto::RiskRecord>,
) -> Pending {
    let known = stored_by(store, caller);
    let record = match record_from_proto_or_known(record, OffsetDateTime::now_utc(), &known) {
        Ok(record) => record,
        Err(invalid) => return Pending::Answered(rejected(index, &invalid)),
    };
    if let Err(denied) = caller.acts_for(&record.key.agency) {
        // The stream was admitted, so the guard sees no refusal: record this one here.
        let status = Status::from(denied);
        let mut access = caller.access(format!("{:?}: {}", status.code(), status.message()));
        access.records = vec![record.key];
        if let Err(error) = store.audit(access).await {
            tracing::error!(%error, "cannot record a refusal in the audit chain");
        }
        return Pending::Failed(status);
    }
    if let Err(invalid) = store.check_record(&record) {
        return Pending::Answered(rejected(index, &invalid));
    }
    match store.enqueue(record, Arc::clone(actor)).await {
        Ok(answer) => Pending::Queued(index, answer),
        Err(error) => Pending::Failed(ApiError::from(error).into()),
    }
}

/// Sends one answer per record in arrival order, each only once it is durable.
async fn answer_in_order(
    mut pending: mpsc::Receiver<Pending>,
    out: mpsc::Sender<Result<proto::PushRecordsResponse, Status>>,
) {
    while let Some(next) = pending.recv().await {
        let answer = match next {
            Pending::Answered(response) => Ok(response),
            Pending::Queued(index, answer) => match answer.await {
                Ok(Ok(submitted)) => Ok(answered(index, submitted)),
                Ok(Err(error)) => Err(ApiError::from(error).into()),
                Err(_) => Err(ApiError::from(StoreError::Closed).into()),
            },
            Pending::Failed(status) => Err(status),
        };
        let ends = answer.is_err();
        if out.send(answer).await.is_err() || ends {
            return;
        }
    }
}

type PushStream = Pin<Box<dyn Stream<Item = Result<proto::PushRecordsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RiskRegister for RiskRegisterService {
    async fn submit_record(
        &self,
        request: Request<proto::SubmitRecordRequest>,
    ) -> Result<Response<proto::SubmitRecordResponse>, Status> {
        let caller = Caller::of(&request)?;
        let known = stored_by(&self.store, &caller);
        let record = record_from_proto_or_known(
            request.into_inner().record,
            OffsetDateTime::now_utc(),
            &known,
        )
        .map_err(count_rejected)?;
        caller
            .acts_for(&record.key.agency)
            .map_err(ApiError::from)?;
        let (outcome, revision, sequence) = match self
            .store
            .submit(record, Arc::new(caller.actor()))
            .await
            .map_err(|error| match error {
                StoreError::Invalid(invalid) => count_rejected(invalid),
                other => ApiError::from(other),
            })? {
            Submitted::Accepted { revision, sequence } => (Outcome::Accepted, revision, sequence),
            Submitted::Unchanged { revision, sequence } => (Outcome::Unchanged, revision, sequence),
            Submitted::Stale { reason } => return Err(ApiError::Stale(reason).into()),
        };
        Ok(Response::new(proto::SubmitRecordResponse {
            outcome: outcome as i32,
            revision,
            sequence,
        }))
    }

    type PushRecordsStream = PushStream;

    async fn push_records(
        &self,
        request: Request<Streaming<proto::PushRecordsRequest>>,
    ) -> Result<Response<Self::PushRecordsStream>, Status> {
        let caller = Caller::of(&request)?;
        let (pending_tx, pending_rx) = mpsc::channel(PUSH_IN_FLIGHT);
        let (out_tx, out_rx) = mpsc::channel(256);
        tokio::spawn(take_in(
            self.store.clone(),
            caller,
            request.into_inner(),
            pending_tx,
        ));
        tokio::spawn(answer_in_order(pending_rx, out_tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::GetRecordResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let known = stored_by(&self.store, &caller);
        let key =
            record_key(&request.agency_id, &request.local_ref, &known).map_err(ApiError::from)?;
        caller.acts_for(&key.agency).map_err(ApiError::from)?;
        caller.touched(|t| t.records.push(key.clone()));
        let revision = self
            .store
            .record(&key)
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no record {key}")))?;
        Ok(Response::new(proto::GetRecordResponse {
            revision: Some(revision_to_proto(&revision)),
        }))
    }

    async fn get_record_history(
        &self,
        request: Request<proto::GetRecordHistoryRequest>,
    ) -> Result<Response<proto::GetRecordHistoryResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let known = stored_by(&self.store, &caller);
        let key =
            record_key(&request.agency_id, &request.local_ref, &known).map_err(ApiError::from)?;
        caller.acts_for(&key.agency).map_err(ApiError::from)?;
        caller.touched(|t| t.records.push(key.clone()));
        let history = self.store.history(&key).map_err(ApiError::from)?;
        if history.is_empty() {
            return Err(ApiError::NotFound(format!("no record {key}")).into());
        }
        Ok(Response::new(proto::GetRecordHistoryResponse {
            revisions: history.iter().map(revision_to_proto).collect(),
        }))
    }
}
