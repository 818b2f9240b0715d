//! The audit chain: who touched which safeguarding data, when, why and with what outcome.
//! Each event carries the SHA-256 of the event before it, so changing or removing any stored
//! event breaks the chain at that point.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::record::{AgencyId, PlaceCode, RecordKey, SubjectKey};

/// What a principal may do (DESIGN.md "Security model").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A partner agency's system: its own records, within its footprint.
    Agency,
    /// A joint inspection team: views, comparisons, risk lists and trails within its places.
    Inspector,
    /// A safeguarding board: alerts and views within its places.
    Board,
    /// Directory, geography, agencies and audit; never records.
    Admin,
    /// Anyone, without credentials: open data only.
    Public,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Agency,
        Role::Inspector,
        Role::Board,
        Role::Admin,
        Role::Public,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Role::Agency => "agency",
            Role::Inspector => "inspector",
            Role::Board => "board",
            Role::Admin => "admin",
            Role::Public => "public",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// Who is acting, and through which method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor {
    pub principal: String,
    pub role: Role,
    /// The gRPC method's full path, e.g. `/marr.v1.RiskRegister/SubmitRecord`.
    pub method: String,
}

impl Actor {
    pub fn new(principal: impl Into<String>, role: Role, method: impl Into<String>) -> Self {
        Self {
            principal: principal.into(),
            role,
            method: method.into(),
        }
    }
}

/// What an access touched and how it ended, as a handler reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub actor: Actor,
    pub records: Vec<RecordKey>,
    pub subject: Option<SubjectKey>,
    pub place: Option<PlaceCode>,
    pub purpose: String,
    /// `OK`, or the refusal's gRPC code name followed by its reason.
    pub outcome: String,
}

impl Access {
    /// An access that touched nothing yet; fill in what it did.
    pub fn by(actor: Actor) -> Self {
        Self {
            actor,
            records: Vec::new(),
            subject: None,
            place: None,
            purpose: String::new(),
            outcome: "OK".into(),
        }
    }
}

/// One stored link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the gap-free audit chain, from 1.
    pub sequence: u64,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub at: OffsetDateTime,
    pub principal: String,
    pub role: Role,
    pub method: String,
    pub records: Vec<RecordKey>,
    pub subject: Option<SubjectKey>,
    pub place: Option<PlaceCode>,
    pub purpose: String,
    pub outcome: String,
    /// SHA-256 of the previous event's stored bytes; zeros for the first event.
    pub previous: [u8; 32],
}

impl AuditEvent {
    pub fn new(sequence: u64, at: OffsetDateTime, access: Access, previous: [u8; 32]) -> Self {
        Self {
            sequence,
            at,
            principal: access.actor.principal,
            role: access.actor.role,
            method: access.actor.method,
            records: access.records,
            subject: access.subject,
            place: access.place,
            purpose: access.purpose,
            outcome: access.outcome,
            previous,
        }
    }
}

/// Which audit events a listing wants. Unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub method: Option<String>,
    pub from: Option<OffsetDateTime>,
    /// Exclusive.
    pub to: Option<OffsetDateTime>,
    /// Only events that touched records of this agency.
    pub agency: Option<AgencyId>,
    /// Leave out these methods (an agency's own submissions, when it asks who read its data).
    pub except_methods: Vec<String>,
}

impl AuditFilter {
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| *p == event.principal)
            && self.method.as_ref().is_none_or(|m| {
                // Either the full path or the method's own name.
                *m == event.method || event.method.rsplit('/').next() == Some(m.as_str())
            })
            && self.from.is_none_or(|from| event.at >= from)
            && self.to.is_none_or(|to| event.at < to)
            && self
                .agency
                .as_ref()
                .is_none_or(|agency| event.records.iter().any(|r| r.agency == *agency))
            && !self.except_methods.contains(&event.method)
    }
}

impl AuditEvent {
    /// The event as an agency may see it when it asks who touched its records: who, when,
    /// why and which of its own records, never other agencies' records or the subject that
    /// tied them together.
    pub fn as_seen_by(mut self, agency: &AgencyId) -> Self {
        self.records.retain(|r| r.agency == *agency);
        self.subject = None;
        self
    }
}

