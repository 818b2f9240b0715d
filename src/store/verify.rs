//! Rebuilds the projections from the revision log in memory and compares them with what is
//! stored, so any disagreement between the truth and what readers see is found.

use std::collections::{BTreeMap, BTreeSet};

use super::keyspace::{
    AlertLog, AuditByAgency, AuditByPrincipal, AuditLog, ByPlace, BySubject, Keyspace, Latest, Log,
    PlaceByKey, audit_index_entries,
};
use super::{Store, StoreError};
use crate::domain::audit::AuditEvent;
use crate::domain::{PlaceCode, RecordKey, Revision, SubjectKey};

impl Store {
    /// Every way in which the stored projections differ from a replay of the log, and every
    /// gap in the log's sequence or a record's revisions. Empty when the store is consistent.
    pub fn verify_projections(&self) -> Result<Vec<String>, StoreError> {
        let tree = &self.shared.tree;
        let mut problems = Vec::new();
        let mut latest: BTreeMap<RecordKey, Revision> = BTreeMap::new();
        let mut expected_sequence = 1;
        for entry in Log::scan_all(tree) {
            let (sequence, revision) = entry?;
            if sequence != expected_sequence || revision.sequence != sequence {
                problems.push(format!(
                    "log: expected sequence {expected_sequence}, found {sequence}"
                ));
            }
            expected_sequence = sequence + 1;
            let previous = latest.get(&revision.record.key);
            let expected_revision = previous.map_or(1, |p| p.revision + 1);
            if revision.revision != expected_revision
                || revision.previous != previous.map(|p| p.sequence)
            {
                problems.push(format!(
                    "log {sequence}: {} is revision {} (previous {:?}), expected {expected_revision}",
                    revision.record.key, revision.revision, revision.previous
                ));
            }
            latest.insert(revision.record.key.clone(), revision);
        }
        if expected_sequence - 1 != self.head_sequence() {
            problems.push(format!(
                "head is {} but the log ends at {}",
                self.head_sequence(),
                expected_sequence - 1
            ));
        }

        let mut expected_alert = 1;
        for entry in AlertLog::scan_all(tree) {
            let (sequence, alert) = entry?;
            if sequence != expected_alert || alert.sequence != sequence {
                problems.push(format!(
                    "alert log: expected sequence {expected_alert}, found {sequence}"
                ));
            }
            expected_alert = sequence + 1;
        }

        let expected = Projections::of_log(&latest);
        let stored = Projections::stored(tree)?;
        for (key, sequence) in &expected.pointers {
            match stored.pointers.get(key) {
                Some(found) if found == sequence => {}
                Some(found) => problems.push(format!(
                    "latest {key}: points at sequence {found}, the log's latest is {sequence}"
                )),
                None => problems.push(format!("latest {key}: missing")),
            }
        }
        for key in stored.pointers.keys().filter(|k| !latest.contains_key(*k)) {
            problems.push(format!("latest {key}: not in the log"));
        }
        for (place, sequence) in expected.places.symmetric_difference(&stored.places) {
            let what = match Log::get(tree, sequence)? {
                Some(revision) => format!("{} (sequence {sequence})", revision.record.key),
                None => format!("sequence {sequence}"),
            };
            problems.push(format!(
                "place index: {what} at {place} disagrees with the log"
            ));
        }
        let left_over = PlaceByKey::scan_all(tree).count();
        if left_over > 0 {
            problems.push(format!(
                "place index: {left_over} entries of the old layout are left over"
            ));
        }
        for (subject, key) in expected.subjects.symmetric_difference(&stored.subjects) {
            problems.push(format!(
                "subject index: {key} under {subject} disagrees with the log"
            ));
        }
        for fault in audit_index_faults(tree)? {
            problems.push(fault.to_string());
        }
        Ok(problems)
    }

    /// Rewrites the latest pointers and the place, subject and audit indexes from the log, and
    /// answers how many entries it added or removed. For `marr verify --repair`; the inspection
    /// counters and the rules' memory are rebuilt from the log whenever the store opens.
    pub async fn repair_projections(&self) -> Result<usize, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(super::writer::Command::RepairProjections { reply })
            .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Records whose latest revision sits directly at `place`, least recently changed first.
    pub fn records_at(&self, place: PlaceCode) -> Result<Vec<RecordKey>, StoreError> {
        let tree = &self.shared.tree;
        ByPlace::scan(tree, place.as_bytes())
            .map(|entry| {
                let ((_, sequence), ()) = entry?;
                let revision = Log::get(tree, &sequence)?.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "place index points at missing log entry {sequence}"
                    ))
                })?;
                Ok(revision.record.key)
            })
            .collect()
    }

    /// Records whose latest revision names `subject`.
    pub fn records_of_subject(&self, subject: SubjectKey) -> Result<Vec<RecordKey>, StoreError> {
        BySubject::scan(&self.shared.tree, subject.as_bytes())
            .map(|e| e.map(|((_, key), ())| key))
            .collect()
    }
}

/// The projections written with the log: where each record's latest revision is, where each
/// latest revision sits (by place and sequence), and which records name each subject.
struct Projections {
    pointers: BTreeMap<RecordKey, u64>,
    places: BTreeSet<(PlaceCode, u64)>,
    subjects: BTreeSet<(SubjectKey, RecordKey)>,
}

