//! `marr.v1.RiskRegister`: agencies submit, push and read their records.

use std::pin::Pin;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{record_from_proto, record_key, revision_to_proto};
use super::error::ApiError;
use crate::domain::Invalid;
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

fn rejected(index: u64, invalid: &Invalid) -> proto::PushRecordsResponse {
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
    mut inbound: Streaming<proto::PushRecordsRequest>,
    pending: mpsc::Sender<Pending>,
) {
    let mut index = 0u64;
    while let Some(message) = inbound.next().await {
        let next = match message {
            Ok(request) => {
                let checked = record_from_proto(request.record, OffsetDateTime::now_utc())
                    .and_then(|record| store.check_record(&record).map(|()| record));
                match checked {
                    Err(invalid) => Pending::Answered(rejected(index, &invalid)),
                    Ok(record) => match store.enqueue(record).await {
                        Ok(answer) => Pending::Queued(index, answer),
                        Err(error) => Pending::Failed(ApiError::from(error).into()),
                    },
                }
            }
            // The client's side of the stream broke; what was queued is still answered.
            Err(status) => Pending::Failed(status),
        };
        let failed = matches!(next, Pending::Failed(_));
        if pending.send(next).await.is_err() || failed {
            return;
        }
        index += 1;
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
        let record = record_from_proto(request.into_inner().record, OffsetDateTime::now_utc())
            .map_err(ApiError::from)?;
        let (outcome, revision, sequence) = match self
            .store
            .submit(record)
            .await
            .map_err(ApiError::from)?
        {
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
        let (pending_tx, pending_rx) = mpsc::channel(PUSH_IN_FLIGHT);
        let (out_tx, out_rx) = mpsc::channel(256);
        tokio::spawn(take_in(
            self.store.clone(),
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
        let request = request.into_inner();
        let key = record_key(&request.agency_id, &request.local_ref).map_err(ApiError::from)?;
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
        let request = request.into_inner();
        let key = record_key(&request.agency_id, &request.local_ref).map_err(ApiError::from)?;
        let history = self.store.history(&key).map_err(ApiError::from)?;
        if history.is_empty() {
            return Err(ApiError::NotFound(format!("no record {key}")).into());
        }
        Ok(Response::new(proto::GetRecordHistoryResponse {
            revisions: history.iter().map(revision_to_proto).collect(),
        }))
    }
}
