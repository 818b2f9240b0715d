//! Compares the projections with the revision log, entry by entry, so any disagreement
//! between the truth and what readers see is found, and rewrites them from it on repair.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use super::engine::{Engine, WriteBatch};
use super::fold;
use super::keyspace::{
    AlertLog, AuditByAgency, AuditByPrincipal, AuditLog, ByPlace, Checkpoints, Keyspace, Latest,
    Log, PlaceByKey, StaleWatch, SubjectJournal, audit_index_entries,
};
use super::{Store, StoreError};
use crate::domain::audit::AuditEvent;
use crate::domain::inspection::Inspection;
use crate::domain::{AlertKind, PlaceCode, RecordKey, Revision, SubjectKey};

impl Store {
    /// Every way in which the stored projections differ from the log, and every gap in the
    /// log's sequence or a record's revisions. Empty when the store is consistent. Reads the
    /// log and each projection once, entry by entry, with point reads between them, so memory
    /// does not grow with the register (only with what it finds wrong).
    pub fn verify_projections(&self) -> Result<Vec<String>, StoreError> {
        let engine = &*self.shared.engine;
        let mut walk = Walk::new(engine, None);
        let log_end = walk.run()?;
        let mut problems = walk.problems;
        if log_end != self.head_sequence() {
            problems.push(format!(
                "head is {} but the log ends at {log_end}",
                self.head_sequence()
            ));
        }
        let mut expected_alert = 1;
        for entry in AlertLog::scan_all(engine) {
            let (sequence, alert) = entry?;
            if sequence != expected_alert || alert.sequence != sequence {
                problems.push(format!(
                    "alert log: expected sequence {expected_alert}, found {sequence}"
                ));
            }
            expected_alert = sequence + 1;
        }
        problems.extend(self.verify_counters()?);
        problems.extend(super::reviews::review_faults(engine, None)?);
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

/// Writes a repair puts in one batch.
const REPAIR_BATCH: usize = 8192;

/// Watched latest revisions without a stale watch entry held at once while the alert log is
/// read to tell which of them were reported stale (and rightly left the watch).
const UNWATCHED_CHUNK: usize = 1 << 18;

/// Makes the latest pointers, the place index, the subject journal and the stale watch
/// exactly what the log says, and the audit indexes exactly what the audit chain says
/// (removing what is left of an older layout's place index), and answers how many entries it
/// adds or removes. Fixes go to the engine in batches of bounded size as they are found; the
/// last batch is answered for the caller to apply and make durable. Run by the writer, so
/// nothing else writes meanwhile.
pub(super) fn repair_batch(engine: &dyn Engine) -> Result<(WriteBatch, usize), StoreError> {
    let mut walk = Walk::new(engine, Some(Fixes::default()));
    walk.run()?;
    let audit_faults = audit_index_faults(engine)?;
    let mut fixes = walk.fixes.unwrap_or_default();
    for fault in audit_faults {
        match fault {
            AuditIndexFault::Missing { key, .. } => fixes.batch.insert(key, Vec::new()),
            AuditIndexFault::Stray { key, .. } => fixes.batch.remove(key),
        }
        fixes.changed += 1;
    }
    fixes.changed += super::reviews::review_faults(engine, Some(&mut fixes.batch))?
        .iter()
        .filter(|fault| fault.starts_with("overdue watch"))
        .count();
    Ok((fixes.batch, fixes.changed))
}

/// What a repair has found to rewrite and not yet applied.
#[derive(Default)]
struct Fixes {
    batch: WriteBatch,
    pending: usize,
    changed: usize,
}

/// One pass comparing the projections with the log: the log newest first, then the alert
/// log, then each projection for entries the log does not account for. Verifying, it collects
/// what differs; repairing, it also writes each fix.
///
/// Which revision is its record's latest is told without a map of every record: walking the
/// log newest first, a revision is the latest when the stored pointer names it, and is not
/// when the pointer names a later revision of the same record. Only where the pointer is
/// wrong does the walk remember the revision a newer one replaced (`superseded`), until it
/// reaches it, so that memory grows with the damage found, not with the register.
struct Walk<'a> {
    engine: &'a dyn Engine,
    /// `None` when only verifying.
    fixes: Option<Fixes>,
    problems: Vec<String>,
    /// Previous revisions of records whose pointer is wrong, not yet reached.
    superseded: HashSet<u64>,
    /// Records whose pointer was found wrong, so it cannot be followed (only when verifying:
    /// a repair has set every pointer right before it follows one).
    misdirected: HashSet<RecordKey>,
    /// Watched latest revisions with no watch entry: received at and sequence, by record.
    unwatched: HashMap<RecordKey, (OffsetDateTime, u64)>,
}

impl<'a> Walk<'a> {
    fn new(engine: &'a dyn Engine, fixes: Option<Fixes>) -> Self {
        Self {
            engine,
            fixes,
            problems: Vec::new(),
            superseded: HashSet::new(),
            misdirected: HashSet::new(),
            unwatched: HashMap::new(),
        }
    }