impl Projections {
    /// What the log says they must be, from each record's latest revision.
    fn of_log(latest: &BTreeMap<RecordKey, Revision>) -> Self {
        Self {
            pointers: latest
                .iter()
                .map(|(k, r)| (k.clone(), r.sequence))
                .collect(),
            places: latest
                .values()
                .map(|r| (r.record.place, r.sequence))
                .collect(),
            subjects: latest
                .values()
                .filter_map(|r| r.record.subject.map(|s| (s, r.record.key.clone())))
                .collect(),
        }
    }

    /// What the store holds.
    fn stored(tree: &sled::Tree) -> Result<Self, StoreError> {
        Ok(Self {
            pointers: Latest::scan_all(tree).collect::<Result<_, _>>()?,
            places: ByPlace::scan_all(tree)
                .map(|e| e.map(|(k, ())| k))
                .collect::<Result<_, _>>()?,
            subjects: BySubject::scan_all(tree)
                .map(|e| e.map(|(k, ())| k))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A batch that makes the latest pointers and the place and subject indexes exactly what the
/// log says, and the audit indexes exactly what the audit chain says (removing what is left
/// of an older layout's place index), and how many entries it adds or removes. Run by the writer, so nothing else
/// writes meanwhile.
pub(super) fn repair_batch(tree: &sled::Tree) -> Result<(sled::Batch, usize), StoreError> {
    let mut latest = BTreeMap::new();
    for entry in Log::scan_all(tree) {
        let (_, revision) = entry?;
        latest.insert(revision.record.key.clone(), revision);
    }
    let expected = Projections::of_log(&latest);
    let stored = Projections::stored(tree)?;
    let mut batch = sled::Batch::default();
    let mut changed = 0;
    for (key, sequence) in &expected.pointers {
        if stored.pointers.get(key) != Some(sequence) {
            Latest::put(&mut batch, key, sequence)?;
            changed += 1;
        }
    }
    for key in stored
        .pointers
        .keys()
        .filter(|k| !expected.pointers.contains_key(*k))
    {
        Latest::remove(&mut batch, key);
        changed += 1;
    }
    for entry in expected.places.difference(&stored.places) {
        ByPlace::put(&mut batch, entry, &())?;
        changed += 1;
    }
    for entry in stored.places.difference(&expected.places) {
        ByPlace::remove(&mut batch, entry);
        changed += 1;
    }
    for entry in expected.subjects.difference(&stored.subjects) {
        BySubject::put(&mut batch, entry, &())?;
        changed += 1;
    }
    for entry in stored.subjects.difference(&expected.subjects) {
        BySubject::remove(&mut batch, entry);
        changed += 1;
    }
    for entry in PlaceByKey::scan_all(tree) {
        PlaceByKey::remove(&mut batch, &entry?.0);
        changed += 1;
    }
    for fault in audit_index_faults(tree)? {
        match fault {
            AuditIndexFault::Missing { key, .. } => batch.insert(key, &[][..]),
            AuditIndexFault::Stray { key, .. } => batch.remove(key),
        }
        changed += 1;
    }
    Ok((batch, changed))
}

/// An audit index entry that disagrees with the audit chain.
enum AuditIndexFault {
    /// The chain holds the event but the index does not list it.
    Missing { key: Vec<u8>, event: u64 },
    /// The index lists an event the chain does not hold under that principal or agency.
    Stray {
        key: Vec<u8>,
        event: u64,
        under: String,
    },
}

impl std::fmt::Display for AuditIndexFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { key, event } => write!(
                f,
                "audit {} index: event {event} is missing",
                index_name(key)
            ),
            Self::Stray { key, event, under } => write!(
                f,
                "audit {} index: event {event} under {under} disagrees with the chain",
                index_name(key)
            ),
        }
    }
}

fn index_name(key: &[u8]) -> &'static str {
    if key.first() == Some(&AuditByPrincipal::PREFIX) {
        "principal"
    } else {
        "agency"
    }
}

/// Every way the audit indexes differ from the chain, one event and one entry at a time (the
/// chain may be far larger than memory).
fn audit_index_faults(tree: &sled::Tree) -> Result<Vec<AuditIndexFault>, StoreError> {
    let mut faults = Vec::new();
    for entry in AuditLog::scan_all(tree) {
        let (_, event) = entry?;
        let (principal, agencies) = audit_index_entries(&event);
        for key in std::iter::once(principal).chain(agencies) {
            if !tree.contains_key(&key)? {
                faults.push(AuditIndexFault::Missing {
                    key,
                    event: event.sequence,
                });
            }
        }
    }
    let event_of = |sequence: u64| -> Result<Option<AuditEvent>, StoreError> {
        AuditLog::get(tree, &sequence)
    };
    for entry in AuditByPrincipal::scan_all(tree) {
        let ((principal, sequence), ()) = entry?;
        if event_of(sequence)?.is_none_or(|e| e.principal != principal) {
            faults.push(AuditIndexFault::Stray {
                key: AuditByPrincipal::key(&(principal.clone(), sequence)),
                event: sequence,
                under: principal,
            });
        }
    }
    for entry in AuditByAgency::scan_all(tree) {
        let ((agency, sequence), ()) = entry?;
        if !event_of(sequence)?.is_some_and(|e| e.records.iter().any(|r| r.agency == agency)) {
            faults.push(AuditIndexFault::Stray {
                key: AuditByAgency::key(&(agency.clone(), sequence)),
                event: sequence,
                under: agency.to_string(),
            });
        }
    }
    Ok(faults)
}
