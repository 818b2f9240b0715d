//! Reading and checking the audit chain. Events are appended only by the writer.

use super::keyspace::{AuditHead, AuditLog, Keyspace};
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
        Ok(AuditHead::get(&self.shared.tree, &())?.map_or(0, |(sequence, _)| sequence))
    }

    /// Walks the whole chain: the number of events checked, or the first broken link.
    /// Blocking: it reads every event.
    pub fn verify_audit(&self) -> Result<Result<u64, BrokenLink>, StoreError> {
        let tree = &self.shared.tree;
        let head = AuditHead::get(tree, &())?;
        let last = head.map_or(0, |(sequence, _)| sequence);
        // One event at a time, up to the head read above: the chain may be far larger than
        // memory, and the writer may append while we walk.
        let mut unreadable = None;
        let events = AuditLog::scan_stored(tree)
            .map_while(|entry| entry.map_err(|error| unreadable = Some(error)).ok())
            .take_while(|(sequence, _)| *sequence <= last);
        let verdict = verify_chain(events, head);
        if let Some(error) = unreadable {
            return Err(error);
        }
        // Nobody but a tamperer stores an event beyond the head, unless the writer moved the
        // head meanwhile.
        let beyond = tree
            .range(AuditLog::key(&last.saturating_add(1))..AuditLog::key(&u64::MAX))
            .next()
            .transpose()?
            .is_some();
        let head_now = AuditHead::get(tree, &())?.map_or(0, |(sequence, _)| sequence);
        Ok(match verdict {
            Ok(_) if beyond && head_now == last => Err(BrokenLink {
                sequence: last + 1,
                reason: "it is stored beyond the chain's recorded head".into(),
            }),
            verdict => verdict,
        })
    }

    /// Events after `after` that match the filter, oldest first, at most `limit` of them.
    /// Blocking: it scans the chain from `after`.
    pub fn audit_events(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let tree = &self.shared.tree;
        let start = AuditLog::key(&after.saturating_add(1));
        let mut events = Vec::new();
        for entry in tree.range(start..AuditLog::key(&u64::MAX)) {
            let (_, bytes) = entry?;
            let event: AuditEvent = postcard::from_bytes(&bytes)?;
            if filter.matches(&event) {
                if events.len() == limit {
                    let next_after = events.last().map(|e: &AuditEvent| e.sequence);
                    return Ok(AuditPage { events, next_after });
                }
                events.push(event);
            }
        }
        Ok(AuditPage {
            events,
            next_after: None,
        })
    }
}
