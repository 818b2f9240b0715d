//! Online backup and offline restore.
//!
//! A backup is the store at one consistent point (a cut the writer takes between batches):
//! the directory (population figures, statistical neighbours and boundaries included), the revision log up to the cut's head, the alert log, the snapshots, the
//! releases of the public table and the audit chain. It is a file of length-prefixed postcard frames after a magic string, ending
//! with the SHA-256 of everything before it, so a truncated or altered file is refused.
//! Restoring writes the log back and rebuilds every projection from it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::engine::{Engine, Entry, Hold, Postgres, Sled, WriteBatch};
use super::keyspace::{
    Actions, ActionsDue, Agencies, AlertLog, Aliases, AuditHead, AuditLog, Boundaries, Ended,
    Keyspace, Log, Memberships, Neighbours, Places, Populations, ReleaseTables, Releases, Reviews,
    Snapshots, Successions, index_audit_event,
};
use super::writer::write_projections;
use super::{Snapshot, SnapshotWithoutNames, Store, StoreError};
use crate::domain::alert::Alert;
use crate::domain::audit::AuditEvent;
use crate::domain::boundaries::Boundary;
use crate::domain::neighbours::NeighbourSet;
use crate::domain::population::PopulationFigure;
use crate::domain::release::{Release, ReleasedTable};
use crate::domain::review::{Action, Review};
use crate::domain::{Agency, Alias, Membership, Place, PlaceCode, RecordKey, Revision, Succession};

/// The first bytes of every backup file.
const MAGIC: &[u8; 8] = b"MARRBAK1";
/// Entries written per batch while restoring.
const RESTORE_BATCH: usize = 8192;
/// Largest frame accepted when reading a backup; anything larger is damage, not data.
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The point a backup is taken at, chosen by the writer between batches.
#[derive(Debug, Clone)]
pub struct BackupCut {
    pub head: u64,
    pub alert_head: u64,
    pub audit_head: (u64, [u8; 32]),
    pub last_snapshot: u64,
    /// The last release of the public table.
    pub last_release: u64,
    pub places: Vec<Place>,
    pub memberships: Vec<Membership>,
    pub successions: Vec<Succession>,
    pub aliases: Vec<Alias>,
    pub ended: Vec<PlaceCode>,
    pub agencies: Vec<Agency>,
    /// Population figures by place and year.
    pub population: Vec<PopulationFigure>,
    /// Statistical neighbours by authority.
    pub neighbours: Vec<NeighbourSet>,
    /// Boundaries for maps, by place.
    pub boundaries: Vec<(PlaceCode, Boundary)>,
    /// Every revision of every review.
    pub reviews: Vec<Review>,
    /// Every revision of every action.
    pub actions: Vec<Action>,
}

/// One piece of a backup file.
#[derive(Debug, Serialize, Deserialize)]
enum Frame {
    Header {
        head: u64,
        alert_head: u64,
        audit_head: u64,
        audit_hash: [u8; 32],
        #[serde(with = "time::serde::timestamp::nanoseconds")]
        taken_at: OffsetDateTime,
    },
    Place(Place),
    Membership(Membership),
    Agency(Agency),
    Revision(Revision),
    Alert(Alert),
    /// A snapshot from a backup taken before names were frozen with snapshots.
    SnapshotWithoutNames(SnapshotWithoutNames),
    /// An audit event exactly as stored, so the chain's hashes still hold.
    AuditEvent(Vec<u8>),
    /// How many frames came before, and the SHA-256 of every byte before this frame.
    End {
        frames: u64,
        sha256: [u8; 32],
    },
    // Later additions go last, so files written before them still read.
    /// A release of the public table as listed.
    Release(Release),
    /// One frozen table of a release.
    ReleaseTable(u64, ReleasedTable),
    /// A snapshot with the names it was frozen with.
    Snapshot(Snapshot),
    /// A code change (a merger or a recode).
    Succession(Succession),
    /// One place's population in one mid-year.
    Population(PopulationFigure),
    /// Another organisation's code for a place.
    Alias(Alias),
    /// A place that ended without a single successor.
    Ended(PlaceCode),
    /// An authority's statistical neighbours.
    Neighbours(NeighbourSet),
    /// A place's boundary for maps.
    Boundary(PlaceCode, Boundary),
    /// One revision of a review.
    Review(Review),
    /// One revision of an action.
    Action(Action),
}