    /// Something wrong that no projection entry fixes (the log itself).
    fn notice(&mut self, problem: String) {
        self.problems.push(problem);
    }

    /// A projection entry that disagrees with the log, and how to put it right.
    fn found(
        &mut self,
        problem: impl FnOnce() -> String,
        fix: impl FnOnce(&mut WriteBatch) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match &mut self.fixes {
            None => self.problems.push(problem()),
            Some(fixes) => {
                fix(&mut fixes.batch)?;
                fixes.changed += 1;
                fixes.pending += 1;
                if fixes.pending >= REPAIR_BATCH {
                    self.flush()?;
                }
            }
        }
        Ok(())
    }

    /// Applies the fixes found so far, so later reads see them.
    fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(fixes) = &mut self.fixes
            && fixes.pending > 0
        {
            self.engine.apply(std::mem::take(&mut fixes.batch))?;
            fixes.pending = 0;
        }
        Ok(())
    }

    /// Runs every check and answers the sequence the log ends at.
    fn run(&mut self) -> Result<u64, StoreError> {
        let log_end = self.log()?;
        // A repair's pointers are right from here on, so the alert log and the strays are
        // judged against them.
        self.flush()?;
        self.reported_but_watched()?;
        self.stray_pointers()?;
        self.stray_places()?;
        self.stray_journal()?;
        self.stray_watch()?;
        self.old_place_index()?;
        Ok(log_end)
    }

    /// The log newest first: its sequence, each revision's link to the one before, and every
    /// projection entry of each revision.
    fn log(&mut self) -> Result<u64, StoreError> {
        let engine = self.engine;
        let first_problem = self.problems.len();
        let mut log_end = 0;
        let mut after: Option<u64> = None;
        for entry in Log::scan_all(engine).rev() {
            let (sequence, revision) = entry?;
            match after {
                None => log_end = sequence,
                Some(after) if after != sequence + 1 => self.notice(format!(
                    "log: expected sequence {}, found {after}",
                    sequence + 1
                )),
                Some(_) => {}
            }
            after = Some(sequence);
            if revision.sequence != sequence {
                self.notice(format!(
                    "log: entry {sequence} holds sequence {}",
                    revision.sequence
                ));
            }
            let previous = self.previous_of(&revision)?;
            self.check_link(sequence, &revision, previous.as_ref());
            let latest = self.check_pointer(sequence, &revision)?;
            self.check_place(sequence, &revision, latest)?;
            self.check_watch(sequence, &revision, latest)?;
            for (subject, entry) in
                fold::journal_entries(previous.as_ref().map(|p| &p.record), &revision)
            {
                if SubjectJournal::get(engine, &(subject, sequence))?.as_ref() != Some(&entry) {
                    let record = entry.record.clone();
                    self.found(
                        || {
                            format!(
                                "subject journal: {record} at {sequence} under {subject} is missing or wrong"
                            )
                        },
                        |batch| SubjectJournal::put(batch, &(subject, sequence), &entry),
                    )?;
                }
            }
        }
        if let Some(first) = after.filter(|first| *first != 1) {
            self.notice(format!("log: expected sequence 1, found {first}"));
        }
        self.resolve_unwatched()?;
        // Found newest first, told oldest first.
        self.problems[first_problem..].reverse();
        Ok(log_end)
    }

    /// The revision a revision names as its previous one, if the log holds it and it is of
    /// the same record.
    fn previous_of(&self, revision: &Revision) -> Result<Option<Revision>, StoreError> {
        let Some(previous) = revision.previous else {
            return Ok(None);
        };
        Ok(Log::get(self.engine, &previous)?
            .filter(|p| p.record.key == revision.record.key && p.sequence < revision.sequence))
    }

    fn check_link(&mut self, sequence: u64, revision: &Revision, previous: Option<&Revision>) {
        let key = &revision.record.key;
        match (revision.previous, previous) {
            (Some(named), None) => self.notice(format!(
                "log {sequence}: {key} names revision {named} of the log as its previous, which the log does not hold for it"
            )),
            _ => {
                let expected = previous.map_or(1, |p| p.revision + 1);
                if revision.revision != expected {
                    self.notice(format!(
                        "log {sequence}: {key} is revision {} (previous {:?}), expected {expected}",
                        revision.revision, revision.previous
                    ));
                }
            }
        }
    }

