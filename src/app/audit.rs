//! The audit chain itself: administrators list and verify it; an agency sees who read its
//! records and why.

use time::OffsetDateTime;

use super::{AppError, Application, blocking};
use crate::auth::Caller;
use crate::domain::audit::{AuditEvent, AuditFilter, BrokenLink};
use crate::store::AuditPage;

/// An agency's own submissions are not "access to its records" by someone else.
const OWN_WRITES: [&str; 2] = [
    "/marr.v1.RiskRegister/SubmitRecord",
    "/marr.v1.RiskRegister/PushRecords",
];

/// What walking the whole chain found.
#[derive(Debug, Clone)]
pub enum AuditVerdict {
    /// Every link holds.
    Intact { events_checked: u64 },
    /// The first link that does not.
    Broken(BrokenLink),
}

/// One page of the events that touched an agency's records, each as that agency may see it.
#[derive(Debug, Clone)]
pub struct AccessPage {
    pub events: Vec<AuditEvent>,
    /// Sequence to ask after for the next page; `None` when this was the last.
    pub next_after: Option<u64>,
}

impl Application {
    /// One page of the chain's events that match `filter`, after the sequence `after`.
    pub async fn list_audit_events(
        &self,
        _caller: &Caller,
        filter: AuditFilter,
        after: u64,
        page_size: usize,
    ) -> Result<AuditPage, AppError> {
        let store = self.store.clone();
        blocking(move || store.audit_events(&filter, after, page_size)).await
    }

    /// Walks the whole chain, checking every link.
    pub async fn verify_audit(&self, _caller: &Caller) -> Result<AuditVerdict, AppError> {
        let store = self.store.clone();
        Ok(match blocking(move || store.verify_audit()).await? {
            Ok(events_checked) => AuditVerdict::Intact { events_checked },
            Err(broken) => AuditVerdict::Broken(broken),
        })
    }

    /// Who touched the caller's agency's records between `from` and `to` (exclusive), other
    /// than the agency's own submissions; each event shows only the agency's own records.
    pub async fn access_to_my_records(
        &self,
        caller: &Caller,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
        after: u64,
        page_size: usize,
    ) -> Result<AccessPage, AppError> {
        let agency = caller.own_agency()?.clone();
        let filter = AuditFilter {
            from,
            to,
            agency: Some(agency.clone()),
            except_methods: OWN_WRITES.iter().map(|m| m.to_string()).collect(),
            ..AuditFilter::default()
        };
        let store = self.store.clone();
        let page = blocking(move || store.audit_events(&filter, after, page_size)).await?;
        Ok(AccessPage {
            events: page
                .events
                .into_iter()
                .map(|event| event.as_seen_by(&agency))
                .collect(),
            next_after: page.next_after,
        })
    }
}