/// What a backup or a restore holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupSummary {
    pub head: u64,
    pub alerts: u64,
    pub audit_events: u64,
    pub places: u64,
    pub agencies: u64,
    pub snapshots: u64,
    pub releases: u64,
    /// Population figures, one per place and year.
    pub population: u64,
    /// Authorities with statistical neighbours.
    pub neighbour_sets: u64,
    /// Places with a boundary for maps.
    pub boundaries: u64,
    /// Revisions of reviews.
    pub reviews: u64,
    /// Revisions of actions.
    pub actions: u64,
    pub bytes: u64,
}

impl std::fmt::Display for BackupSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "log to sequence {}, {} alerts, {} audit events, {} places, {} agencies, {} snapshots, {} releases, {} population figures, {} authorities' statistical neighbours, {} boundaries, {} review revisions, {} action revisions",
            self.head,
            self.alerts,
            self.audit_events,
            self.places,
            self.agencies,
            self.snapshots,
            self.releases,
            self.population,
            self.neighbour_sets,
            self.boundaries,
            self.reviews,
            self.actions
        )
    }
}

fn damaged(reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("the backup cannot be used: {reason}"))
}

/// Writes frames, keeping the running hash and count.
struct FrameWriter<W: Write> {
    out: W,
    hash: Sha256,
    frames: u64,
    bytes: u64,
}

impl<W: Write> FrameWriter<W> {
    fn new(mut out: W) -> Result<Self, StoreError> {
        out.write_all(MAGIC).map_err(io_error)?;
        let mut hash = Sha256::new();
        hash.update(MAGIC);
        Ok(Self {
            out,
            hash,
            frames: 0,
            bytes: MAGIC.len() as u64,
        })
    }

    fn frame(&mut self, frame: &Frame) -> Result<(), StoreError> {
        let body = postcard::to_stdvec(frame)?;
        if body.len() > MAX_FRAME {
            return Err(damaged(format!(
                "a frame of {} bytes is larger than a backup may hold",
                body.len()
            )));
        }
        let length = u32::try_from(body.len()).map_err(|_| damaged("a frame over 4 GiB"))?;
        let length = length.to_be_bytes();
        for part in [&length[..], &body[..]] {
            self.out.write_all(part).map_err(io_error)?;
            self.hash.update(part);
        }
        self.frames += 1;
        self.bytes += (length.len() + body.len()) as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, StoreError> {
        let end = Frame::End {
            frames: self.frames,
            sha256: self.hash.clone().finalize().into(),
        };
        self.frame(&end)?;
        self.out.flush().map_err(io_error)?;
        Ok(self.bytes)
    }
}

fn io_error(error: std::io::Error) -> StoreError {
    StoreError::Corrupt(format!("backup stream: {error}"))
}

/// Reads frames, checking the magic, the running hash and the end frame.
struct FrameReader<R: Read> {
    input: R,
    hash: Sha256,
    frames: u64,
    ended: bool,
}

impl<R: Read> FrameReader<R> {
    fn new(mut input: R) -> Result<Self, StoreError> {
        let mut magic = [0u8; 8];
        input
            .read_exact(&mut magic)
            .map_err(|_| damaged("it is not a marr backup (too short)"))?;
        if &magic != MAGIC {
            return Err(damaged("it is not a marr backup"));
        }
        let mut hash = Sha256::new();
        hash.update(magic);
        Ok(Self {
            input,
            hash,
            frames: 0,
            ended: false,
        })
    }

