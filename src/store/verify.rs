//! Rebuilds the projections from the revision log in memory and compares them with what is
//! stored, so any disagreement between the truth and what readers see is found.

use std::collections::{BTreeMap, BTreeSet};

use super::keyspace::{AlertLog, ByPlace, BySubject, Keyspace, Latest, Log};
use super::{Store, StoreError};
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
        for (place, key) in expected.places.symmetric_difference(&stored.places) {
            problems.push(format!(
                "place index: {key} at {place} disagrees with the log"
            ));
        }
        for (subject, key) in expected.subjects.symmetric_difference(&stored.subjects) {
            problems.push(format!(
                "subject index: {key} under {subject} disagrees with the log"
            ));
        }
        Ok(problems)
    }

    /// Rewrites the latest pointers and the place and subject indexes from the log, and
    /// answers how many entries it added or removed. For `marr verify --repair`; the inspection
    /// counters and the rules' memory are rebuilt from the log whenever the store opens.
    pub async fn repair_projections(&self) -> Result<usize, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(super::writer::Command::RepairProjections { reply })
            .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Records whose latest revision sits directly at `place`.
    pub fn records_at(&self, place: PlaceCode) -> Result<Vec<RecordKey>, StoreError> {
        ByPlace::scan(&self.shared.tree, place.as_bytes())
            .map(|e| e.map(|((_, key), ())| key))
            .collect()
    }

    /// Records whose latest revision names `subject`.
    pub fn records_of_subject(&self, subject: SubjectKey) -> Result<Vec<RecordKey>, StoreError> {
        BySubject::scan(&self.shared.tree, subject.as_bytes())
            .map(|e| e.map(|((_, key), ())| key))
            .collect()
    }
}

/// The projections written with the log: where each record's latest revision is, and which
/// records sit at each place and name each subject.
struct Projections {
    pointers: BTreeMap<RecordKey, u64>,
    places: BTreeSet<(PlaceCode, RecordKey)>,
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
                .map(|r| (r.record.place, r.record.key.clone()))
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
/// log says, and how many entries it adds or removes. Run by the writer, so nothing else
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
    Ok((batch, changed))
}
