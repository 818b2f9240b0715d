//! Rebuilds the projections from the revision log in memory and compares them with what is
//! stored, so any disagreement between the truth and what readers see is found.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::engine::{Engine, WriteBatch};
use super::fold;
use super::keyspace::{
    AlertLog, AuditByAgency, AuditByPrincipal, AuditLog, ByPlace, Checkpoints, Keyspace, Latest,
    Log, PlaceByKey, StaleWatch, SubjectEntry, SubjectJournal, audit_index_entries,
};
use super::{Store, StoreError};
use crate::domain::audit::AuditEvent;
use crate::domain::inspection::Inspection;
use crate::domain::{AlertKind, PlaceCode, RecordKey, Revision, SubjectKey};

impl Store {
    /// Every way in which the stored projections differ from a replay of the log, and every
    /// gap in the log's sequence or a record's revisions. Empty when the store is consistent.
    pub fn verify_projections(&self) -> Result<Vec<String>, StoreError> {
        let engine = &*self.shared.engine;
        let mut problems = Vec::new();
        let mut latest: BTreeMap<RecordKey, Revision> = BTreeMap::new();
        let mut journal = BTreeMap::new();
        let mut expected_sequence = 1;
        for entry in Log::scan_all(engine) {
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
            for (subject, entry) in fold::journal_entries(previous.map(|p| &p.record), &revision) {
                journal.insert((subject, sequence), entry);
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
        let mut reported_stale: BTreeMap<RecordKey, OffsetDateTime> = BTreeMap::new();
        for entry in AlertLog::scan_all(engine) {
            let (sequence, alert) = entry?;
            if sequence != expected_alert || alert.sequence != sequence {
                problems.push(format!(
                    "alert log: expected sequence {expected_alert}, found {sequence}"
                ));
            }
            expected_alert = sequence + 1;
            if alert.kind == AlertKind::StaleHighRisk {
                for key in alert.records {
                    reported_stale.insert(key, alert.raised_at);
                }
            }
        }

        let expected = Projections::of_log(&latest, journal, &reported_stale);
        let stored = Projections::stored(engine)?;
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
            let what = match Log::get(engine, sequence)? {
                Some(revision) => format!("{} (sequence {sequence})", revision.record.key),
                None => format!("sequence {sequence}"),
            };
            problems.push(format!(
                "place index: {what} at {place} disagrees with the log"
            ));
        }
        let left_over = PlaceByKey::scan_all(engine).count();
        if left_over > 0 {
            problems.push(format!(
                "place index: {left_over} entries of the old layout are left over"
            ));
        }
        for ((subject, sequence), entry) in &expected.journal {
            if stored.journal.get(&(*subject, *sequence)) != Some(entry) {
                problems.push(format!(
                    "subject journal: {} at {sequence} under {subject} is missing or wrong",
                    entry.record
                ));
            }
        }
        for (subject, sequence) in stored.journal.keys() {
            if !expected.journal.contains_key(&(*subject, *sequence)) {
                problems.push(format!(
                    "subject journal: entry at {sequence} under {subject} is not in the log"
                ));
            }
        }
        for (_, sequence) in expected.watch.symmetric_difference(&stored.watch) {
            problems.push(format!(
                "stale watch: log entry {sequence} disagrees with the log and the alert log"
            ));
        }
        problems.extend(self.verify_counters()?);
        Ok(problems)
    }

    /// Replays the whole log and compares the counters with every checkpoint on the way and
    /// with the counters readers see now.
    fn verify_counters(&self) -> Result<Vec<String>, StoreError> {
        let engine = &*self.shared.engine;
        let live = self.shared.read_inspection().clone();
        let directory = self.shared.read_directory();
        let geography = directory.fingerprint;
        let mut problems = Vec::new();
        let mut replayed = Inspection::default();
        for entry in Checkpoints::range(engine, &0, &live.applied().saturating_add(1)) {
            let (sequence, header) = entry?;
            if header.geography != geography {
                continue;
            }
            replayed = fold::replay(engine, &directory, replayed, sequence, None, None)?;
            let checkpoint = fold::load_checkpoint(engine, header, None)?;
            for place in Inspection::from_checkpoint(checkpoint).differences(&replayed) {
                problems.push(format!(
                    "checkpoint {sequence}: the counters at {place} differ from a replay of the log"
                ));
            }
        }
        let replayed = fold::replay(engine, &directory, replayed, live.applied(), None, None)?;
        for place in live.differences(&replayed) {
            problems.push(format!(
                "counters at {place} differ from a replay of the log"
            ));
        }
        for fault in audit_index_faults(engine)? {
            problems.push(fault.to_string());
        }
        Ok(problems)
    }

    /// Rewrites the latest pointers, the place index, the subject journal, the stale watch
    /// and the audit indexes from the log and the audit chain, rebuilds the counters and their
    /// checkpoints, and answers how many index entries it added or removed. For
    /// `marr verify --repair`.
    pub async fn repair_projections(&self) -> Result<usize, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(super::writer::Command::RepairProjections { reply })
            .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Records whose latest revision sits directly at `place`, least recently changed first.
    pub fn records_at(&self, place: PlaceCode) -> Result<Vec<RecordKey>, StoreError> {
        let engine = &*self.shared.engine;
        ByPlace::scan(engine, place.as_bytes())
            .map(|entry| {
                let ((_, sequence), ()) = entry?;
                let revision = Log::get(engine, &sequence)?.ok_or_else(|| {
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
        fold::records_naming(&*self.shared.engine, subject, u64::MAX)
    }
}

/// The projections written with the log: where each record's latest revision is, where each
/// latest revision sits (by place and sequence), the subject journal and the stale watch.
struct Projections {
    pointers: BTreeMap<RecordKey, u64>,
    places: BTreeSet<(PlaceCode, u64)>,
    journal: BTreeMap<(SubjectKey, u64), SubjectEntry>,
    watch: BTreeSet<(OffsetDateTime, u64)>,
}

impl Projections {
    /// What the log says they must be: each record's latest revision, the journal entries of
    /// every revision, and the watched latest revisions not yet reported stale.
    fn of_log(
        latest: &BTreeMap<RecordKey, Revision>,
        journal: BTreeMap<(SubjectKey, u64), SubjectEntry>,
        reported_stale: &BTreeMap<RecordKey, OffsetDateTime>,
    ) -> Self {
        Self {
            pointers: latest
                .iter()
                .map(|(k, r)| (k.clone(), r.sequence))
                .collect(),
            places: latest
                .values()
                .map(|r| (r.record.place, r.sequence))
                .collect(),
            journal,
            watch: latest
                .values()
                .filter(|r| crate::rules::watched(&r.record))
                .filter(|r| {
                    reported_stale
                        .get(&r.record.key)
                        .is_none_or(|raised| *raised <= r.received_at)
                })
                .map(|r| (r.received_at, r.sequence))
                .collect(),
        }
    }

    /// What the store holds.
    fn stored(engine: &dyn Engine) -> Result<Self, StoreError> {
        Ok(Self {
            pointers: Latest::scan_all(engine).collect::<Result<_, _>>()?,
            places: ByPlace::scan_all(engine)
                .map(|e| e.map(|(k, ())| k))
                .collect::<Result<_, _>>()?,
            journal: SubjectJournal::scan_all(engine).collect::<Result<_, _>>()?,
            watch: StaleWatch::scan_all(engine)
                .map(|e| e.map(|(k, ())| k))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A batch that makes the latest pointers, the place index, the subject journal and the
/// stale watch exactly what the log says, and the audit indexes exactly what the audit chain
/// says (removing what is left of an older layout's place index), and how many entries it
/// adds or removes. Run by the writer, so nothing else writes meanwhile.
pub(super) fn repair_batch(engine: &dyn Engine) -> Result<(WriteBatch, usize), StoreError> {
    let mut latest: BTreeMap<RecordKey, Revision> = BTreeMap::new();
    let mut journal = BTreeMap::new();
    for entry in Log::scan_all(engine) {
        let (sequence, revision) = entry?;
        let previous = latest.get(&revision.record.key).map(|p| &p.record);
        for (subject, entry) in fold::journal_entries(previous, &revision) {
            journal.insert((subject, sequence), entry);
        }
        latest.insert(revision.record.key.clone(), revision);
    }
    let mut reported_stale = BTreeMap::new();
    for entry in AlertLog::scan_all(engine) {
        let (_, alert) = entry?;
        if alert.kind == AlertKind::StaleHighRisk {
            for key in alert.records {
                reported_stale.insert(key, alert.raised_at);
            }
        }
    }
    let expected = Projections::of_log(&latest, journal, &reported_stale);
    let stored = Projections::stored(engine)?;
    let mut batch = WriteBatch::default();
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
    for (key, entry) in &expected.journal {
        if stored.journal.get(key) != Some(entry) {
            SubjectJournal::put(&mut batch, key, entry)?;
            changed += 1;
        }
    }
    for key in stored.journal.keys() {
        if !expected.journal.contains_key(key) {
            SubjectJournal::remove(&mut batch, key);
            changed += 1;
        }
    }
    for entry in expected.watch.difference(&stored.watch) {
        StaleWatch::put(&mut batch, entry, &())?;
        changed += 1;
    }
    for entry in stored.watch.difference(&expected.watch) {
        StaleWatch::remove(&mut batch, entry);
        changed += 1;
    }
    for entry in PlaceByKey::scan_all(engine) {
        PlaceByKey::remove(&mut batch, &entry?.0);
        changed += 1;
    }
    for fault in audit_index_faults(engine)? {
        match fault {
            AuditIndexFault::Missing { key, .. } => batch.insert(key, Vec::new()),
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
fn audit_index_faults(engine: &dyn Engine) -> Result<Vec<AuditIndexFault>, StoreError> {
    let mut faults = Vec::new();
    for entry in AuditLog::scan_all(engine) {
        let (_, event) = entry?;
        let (principal, agencies) = audit_index_entries(&event);
        for key in std::iter::once(principal).chain(agencies) {
            if !engine.contains(&key)? {
                faults.push(AuditIndexFault::Missing {
                    key,
                    event: event.sequence,
                });
            }
        }
    }
    let event_of = |sequence: u64| -> Result<Option<AuditEvent>, StoreError> {
        AuditLog::get(engine, &sequence)
    };
    for entry in AuditByPrincipal::scan_all(engine) {
        let ((principal, sequence), ()) = entry?;
        if event_of(sequence)?.is_none_or(|e| e.principal != principal) {
            faults.push(AuditIndexFault::Stray {
                key: AuditByPrincipal::key(&(principal.clone(), sequence)),
                event: sequence,
                under: principal,
            });
        }
    }
    for entry in AuditByAgency::scan_all(engine) {
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
