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

        let stored: BTreeMap<RecordKey, u64> = Latest::scan_all(tree).collect::<Result<_, _>>()?;
        for (key, revision) in &latest {
            match stored.get(key) {
                Some(sequence) if *sequence == revision.sequence => {}
                Some(sequence) => problems.push(format!(
                    "latest {key}: points at sequence {sequence}, the log's latest is {}",
                    revision.sequence
                )),
                None => problems.push(format!("latest {key}: missing")),
            }
        }
        for key in stored.keys().filter(|k| !latest.contains_key(*k)) {
            problems.push(format!("latest {key}: not in the log"));
        }

        let places: BTreeSet<(PlaceCode, RecordKey)> = latest
            .values()
            .map(|r| (r.record.place, r.record.key.clone()))
            .collect();
        let stored_places: BTreeSet<(PlaceCode, RecordKey)> = ByPlace::scan_all(tree)
            .map(|e| e.map(|(k, ())| k))
            .collect::<Result<_, _>>()?;
        for (place, key) in places.symmetric_difference(&stored_places) {
            problems.push(format!(
                "place index: {key} at {place} disagrees with the log"
            ));
        }

        let subjects: BTreeSet<(SubjectKey, RecordKey)> = latest
            .values()
            .filter_map(|r| r.record.subject.map(|s| (s, r.record.key.clone())))
            .collect();
        let stored_subjects: BTreeSet<(SubjectKey, RecordKey)> = BySubject::scan_all(tree)
            .map(|e| e.map(|(k, ())| k))
            .collect::<Result<_, _>>()?;
        for (subject, key) in subjects.symmetric_difference(&stored_subjects) {
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

/// The latest revision of every record, by replaying the log.
fn replay_latest(tree: &sled::Tree) -> Result<BTreeMap<RecordKey, Revision>, StoreError> {
    let mut latest = BTreeMap::new();
    for entry in Log::scan_all(tree) {
        let (_, revision) = entry?;
        latest.insert(revision.record.key.clone(), revision);
    }
    Ok(latest)
}

/// A batch that makes the latest pointers and the place and subject indexes exactly what the
/// log says, and how many entries it adds or removes. Run by the writer, so nothing else
/// writes meanwhile.
pub(super) fn repair_batch(tree: &sled::Tree) -> Result<(sled::Batch, usize), StoreError> {
    let latest = replay_latest(tree)?;
    let mut batch = sled::Batch::default();
    let mut changed = 0;

    let stored: BTreeMap<RecordKey, u64> = Latest::scan_all(tree).collect::<Result<_, _>>()?;
    for (key, revision) in &latest {
        if stored.get(key) != Some(&revision.sequence) {
            Latest::put(&mut batch, key, &revision.sequence)?;
            changed += 1;
        }
    }
    for key in stored.keys().filter(|k| !latest.contains_key(*k)) {
        Latest::remove(&mut batch, key);
        changed += 1;
    }

    let places: BTreeSet<(PlaceCode, RecordKey)> = latest
        .values()
        .map(|r| (r.record.place, r.record.key.clone()))
        .collect();
    let stored_places: BTreeSet<(PlaceCode, RecordKey)> = ByPlace::scan_all(tree)
        .map(|e| e.map(|(k, ())| k))
        .collect::<Result<_, _>>()?;
    for entry in places.difference(&stored_places) {
        ByPlace::put(&mut batch, entry, &())?;
        changed += 1;
    }
    for entry in stored_places.difference(&places) {
        ByPlace::remove(&mut batch, entry);
        changed += 1;
    }

    let subjects: BTreeSet<(SubjectKey, RecordKey)> = latest
        .values()
        .filter_map(|r| r.record.subject.map(|s| (s, r.record.key.clone())))
        .collect();
    let stored_subjects: BTreeSet<(SubjectKey, RecordKey)> = BySubject::scan_all(tree)
        .map(|e| e.map(|(k, ())| k))
        .collect::<Result<_, _>>()?;
    for entry in subjects.difference(&stored_subjects) {
        BySubject::put(&mut batch, entry, &())?;
        changed += 1;
    }
    for entry in stored_subjects.difference(&subjects) {
        BySubject::remove(&mut batch, entry);
        changed += 1;
    }
    Ok((batch, changed))
}
