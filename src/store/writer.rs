//! The single writer: drains whatever is queued, applies it as one atomic batch, flushes once,
//! and only then answers every request in the batch (group commit).

mod reviews;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::engine::WriteBatch;
use super::fold::{self, SubjectCache};
use super::keyspace::{
    Actions, Agencies, AlertLog, Aliases, AuditHead, AuditLog, Boundaries, ByPlace,
    DIRECTORY_KEYSPACES, DirectoryStamp, Ended, Keyspace, Latest, Log, Memberships, Neighbours,
    Places, Populations, ReleaseTables, Releases, Reviews, Snapshots, StaleWatch, SubjectJournal,
    Successions, index_audit_event,
};
use super::rebuild::CounterRebuild;
use super::{ImportOutcome, Shared, Snapshot, SnapshotRequest, StoreError, Submitted};
use crate::domain::audit::AuditEvent;
use crate::domain::boundaries::{BoundariesReport, BoundaryImport, plan_boundaries};
use crate::domain::inspection::Inspection;
use crate::domain::lookup::{LookupTable, plan_import};
use crate::domain::neighbours::NeighbourSet;
use crate::domain::population::PopulationFigure;
use crate::domain::record::decide;
use crate::domain::release::{Release, ReleasedTable};
use crate::domain::{
    Access, Actor, Agency, Alias, Decision, Invalid, RecordKey, Revision, RiskRecord, Succession,
};
use crate::rules;
use crate::telemetry;

/// Most records in one batch; bounds the time a request waits behind others.
const MAX_BATCH: usize = 4096;

