//! The one fold of the log into the inspection counters, and what it reads: the subject
//! journal (who else names a subject, at any point of the log) and the checkpoints (the
//! counters as they stood at a sequence). Start-up, `as_of` views, releases, imports and
//! `marr verify` all replay through here, never holding the log or its records in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use super::engine::{Engine, WriteBatch};
use super::keyspace::{
    AlertLog, CheckpointPlaces, Checkpoints, Keyspace, Log, StaleWatch, SubjectEntry,
    SubjectJournal,
};
use super::{Directory, StoreError};
use crate::domain::PlaceCode;
use crate::domain::inspection::{Checkpoint, CheckpointHeader, Inspection, Others, Presence};
use crate::domain::{AgencyId, AgencyKind, AlertKind, RecordKey, Revision, RiskRecord, SubjectKey};

/// Called with the counters at each multiple of an interval during a replay.
pub(super) type AtInterval<'a> = &'a mut dyn FnMut(&Inspection) -> Result<(), StoreError>;

/// The journal entries a revision files: under the subject it names, and a closing entry
/// under a subject its previous revision named and it no longer does.
pub(super) fn journal_entries(
    old: Option<&RiskRecord>,
    new: &Revision,
) -> Vec<(SubjectKey, SubjectEntry)> {
    let record = &new.record;
    let mut entries = Vec::new();
    if let Some(old) = old
        && let Some(subject) = old.subject.filter(|s| Some(*s) != record.subject)
    {
        entries.push((
            subject,
            SubjectEntry {
                record: record.key.clone(),
                place: old.place,
                active: false,
                named: false,
            },
        ));
    }
    if let Some(subject) = record.subject {
        entries.push((
            subject,
            SubjectEntry {
                record: record.key.clone(),
                place: record.place,
                active: record.is_active(),
                named: true,
            },
        ));
    }
    entries
}

/// Each record's last journal entry under a subject: who names it, where, and whether active.
pub(super) type Filed = BTreeMap<RecordKey, SubjectEntry>;

/// Each record's last journal entry under `subject` before `before`.
fn journal_of(engine: &dyn Engine, subject: SubjectKey, before: u64) -> Result<Filed, StoreError> {
    let mut last = BTreeMap::new();
    // Most subjects are new: one look tells whether the journal holds anything under it
    // before a range is opened.
    let mut prefix = vec![SubjectJournal::PREFIX];
    prefix.extend_from_slice(subject.as_bytes());
    let filed = engine
        .first_after(&prefix)?
        .is_some_and(|(key, _)| key.starts_with(&prefix));
    if filed {
        for entry in SubjectJournal::range(engine, &(subject, 0), &(subject, before)) {
            let (_, entry) = entry?;
            last.insert(entry.record.clone(), entry);
        }
    }
    Ok(last)
}

/// Records whose latest revision, as of `until`, names `subject` (active or not).
pub(super) fn records_naming(
    engine: &dyn Engine,
    subject: SubjectKey,
    until: u64,
) -> Result<Vec<RecordKey>, StoreError> {
    Ok(journal_of(engine, subject, until.saturating_add(1))?
        .into_iter()
        .filter(|(_, entry)| entry.named)
        .map(|(key, _)| key)
        .collect())
}

/// For each subject `new` names or its previous revision named, the other active records
/// naming it just before `new` was written, from `filed` (the journal as it stood then).
pub(super) fn others(
    old: Option<&RiskRecord>,
    new: &Revision,
    mut filed: impl FnMut(SubjectKey) -> Result<Filed, StoreError>,
) -> Result<Others, StoreError> {
    let mut others = Others::new();
    let subjects = old
        .and_then(|r| r.subject)
        .into_iter()
        .chain(new.record.subject);
    for subject in subjects {
        if others.contains_key(&subject) {
            continue;
        }
        let presences = filed(subject)?
            .into_iter()
            .filter(|(key, entry)| entry.named && entry.active && *key != new.record.key)
            .map(|(record, entry)| Presence {
                record,
                place: entry.place,
            })
            .collect();
        others.insert(subject, presences);
    }
    Ok(others)
}

/// The writer's copy of the journal for the subjects it met lately: exact for every subject it
/// holds (the writer files every entry here as it files it in a batch), and bounded, so a
/// subject's next change costs no read of the journal while it is held. Subjects met in the
/// batch being written are always held, so entries not yet durable are never missed.
pub(super) struct SubjectCache {
    recent: HashMap<SubjectKey, Filed>,
    older: HashMap<SubjectKey, Filed>,
}

