//! `marr.v1.Audit`: administrators list and verify the audit chain; an agency sees who read
//! its records and why.

use prost_types::Timestamp;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::convert::{page_size, record_ref, time_from_proto, timestamp};
use crate::app::Application;
use crate::app::audit::AuditVerdict;
use crate::auth::Caller;
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::{Invalid, Role};
use crate::proto;
use crate::proto::audit_server::Audit;

pub struct AuditService {
    app: Application,
}

impl AuditService {
    pub fn new(app: Application) -> Self {
        Self { app }
    }
}

fn role_to_proto(role: Role) -> proto::Role {
    match role {
        Role::Agency => proto::Role::Agency,
        Role::Inspector => proto::Role::Inspector,
        Role::Board => proto::Role::Board,
        Role::Admin => proto::Role::Admin,
        Role::Public => proto::Role::Public,
    }
}

pub fn event_to_proto(event: &AuditEvent) -> proto::AuditEvent {
    proto::AuditEvent {
        sequence: event.sequence,
        at: Some(timestamp(event.at)),
        principal: event.principal.clone(),
        role: role_to_proto(event.role) as i32,
        method: event.method.clone(),
        records: event.records.iter().map(record_ref).collect(),
        subject_key: event.subject.map(|s| s.to_string()).unwrap_or_default(),
        place_code: event.place.map(|p| p.to_string()).unwrap_or_default(),
        purpose: event.purpose.clone(),
        outcome: event.outcome.clone(),
        previous_hash: hex::encode(event.previous),
    }
}

/// An optional time bound.
fn bound(field: &str, at: Option<Timestamp>) -> Result<Option<OffsetDateTime>, Invalid> {
    at.map(|t| time_from_proto(&t).map_err(|reason| Invalid::one(field, reason)))
        .transpose()
}

fn non_empty(text: String) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn list_audit_events(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
    ) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let page = async {
            let filter = AuditFilter {
                principal: non_empty(request.principal),
                method: non_empty(request.method),
                from: bound("from", request.from)?,
                to: bound("to", request.to)?,
                ..AuditFilter::default()
            };
            let page_size = page_size(request.page_size)?;
            self.app
                .list_audit_events(&caller, filter, request.after_sequence, page_size)
                .await
        };
        let page = self.app.conclude(&caller, page.await).await?;
        Ok(Response::new(proto::ListAuditEventsResponse {
            events: page.events.iter().map(event_to_proto).collect(),
            next_after_sequence: page.next_after.unwrap_or(0),
        }))
    }

    async fn verify_audit(
        &self,
        request: Request<proto::VerifyAuditRequest>,
    ) -> Result<Response<proto::VerifyAuditResponse>, Status> {
        let caller = Caller::of(&request)?;
        let verdict = self.app.verify_audit(&caller).await;
        let verdict = self.app.conclude(&caller, verdict).await?;
        Ok(Response::new(match verdict {
            AuditVerdict::Intact { events_checked } => proto::VerifyAuditResponse {
                intact: true,
                events_checked,
                ..Default::default()
            },
            AuditVerdict::Broken(broken) => proto::VerifyAuditResponse {
                intact: false,
                events_checked: broken.sequence.saturating_sub(1),
                broken_at_sequence: broken.sequence,
                reason: broken.reason,
            },
        }))
    }

    async fn list_access_to_my_records(
        &self,
        request: Request<proto::ListAccessToMyRecordsRequest>,
    ) -> Result<Response<proto::ListAccessToMyRecordsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let page = async {
            let from = bound("from", request.from)?;
            let to = bound("to", request.to)?;
            let page_size = page_size(request.page_size)?;
            self.app
                .access_to_my_records(&caller, from, to, request.after_sequence, page_size)
                .await
        };
        let page = self.app.conclude(&caller, page.await).await?;
        Ok(Response::new(proto::ListAccessToMyRecordsResponse {
            events: page.events.iter().map(event_to_proto).collect(),
            next_after_sequence: page.next_after.unwrap_or(0),
        }))
    }
}
