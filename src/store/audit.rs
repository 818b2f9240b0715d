//! Reading and checking the audit chain. Events are appended only by the writer.

use super::keyspace::{
    AuditByAgency, AuditByPrincipal, AuditHead, AuditLog, Keyspace, agency_owner,
    audit_index_after, principal_owner,
};
use super::{Store, StoreError};
use crate::domain::audit::{AuditEvent, AuditFilter, BrokenLink, verify_chain};

/// A page of audit events and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Sequence to ask after for the next page; `None` when this was the last.
    pub next_after: Option<u64>,
}

impl Store {
    /// Sequence of the audit chain's last durable event.
    pub fn audit_head(&self) -> Result<u64, StoreError> {
        Ok(AuditHead::get(&*self.shared.engine, &())?.map_or(0, |(sequence, _)| sequence))
    }

    /// Walks the whole chain: the number of events checked, or the first broken link.
    /// Blocking: it reads every event.
    pub fn verify_audit(&self) -> Result<Result<u64, BrokenLink>, StoreError> {
        let engine = &*self.shared.engine;
        let head = AuditHead::get(engine, &())?;
        let last = head.map_or(0, |(sequence, _)| sequence);
        // One event at a time, up to the head read above: the chain may be far larger than
        // memory, and the writer may append while we walk.
        let mut unreadable = None;
        let events = AuditLog::scan_stored(engine)
            .map_while(|entry| entry.map_err(|error| unreadable = Some(error)).ok())
            .take_while(|(sequence, _)| *sequence <= last);
        let verdict = verify_chain(events, head);
        if let Some(error) = unreadable {
            return Err(error);
        }
        // Nobody but a tamperer stores an event beyond the head, unless the writer moved the
        // head meanwhile.
        let beyond = engine
            .range(
                &AuditLog::key(&last.saturating_add(1)),
                &AuditLog::key(&u64::MAX),
            )
            .next()
            .transpose()?
            .is_some();
        let head_now = AuditHead::get(engine, &())?.map_or(0, |(sequence, _)| sequence);
        Ok(match verdict {
            Ok(_) if beyond && head_now == last => Err(BrokenLink {
                sequence: last + 1,
                reason: "it is stored beyond the chain's recorded head".into(),
            }),
            verdict => verdict,
        })
    }

    /// Events after `after` that match the filter, oldest first, at most `limit` of them.
    /// Blocking. A filter naming a principal or an agency reads that index, so one
    /// principal's or one agency's events cost what they hold, not the chain's length; any
    /// other filter scans the chain from `after`.
    pub fn audit_events(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        // Principals are one per event, agencies possibly several: the principal index is
        // never larger than the chain and usually the narrower of the two.
        let indexed = match (&filter.principal, &filter.agency) {
            (Some(principal), _) => Some((AuditByPrincipal::PREFIX, principal_owner(principal))),
            (None, Some(agency)) => Some((AuditByAgency::PREFIX, agency_owner(agency))),
            (None, None) => None,
        };
        self.audit_page(filter, after, limit, indexed)
    }

    /// The same page found by scanning the chain from `after` whatever the filter: the
    /// baseline the audit indexes beat, and what they must always agree with. Blocking.
    pub fn scan_audit_events(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        self.audit_page(filter, after, limit, None)
    }

    /// A page read through the index named by its prefix and owner bytes, or by a scan.
    fn audit_page(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: usize,
        indexed: Option<(u8, Vec<u8>)>,
    ) -> Result<AuditPage, StoreError> {
        let engine = &*self.shared.engine;
        let events: Box<dyn Iterator<Item = Result<AuditEvent, StoreError>>> = match indexed {
            Some((prefix, owner)) => Box::new(
                audit_index_after(engine, prefix, &owner, after).map(|sequence| {
                    let sequence = sequence?;
                    AuditLog::get(engine, &sequence)?.ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "audit index lists event {sequence}, which the chain does not hold"
                        ))
                    })
                }),
            ),
            None => {
                let start = AuditLog::key(&after.saturating_add(1));
                Box::new(
                    engine
                        .range(&start, &AuditLog::key(&u64::MAX))
                        .map(|entry| {
                            let (_, bytes) = entry?;
                            Ok(postcard::from_bytes(&bytes)?)
                        }),
                )
            }
        };
        page_of(events, filter, limit)
    }
}

/// The first `limit` events that match, and whether another follows.
fn page_of(
    events: impl Iterator<Item = Result<AuditEvent, StoreError>>,
    filter: &AuditFilter,
    limit: usize,
) -> Result<AuditPage, StoreError> {
    let mut page = Vec::new();
    for event in events {
        let event = event?;
        if filter.matches(&event) {
            if page.len() == limit {
                let next_after = page.last().map(|e: &AuditEvent| e.sequence);
                return Ok(AuditPage {
                    events: page,
                    next_after,
                });
            }
            page.push(event);
        }
    }
    Ok(AuditPage {
        events: page,
        next_after: None,
    })
}