/// SHA-256 of an event's stored bytes: what the next event carries as `previous`.
pub fn link_hash(stored: &[u8]) -> [u8; 32] {
    Sha256::digest(stored).into()
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit chain is broken at event {sequence}: {reason}")]
pub struct BrokenLink {
    pub sequence: u64,
    pub reason: String,
}

/// Walks stored events in order, checking each one's sequence and the hash it carries of the
/// one before, and finally that the last event is the head the store recorded. Returns how
/// many events were checked.
pub fn verify_chain(
    events: impl IntoIterator<Item = (u64, Vec<u8>)>,
    head: Option<(u64, [u8; 32])>,
) -> Result<u64, BrokenLink> {
    let mut expected = 1u64;
    let mut previous = [0u8; 32];
    for (key, stored) in events {
        let broken = |sequence: u64, reason: String| BrokenLink { sequence, reason };
        if key != expected {
            return Err(broken(
                expected,
                format!("event {expected} is missing (the next stored event is {key})"),
            ));
        }
        let event: AuditEvent = postcard::from_bytes(&stored)
            .map_err(|e| broken(key, format!("the stored event cannot be read: {e}")))?;
        if event.sequence != key {
            return Err(broken(
                key,
                format!("it is stored as event {key} but says {}", event.sequence),
            ));
        }
        if event.previous != previous {
            // The event before this one is not what this one was chained to (for the first
            // event, which should carry zeros, the event itself is wrong).
            let at = (key - 1).max(1);
            return Err(broken(
                at,
                format!("its content no longer matches the hash event {key} carries"),
            ));
        }
        previous = link_hash(&stored);
        expected += 1;
    }
    let last = expected - 1;
    match head {
        None if last == 0 => Ok(0),
        None => Err(BrokenLink {
            sequence: last,
            reason: "the chain's recorded head is missing".into(),
        }),
        Some((head, _)) if head != last => Err(BrokenLink {
            sequence: last.min(head) + 1,
            reason: format!("the recorded head is event {head} but the chain ends at {last}"),
        }),
        Some((_, hash)) if hash != previous => Err(BrokenLink {
            sequence: last,
            reason: "its content no longer matches the recorded head of the chain".into(),
        }),
        Some(_) => Ok(last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Stored = Vec<(u64, Vec<u8>)>;

    fn chain(n: u64) -> (Stored, (u64, [u8; 32])) {
        let mut previous = [0u8; 32];
        let mut stored = Vec::new();
        for sequence in 1..=n {
            let actor = Actor::new(format!("p{sequence}"), Role::Inspector, "/m");
            let event = AuditEvent::new(
                sequence,
                OffsetDateTime::UNIX_EPOCH,
                Access::by(actor),
                previous,
            );
            let bytes = postcard::to_stdvec(&event).expect("encodes");
            previous = link_hash(&bytes);
            stored.push((sequence, bytes));
        }
        (stored, (n, previous))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (events, head) = chain(5);
        assert_eq!(verify_chain(events, Some(head)), Ok(5));
        assert_eq!(verify_chain(Vec::new(), None), Ok(0));
    }

    #[test]
    fn a_changed_event_breaks_the_chain_at_that_event() {
        for tampered in 1..=5u64 {
            let (mut events, head) = chain(5);
            let (_, bytes) = &mut events[(tampered - 1) as usize];
            let mut event: AuditEvent = postcard::from_bytes(bytes).expect("decodes");
            event.principal = "someone else".into();
            *bytes = postcard::to_stdvec(&event).expect("encodes");
            let broken = verify_chain(events, Some(head)).expect_err("tampering is detected");
            assert_eq!(broken.sequence, tampered, "{broken}");
        }
    }

    #[test]
    fn a_removed_event_is_named() {
        let (mut events, head) = chain(5);
        events.remove(2);
        assert_eq!(
            verify_chain(events, Some(head)).map_err(|b| b.sequence),
            Err(3)
        );
        let (mut events, head) = chain(5);
        events.pop();
        assert_eq!(
            verify_chain(events, Some(head)).map_err(|b| b.sequence),
            Err(5)
        );
    }
}