    /// Checks the record's pointer from its revision at `sequence`, and answers whether that
    /// revision is the record's latest.
    fn check_pointer(&mut self, sequence: u64, revision: &Revision) -> Result<bool, StoreError> {
        let engine = self.engine;
        let key = &revision.record.key;
        let pointer = Latest::get(engine, key)?;
        let sound = match pointer {
            Some(pointer) if pointer == sequence => true,
            Some(pointer) if pointer > sequence => {
                Log::get(engine, &pointer)?.is_some_and(|r| r.record.key == *key)
            }
            _ => false,
        };
        let replaced = self.superseded.remove(&sequence);
        if sound {
            return Ok(!replaced && pointer == Some(sequence));
        }
        // A pointer that is missing or names anything but a later revision of the record
        // says nothing: the newest revision the walk meets is the latest.
        if let Some(previous) = revision.previous {
            self.superseded.insert(previous);
        }
        if replaced {
            return Ok(false);
        }
        if self.fixes.is_none() {
            self.misdirected.insert(key.clone());
        }
        self.found(
            || match pointer {
                None => format!("latest {key}: missing"),
                Some(found) => format!(
                    "latest {key}: points at sequence {found}, the log's latest is {sequence}"
                ),
            },
            |batch| Latest::put(batch, key, &sequence),
        )?;
        Ok(true)
    }

    /// A revision sits in the place index exactly when it is its record's latest.
    fn check_place(
        &mut self,
        sequence: u64,
        revision: &Revision,
        latest: bool,
    ) -> Result<(), StoreError> {
        let entry = (revision.record.place, sequence);
        if self.engine.contains(&ByPlace::key(&entry))? == latest {
            return Ok(());
        }
        let key = &revision.record.key;
        self.found(
            || {
                format!(
                    "place index: {key} (sequence {sequence}) at {} disagrees with the log",
                    entry.0
                )
            },
            |batch| {
                if latest {
                    ByPlace::put(batch, &entry, &())
                } else {
                    ByPlace::remove(batch, &entry);
                    Ok(())
                }
            },
        )
    }

    /// A revision that is not a watched latest one has no watch entry; a watched latest one
    /// without an entry is right only if it was reported stale, which the alert log tells
    /// (see [`Walk::resolve_unwatched`]).
    fn check_watch(
        &mut self,
        sequence: u64,
        revision: &Revision,
        latest: bool,
    ) -> Result<(), StoreError> {
        let entry = (revision.received_at, sequence);
        let watching = self.engine.contains(&StaleWatch::key(&entry))?;
        let watched = latest && crate::rules::watched(&revision.record);
        if watched && !watching {
            self.unwatched.insert(revision.record.key.clone(), entry);
            if self.unwatched.len() >= UNWATCHED_CHUNK {
                self.resolve_unwatched()?;
            }
        } else if !watched && watching {
            self.found(
                || stale_watch_problem(sequence),
                |batch| {
                    StaleWatch::remove(batch, &entry);
                    Ok(())
                },
            )?;
        }
        Ok(())
    }

    /// Of the watched latest revisions without a watch entry, those no stale alert reported
    /// (raised after the revision was received) should be watched.
    fn resolve_unwatched(&mut self) -> Result<(), StoreError> {
        if self.unwatched.is_empty() {
            return Ok(());
        }
        for entry in AlertLog::scan_all(self.engine) {
            let (_, alert) = entry?;
            if alert.kind != AlertKind::StaleHighRisk {
                continue;
            }
            for key in &alert.records {
                if self
                    .unwatched
                    .get(key)
                    .is_some_and(|(received_at, _)| alert.raised_at > *received_at)
                {
                    self.unwatched.remove(key);
                }
            }
        }
        let mut missing: Vec<_> = std::mem::take(&mut self.unwatched).into_values().collect();
        // Newest first, as the log walk finds everything else.
        missing.sort_by_key(|(_, sequence)| std::cmp::Reverse(*sequence));
        for entry in missing {
            self.found(
                || stale_watch_problem(entry.1),
                |batch| StaleWatch::put(batch, &entry, &()),
            )?;
        }
        Ok(())
    }