    /// The next frame before the end, `None` once the end frame has been checked.
    fn next(&mut self) -> Result<Option<Frame>, StoreError> {
        if self.ended {
            return Ok(None);
        }
        let mut length = [0u8; 4];
        self.input
            .read_exact(&mut length)
            .map_err(|_| damaged(format!("it ends early, after frame {}", self.frames)))?;
        let size = u32::from_be_bytes(length) as usize;
        if size > MAX_FRAME {
            return Err(damaged(format!(
                "frame {} claims {size} bytes",
                self.frames + 1
            )));
        }
        let mut body = vec![0u8; size];
        self.input
            .read_exact(&mut body)
            .map_err(|_| damaged(format!("it ends early, inside frame {}", self.frames + 1)))?;
        let frame: Frame = postcard::from_bytes(&body)
            .map_err(|e| damaged(format!("frame {} cannot be read: {e}", self.frames + 1)))?;
        if let Frame::End { frames, sha256 } = &frame {
            let expected: [u8; 32] = self.hash.clone().finalize().into();
            if *frames != self.frames || *sha256 != expected {
                return Err(damaged("its content does not match its checksum"));
            }
            let mut after = [0u8; 1];
            if self.input.read(&mut after).map_err(io_error)? != 0 {
                return Err(damaged("there are bytes after its end"));
            }
            self.ended = true;
            return Ok(None);
        }
        self.hash.update(length);
        self.hash.update(&body);
        self.frames += 1;
        Ok(Some(frame))
    }
}

impl Store {
    /// Asks the writer for a consistent point to back up from.
    pub async fn backup_cut(&self) -> Result<BackupCut, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(super::writer::Command::Cut { reply }).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Writes the backup of `cut` to `out`, while the server goes on accepting writes.
    /// Blocking: it reads the whole log.
    pub fn write_backup(
        &self,
        cut: &BackupCut,
        out: impl Write,
    ) -> Result<BackupSummary, StoreError> {
        let engine = &*self.shared.engine;
        let mut frames = FrameWriter::new(out)?;
        frames.frame(&Frame::Header {
            head: cut.head,
            alert_head: cut.alert_head,
            audit_head: cut.audit_head.0,
            audit_hash: cut.audit_head.1,
            taken_at: OffsetDateTime::now_utc(),
        })?;
        for place in &cut.places {
            frames.frame(&Frame::Place(place.clone()))?;
        }
        for membership in &cut.memberships {
            frames.frame(&Frame::Membership(*membership))?;
        }
        for succession in &cut.successions {
            frames.frame(&Frame::Succession(*succession))?;
        }
        for alias in &cut.aliases {
            frames.frame(&Frame::Alias(alias.clone()))?;
        }
        for code in &cut.ended {
            frames.frame(&Frame::Ended(*code))?;
        }
        for agency in &cut.agencies {
            frames.frame(&Frame::Agency(agency.clone()))?;
        }
        for figure in &cut.population {
            frames.frame(&Frame::Population(*figure))?;
        }
        for set in &cut.neighbours {
            frames.frame(&Frame::Neighbours(set.clone()))?;
        }
        for (code, boundary) in &cut.boundaries {
            frames.frame(&Frame::Boundary(*code, boundary.clone()))?;
        }
        for review in &cut.reviews {
            frames.frame(&Frame::Review(review.clone()))?;
        }
        for action in &cut.actions {
            frames.frame(&Frame::Action(action.clone()))?;
        }
        // Entries up to the cut never change, whatever the writer does meanwhile.
        for entry in up_to::<Log>(engine, cut.head) {
            let (_, bytes) = entry?;
            frames.frame(&Frame::Revision(postcard::from_bytes(&bytes)?))?;
        }
        for entry in up_to::<AlertLog>(engine, cut.alert_head) {
            let (_, bytes) = entry?;
            frames.frame(&Frame::Alert(postcard::from_bytes(&bytes)?))?;
        }
        let mut snapshots = 0;
        for entry in up_to::<Snapshots>(engine, cut.last_snapshot) {
            let (_, bytes) = entry?;
            frames.frame(&Frame::Snapshot(Snapshots::decode_value(&bytes)?))?;
            snapshots += 1;
        }
        let mut releases = 0;
        for entry in up_to::<Releases>(engine, cut.last_release) {
            let (_, bytes) = entry?;
            let release: Release = postcard::from_bytes(&bytes)?;
            for table in ReleaseTables::of_release(engine, release.number) {
                frames.frame(&Frame::ReleaseTable(release.number, table?.1))?;
            }
            frames.frame(&Frame::Release(release))?;
            releases += 1;
        }
        for entry in up_to::<AuditLog>(engine, cut.audit_head.0) {
            let (_, bytes) = entry?;
            frames.frame(&Frame::AuditEvent(bytes.to_vec()))?;
        }
        let bytes = frames.finish()?;
        Ok(BackupSummary {
            head: cut.head,
            alerts: cut.alert_head,
            audit_events: cut.audit_head.0,
            places: cut.places.len() as u64,
            agencies: cut.agencies.len() as u64,
            snapshots,
            releases,
            population: cut.population.len() as u64,
            neighbour_sets: cut.neighbours.len() as u64,
            boundaries: cut.boundaries.len() as u64,
            reviews: cut.reviews.len() as u64,
            actions: cut.actions.len() as u64,
            bytes,
        })
    }