pub(super) enum Command {
    Record {
        record: RiskRecord,
        actor: Arc<Actor>,
        reply: oneshot::Sender<Result<Submitted, StoreError>>,
    },
    /// An access to append to the audit chain (a read or a refusal).
    Audit {
        access: Access,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    ImportPlaces {
        tables: Vec<LookupTable>,
        actor: Actor,
        reply: oneshot::Sender<Result<ImportOutcome, StoreError>>,
    },
    /// Statistical neighbours read from the tables, stored whole or not at all.
    ImportNeighbours {
        sets: Vec<NeighbourSet>,
        actor: Actor,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Population figures read from the tables, stored whole or not at all.
    ImportPopulation {
        figures: Vec<PopulationFigure>,
        actor: Actor,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Boundaries checked by the caller, planned against the directory and stored whole.
    ImportBoundaries {
        import: BoundaryImport,
        actor: Actor,
        reply: oneshot::Sender<Result<BoundariesReport, StoreError>>,
    },
    RegisterAgency {
        agency: Agency,
        actor: Actor,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    CreateSnapshot {
        request: SnapshotRequest,
        actor: Actor,
        reply: oneshot::Sender<Result<Snapshot, StoreError>>,
    },
    /// A review or a correction of one.
    RecordReview {
        change: super::ReviewChange,
        actor: Actor,
        reply: oneshot::Sender<Result<crate::domain::review::Review, StoreError>>,
    },
    /// An action planned or updated by the agency named.
    ChangeAction {
        change: super::ActionChange,
        agency: crate::domain::AgencyId,
        actor: Actor,
        reply: oneshot::Sender<Result<crate::domain::review::Action, StoreError>>,
    },
    SweepStale {
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// Fixes where a release of the public table stands, between batches: now, or (with
    /// `schedule`) only if the schedule says one is due. The tables are computed off the
    /// writer and written with [`Command::WriteRelease`].
    FixRelease {
        schedule: Option<super::releases::Due>,
        reply: oneshot::Sender<Result<Option<super::releases::ReleasePoint>, StoreError>>,
    },
    /// Writes a release computed off the writer, whole, in one batch (`actor` set: an
    /// administrator asked, and the audit chain records it).
    WriteRelease {
        release: Release,
        tables: Vec<ReleasedTable>,
        actor: Option<Actor>,
        reply: oneshot::Sender<Result<Release, StoreError>>,
    },
    /// A consistent point to back up from.
    Cut {
        reply: oneshot::Sender<Result<super::backup::BackupCut, StoreError>>,
    },
    /// A counter rebuild running in the background has finished (a nudge: the writer looks
    /// for finished rebuilds after every command).
    CountersRebuilt,
    /// Other nodes may have written (they share the register on PostgreSQL): the writer reads
    /// what they wrote and hands it to this node's readers, then answers `reply` if set.
    Follow { reply: Option<oneshot::Sender<()>> },
    /// Rewrites the latest pointers and indexes from the log.
    RepairProjections {
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

type RecordReply = oneshot::Sender<Result<Submitted, StoreError>>;
type AuditReply = oneshot::Sender<Result<u64, StoreError>>;

/// Submissions and audit entries taken from the queue together, committed in one flush.
#[derive(Default)]
struct Batch {
    records: Vec<(RiskRecord, Arc<Actor>, RecordReply)>,
    audits: Vec<(Access, AuditReply)>,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len() + self.audits.len()
    }

    /// Takes a command if it belongs in a batch, or gives it back.
    fn take(&mut self, command: Command) -> Option<Command> {
        match command {
            Command::Record {
                record,
                actor,
                reply,
            } => self.records.push((record, actor, reply)),
            Command::Audit { access, reply } => self.audits.push((access, reply)),
            other => return Some(other),
        }
        None
    }
}

/// Why the writer stopped writing.
struct Failure {
    reason: String,
    /// The engine could not be reached (a database failover, say): once it answers again,
    /// what it holds is the truth and the writer can read it back and go on. Any other failure
    /// (a disk's, a corrupt value) waits for a restart.
    recoverable: bool,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    /// Sequence of the last revision written.
    head: u64,
    /// Sequence of the last alert written.
    alert_head: u64,
    /// The audit chain's last event: its sequence and hash.
    audit_head: (u64, [u8; 32]),
    /// The counters folded up to `head`, ahead of the readers' copy until a batch is durable;
    /// the alert rules read what each change moved in them.
    inspection: Inspection,
    /// Sequence of the last checkpoint written.
    last_checkpoint: u64,
    /// The journal of the subjects met lately.
    subjects: SubjectCache,
    /// Set after a failed write or flush: what is on disk is then unknown, so the writer
    /// refuses everything until it has read the truth back (see [`Writer::recover`]) or, when
    /// the failure was the disk's, until the store is reopened.
    failed: Option<Failure>,
    /// The counters rebuilt off the writer after an import changed the geography.
    rebuild: CounterRebuild,
    /// The register's count of turns that what this writer holds reflects (see
    /// [`super::engine::Engine::begin_turn`]); always 0 on an engine no other node writes.
    turns: u64,
    /// Set during a turn: the count the next batch is written at.
    turn: Option<u64>,
    /// The directory's stamp as this node last read or wrote it.
    directory_stamp: u64,
}

impl Writer {
    /// Loads the counters from the last checkpoint, replays the log after it and hands them
    /// to the readers; a checkpoint is written at the head if anything was replayed.
    /// `marks` were read before the directory and the heads (see [`super::Marks`]).
    pub(super) fn new(
        shared: Arc<Shared>,
        head: u64,
        alert_head: u64,
        marks: super::Marks,
    ) -> Result<Self, StoreError> {
        let audit_head = AuditHead::get(&*shared.engine, &())?.unwrap_or((0, [0; 32]));
        let (inspection, last_checkpoint) = {
            let directory = shared.read_directory();
            let engine = &*shared.engine;
            let (start, last_checkpoint) =
                match fold::checkpoint_before(engine, head, directory.fingerprint)? {
                    Some(header) => {
                        let applied = header.applied;
                        let loaded = fold::load_checkpoint(engine, header, None)?;
                        (Inspection::from_checkpoint(loaded), applied)
                    }
                    None => (Inspection::default(), 0),
                };
            (
                fold::replay(&*shared.engine, &directory, start, head, None, None)?,
                last_checkpoint,
            )
        };
        let mut writer = Self {
            rebuild: CounterRebuild::new(Arc::clone(&shared)),
            shared,
            head,
            alert_head,
            audit_head,
            last_checkpoint,
            inspection,
            subjects: SubjectCache::new(),
            failed: None,
            turns: marks.turns,
            turn: None,
            directory_stamp: marks.directory_stamp,
        };
        writer.publish(true);
        if writer.last_checkpoint < head {
            let mut batch = WriteBatch::default();
            writer.checkpoint(&mut batch)?;
            writer.apply(batch)?;
        }
        Ok(writer)
    }

    /// Hands the counters to the readers: the places changed since the last publish, or
    /// (`whole`) a fresh copy of everything.
    fn publish(&mut self, whole: bool) {
        let mut readers = self.shared.write_inspection();
        if whole {
            *readers = Inspection::default();
        }
        self.inspection.publish(&mut readers);
    }

    /// Adds a checkpoint of the counters at the head to `batch`.
    fn checkpoint(&mut self, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let geography = self.shared.read_directory().fingerprint;
        let checkpoint = self.inspection.checkpoint(geography);
        fold::put_checkpoint(&*self.shared.engine, batch, &checkpoint)?;
        self.last_checkpoint = checkpoint.header.applied;
        Ok(())
    }

    /// Rebuilds the counters from the whole log on the writer, writing a checkpoint at every
    /// interval and at the head in place of every earlier one (an offline repair; an import
    /// rebuilds them in the background, see `rebuild`).
    fn rebuild_counters(&mut self) -> Result<(), StoreError> {
        let rebuilt = fold::rebuild(
            &*self.shared.engine,
            &self.shared.read_directory(),
            self.head,
            self.shared.checkpoint_every,
            &std::sync::atomic::AtomicBool::new(false),
        )?;
        self.adopt(rebuilt)
    }

    /// Takes `counters` (folded up to the head) as the writer's, checkpoints them at the head
    /// and hands the whole of them to the readers.
    fn adopt(&mut self, counters: Inspection) -> Result<(), StoreError> {
        self.inspection = counters;
        let mut batch = WriteBatch::default();
        self.checkpoint(&mut batch)?;
        self.apply(batch)?;
        self.publish(true);
        Ok(())
    }

    /// Swaps in counters rebuilt in the background, once they are ready: the revisions
    /// written since the rebuild began are replayed onto them, a checkpoint is written at the
    /// head and readers get the whole of them.
    fn take_rebuilt(&mut self) -> Result<(), StoreError> {
        let Some(rebuilt) = self.rebuild.finished(self.head) else {
            return Ok(());
        };
        let caught_up = {
            let directory = self.shared.read_directory();
            if rebuilt.geography != directory.fingerprint {
                // Every import restarts the rebuild, so this is not expected; the counters
                // stay owed and the next start rebuilds.
                tracing::error!("rebuilt counters are for another geography; left unused");
                return Ok(());
            }
            fold::replay(
                &*self.shared.engine,
                &directory,
                rebuilt.inspection,
                self.head,
                None,
                None,
            )?
        };
        // The rebuild removed every checkpoint of the old geography when it began, and wrote
        // only checkpoints of this one since; this one is at the head.
        self.adopt(caught_up)?;
        self.rebuild.adopted();
        tracing::info!(head = self.head, "counters rebuilt under the new geography");
        Ok(())
    }

    pub(super) fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let mut carried: Option<Command> = None;
        loop {
            if self.failed.is_none() && self.rebuild.ended() {
                // Between batches: a rebuild that finished is taken now.
                let _ = self.guarded(|w| w.take_rebuilt());
            }
            let Some(first) = carried.take().or_else(|| queue.blocking_recv()) else {
                return;
            };
            match first {
                batched @ (Command::Record { .. } | Command::Audit { .. }) => {
                    // Take whatever else is queued, up to the first command of another kind.
                    let mut batch = Batch::default();
                    let mut next = Some(batched);
                    while let Some(command) = next.take() {
                        if let Some(other) = batch.take(command) {
                            carried = Some(other);
                            break;
                        }
                        if batch.len() < MAX_BATCH {
                            next = queue.try_recv().ok();
                        }
                    }
                    self.commit(batch);
                }
                Command::ImportPlaces {
                    tables,
                    actor,
                    reply,
                } => {
                    let _ = reply.send(self.guarded(|w| w.import_places(tables, actor)));
                }
                Command::ImportNeighbours { sets, actor, reply } => {
                    let _ = reply.send(self.guarded(|w| w.import_neighbours(sets, actor)));
                }
                Command::ImportPopulation {
                    figures,
                    actor,
                    reply,
                } => {
                    let _ = reply.send(self.guarded(|w| w.import_population(figures, actor)));
                }
                Command::ImportBoundaries {
                    import,
                    actor,
                    reply,
                } => {
                    let _ = reply.send(self.guarded(|w| w.import_boundaries(import, actor)));
                }
                Command::RegisterAgency {
                    agency,
                    actor,
                    reply,
                } => {
                    let _ = reply.send(self.guarded(|w| w.register_agency(agency, actor)));
                }
                Command::CreateSnapshot {
                    request,
                    actor,
                    reply,
                } => {
                    let _ = reply.send(self.guarded(|w| w.create_snapshot(request, actor)));
                }
                Command::RecordReview {
                    change,
                    actor,
                    reply,
                } => {
                    let _ = reply.send(self.guarded(|w| w.record_review(change, actor)));
                }
                Command::ChangeAction {
                    change,
                    agency,
                    actor,
                    reply,
                } => {
                    let _ = reply.send(self.guarded(|w| w.change_action(change, agency, actor)));
                }
                Command::SweepStale { reply } => {
                    let _ = reply.send(self.guarded(|w| w.sweep_stale()));
                }
                Command::FixRelease { schedule, reply } => {
                    let _ = reply.send(self.guarded(|w| w.fix_release(schedule)));
                }
                Command::WriteRelease {
                    release,
                    tables,
                    actor,
                    reply,
                } => {
                    let _ = reply.send(self.guarded(|w| w.write_release(release, tables, actor)));
                }
                Command::Cut { reply } => {
                    let _ = reply.send(self.guarded(|w| w.cut()));
                }
                Command::CountersRebuilt => {}
                Command::Follow { reply } => {
                    self.shared.following.store(false, Ordering::Release);
                    let recovering = self.failed.as_ref().map(|failure| failure.recoverable);
                    let followed = match recovering {
                        Some(false) => Ok(()),
                        Some(true) => self.recover(),
                        None => match self.shared.engine.turns() {
                            Ok(turns) => self.follow(turns),
                            Err(error) => Err(error),
                        },
                    };
                    if let Err(error) = followed {
                        tracing::warn!(%error, "could not read what other nodes wrote");
                        self.fail(&error);
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                }
                Command::RepairProjections { reply } => {
                    let _ = reply.send(self.guarded(|w| {
                        let (batch, changed) = super::verify::repair_batch(&*w.shared.engine)?;
                        w.apply(batch)?;
                        w.subjects.clear();
                        // An offline repair: the counters are rebuilt here, in place of any
                        // rebuild running in the background.
                        w.rebuild.stop();
                        w.rebuild_counters()?;
                        w.rebuild.settled();
                        Ok(changed)
                    }));
                }
                Command::Close { reply } => {
                    self.rebuild.stop();
                    let flushed = self
                        .close_checkpoint()
                        .and_then(|()| self.shared.make_durable());
                    tracing::info!(head = self.head, "writer flushed and stopped");
                    let _ = reply.send(flushed);
                    return;
                }
            }
        }
    }

    /// A checkpoint at the head on a clean stop, so the next start replays nothing.
    fn close_checkpoint(&mut self) -> Result<(), StoreError> {
        if self.failed.is_some() || self.rebuild.owed() || self.last_checkpoint >= self.head {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        self.checkpoint(&mut batch)?;
        self.shared.engine.apply(batch)?;
        Ok(())
    }

    /// After the engine was out of reach, reads back what it holds — the directory, the heads,
    /// the audit chain's end, the counters from the last checkpoint and the log after it — as
    /// a start would: a batch whose commit was cut off may or may not have landed, and the
    /// engine alone knows. Readers then see what the engine holds.
    fn recover(&mut self) -> Result<(), StoreError> {
        let engine = &*self.shared.engine;
        let marks = super::Marks::read(engine)?;
        let directory = super::load_directory(engine)?;
        let (head, alert_head) = super::heads(engine)?;
        self.rebuild.stop();
        *self.shared.write_directory() = directory;
        self.shared.reviews.changed();
        *self = Writer::new(Arc::clone(&self.shared), head, alert_head, marks)?;
        self.shared.seen(marks.turns);
        self.shared.head.store(head, Ordering::Release);
        self.shared.alert_head.send_replace(alert_head);
        tracing::info!(
            head,
            alert_head,
            "the writer read the store back and takes writes again"
        );
        Ok(())
    }

    /// Runs a write unless an earlier one failed, and marks the writer failed if this one does.
    /// On an engine other nodes write too, the write runs in this node's turn, after reading
    /// back whatever they wrote since its last.
    fn guarded<T>(
        &mut self,
        write: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(failure) = &self.failed
            && !failure.recoverable
        {
            return Err(StoreError::WriterFailed(failure.reason.clone()));
        }
        let taking_turns = self.shared.engine.shared();
        let turns = if taking_turns {
            // Nothing is written yet: a turn not had is a refusal, not a failure.
            self.shared.engine.begin_turn()?
        } else {
            self.turns
        };
        let result = self.ready(turns).and_then(|()| {
            self.turn = taking_turns.then_some(turns);
            self.run_write(write)
        });
        if taking_turns {
            if result.is_ok()
                && let Some(turn) = self.turn
            {
                self.turns = turn;
            }
            self.turn = None;
            self.shared.engine.end_turn();
        }
        result
    }

    /// Brings what the writer holds up to the register at `turns`: read back whole after a
    /// failure, or what other nodes wrote since this one's last turn.
    fn ready(&mut self, turns: u64) -> Result<(), StoreError> {
        if let Some(failure) = &self.failed {
            let reason = failure.reason.clone();
            return self.recover().map_err(|error| {
                StoreError::Unavailable(format!("{reason}; still unreachable: {error}"))
            });
        }
        let followed = self.follow(turns);
        if let Err(error) = &followed {
            self.fail(error);
        }
        followed
    }

    /// Runs one write, marking the writer failed if the store may now hold part of it.
    fn run_write<T>(
        &mut self,
        write: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A write that fails leaves nothing on disk, so the heads go back to where they were.
        let heads = (
            self.head,
            self.alert_head,
            self.audit_head,
            self.directory_stamp,
        );
        let result = write(self);
        if let Err(error) = &result {
            (
                self.head,
                self.alert_head,
                self.audit_head,
                self.directory_stamp,
            ) = heads;
            // What the subject cache filed never reached the journal.
            self.subjects.clear();
            self.fail(error);
        }
        result
    }

    /// Marks the writer failed if `error` leaves the store's state unknown to it.
    fn fail(&mut self, error: &StoreError) {
        if let StoreError::Storage(_)
        | StoreError::Database(_)
        | StoreError::Unavailable(_)
        | StoreError::Codec(_)
        | StoreError::Corrupt(_) = error
        {
            let recoverable = matches!(error, StoreError::Unavailable(_));
            tracing::error!(
                %error,
                recoverable,
                "write failed; the writer refuses further writes until it has read the store back"
            );
            self.failed = Some(Failure {
                reason: error.to_string(),
                recoverable,
            });
        }
    }

    /// Reads what other nodes wrote since this node last looked, given the register's count
    /// of turns now, and hands it to this node's readers: the directory read back if they
    /// changed it, the log they wrote folded into the counters, the heads moved (watchers
    /// wake), and reviews read again. Nothing to do on an engine no other node writes.
    fn follow(&mut self, turns: u64) -> Result<(), StoreError> {
        if turns == self.turns {
            self.shared.seen(turns);
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let engine = &*shared.engine;
        let stamp = DirectoryStamp::get(engine, &())?.unwrap_or(0);
        let mut geography_changed = false;
        if stamp != self.directory_stamp {
            // Another node imported or registered something: read the directory back. New
            // geography is taken as the importing node takes it — what follows counts under
            // it at once, and the counters are rebuilt in the background.
            let directory = super::load_directory(engine)?;
            geography_changed = directory.fingerprint != shared.read_directory().fingerprint;
            *shared.write_directory() = directory;
            self.directory_stamp = stamp;
            if geography_changed {
                self.inspection.geography_changed();
            }
        }
        let (head, alert_head) = super::heads(engine)?;
        let audit_head = AuditHead::get(engine, &())?.unwrap_or((0, [0; 32]));
        if head > self.head {
            let directory = shared.read_directory();
            let counters = std::mem::take(&mut self.inspection);
            // On an error the counters are gone; the writer is then marked failed and reads
            // the store back whole before it writes again.
            self.inspection = fold::replay(engine, &directory, counters, head, None, None)?;
            self.subjects.clear();
        }
        (self.head, self.alert_head, self.audit_head, self.turns) =
            (head, alert_head, audit_head, turns);
        if geography_changed && head > 0 {
            self.rebuild.start(head);
        }
        self.publish(false);
        shared.head.store(head, Ordering::Release);
        shared.alert_head.send_if_modified(|known| {
            let moved = *known != alert_head;
            *known = alert_head;
            moved
        });
        shared.reviews.changed();
        shared.seen(turns);
        Ok(())
    }

    fn commit(&mut self, batch: Batch) {
        let (records, record_replies): (Vec<_>, Vec<_>) = batch
            .records
            .into_iter()
            .map(|(record, actor, reply)| ((record, actor), reply))
            .unzip();
        let (accesses, audit_replies): (Vec<_>, Vec<_>) = batch.audits.into_iter().unzip();
        let written = self.guarded(|w| w.write_batch(records, accesses));
        self.subjects.end_batch();
        match written {
            Ok((answers, audited)) => {
                self.shared.head.store(self.head, Ordering::Release);
                for (reply, answer) in record_replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
                for (reply, sequence) in audit_replies.into_iter().zip(audited) {
                    let _ = reply.send(Ok(sequence));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                for reply in record_replies {
                    let _ = reply.send(Err(StoreError::WriterFailed(reason.clone())));
                }
                for reply in audit_replies {
                    let _ = reply.send(Err(StoreError::WriterFailed(reason.clone())));
                }
            }
        }
    }

    /// Appends one event to the audit chain in `batch`, moving the chain's head.
    fn chain(
        &mut self,
        batch: &mut WriteBatch,
        access: Access,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let (last, previous) = self.audit_head;
        let event = AuditEvent::new(last + 1, at, access, previous);
        let hash = AuditLog::append(batch, &event)?;
        index_audit_event(batch, &event);
        self.audit_head = (event.sequence, hash);
        AuditHead::put(batch, &(), &self.audit_head)?;
        Ok(event.sequence)
    }

    /// Decides each record in order, writes log, projections, alerts and the audit events of
    /// the batch in one atomic step, and flushes once.
    fn write_batch(
        &mut self,
        records: Vec<(RiskRecord, Arc<Actor>)>,
        accesses: Vec<Access>,
    ) -> Result<(Vec<Submitted>, Vec<u64>), StoreError> {
        let shared = Arc::clone(&self.shared);
        let engine = &*shared.engine;
        let received_at = (shared.clock)();
        let directory = shared.read_directory();
        let mut batch = WriteBatch::default();
        // Revisions written earlier in this batch, which the engine cannot show us yet.
        let mut written: HashMap<RecordKey, Revision> = HashMap::new();
        let mut answers = Vec::with_capacity(records.len());
        let kind_of = |agency: &crate::domain::AgencyId| directory.kind_of(agency);
        // What each caller wrote, for one audit event per caller and batch.
        let mut writes: Vec<(Arc<Actor>, Vec<RecordKey>, [usize; 3])> = Vec::new();
        // What deciding reads, read for the whole batch at once: each record's latest
        // revision, and the journals of the subjects they and those revisions name.
        let latest = Log::latest_of(engine, records.iter().map(|(record, _)| &record.key))?;
        self.subjects.read_ahead(
            engine,
            records
                .iter()
                .filter_map(|(record, _)| record.subject)
                .chain(
                    latest
                        .values()
                        .filter_map(|revision| revision.record.subject),
                ),
        )?;
        for (record, actor) in records {
            let key = record.key.clone();
            let stored = match written.get(&record.key) {
                Some(revision) => Some(revision.clone()),
                None => latest.get(&record.key).cloned(),
            };
            let answer = match decide(stored.as_ref(), &record) {
                Decision::Accept { revision } => {
                    self.head += 1;
                    let revision = Revision {
                        record,
                        revision,
                        sequence: self.head,
                        received_at,
                        previous: stored.as_ref().map(|s| s.sequence),
                    };
                    let old = stored.as_ref().map(|s| &s.record);
                    let others = fold::others(old, &revision, |subject| {
                        self.subjects.filed(engine, subject)
                    })?;
                    let applied = self.inspection.apply(
                        &directory.geography,
                        &kind_of,
                        old,
                        &revision.record,
                        revision.sequence,
                        &others,
                    );
                    for mut alert in rules::evaluate(
                        &directory.geography,
                        &self.shared.rules,
                        stored.as_ref(),
                        &revision,
                        &applied,
                    ) {
                        self.alert_head += 1;
                        alert.sequence = self.alert_head;
                        AlertLog::put(&mut batch, &alert.sequence, &alert)?;
                    }
                    for (subject, entry) in
                        write_projections(&mut batch, stored.as_ref(), &revision)?
                    {
                        self.subjects.file(subject, entry);
                    }
                    let answer = Submitted::Accepted {
                        revision: revision.revision,
                        sequence: revision.sequence,
                    };
                    written.insert(revision.record.key.clone(), revision);
                    answer
                }
                Decision::Unchanged => {
                    let stored = stored
                        .as_ref()
                        .map(|s| (s.revision, s.sequence))
                        .unwrap_or_default();
                    Submitted::Unchanged {
                        revision: stored.0,
                        sequence: stored.1,
                    }
                }
                Decision::Stale { reason } => Submitted::Stale { reason },
            };
            let slot = match writes.iter().position(|(a, _, _)| *a == actor) {
                Some(i) => i,
                None => {
                    writes.push((actor, Vec::new(), [0; 3]));
                    writes.len() - 1
                }
            };
            let (_, keys, counts) = &mut writes[slot];
            keys.push(key);
            counts[match answer {
                Submitted::Accepted { .. } => 0,
                Submitted::Unchanged { .. } => 1,
                Submitted::Stale { .. } => 2,
            }] += 1;
            answers.push(answer);
        }
        drop(directory);
        let mut outcomes = [("accepted", 0u64), ("unchanged", 0), ("stale", 0)];
        for (_, _, counts) in &writes {
            for (total, count) in outcomes.iter_mut().zip(counts) {
                total.1 += *count as u64;
            }
        }
        for (actor, keys, [accepted, unchanged, stale]) in writes {
            let mut access = Access::by(Actor::clone(&actor));
            access.records = keys;
            access.outcome =
                format!("OK: accepted {accepted}, unchanged {unchanged}, stale {stale}");
            self.chain(&mut batch, access, received_at)?;
        }
        let mut audited = Vec::with_capacity(accesses.len());
        for access in accesses {
            audited.push(self.chain(&mut batch, access, received_at)?);
        }
        // Counters that count old records under an older geography are never checkpointed.
        if !self.rebuild.owed() && self.head >= self.last_checkpoint + self.shared.checkpoint_every
        {
            self.checkpoint(&mut batch)?;
        }
        self.write(batch)?;
        let flushing = std::time::Instant::now();
        self.shared.make_durable()?;
        metrics::histogram!(telemetry::FLUSH_SECONDS).record(flushing.elapsed().as_secs_f64());
        metrics::histogram!(telemetry::BATCH_SIZE).record(answers.len() as f64);
        for (outcome, count) in outcomes {
            metrics::counter!(telemetry::RECORDS, "outcome" => outcome).increment(count);
        }
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        if !written.is_empty() {
            // Only now, with the log durable, may readers see the counters move.
            self.publish(false);
            self.shared.alert_head.send_replace(self.alert_head);
        }
        Ok((answers, audited))
    }

    fn import_places(
        &mut self,
        tables: Vec<LookupTable>,
        actor: Actor,
    ) -> Result<ImportOutcome, StoreError> {
        let plan = plan_import(&self.shared.read_directory().geography, &tables)?;
        let mut batch = WriteBatch::default();
        let mut access = Access::by(actor);
        access.outcome = format!(
            "OK: {} places, {} memberships and {} code changes added",
            plan.places.len(),
            plan.memberships.len(),
            plan.successions.len()
        );
        self.chain(&mut batch, access, (self.shared.clock)())?;
        for place in &plan.places {
            Places::put(&mut batch, &place.code, place)?;
        }
        for membership in &plan.memberships {
            Memberships::put(&mut batch, membership, &())?;
        }
        for succession in &plan.successions {
            Successions::put(&mut batch, &succession.predecessor, &succession.successor)?;
        }
        for alias in &plan.aliases {
            Aliases::put(
                &mut batch,
                &(alias.scheme, alias.alias.clone()),
                &alias.place,
            )?;
        }
        for code in &plan.ended {
            Ended::put(&mut batch, code, &())?;
        }
        self.apply(batch)?;
        let changed =
            !plan.places.is_empty() || !plan.memberships.is_empty() || !plan.successions.is_empty();
        let places_by_level = {
            let mut directory = self.shared.write_directory();
            for place in plan.places {
                directory.geography.insert_place(place);
            }
            for membership in plan.memberships {
                directory.geography.insert_membership(membership);
            }
            for succession in plan.successions {
                directory.geography.insert_succession(succession);
            }
            for alias in plan.aliases {
                directory.geography.insert_alias(alias);
            }
            for code in plan.ended {
                directory.geography.insert_ended(code);
            }
            directory.fingerprint = directory.geography.fingerprint();
            directory.geography.count_by_level()
        };
        if changed {
            // New places or footprint memberships change where existing records count. The
            // log is replayed under the new geography off the writer, so writes go on; until
            // the rebuilt counters are swapped in, new changes count under the new geography
            // and records written before the import as they were counted, and alerts are
            // raised from those counters.
            self.inspection.geography_changed();
            if self.head > 0 {
                self.rebuild.start(self.head);
            }
        }
        Ok(ImportOutcome {
            report: plan.report,
            places_by_level,
        })
    }

    /// Stores population figures and the audit event in one batch, replacing any held for the
    /// same place and year, then lets readers see them.
    fn import_population(
        &mut self,
        figures: Vec<PopulationFigure>,
        actor: Actor,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let mut access = Access::by(actor);
        access.outcome = format!("OK: {} population figures stored", figures.len());
        self.chain(&mut batch, access, (self.shared.clock)())?;
        for figure in &figures {
            Populations::put(&mut batch, &(figure.place, figure.year), &figure.counts)?;
        }
        self.apply(batch)?;
        let mut directory = self.shared.write_directory();
        for figure in figures {
            directory.population.insert(figure);
        }
        Ok(())
    }

    /// Stores statistical neighbours and the audit event in one batch, each authority's set
    /// replacing any held for it, then lets readers see them.
    fn import_neighbours(
        &mut self,
        sets: Vec<NeighbourSet>,
        actor: Actor,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let mut access = Access::by(actor);
        access.outcome = format!(
            "OK: statistical neighbours stored for {} authorities",
            sets.len()
        );
        self.chain(&mut batch, access, (self.shared.clock)())?;
        for set in &sets {
            Neighbours::put(&mut batch, &set.authority, &set.neighbours)?;
        }
        self.apply(batch)?;
        let mut directory = self.shared.write_directory();
        for set in sets {
            directory.neighbours.insert(set);
        }
        Ok(())
    }

    /// Plans boundaries against the directory and the boundaries stored, then stores them
    /// (dissolved outlines included) with the audit event in one batch.
    fn import_boundaries(
        &mut self,
        import: BoundaryImport,
        actor: Actor,
    ) -> Result<BoundariesReport, StoreError> {
        let plan = {
            let directory = self.shared.read_directory();
            let engine = &*self.shared.engine;
            plan_boundaries(import, &directory.geography, |code| {
                Boundaries::get(engine, &code)
            })?
        };
        let mut batch = WriteBatch::default();
        let mut access = Access::by(actor);
        access.outcome = format!(
            "OK: {} boundaries stored, {} dissolved from districts",
            plan.report.shapes_stored, plan.report.shapes_dissolved
        );
        self.chain(&mut batch, access, (self.shared.clock)())?;
        for (code, boundary) in &plan.boundaries {
            Boundaries::put(&mut batch, code, boundary)?;
        }
        self.apply(batch)?;
        Ok(plan.report)
    }

    /// Raises `stale_high_risk` for every watched revision past the staleness limit, once:
    /// it leaves the watch in the same batch.
    fn sweep_stale(&mut self) -> Result<usize, StoreError> {
        let now = (self.shared.clock)();
        let engine = &*self.shared.engine;
        let cutoff = now - self.shared.rules.stale_after;
        let mut batch = WriteBatch::default();
        let mut raised = 0;
        let from = (
            time::OffsetDateTime::UNIX_EPOCH - time::Duration::days(365 * 200),
            0,
        );
        for entry in StaleWatch::range(engine, &from, &(cutoff, u64::MAX)) {
            let ((at, sequence), ()) = entry?;
            StaleWatch::remove(&mut batch, &(at, sequence));
            let Some(revision) = Log::get(engine, &sequence)? else {
                return Err(StoreError::Corrupt(format!(
                    "the stale watch names missing log entry {sequence}"
                )));
            };
            if let Some(mut alert) = rules::stale(&self.shared.rules, &revision, now) {
                self.alert_head += 1;
                alert.sequence = self.alert_head;
                AlertLog::put(&mut batch, &alert.sequence, &alert)?;
                raised += 1;
            }
        }
        raised += self.sweep_overdue(&mut batch, now)?;
        if raised == 0 {
            return Ok(0);
        }
        self.apply(batch)?;
        self.shared.alert_head.send_replace(self.alert_head);
        Ok(raised)
    }

    /// Fixes a release's point between batches, so it stands at exactly the writer's head:
    /// its number, its sequence and a copy of the counters as they are now. Scheduled, it
    /// does nothing unless a release point has passed since the last release (or since the
    /// schedule started, before any). Cheap: the tables are computed off the writer.
    fn fix_release(
        &mut self,
        schedule: Option<super::releases::Due>,
    ) -> Result<Option<super::releases::ReleasePoint>, StoreError> {
        let engine = &*self.shared.engine;
        let now = (self.shared.clock)();
        let last = match Releases::scan_all(engine).next_back() {
            Some(entry) => Some(entry?.1),
            None => None,
        };
        let as_at = match schedule {
            None => now,
            Some(due) => {
                // After the last release; before any, only points after the schedule started.
                let since = last.as_ref().map_or(due.since, |r| r.as_at);
                match due.schedule.latest_point(now) {
                    Some(point) if point > since => point,
                    _ => return Ok(None),
                }
            }
        };
        let release = Release {
            number: last.as_ref().map_or(1, |r| r.number + 1),
            sequence: self.head,
            as_at,
            cut_at: now,
            scheduled: schedule.is_some(),
            tables: 0,
        };
        Ok(Some(super::releases::ReleasePoint {
            release,
            counters: self.inspection.clone(),
            previous: last,
        }))
    }

    /// Writes a release whose tables were computed off the writer: the release and every
    /// table in one batch, so a crash leaves all of it or none. It must follow the last
    /// release written, as its point was fixed.
    fn write_release(
        &mut self,
        release: Release,
        tables: Vec<ReleasedTable>,
        actor: Option<Actor>,
    ) -> Result<Release, StoreError> {
        let engine = &*self.shared.engine;
        let now = (self.shared.clock)();
        let last = match Releases::scan_all(engine).next_back() {
            Some(entry) => entry?.1.number,
            None => 0,
        };
        if last >= release.number {
            // Another node cut it between this one fixing its point and writing it.
            return Err(StoreError::Conflict(format!(
                "release {} was cut meanwhile by another node; this cut is dropped",
                release.number
            )));
        }
        if last + 1 != release.number || release.sequence > self.head {
            return Err(StoreError::Corrupt(format!(
                "release {} at sequence {} does not follow release {last} at head {}",
                release.number, release.sequence, self.head
            )));
        }
        let mut batch = WriteBatch::default();
        Releases::put(&mut batch, &release.number, &release)?;
        for table in &tables {
            ReleaseTables::put(
                &mut batch,
                &(release.number, table.parent.code, table.level),
                table,
            )?;
        }
        if let Some(actor) = actor {
            let mut access = Access::by(actor);
            access.outcome = format!(
                "OK: release {} of the public table at sequence {}",
                release.number, release.sequence
            );
            self.chain(&mut batch, access, now)?;
        }
        self.apply(batch)?;
        tracing::info!(
            number = release.number,
            sequence = release.sequence,
            tables = release.tables,
            "release of the public table cut"
        );
        Ok(release)
    }

    /// Everything durable right now, between batches: the heads of the three logs and the
    /// directory as stored.
    fn cut(&self) -> Result<super::backup::BackupCut, StoreError> {
        let engine = &*self.shared.engine;
        Ok(super::backup::BackupCut {
            head: self.head,
            alert_head: self.alert_head,
            audit_head: self.audit_head,
            last_snapshot: match Snapshots::scan_all(engine).next_back() {
                Some(entry) => entry?.0,
                None => 0,
            },
            last_release: match Releases::scan_all(engine).next_back() {
                Some(entry) => entry?.0,
                None => 0,
            },
            places: Places::scan_all(engine)
                .map(|e| e.map(|(_, place)| place))
                .collect::<Result<_, _>>()?,
            memberships: Memberships::scan_all(engine)
                .map(|e| e.map(|(membership, ())| membership))
                .collect::<Result<_, _>>()?,
            ended: Ended::scan_all(engine)
                .map(|e| e.map(|(code, ())| code))
                .collect::<Result<_, _>>()?,
            aliases: Aliases::scan_all(engine)
                .map(|e| {
                    e.map(|((scheme, alias), place)| Alias {
                        scheme,
                        alias,
                        place,
                    })
                })
                .collect::<Result<_, _>>()?,
            successions: Successions::scan_all(engine)
                .map(|e| {
                    e.map(|(predecessor, successor)| Succession {
                        predecessor,
                        successor,
                    })
                })
                .collect::<Result<_, _>>()?,
            agencies: Agencies::scan_all(engine)
                .map(|e| e.map(|(_, agency)| agency))
                .collect::<Result<_, _>>()?,
            neighbours: Neighbours::scan_all(engine)
                .map(|e| {
                    e.map(|(authority, neighbours)| NeighbourSet {
                        authority,
                        neighbours,
                    })
                })
                .collect::<Result<_, _>>()?,
            boundaries: Boundaries::scan_all(engine).collect::<Result<_, _>>()?,
            reviews: Reviews::scan_all(engine)
                .map(|e| e.map(|(_, review)| review))
                .collect::<Result<_, _>>()?,
            actions: Actions::scan_all(engine)
                .map(|e| e.map(|(_, action)| action))
                .collect::<Result<_, _>>()?,
            population: Populations::scan_all(engine)
                .map(|e| {
                    e.map(|((place, year), counts)| PopulationFigure {
                        place,
                        year,
                        counts,
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// Writes a batch and flushes it.
    fn apply(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.write(batch)?;
        self.shared.make_durable()?;
        Ok(())
    }

    /// Writes a batch, in this node's turn if it has one, moving the directory's stamp when
    /// the batch changes the directory so other nodes read it back.
    fn write(&mut self, mut batch: WriteBatch) -> Result<(), StoreError> {
        let stamp = self.directory_stamp + 1;
        let restamped = batch.touches(&DIRECTORY_KEYSPACES);
        if restamped {
            DirectoryStamp::put(&mut batch, &(), &stamp)?;
        }
        if let Some(turn) = self.turn {
            batch.in_turn(turn);
        }
        self.shared.engine.apply(batch)?;
        if let Some(turn) = &mut self.turn {
            *turn += 1;
            self.shared.seen(*turn);
        }
        if restamped {
            self.directory_stamp = stamp;
        }
        Ok(())
    }

    fn create_snapshot(
        &mut self,
        request: SnapshotRequest,
        actor: Actor,
    ) -> Result<Snapshot, StoreError> {
        let id = match Snapshots::scan_all(&*self.shared.engine).next_back() {
            Some(entry) => entry?.0 + 1,
            None => 1,
        };
        let directory = self.shared.read_directory();
        let view = self.shared.read_inspection().view(
            &directory.geography,
            request.place,
            &request.filter,
        );
        // Names are frozen with the counts: a later rename or re-import changes neither.
        let names = super::ViewNames::of(&directory, &view);
        drop(directory);
        let snapshot = Snapshot {
            id,
            label: request.label,
            filter: request.filter,
            created_at: (self.shared.clock)(),
            view,
            names,
        };
        let mut batch = WriteBatch::default();
        Snapshots::put(&mut batch, &id, &snapshot)?;
        let mut access = Access::by(actor);
        access.place = Some(snapshot.view.place);
        access.purpose = snapshot.label.clone();
        access.outcome = format!("OK: snapshot {id}");
        self.chain(&mut batch, access, snapshot.created_at)?;
        self.apply(batch)?;
        Ok(snapshot)
    }

    fn register_agency(&mut self, agency: Agency, actor: Actor) -> Result<bool, StoreError> {
        match self.shared.read_directory().agencies.get(&agency.id) {
            Some(known) if *known == agency => return Ok(false),
            // Counters and convergence are kept by agency kind: a kind is for good.
            Some(known) if known.kind != agency.kind => {
                return Err(StoreError::Invalid(Invalid::one(
                    "kind",
                    format!(
                        "agency {} is registered as {}; an agency's kind cannot change",
                        agency.id, known.kind
                    ),
                )));
            }
            _ => {}
        }
        let mut batch = WriteBatch::default();
        Agencies::put(&mut batch, &agency.id, &agency)?;
        let mut access = Access::by(actor);
        access.outcome = format!("OK: agency {} registered as {}", agency.id, agency.kind);
        self.chain(&mut batch, access, (self.shared.clock)())?;
        self.apply(batch)?;
        self.shared
            .write_directory()
            .agencies
            .insert(agency.id.clone(), agency);
        Ok(true)
    }
}

/// Adds a revision to the batch: its log entry and every projection that follows from it.
/// Answers the subject journal entries it filed.
pub(super) fn write_projections(
    batch: &mut WriteBatch,
    stored: Option<&Revision>,
    revision: &Revision,
) -> Result<Vec<(crate::domain::SubjectKey, super::keyspace::SubjectEntry)>, StoreError> {
    let record = &revision.record;
    let key = &record.key;
    Log::put(batch, &revision.sequence, revision)?;
    Latest::put(batch, key, &revision.sequence)?;
    if let Some(old) = stored {
        // The record's previous revision moves on: its place entry goes with it.
        ByPlace::remove(batch, &(old.record.place, old.sequence));
        if rules::watched(&old.record) {
            StaleWatch::remove(batch, &(old.received_at, old.sequence));
        }
    }
    ByPlace::put(batch, &(record.place, revision.sequence), &())?;
    if rules::watched(record) {
        StaleWatch::put(batch, &(revision.received_at, revision.sequence), &())?;
    }
    let entries = fold::journal_entries(stored.map(|s| &s.record), revision);
    for (subject, entry) in &entries {
        SubjectJournal::put(batch, &(*subject, revision.sequence), entry)?;
    }
    Ok(entries)
}