/// Subjects the writer holds, at most (two generations of half as many).
const CACHED_SUBJECTS: usize = 100_000;

impl SubjectCache {
    pub(super) fn new() -> Self {
        Self {
            recent: HashMap::new(),
            older: HashMap::new(),
        }
    }

    /// The journal under `subject` as the batch being written has left it so far.
    pub(super) fn filed(
        &mut self,
        engine: &dyn Engine,
        subject: SubjectKey,
    ) -> Result<Filed, StoreError> {
        if let Some(filed) = self.recent.get(&subject) {
            return Ok(filed.clone());
        }
        let filed = match self.older.remove(&subject) {
            Some(filed) => filed,
            // Not met lately, so nothing of it is in the batch: the engine has it all.
            None => journal_of(engine, subject, u64::MAX)?,
        };
        self.recent.insert(subject, filed.clone());
        Ok(filed)
    }

    /// Reads the journals of the subjects not held yet, together, so deciding a batch does
    /// not read them one by one; they are held as [`SubjectCache::filed`] would hold them.
    pub(super) fn read_ahead(
        &mut self,
        engine: &dyn Engine,
        subjects: impl Iterator<Item = SubjectKey>,
    ) -> Result<(), StoreError> {
        let missing = subjects.filter(|subject| {
            !self.recent.contains_key(subject) && !self.older.contains_key(subject)
        });
        let journals = Journals::read(engine, missing, u64::MAX)?;
        for (subject, entries) in journals.0 {
            let mut filed = Filed::new();
            for (_, entry) in entries {
                filed.insert(entry.record.clone(), entry);
            }
            self.recent.insert(subject, filed);
        }
        Ok(())
    }

    /// Files an entry just put in the batch (its subject was met by [`SubjectCache::filed`]).
    pub(super) fn file(&mut self, subject: SubjectKey, entry: SubjectEntry) {
        self.recent
            .entry(subject)
            .or_default()
            .insert(entry.record.clone(), entry);
    }

    /// Between batches: the older generation is let go once the recent one is full.
    pub(super) fn end_batch(&mut self) {
        if self.recent.len() >= CACHED_SUBJECTS / 2 {
            self.older = std::mem::take(&mut self.recent);
        }
    }

    /// Forgets everything (after a failed write or a repair, when the journal may differ).
    pub(super) fn clear(&mut self) {
        self.recent.clear();
        self.older.clear();
    }
}

impl Directory {
    pub(super) fn kind_of(&self, agency: &AgencyId) -> AgencyKind {
        self.agencies
            .get(agency)
            .map_or(AgencyKind::Other, |a| a.kind)
    }
}

