//! `marr.v1.Audit`: administrators list and verify the audit chain; an agency sees who read
//! its records and why.

use prost_types::Timestamp;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::convert::{page_size, record_ref, time_from_proto, timestamp};
use super::error::ApiError;
use crate::auth::Caller;
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::{Invalid, Role};
use crate::proto;
use crate::proto::audit_server::Audit;
use crate::store::{AuditPage, Store, StoreError};

/// An agency's own submissions are not "access to its records" by someone else.
const OWN_WRITES: [&str; 2] = [
    "/marr.v1.RiskRegister/SubmitRecord",
    "/marr.v1.RiskRegister/PushRecords",
];

pub struct AuditService {
    store: Store,
}

impl AuditService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn page(
        &self,
        filter: AuditFilter,
        after: u64,
        requested: u32,
    ) -> Result<AuditPage, ApiError> {
        let limit = page_size(requested)?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.audit_events(&filter, after, limit))
            .await
            .map_err(|e| StoreError::WriterFailed(e.to_string()))?
            .map_err(ApiError::from)
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
        Caller::of(&request)?;
        let request = request.into_inner();
        let filter = AuditFilter {
            principal: non_empty(request.principal),
            method: non_empty(request.method),
            from: bound("from", request.from).map_err(ApiError::from)?,
            to: bound("to", request.to).map_err(ApiError::from)?,
            ..AuditFilter::default()
        };
        let page = self
            .page(filter, request.after_sequence, request.page_size)
            .await?;
        Ok(Response::new(proto::ListAuditEventsResponse {
            events: page.events.iter().map(event_to_proto).collect(),
            next_after_sequence: page.next_after.unwrap_or(0),
        }))
    }

    async fn verify_audit(
        &self,
        request: Request<proto::VerifyAuditRequest>,
    ) -> Result<Response<proto::VerifyAuditResponse>, Status> {
        Caller::of(&request)?;
        let store = self.store.clone();
        let verdict = tokio::task::spawn_blocking(move || store.verify_audit())
            .await
            .map_err(|e| ApiError::from(StoreError::WriterFailed(e.to_string())))?
            .map_err(ApiError::from)?;
        Ok(Response::new(match verdict {
            Ok(checked) => proto::VerifyAuditResponse {
                intact: true,
                events_checked: checked,
                ..Default::default()
            },
            Err(broken) => proto::VerifyAuditResponse {
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
        let agency = caller.own_agency().map_err(ApiError::from)?.clone();
        let request = request.into_inner();
        let filter = AuditFilter {
            from: bound("from", request.from).map_err(ApiError::from)?,
            to: bound("to", request.to).map_err(ApiError::from)?,
            agency: Some(agency.clone()),
            except_methods: OWN_WRITES.iter().map(|m| m.to_string()).collect(),
            ..AuditFilter::default()
        };
        let page = self
            .page(filter, request.after_sequence, request.page_size)
            .await?;
        let events = page
            .events
            .into_iter()
            .map(|event| event_to_proto(&event.as_seen_by(&agency)))
            .collect();
        Ok(Response::new(proto::ListAccessToMyRecordsResponse {
            events,
            next_after_sequence: page.next_after.unwrap_or(0),
        }))
    }
}
