//! The store's layout: which shape its indexes are in, and bringing an older store up to the
//! current one when it is opened.
//!
//! Layout 1 (no layout key) kept the place index as (place, record key) and had no audit
//! indexes. Layout 2 keeps the place index by place and recency, (place, sequence of the
//! record's latest revision), so a place's newest records are a reverse range read, and adds
//! two audit indexes, (principal, audit sequence) and (agency of a touched record, audit
//! sequence), so listing one principal's or one agency's events does not scan the chain.
//! Layout 3 replaces the subject index, (subject, record key), by the subject journal,
//! (subject, sequence) for every revision naming a subject, so the counters can be replayed
//! from any checkpoint without holding subjects in memory; adds the stale watch, (received
//! at, sequence) of every revision the staleness sweep watches; and keeps checkpoints of the
//! counters (which need no upgrade: a store without one replays its log once).

use super::StoreError;
use super::engine::{Engine, WriteBatch};
use super::fold::{forget_reported_stale, journal_entries};
use super::keyspace::{
    AuditLog, ByPlace, Keyspace, Latest, Layout, LegacyBySubject, Log, PlaceByKey, StaleWatch,
    SubjectJournal, index_audit_event,
};

/// The layout this build writes.
pub(crate) const CURRENT: u32 = 3;

/// Entries written per batch while upgrading, so an upgrade of millions of records holds
/// neither one giant batch nor the log in memory.
const UPGRADE_BATCH: usize = 10_000;

/// Brings a store of an older layout up to [`CURRENT`], before anything reads or writes it:
/// builds the place and audit indexes from the latest pointers, the log and the audit chain,
/// removes the old place index, then records the new layout. Each step only adds what is
/// missing or removes what is obsolete, so an upgrade cut short is simply run again.
pub(crate) fn upgrade(engine: &dyn Engine) -> Result<(), StoreError> {
    let layout = Layout::get(engine, &())?.unwrap_or(1);
    if layout >= CURRENT {
        return Ok(());
    }
    if engine.is_empty() {
        return record(engine, CURRENT);
    }
    let started = std::time::Instant::now();
    if layout < 2 {
        place_and_audit_indexes(engine)?;
        record(engine, 2)?;
    }
    subject_journal_and_stale_watch(engine)?;
    record(engine, CURRENT)?;
    tracing::info!(
        from = layout,
        to = CURRENT,
        seconds = started.elapsed().as_secs_f64(),
        "store layout upgraded"
    );
    Ok(())
}

/// Only once every index of a layout is whole does the store say it is in it.
fn record(engine: &dyn Engine, layout: u32) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    Layout::put(&mut batch, &(), &layout)?;
    engine.apply(batch)?;
    engine.flush()?;
    Ok(())
}

/// Layout 2: the place index by recency and the two audit indexes.
fn place_and_audit_indexes(engine: &dyn Engine) -> Result<(), StoreError> {
    let mut batch = Batches::new(engine);
    for entry in Latest::scan_all(engine) {
        let (key, sequence) = entry?;
        let revision = Log::get(engine, &sequence)?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "latest revision of {key} points at missing log entry {sequence}"
            ))
        })?;
        ByPlace::put(batch.open(), &(revision.record.place, sequence), &())?;
        batch.entered()?;
    }
    for entry in AuditLog::scan_all(engine) {
        let (_, event) = entry?;
        index_audit_event(batch.open(), &event);
        batch.entered()?;
    }
    for entry in PlaceByKey::scan_all(engine) {
        let (key, ()) = entry?;
        PlaceByKey::remove(batch.open(), &key);
        batch.entered()?;
    }
    batch.finish()
}

/// Layout 3: the subject journal from the log in order, the stale watch from each record's
/// latest revision (less what the alert log shows was reported), and the first layout's
/// subject index removed.
fn subject_journal_and_stale_watch(engine: &dyn Engine) -> Result<(), StoreError> {
    let mut batch = Batches::new(engine);
    for entry in Log::scan_all(engine) {
        let (_, revision) = entry?;
        let old = match revision.previous {
            Some(previous) => Log::get(engine, &previous)?,
            None => None,
        };
        for (subject, entry) in journal_entries(old.as_ref().map(|r| &r.record), &revision) {
            SubjectJournal::put(batch.open(), &(subject, revision.sequence), &entry)?;
            batch.entered()?;
        }
    }
    for entry in Latest::scan_all(engine) {
        let (_, sequence) = entry?;
        if let Some(revision) = Log::get(engine, &sequence)?
            && crate::rules::watched(&revision.record)
        {
            StaleWatch::put(batch.open(), &(revision.received_at, sequence), &())?;
            batch.entered()?;
        }
    }
    for key in engine
        .scan_prefix(&[LegacyBySubject::PREFIX])
        .map(|entry| entry.map(|(key, _)| key))
    {
        batch.open().remove(key?);
        batch.entered()?;
    }
    batch.finish()?;
    forget_reported_stale(engine)
}

/// Records that a store built whole in the current layout (a restore) is in it.
pub(crate) fn mark_current(batch: &mut WriteBatch) -> Result<(), StoreError> {
    Layout::put(batch, &(), &CURRENT)
}

/// A run of bounded batches.
struct Batches<'a> {
    engine: &'a dyn Engine,
    batch: WriteBatch,
    pending: usize,
}

impl<'a> Batches<'a> {
    fn new(engine: &'a dyn Engine) -> Self {
        Self {
            engine,
            batch: WriteBatch::default(),
            pending: 0,
        }
    }

    fn open(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// Counts one entry, and writes the batch once it is full.
    fn entered(&mut self) -> Result<(), StoreError> {
        self.pending += 1;
        if self.pending >= UPGRADE_BATCH {
            self.engine.apply(std::mem::take(&mut self.batch))?;
            self.pending = 0;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), StoreError> {
        if self.pending > 0 {
            self.engine.apply(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }
}