/// Folds the log after `inspection.applied()` up to `until` into the counters. `every`, when
/// given, is called at each multiple of its interval with the counters as they stand there.
/// `within`, when given, folds only the changes of records that are or were in that place:
/// the counters are then right for it and the places inside it, and for nothing else.
pub(super) fn replay(
    engine: &dyn Engine,
    directory: &Directory,
    mut inspection: Inspection,
    until: u64,
    mut every: Option<(u64, AtInterval<'_>)>,
    within: Option<PlaceCode>,
) -> Result<Inspection, StoreError> {
    let from = inspection.applied() + 1;
    if from > until {
        return Ok(inspection);
    }
    let geography = &directory.geography;
    let kind_of = |agency: &AgencyId| directory.kind_of(agency);
    let end = until.saturating_add(1);
    let mut log = Log::range(engine, &from, &end);
    loop {
        let chunk: Vec<(u64, Revision)> =
            log.by_ref().take(REPLAY_CHUNK).collect::<Result<_, _>>()?;
        let Some(&(last, _)) = chunk.last() else {
            break;
        };
        let replaced = replaced_revisions(engine, &chunk)?;
        let old_of = |revision: &Revision| -> Result<Option<&RiskRecord>, StoreError> {
            revision
                .previous
                .map(|previous| {
                    replaced.get(&previous).map(|r| &r.record).ok_or_else(|| {
                        StoreError::Corrupt(format!("log entry {previous} is missing"))
                    })
                })
                .transpose()
        };
        let mut concerned = Vec::with_capacity(chunk.len());
        for (_, revision) in &chunk {
            let old = old_of(revision)?;
            concerned.push(within.is_none_or(|place| {
                geography.within(revision.record.place, place)
                    || old.is_some_and(|old| geography.within(old.place, place))
            }));
        }
        let subjects = chunk
            .iter()
            .zip(&concerned)
            .filter(|(_, concerned)| **concerned)
            .map(|((_, revision), _)| {
                Ok([
                    old_of(revision)?.and_then(|r| r.subject),
                    revision.record.subject,
                ])
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let journals = Journals::read(engine, subjects.into_iter().flatten().flatten(), last)?;
        for ((sequence, revision), concerned) in chunk.iter().zip(concerned) {
            let sequence = *sequence;
            if concerned {
                let old = old_of(revision)?;
                let others = others(old, revision, |subject| {
                    Ok(journals.before(subject, sequence))
                })?;
                inspection.apply(
                    geography,
                    &kind_of,
                    old,
                    &revision.record,
                    sequence,
                    &others,
                );
            }
            if let Some((interval, at)) = every.as_mut()
                && sequence % *interval == 0
            {
                at(&inspection)?;
            }
        }
    }
    Ok(inspection)
}

/// Log entries a replay reads and folds together: the revisions they replace and their
/// subjects' journals are read for all of them at once, a round trip each on PostgreSQL in
/// place of one or two per entry.
const REPLAY_CHUNK: usize = 512;

/// Every revision `chunk` replaces, by sequence: from the chunk itself, or read in one go.
fn replaced_revisions(
    engine: &dyn Engine,
    chunk: &[(u64, Revision)],
) -> Result<HashMap<u64, Revision>, StoreError> {
    let mut replaced: HashMap<u64, Revision> = HashMap::new();
    let first = chunk.first().map_or(0, |(sequence, _)| *sequence);
    let mut outside = Vec::new();
    for (_, revision) in chunk {
        if let Some(previous) = revision.previous {
            if previous >= first {
                if let Some((_, earlier)) = chunk.iter().find(|(s, _)| *s == previous) {
                    replaced.insert(previous, earlier.clone());
                }
            } else {
                outside.push((previous, previous + 1));
            }
        }
    }
    outside.sort_unstable();
    outside.dedup();
    for (sequence, revision) in Log::ranges(engine, &outside)? {
        replaced.insert(sequence, revision);
    }
    Ok(replaced)
}

/// Subjects' journals up to a point of the log, read together; each answers as
/// [`journal_of`] would at any sequence up to that point.
struct Journals(HashMap<SubjectKey, Vec<(u64, SubjectEntry)>>);

impl Journals {
    /// The journals of `subjects` before sequence `until`.
    fn read(
        engine: &dyn Engine,
        subjects: impl Iterator<Item = SubjectKey>,
        until: u64,
    ) -> Result<Self, StoreError> {
        let mut subjects: Vec<SubjectKey> = subjects.collect();
        subjects.sort_unstable();
        subjects.dedup();
        let bounds: Vec<_> = subjects
            .iter()
            .map(|subject| ((*subject, 0), (*subject, until)))
            .collect();
        let mut journals: HashMap<SubjectKey, Vec<(u64, SubjectEntry)>> = HashMap::new();
        for ((subject, sequence), entry) in SubjectJournal::ranges(engine, &bounds)? {
            journals.entry(subject).or_default().push((sequence, entry));
        }
        Ok(Self(journals))
    }

    /// The subject's journal before `sequence`: the last entry of each record.
    fn before(&self, subject: SubjectKey, sequence: u64) -> Filed {
        let mut last = BTreeMap::new();
        for (_, entry) in self
            .0
            .get(&subject)
            .into_iter()
            .flatten()
            .take_while(|(filed, _)| *filed < sequence)
        {
            last.insert(entry.record.clone(), entry.clone());
        }
        last
    }
}

/// Replays the whole log up to `until` into fresh counters, in place of every checkpoint
/// (made under another geography, or not to be trusted), writing one at each multiple of
/// `every`. Gives up with [`StoreError::Closed`] as soon as `stop` is set.
pub(super) fn rebuild(
    engine: &dyn Engine,
    directory: &Directory,
    until: u64,
    every: u64,
    stop: &AtomicBool,
) -> Result<Inspection, StoreError> {
    remove_checkpoints(engine)?;
    let mut at = |inspection: &Inspection| -> Result<(), StoreError> {
        if stop.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        if inspection.applied().is_multiple_of(every) {
            let mut batch = WriteBatch::default();
            put_checkpoint(
                engine,
                &mut batch,
                &inspection.checkpoint(directory.fingerprint),
            )?;
            engine.apply(batch)?;
        }
        Ok(())
    };
    replay(
        engine,
        directory,
        Inspection::default(),
        until,
        Some((1, &mut at)),
        None,
    )
}

/// Adds a checkpoint to `batch`: its header and each place's counters, in place of anything
/// a removal cut short left under the same sequence.
pub(super) fn put_checkpoint(
    engine: &dyn Engine,
    batch: &mut WriteBatch,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    let sequence = checkpoint.header.applied;
    for entry in CheckpointPlaces::scan(engine, &sequence.to_be_bytes()) {
        CheckpointPlaces::remove(batch, &entry?.0);
    }
    Checkpoints::put(batch, &sequence, &checkpoint.header)?;
    for place in &checkpoint.places {
        CheckpointPlaces::put(batch, &(sequence, place.place), place)?;
    }
    Ok(())
}

/// Removes every checkpoint (the counters are about to be rebuilt), headers first so that a
/// removal cut short leaves no header without its places.
pub(super) fn remove_checkpoints(engine: &dyn Engine) -> Result<(), StoreError> {
    for prefix in [Checkpoints::PREFIX, CheckpointPlaces::PREFIX] {
        let mut batch = WriteBatch::default();
        let mut pending = 0;
        for entry in engine.scan_prefix(&[prefix]) {
            batch.remove(entry?.0);
            pending += 1;
            if pending == 10_000 {
                engine.apply(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        engine.apply(batch)?;
    }
    Ok(())
}

/// The last checkpoint at or before `until` that was made under this geography.
pub(super) fn checkpoint_before(
    engine: &dyn Engine,
    until: u64,
    geography: u64,
) -> Result<Option<CheckpointHeader>, StoreError> {
    match Checkpoints::range(engine, &0, &until.saturating_add(1)).next_back() {
        Some(entry) => {
            let (_, header) = entry?;
            Ok((header.geography == geography).then_some(header))
        }
        None => Ok(None),
    }
}

/// A checkpoint with every place's counters, or (`places`) only these places'.
pub(super) fn load_checkpoint(
    engine: &dyn Engine,
    header: CheckpointHeader,
    places: Option<&[PlaceCode]>,
) -> Result<Checkpoint, StoreError> {
    let sequence = header.applied;
    let places = match places {
        None => CheckpointPlaces::scan(engine, &sequence.to_be_bytes())
            .map(|entry| entry.map(|(_, place)| place))
            .collect::<Result<_, _>>()?,
        Some(codes) => {
            let mut found = Vec::new();
            for code in codes {
                found.extend(CheckpointPlaces::get(engine, &(sequence, *code))?);
            }
            found
        }
    };
    Ok(Checkpoint { header, places })
}

/// The counters as they stood when `until` was written: from the nearest earlier checkpoint,
/// replaying only the log after it.
pub(super) fn counters_at(
    engine: &dyn Engine,
    directory: &Directory,
    until: u64,
) -> Result<Inspection, StoreError> {
    let start = match checkpoint_before(engine, until, directory.fingerprint)? {
        Some(header) => Inspection::from_checkpoint(load_checkpoint(engine, header, None)?),
        None => Inspection::default(),
    };
    replay(engine, directory, start, until, None, None)
}

/// The counters of `place` and its children as they stood when `until` was written: only
/// their counters are read from the nearest earlier checkpoint, and only changes inside the
/// place are replayed. The answer is right for those places and no others.
pub(super) fn counters_of_place_at(
    engine: &dyn Engine,
    directory: &Directory,
    place: PlaceCode,
    until: u64,
) -> Result<Inspection, StoreError> {
    let start = match checkpoint_before(engine, until, directory.fingerprint)? {
        Some(header) => {
            let places: Vec<PlaceCode> = std::iter::once(place)
                .chain(
                    directory
                        .geography
                        .children(place)
                        .into_iter()
                        .map(|p| p.code),
                )
                .collect();
            Inspection::from_checkpoint(load_checkpoint(engine, header, Some(&places))?)
        }
        None => Inspection::default(),
    };
    replay(engine, directory, start, until, None, Some(place))
}

/// Takes out of the stale watch every revision the alert log shows was already reported
/// stale (an alert raised after the revision was received), for stores whose watch is
/// rebuilt from the log (an upgrade, a restore).
pub(super) fn forget_reported_stale(engine: &dyn Engine) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    for entry in AlertLog::scan_all(engine) {
        let (_, alert) = entry?;
        if alert.kind != AlertKind::StaleHighRisk {
            continue;
        }
        for key in &alert.records {
            if let Some(revision) = Log::latest(engine, key)?
                && alert.raised_at > revision.received_at
            {
                StaleWatch::remove(&mut batch, &(revision.received_at, revision.sequence));
            }
        }
    }
    engine.apply(batch)?;
    Ok(())
}
