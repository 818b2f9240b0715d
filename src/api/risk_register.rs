//! `marr.v1.RiskRegister`: agencies submit, push and read their records.

use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{record_from_proto_or_known, record_key, revision_to_proto};
use super::error::limit_as_exhausted;
use crate::app::records::{QueuedRecord, Recorded, count_rejected};
use crate::app::{AppError, Application};
use crate::auth::Caller;
use crate::domain::{Actor, Invalid, RecordKey};
use crate::proto::risk_register_server::RiskRegister;
use crate::proto::{self, Outcome};
use crate::store::Submitted;

/// Records of one push stream that may be in flight at once; large enough that the writer
/// sees full batches from a single stream.
const PUSH_IN_FLIGHT: usize = 8192;

pub struct RiskRegisterService {
    app: Application,
}

impl RiskRegisterService {
    pub fn new(app: Application) -> Self {
        Self { app }
    }
}

/// One record's place in a push stream's answer, in arrival order.
enum Pending {
    Answered(proto::PushRecordsResponse),
    Queued(u64, QueuedRecord),
    Failed(Status),
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
    app: Application,
    caller: Caller,
    mut inbound: Streaming<proto::PushRecordsRequest>,
    pending: mpsc::Sender<Pending>,
) {
    let actor = Arc::new(caller.actor());
    let mut index = 0u64;
    while let Some(message) = inbound.next().await {
        let next = match message {
            Ok(request) => admit(&app, &caller, &actor, index, request.record).await,
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

/// Checks one pushed record and queues it. An invalid record is answered and the stream goes
/// on; any other refusal ends it (the records before it are still answered).
async fn admit(
    app: &Application,
    caller: &Caller,
    actor: &Arc<Actor>,
    index: u64,
    record: Option<proto::RiskRecord>,
) -> Pending {
    let known = |key: &RecordKey| app.stored_by_caller(caller, key);
    let record = match record_from_proto_or_known(record, OffsetDateTime::now_utc(), &known) {
        Ok(record) => record,
        Err(invalid) => return Pending::Answered(rejected(index, &invalid)),
    };
    match app.push_record(caller, Arc::clone(actor), record).await {
        Ok(queued) => Pending::Queued(index, queued),
        Err(AppError::Invalid(invalid)) => Pending::Answered(rejected(index, &invalid)),
        Err(error) => Pending::Failed(error.into()),
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
            Pending::Queued(index, queued) => match queued.outcome().await {
                Ok(submitted) => Ok(answered(index, submitted)),
                Err(error) => Err(error.into()),
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
        let recorded = async {
            let known = |key: &RecordKey| self.app.stored_by_caller(&caller, key);
            let record = record_from_proto_or_known(
                request.into_inner().record,
                OffsetDateTime::now_utc(),
                &known,
            )
            .map_err(count_rejected)?;
            self.app.submit_record(&caller, record).await
        };
        let recorded = self.app.conclude(&caller, recorded.await).await?;
        let (outcome, revision, sequence) = match recorded {
            Recorded::Accepted { revision, sequence } => (Outcome::Accepted, revision, sequence),
            Recorded::Unchanged { revision, sequence } => (Outcome::Unchanged, revision, sequence),
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
            self.app.clone(),
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
        let revision = (|| {
            let known = |key: &RecordKey| self.app.stored_by_caller(&caller, key);
            let key = record_key(&request.agency_id, &request.local_ref, &known)?;
            self.app.record(&caller, key)
        })();
        let revision = self.app.conclude(&caller, revision).await?;
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
        let history = (|| {
            let known = |key: &RecordKey| self.app.stored_by_caller(&caller, key);
            let key = record_key(&request.agency_id, &request.local_ref, &known)?;
            self.app.record_history(&caller, key)
        })();
        let history = self.app.conclude(&caller, history).await?;
        Ok(Response::new(proto::GetRecordHistoryResponse {
            revisions: history.iter().map(revision_to_proto).collect(),
        }))
    }
}