    /// Reads a backup through to its end, checking every frame and the checksum, without
    /// writing anything.
    pub fn check_backup(input: impl Read) -> Result<BackupSummary, StoreError> {
        let mut reader = FrameReader::new(input)?;
        let mut summary = BackupSummary::default();
        while let Some(frame) = reader.next()? {
            count(&mut summary, &frame);
        }
        Ok(summary)
    }

    /// Builds the register wherever `location` says (which must hold none yet) from a backup,
    /// then checks it as [`Store::restore`] does. Blocking.
    pub fn restore_at(
        location: &super::Location,
        input: impl Read,
    ) -> Result<BackupSummary, StoreError> {
        match location {
            super::Location::Sled(dir) => Self::restore(dir, input),
            super::Location::Postgres(database) => Self::restore_postgres(database, input),
        }
    }

    /// Builds the register in a table beside the database's own and, once whole and checked,
    /// renames it into place in one transaction: an interrupted restore leaves nothing a
    /// server would open.
    fn restore_postgres(
        database: &super::PostgresOptions,
        input: impl Read,
    ) -> Result<BackupSummary, StoreError> {
        let occupied = !Postgres::open(database, Hold::Alone)?.is_empty();
        if occupied {
            return Err(StoreError::Invalid(crate::domain::Invalid::one(
                "store.url",
                "the database already holds a register; restore into an empty one",
            )));
        }
        let building = format!("{}_restoring", super::engine::TABLE);
        Postgres::open_table(database, &building, Hold::Alone)?.drop_table()?;
        let options = super::StoreOptions::default();
        let restored = Postgres::open_table(database, &building, Hold::Alone)
            .and_then(|engine| restore_into(&engine, input).map(|summary| (engine, summary)))
            .and_then(|(engine, summary)| checked(Box::new(engine), options, summary))
            .and_then(|summary| {
                // Holding the register's own lock: no server opens it mid-rename.
                let register = Postgres::open(database, Hold::Alone)?;
                if !register.is_empty() {
                    return Err(StoreError::Invalid(crate::domain::Invalid::one(
                        "store.url",
                        "the database came to hold a register during the restore",
                    )));
                }
                Postgres::open_table(database, &building, Hold::Alone)?
                    .rename_into(super::engine::TABLE)?;
                drop(register);
                Ok(summary)
            });
        if restored.is_err()
            && let Ok(engine) = Postgres::open_table(database, &building, Hold::Alone)
        {
            let _ = engine.drop_table();
        }
        restored
    }

