//! The storage seam: the little the register asks of the engine that keeps its log, its
//! projections, the alert log and the audit chain — ordered keys, point reads, range reads,
//! batches applied whole, and a flush that makes them durable — and sled, the embedded engine
//! behind it, or PostgreSQL ([`Postgres`]) for several nodes and a replicated log. Every
//! keyspace, the writer and every reader speak to the store only through [`Engine`].
//!
//! The writer assigns log sequences itself, in the order it applies batches; an engine only
//! has to apply each batch atomically and, after [`Engine::flush`], durably.

mod postgres;

use std::path::Path;

pub use postgres::{DEFAULT_CONNECTIONS, Hold, Postgres, PostgresOptions, TABLE};

use super::StoreError;

/// One key and value as read back from the engine.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Entries in key order, from either end.
pub type Entries<'a> = Box<dyn DoubleEndedIterator<Item = Result<Entry, StoreError>> + Send + 'a>;

/// What the register needs of a storage engine.
pub trait Engine: Send + Sync {
    /// Applies every write of the batch at once: a reader sees all of it or none of it.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;
    /// Makes every batch applied so far durable; a crash after it returns loses none of them.
    fn flush(&self) -> Result<(), StoreError>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }
    /// Entries with keys from `from` up to, not including, `until`.
    fn range(&self, from: &[u8], until: &[u8]) -> Entries<'_>;
    /// The first entry with a key after `key`: one look, where a range costs a look an entry.
    fn first_after(&self, key: &[u8]) -> Result<Option<Entry>, StoreError>;
    /// Entries whose keys start with `prefix`.
    fn scan_prefix(&self, prefix: &[u8]) -> Entries<'_>;
    /// The entries of every range (`from` up to, not including, `until`), range by range and
    /// in key order within each: what a replay reads for many log entries at once, in one
    /// round trip where a read is one.
    fn ranges(&self, bounds: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        for (from, until) in bounds {
            for entry in self.range(from, until) {
                entries.push(entry?);
            }
        }
        Ok(entries)
    }
    fn is_empty(&self) -> bool;
    /// Bytes the engine occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// Whether other nodes may write to the engine too (PostgreSQL): the writer then takes
    /// turns with them and follows what they write. sled has one process.
    fn shared(&self) -> bool {
        false
    }
    /// Begins this node's turn to write: waits until no other node is in one, and answers
    /// how many turns the register has had, so the writer can tell whether others wrote
    /// since its own last. A batch written in the turn carries the count (see
    /// [`WriteBatch::in_turn`]) and is refused if another node's turn came between.
    fn begin_turn(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn end_turn(&self) {}
    /// How many turns the register has had, without taking one.
    fn turns(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// Something that hears other nodes' turns, for an engine they share (none for sled).
    fn listen(&self) -> Option<Box<dyn TurnListener>> {
        None
    }
}

/// Hears other nodes' turns on a connection of its own, apart from the engine, so the thread
/// that waits on it does not keep the engine open.
pub trait TurnListener: Send {
    /// Waits up to `timeout` for word that a node has written, then reads the register's
    /// count of turns.
    fn wait(&mut self, timeout: std::time::Duration) -> Result<Heard, StoreError>;
}

/// What a [`TurnListener`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// A node's turn ended while it waited.
    pub notified: bool,
    /// The register's count of turns after the wait.
    pub turns: u64,
}

/// Writes to apply together.
#[derive(Debug, Default)]
pub struct WriteBatch {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The count of turns this batch's writer began its turn at, if it writes in one.
    turn: Option<u64>,
}

impl WriteBatch {
    /// Marks the batch as written in the turn that began at this count of turns.
    pub fn in_turn(&mut self, turns: u64) {
        self.turn = Some(turns);
    }

    pub fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((key, Some(value)));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.writes.push((key, None));
    }

    /// Whether any write is to a key in a keyspace with one of these prefixes.
    pub fn touches(&self, prefixes: &[u8]) -> bool {
        self.writes
            .iter()
            .any(|(key, _)| key.first().is_some_and(|first| prefixes.contains(first)))
    }
}

/// sled: one tree holds every keyspace, so any batch is one atomic sled batch.
pub struct Sled {
    db: sled::Db,
    tree: sled::Tree,
    /// The database file, opened again to fsync it after each flush; `None` when fsync is
    /// off (see [`Sled::flush`]).
    fsync: Option<std::fs::File>,
}

impl Sled {
    /// Opens (or creates) the engine in `dir`, with `cache_bytes` of page cache.
    pub fn open(dir: &Path, cache_bytes: u64, fsync: bool) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()?;
        Self::on(db, dir, fsync)
    }

    /// The engine on a sled database already open at `dir`.
    pub fn on(db: sled::Db, dir: &Path, fsync: bool) -> Result<Self, StoreError> {
        let tree = db.open_tree("register")?;
        let fsync = fsync
            .then(|| std::fs::File::open(dir.join("db")))
            .transpose()
            .map_err(|e| StoreError::Storage(sled::Error::Io(e)))?;
        Ok(Self { db, tree, fsync })
    }
}

fn entries(iter: sled::Iter) -> Entries<'static> {
    Box::new(iter.map(|entry| {
        let (key, value) = entry?;
        Ok((key.to_vec(), value.to_vec()))
    }))
}

impl Engine for Sled {
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.writes {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        Ok(self.tree.apply_batch(sled_batch)?)
    }

    /// sled's flush writes its log with `sync_file_range`, which survives the process being
    /// killed but not necessarily a power cut: it flushes neither the file's metadata nor the
    /// disk's write cache. An fsync of the same file does both.
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if let Some(file) = &self.fsync {
            file.sync_all()
                .map_err(|e| StoreError::Storage(sled::Error::Io(e)))?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|value| value.to_vec()))
    }

    fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key)?)
    }

    fn first_after(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        // A range opened just after the key, read once.
        let mut after = key.to_vec();
        after.push(0);
        match self.tree.range(after..).next() {
            Some(entry) => {
                let (key, value) = entry?;
                Ok(Some((key.to_vec(), value.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn range(&self, from: &[u8], until: &[u8]) -> Entries<'_> {
        if from >= until {
            return Box::new(std::iter::empty());
        }
        entries(self.tree.range(from..until))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Entries<'_> {
        entries(self.tree.scan_prefix(prefix))
    }

    fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}