    /// A watched latest revision that a stale alert reported (raised after it was received)
    /// has left the watch.
    fn reported_but_watched(&mut self) -> Result<(), StoreError> {
        let engine = self.engine;
        // The revisions found here, so one reported twice is counted once.
        let mut found = HashSet::new();
        for entry in AlertLog::scan_all(engine) {
            let (_, alert) = entry?;
            if alert.kind != AlertKind::StaleHighRisk {
                continue;
            }
            for key in &alert.records {
                if self.misdirected.contains(key) {
                    continue;
                }
                let Some(latest) = Latest::get(engine, key)?
                    .map(|sequence| Log::get(engine, &sequence))
                    .transpose()?
                    .flatten()
                    .filter(|r| r.record.key == *key)
                else {
                    continue;
                };
                let entry = (latest.received_at, latest.sequence);
                if crate::rules::watched(&latest.record)
                    && alert.raised_at > latest.received_at
                    && !found.contains(&latest.sequence)
                    && engine.contains(&StaleWatch::key(&entry))?
                {
                    found.insert(latest.sequence);
                    self.found(
                        || stale_watch_problem(entry.1),
                        |batch| {
                            StaleWatch::remove(batch, &entry);
                            Ok(())
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Pointers of records the log does not hold (a repair has set every other by now).
    fn stray_pointers(&mut self) -> Result<(), StoreError> {
        let engine = self.engine;
        for entry in Latest::scan_all(engine) {
            let (key, sequence) = entry?;
            if self.misdirected.contains(&key)
                || Log::get(engine, &sequence)?.is_some_and(|r| r.record.key == key)
            {
                continue;
            }
            self.found(
                || format!("latest {key}: not in the log"),
                |batch| {
                    Latest::remove(batch, &key);
                    Ok(())
                },
            )?;
        }
        Ok(())
    }

    /// Place index entries that name no revision at that place (the log walk saw every other).
    fn stray_places(&mut self) -> Result<(), StoreError> {
        let engine = self.engine;
        for entry in ByPlace::scan_all(engine) {
            let ((place, sequence), ()) = entry?;
            let revision = Log::get(engine, &sequence)?;
            if revision.as_ref().is_some_and(|r| r.record.place == place) {
                continue;
            }
            let what = match revision {
                Some(revision) => format!("{} (sequence {sequence})", revision.record.key),
                None => format!("sequence {sequence}"),
            };
            self.found(
                || format!("place index: {what} at {place} disagrees with the log"),
                |batch| {
                    ByPlace::remove(batch, &(place, sequence));
                    Ok(())
                },
            )?;
        }
        Ok(())
    }

    /// Journal entries the revision at their sequence does not file under their subject.
    fn stray_journal(&mut self) -> Result<(), StoreError> {
        let engine = self.engine;
        for entry in SubjectJournal::scan_all(engine) {
            let ((subject, sequence), _) = entry?;
            let filed = match Log::get(engine, &sequence)? {
                Some(revision) if revision.record.subject == Some(subject) => true,
                Some(revision) => {
                    let previous = self.previous_of(&revision)?;
                    fold::journal_entries(previous.as_ref().map(|p| &p.record), &revision)
                        .iter()
                        .any(|(s, _)| *s == subject)
                }
                None => false,
            };
            if !filed {
                self.found(
                    || {
                        format!(
                            "subject journal: entry at {sequence} under {subject} is not in the log"
                        )
                    },
                    |batch| {
                        SubjectJournal::remove(batch, &(subject, sequence));
                        Ok(())
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Watch entries that name no revision received then (the log walk saw every other).
    fn stray_watch(&mut self) -> Result<(), StoreError> {
        let engine = self.engine;
        for entry in StaleWatch::scan_all(engine) {
            let ((at, sequence), ()) = entry?;
            if Log::get(engine, &sequence)?.is_some_and(|r| r.received_at == at) {
                continue;
            }
            self.found(
                || stale_watch_problem(sequence),
                |batch| {
                    StaleWatch::remove(batch, &(at, sequence));
                    Ok(())
                },
            )?;
        }
        Ok(())
    }

    /// What is left of the first layout's place index.
    fn old_place_index(&mut self) -> Result<(), StoreError> {
        let engine = self.engine;
        if self.fixes.is_none() {
            let left_over = PlaceByKey::scan_all(engine).count();
            if left_over > 0 {
                self.notice(format!(
                    "place index: {left_over} entries of the old layout are left over"
                ));
            }
            return Ok(());
        }
        for entry in PlaceByKey::scan_all(engine) {
            let key = entry?.0;
            self.found(String::new, |batch| {
                PlaceByKey::remove(batch, &key);
                Ok(())
            })?;
        }
        Ok(())
    }
}

fn stale_watch_problem(sequence: u64) -> String {
    format!("stale watch: log entry {sequence} disagrees with the log and the alert log")
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