    /// Builds a store in `dir` (which must not hold one) from a backup, then checks it: the
    /// log is gap-free, every projection is rebuilt from it and the audit chain holds.
    /// Blocking. On any failure the half-built store is removed.
    pub fn restore(dir: &Path, input: impl Read) -> Result<BackupSummary, StoreError> {
        let occupied = std::fs::read_dir(dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if occupied {
            return Err(StoreError::Invalid(crate::domain::Invalid::one(
                "data_dir",
                format!(
                    "{} is not empty; restore into a new directory",
                    dir.display()
                ),
            )));
        }
        // Built beside its destination and renamed only when whole and checked, so an
        // interrupted restore never leaves a store a server would open.
        let mut building = dir.as_os_str().to_owned();
        building.push(".restoring");
        let building = std::path::PathBuf::from(building);
        let _ = std::fs::remove_dir_all(&building);
        let options = super::StoreOptions::default();
        let restored = Sled::open(&building, options.cache_bytes, options.fsync)
            .and_then(|engine| restore_into(&engine, input).map(|summary| (engine, summary)))
            .and_then(|(engine, summary)| checked(Box::new(engine), options, summary));
        let placed = restored.and_then(|summary| {
            if dir.exists() {
                std::fs::remove_dir(dir).map_err(io_error)?;
            }
            std::fs::rename(&building, dir).map_err(io_error)?;
            Ok(summary)
        });
        if placed.is_err() {
            let _ = std::fs::remove_dir_all(&building);
        }
        placed
    }
}

/// Opens a restored engine as a server would (replaying the log into the counters) and checks
/// every projection and the audit chain before the restore is put in place.
fn checked(
    engine: Box<dyn Engine>,
    options: super::StoreOptions,
    summary: BackupSummary,
) -> Result<BackupSummary, StoreError> {
    let store = Store::open_on(engine, options)?;
    let checked = store
        .verify_projections()
        .and_then(|problems| Ok((problems, store.verify_audit()?)));
    store.close_blocking()?;
    match checked? {
        (problems, _) if !problems.is_empty() => {
            Err(damaged(format!("after restoring, {}", problems[0])))
        }
        (_, Err(broken)) => Err(damaged(broken)),
        (_, Ok(_)) => Ok(summary),
    }
}

/// The stored entries of a sequence-keyed keyspace from 1 to `last`, as stored.
fn up_to<K: Keyspace<Key = u64>>(
    engine: &dyn Engine,
    last: u64,
) -> impl Iterator<Item = Result<Entry, StoreError>> + '_ {
    let range = (last > 0).then(|| engine.range(&K::key(&1), &K::key(&(last + 1))));
    range.into_iter().flatten()
}

fn count(summary: &mut BackupSummary, frame: &Frame) {
    match frame {
        Frame::Header { head, .. } => summary.head = *head,
        Frame::Place(_) => summary.places += 1,
        Frame::Agency(_) => summary.agencies += 1,
        Frame::Alert(_) => summary.alerts += 1,
        Frame::Snapshot(_) | Frame::SnapshotWithoutNames(_) => summary.snapshots += 1,
        Frame::Release(_) => summary.releases += 1,
        Frame::Population(_) => summary.population += 1,
        Frame::Neighbours(_) => summary.neighbour_sets += 1,
        Frame::Boundary(..) => summary.boundaries += 1,
        Frame::Review(_) => summary.reviews += 1,
        Frame::Action(_) => summary.actions += 1,
        Frame::AuditEvent(_) => summary.audit_events += 1,
        Frame::Membership(_)
        | Frame::Succession(_)
        | Frame::Alias(_)
        | Frame::Ended(_)
        | Frame::Revision(_)
        | Frame::ReleaseTable(..)
        | Frame::End { .. } => {}
    }
}

fn restore_into(engine: &dyn Engine, input: impl Read) -> Result<BackupSummary, StoreError> {
    let mut reader = FrameReader::new(input)?;
    let mut summary = BackupSummary::default();
    let mut batch = WriteBatch::default();
    let mut pending = 0usize;
    // The latest revision of each record written in the batch not yet applied, to move its
    // index entries as the log replays; earlier ones are read back from the engine, so memory
    // stays the size of one batch however many records the register holds.
    let mut unapplied: HashMap<RecordKey, Revision> = HashMap::new();
    let mut next_sequence = 1u64;
    let mut audit_head = None;
    let mut audit_sequence = 0u64;
    let mut latest_actions = std::collections::BTreeMap::new();
    while let Some(frame) = reader.next()? {
        count(&mut summary, &frame);
        match frame {
            Frame::Header {
                audit_head: head,
                audit_hash,
                ..
            } => audit_head = Some((head, audit_hash)),
            Frame::Place(place) => Places::put(&mut batch, &place.code, &place)?,
            Frame::Membership(membership) => Memberships::put(&mut batch, &membership, &())?,
            Frame::Ended(code) => Ended::put(&mut batch, &code, &())?,
            Frame::Alias(alias) => {
                Aliases::put(&mut batch, &(alias.scheme, alias.alias), &alias.place)?
            }
            Frame::Succession(succession) => {
                Successions::put(&mut batch, &succession.predecessor, &succession.successor)?
            }
            Frame::Agency(agency) => Agencies::put(&mut batch, &agency.id, &agency)?,
            Frame::Neighbours(set) => Neighbours::put(&mut batch, &set.authority, &set.neighbours)?,
            Frame::Boundary(code, boundary) => Boundaries::put(&mut batch, &code, &boundary)?,
            Frame::Review(review) => {
                Reviews::put(&mut batch, &(review.id, review.revision), &review)?
            }
            Frame::Action(action) => {
                Actions::put(&mut batch, &(action.key, action.revision), &action)?;
                latest_actions.insert(action.key, action);
            }
            Frame::Population(figure) => {
                Populations::put(&mut batch, &(figure.place, figure.year), &figure.counts)?
            }
            Frame::Revision(revision) => {
                if revision.sequence != next_sequence {
                    return Err(damaged(format!(
                        "log entry {next_sequence} is missing (found {})",
                        revision.sequence
                    )));
                }
                next_sequence += 1;
                let stored = match unapplied.get(&revision.record.key) {
                    Some(previous) => Some(previous.clone()),
                    None => Log::latest(engine, &revision.record.key)?,
                };
                write_projections(&mut batch, stored.as_ref(), &revision)?;
                unapplied.insert(revision.record.key.clone(), revision);
            }
            Frame::Alert(alert) => AlertLog::put(&mut batch, &alert.sequence, &alert)?,
            Frame::Snapshot(snapshot) => Snapshots::put(&mut batch, &snapshot.id, &snapshot)?,
            Frame::SnapshotWithoutNames(old) => {
                let snapshot = Snapshot::from(old);
                Snapshots::put(&mut batch, &snapshot.id, &snapshot)?;
            }
            Frame::Release(release) => Releases::put(&mut batch, &release.number, &release)?,
            Frame::ReleaseTable(number, table) => ReleaseTables::put(
                &mut batch,
                &(number, table.parent.code, table.level),
                &table,
            )?,
            Frame::AuditEvent(stored) => {
                let event: AuditEvent = postcard::from_bytes(&stored)?;
                audit_sequence = event.sequence;
                batch.insert(AuditLog::key(&event.sequence), stored);
                index_audit_event(&mut batch, &event);
            }
            Frame::End { .. } => {}
        }
        pending += 1;
        if pending == RESTORE_BATCH {
            engine.apply(std::mem::take(&mut batch))?;
            unapplied.clear();
            pending = 0;
        }
    }
    let Some((head, hash)) = audit_head else {
        return Err(damaged("it has no header"));
    };
    if next_sequence - 1 != summary.head || audit_sequence != head {
        return Err(damaged(format!(
            "the header promises log {} and audit {head}, the file holds {} and {audit_sequence}",
            summary.head,
            next_sequence - 1
        )));
    }
    if head > 0 {
        AuditHead::put(&mut batch, &(), &(head, hash))?;
    }
    // The overdue watch follows from each action's latest revision.
    for action in latest_actions.values() {
        if action.awaits_overdue_check() {
            ActionsDue::put(&mut batch, &(action.due, action.key), &())?;
        }
    }
    // Every index was written in the current layout's shape.
    super::layout::mark_current(&mut batch)?;
    engine.apply(batch)?;
    // The watch was rebuilt from the log; what was already reported stale leaves it.
    super::fold::forget_reported_stale(engine)?;
    engine.flush()?;
    Ok(summary)
}
