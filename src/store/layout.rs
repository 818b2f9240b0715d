//! The store's layout: which shape its indexes are in, and bringing an older store up to the
//! current one when it is opened.
//!
//! Layout 1 (no layout key) kept the place index as (place, record key) and had no audit
//! indexes. Layout 2 keeps the place index by place and recency, (place, sequence of the
//! record's latest revision), so a place's newest records are a reverse range read, and adds
//! two audit indexes, (principal, audit sequence) and (agency of a touched record, audit
//! sequence), so listing one principal's or one agency's events does not scan the chain.

use super::StoreError;
use super::keyspace::{
    AuditLog, ByPlace, Keyspace, Latest, Layout, Log, PlaceByKey, index_audit_event,
};

/// The layout this build writes.
pub(crate) const CURRENT: u32 = 2;

/// Entries written per batch while upgrading, so an upgrade of millions of records holds
/// neither one giant batch nor the log in memory.
const UPGRADE_BATCH: usize = 10_000;

/// Brings a store of an older layout up to [`CURRENT`], before anything reads or writes it:
/// builds the place and audit indexes from the latest pointers, the log and the audit chain,
/// removes the old place index, then records the new layout. Each step only adds what is
/// missing or removes what is obsolete, so an upgrade cut short is simply run again.
pub(crate) fn upgrade(tree: &sled::Tree) -> Result<(), StoreError> {
    let layout = Layout::get(tree, &())?.unwrap_or(1);
    if layout >= CURRENT {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut batch = Batches::new(tree);
    let mut records = 0u64;
    for entry in Latest::scan_all(tree) {
        let (key, sequence) = entry?;
        let revision = Log::get(tree, &sequence)?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "latest revision of {key} points at missing log entry {sequence}"
            ))
        })?;
        ByPlace::put(batch.open(), &(revision.record.place, sequence), &())?;
        batch.entered()?;
        records += 1;
    }
    let mut events = 0u64;
    for entry in AuditLog::scan_all(tree) {
        let (_, event) = entry?;
        index_audit_event(batch.open(), &event);
        batch.entered()?;
        events += 1;
    }
    for entry in PlaceByKey::scan_all(tree) {
        let (key, ()) = entry?;
        PlaceByKey::remove(batch.open(), &key);
        batch.entered()?;
    }
    batch.finish()?;
    // Only once every index is whole does the store say so.
    tree.insert(Layout::key(&()), postcard::to_stdvec(&CURRENT)?)?;
    tree.flush()?;
    tracing::info!(
        from = layout,
        to = CURRENT,
        records,
        events,
        seconds = started.elapsed().as_secs_f64(),
        "store layout upgraded"
    );
    Ok(())
}

/// Records that a store built whole in the current layout (a restore) is in it.
pub(crate) fn mark_current(batch: &mut sled::Batch) -> Result<(), StoreError> {
    Layout::put(batch, &(), &CURRENT)
}

/// A run of bounded batches.
struct Batches<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    pending: usize,
}

impl<'a> Batches<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            batch: sled::Batch::default(),
            pending: 0,
        }
    }

    fn open(&mut self) -> &mut sled::Batch {
        &mut self.batch
    }

    /// Counts one entry, and writes the batch once it is full.
    fn entered(&mut self) -> Result<(), StoreError> {
        self.pending += 1;
        if self.pending >= UPGRADE_BATCH {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.pending = 0;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), StoreError> {
        if self.pending > 0 {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }
}
