//! The register's storage: one engine behind [`Store`] (sled, through the seam in `engine`),
//! written only by the writer thread (and, for the counters' checkpoints, by a rebuild it
//! starts).
//!
//! The revision log is the truth; the latest-record, place and subject projections are written
//! in the same atomic batch as the log entries they follow from, so no reader ever sees a
//! projection that disagrees with the log. The inspection counters are folded from the log once
//! (`fold`), kept in memory and checkpointed every `checkpoint_every` revisions, so a start
//! replays only the log after the last checkpoint; after an import changes the geography they
//! are rebuilt in the background while writes go on (`rebuild`). The place index is kept by
//! place and recency (the sequence of each record's latest revision), so a risk listing
//! reads a page, not every record under the place; the audit indexes (by principal, by agency
//! of a touched record) are written with each audit event, so one principal's or agency's
//! events are not a scan of the chain.
//! `layout` upgrades a store of an older shape when it opens.

mod alerts;
mod audit;
mod backup;
mod boundaries;
pub mod engine;
mod fold;
mod keyspace;
mod layout;
mod rebuild;
mod releases;
mod reviews;
mod verify;
mod views;

pub use alerts::{AlertPage, AlertScan};
pub use audit::AuditPage;
pub use backup::{BackupCut, BackupSummary};
pub use engine::{DEFAULT_CONNECTIONS, PostgresOptions};
pub use rebuild::RebuildHold;
pub use releases::Due;
pub use reviews::{ActionChange, ReviewChange};
use reviews::{latest_action, latest_review};
pub use views::RiskPage;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot, watch};

use crate::domain::inspection::{Inspection, PlaceView, ViewFilter};
use crate::domain::lookup::{ImportReport, LookupError, LookupTable};
use crate::domain::neighbours::{
    Neighbour, NeighbourSet, NeighboursError, NeighboursReport, StatisticalNeighbours,
    plan_neighbours,
};
use crate::domain::population::{
    Denominators, PopulationError, PopulationReport, Rate, plan_population,
};
use crate::domain::{
    Access, Actor, Agency, AgencyId, AgencyKind, Alias, ClientGroup, Geography, Invalid, Place,
    PlaceCode, PlaceLevel, RecordKey, Revision, RiskRecord, Scope, Succession,
};
use crate::rules::RuleSettings;
use engine::Engine;
use keyspace::{
    Agencies, AlertLog, Aliases, Ended, Keyspace, Log, Memberships, Neighbours, Places,
    Populations, Successions,
};
use writer::{Command, Writer};

/// How many requests may wait for the writer before submitters are slowed down.
const WRITER_QUEUE: usize = 16_384;

/// What went wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Storage(#[from] sled::Error),
    /// The PostgreSQL engine failed for a reason other than reaching the database.
    #[error("database failure: {0}")]
    Database(String),
    /// The database cannot be reached (or is not the primary): a failover may be under way.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("stored value cannot be read: {0}")]
    Codec(#[from] postcard::Error),
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    #[error("the register is shutting down")]
    Closed,
    #[error("the writer stopped after a storage failure; restart the server: {0}")]
    WriterFailed(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The change was made against a revision that is no longer the latest, or breaks a rule
    /// of what it changes.
    #[error("{0}")]
    Conflict(String),
    /// What the change names does not exist (or is not published yet).
    #[error("{0}")]
    Missing(String),
    /// A limit on what one review may hold is reached.
    #[error("{0}")]
    Full(String),
    /// The caller is not the agency a recommendation is addressed to.
    #[error("{0}")]
    NotAccountable(String),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Population(#[from] PopulationError),
    #[error(transparent)]
    Neighbours(#[from] NeighboursError),
}

/// What the register did with one submitted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Stored durably as a new revision.
    Accepted { revision: u32, sequence: u64 },
    /// Identical to the stored latest revision.
    Unchanged { revision: u32, sequence: u64 },
    /// Older than or conflicting with the stored version; nothing changed.
    Stale { reason: String },
}

/// An answer the writer will give once the batch holding the request is durable.
pub type PendingSubmission = oneshot::Receiver<Result<Submitted, StoreError>>;

/// The outcome of a geography import.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    pub report: ImportReport,
    /// Places per level in the whole directory after the import.
    pub places_by_level: BTreeMap<PlaceLevel, u64>,
}

/// What to freeze in a snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub place: PlaceCode,
    pub filter: ViewFilter,
    pub label: String,
}

/// A place view frozen for an inspection report; it never changes once written, names
/// included.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub id: u64,
    pub label: String,
    pub filter: ViewFilter,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub created_at: time::OffsetDateTime,
    pub view: PlaceView,
    /// The names the view showed when it was frozen.
    pub names: ViewNames,
}

/// A snapshot as stored before its names were frozen with it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SnapshotWithoutNames {
    id: u64,
    label: String,
    filter: ViewFilter,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    created_at: time::OffsetDateTime,
    view: PlaceView,
}

impl From<SnapshotWithoutNames> for Snapshot {
    /// Its names were never kept: they are left empty and shown as the directory has them.
    fn from(old: SnapshotWithoutNames) -> Self {
        Self {
            id: old.id,
            label: old.label,
            filter: old.filter,
            created_at: old.created_at,
            view: old.view,
            names: ViewNames::default(),
        }
    }
}

/// The names of what a view counts, as the directory had them when it was made: the view's
/// place and its child places (in the view's order), and each agency's kind and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ViewNames {
    /// The view's place first, then each child; `None` where the directory had no such place.
    pub places: Vec<Option<Place>>,
    pub agencies: BTreeMap<AgencyId, (AgencyKind, String)>,
}

impl ViewNames {
    fn of(directory: &Directory, view: &PlaceView) -> Self {
        let codes = std::iter::once(view.place).chain(view.children.iter().map(|(code, _)| *code));
        Self {
            places: codes
                .map(|code| directory.geography.place(code).cloned())
                .collect(),
            agencies: view
                .by_agency
                .keys()
                .filter_map(|id| directory.agencies.get(id))
                .map(|agency| (agency.id.clone(), (agency.kind, agency.name.clone())))
                .collect(),
        }
    }

    /// Whether nothing was kept (a snapshot stored before names were frozen with it).
    pub fn is_empty(&self) -> bool {
        self.places.is_empty() && self.agencies.is_empty()
    }
}

/// A place with where it sits.
#[derive(Debug, Clone)]
pub struct PlaceDetail {
    pub place: Place,
    /// Root first, ending with the parent.
    pub ancestors: Vec<Place>,
    /// Footprint areas listing the place directly.
    pub areas: Vec<PlaceCode>,
    /// Other organisations' codes for the place.
    pub aliases: Vec<(crate::domain::AliasScheme, String)>,
}

/// The geography and agencies, held in memory so scope checks need no I/O.
#[derive(Debug, Default, Clone)]
pub(crate) struct Directory {
    geography: Geography,
    agencies: BTreeMap<AgencyId, Agency>,
    /// [`Geography::fingerprint`], kept in step with every import.
    fingerprint: u64,
    /// Population by place and mid-year, for rates. Not part of the geography: importing it
    /// changes no counter.
    population: Denominators,
    /// DfE statistical neighbours by upper-tier authority, for comparisons.
    neighbours: StatisticalNeighbours,
}

struct Shared {
    /// Where the log and every projection are kept.
    engine: Box<dyn Engine>,
    directory: RwLock<Directory>,
    /// Counters and convergence, never ahead of the durable log.
    inspection: RwLock<Inspection>,
    /// Sequence of the last durable revision.
    head: AtomicU64,
    /// Record batches the writer has made durable, for batch-size figures.
    batches: AtomicU64,
    commands: mpsc::Sender<Command>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Alert rule settings.
    rules: RuleSettings,
    /// The register's clock: receipt times and the staleness sweep.
    clock: Clock,
    /// Sequence of the last durable alert; watchers wait on it.
    alert_head: watch::Sender<u64>,
    /// Set when the server begins to shut down, so open watch streams end.
    draining: watch::Sender<bool>,
    /// Revisions between two checkpoints of the counters.
    checkpoint_every: u64,
    /// Log or index entries one page of risks may read.
    page_read_limit: usize,
    /// Held for the whole of a release cut, from fixing its point to writing it, so two cuts
    /// never interleave and release numbers stay gap-free.
    releasing: tokio::sync::Mutex<()>,
    /// True while the counters are being rebuilt in the background after an import changed
    /// the geography.
    counters_rebuilding: watch::Sender<bool>,
    /// Holds finished rebuilds back from the writer (tests).
    gate: Arc<rebuild::Gate>,
    /// The latest revision of every review, read once per change of them: lessons and lines
    /// of enquiry read them all on every call.
    reviews: reviews::ReviewCache,
    /// When this node last knew it held the register's head (see [`Store::behind`]).
    current_at: Mutex<std::time::Instant>,
    /// The register's count of turns that what this node's readers see reflects.
    turns_seen: AtomicU64,
    /// A [`Command::Follow`] is queued and not yet taken.
    following: std::sync::atomic::AtomicBool,
}

/// The directory as stored: places, memberships, aliases, successions, agencies, population
/// and neighbours.
fn load_directory(engine: &dyn Engine) -> Result<Directory, StoreError> {
    let mut directory = Directory::default();
    for entry in Places::scan_all(engine) {
        directory.geography.insert_place(entry?.1);
    }
    for entry in Memberships::scan_all(engine) {
        directory.geography.insert_membership(entry?.0);
    }
    for entry in Ended::scan_all(engine) {
        directory.geography.insert_ended(entry?.0);
    }
    for entry in Aliases::scan_all(engine) {
        let ((scheme, alias), place) = entry?;
        directory.geography.insert_alias(Alias {
            scheme,
            alias,
            place,
        });
    }
    for entry in Successions::scan_all(engine) {
        let (predecessor, successor) = entry?;
        directory.geography.insert_succession(Succession {
            predecessor,
            successor,
        });
    }
    for entry in Agencies::scan_all(engine) {
        let (id, agency) = entry?;
        directory.agencies.insert(id, agency);
    }
    for entry in Populations::scan_all(engine) {
        let ((place, year), counts) = entry?;
        directory
            .population
            .insert(crate::domain::population::PopulationFigure {
                place,
                year,
                counts,
            });
    }
    for entry in Neighbours::scan_all(engine) {
        let (authority, neighbours) = entry?;
        directory.neighbours.insert(NeighbourSet {
            authority,
            neighbours,
        });
    }
    directory.fingerprint = directory.geography.fingerprint();
    Ok(directory)
}

/// The longest a node goes without looking for other nodes' writes when it hears of none.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts the thread that asks the writer to read what other nodes wrote, whenever the engine
/// hears they wrote and at least every [`FOLLOW_EVERY`], until the store closes. Nothing to
/// follow on an engine no other node writes.
fn follow_other_nodes(shared: &Arc<Shared>) -> Result<(), StoreError> {
    let Some(mut listener) = shared.engine.listen() else {
        return Ok(());
    };
    let shared = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("marr-follow".into())
        .spawn(move || {
            loop {
                // Waiting holds no handle on the store, so closing it is not held up.
                let heard = listener.wait(FOLLOW_EVERY);
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                match heard {
                    // Nothing written that this node has not seen: it is current, even while
                    // its writer is busy (or waits for its turn behind another node's).
                    Ok(heard) if heard.turns == shared.turns_seen.load(Ordering::Acquire) => {
                        shared.mark_current();
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "cannot hear other nodes' writes; retrying");
                        drop(shared);
                        std::thread::sleep(FOLLOW_EVERY);
                        continue;
                    }
                }
                if shared.following.swap(true, Ordering::AcqRel) {
                    continue;
                }
                match shared.commands.try_send(Command::Follow { reply: None }) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        shared.following.store(false, Ordering::Release);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        })
        .map(drop)
        .map_err(|e| StoreError::WriterFailed(e.to_string()))
}

/// Where the register stood when a node read it, taken before the directory and the heads:
/// another node's turn in between only makes these older than what was read, so the node
/// reads again at its next look, never misses a change.
#[derive(Debug, Clone, Copy)]
struct Marks {
    /// The register's count of turns (see [`Engine::begin_turn`]).
    turns: u64,
    /// The directory's stamp ([`keyspace::DirectoryStamp`]).
    directory_stamp: u64,
}

impl Marks {
    fn read(engine: &dyn Engine) -> Result<Self, StoreError> {
        Ok(Self {
            turns: engine.turns()?,
            directory_stamp: keyspace::DirectoryStamp::get(engine, &())?.unwrap_or(0),
        })
    }
}

/// Sequences of the last revision and the last alert in the engine.
fn heads(engine: &dyn Engine) -> Result<(u64, u64), StoreError> {
    let head = match Log::scan_all(engine).next_back() {
        Some(entry) => entry?.0,
        None => 0,
    };
    let alert_head = match AlertLog::scan_all(engine).next_back() {
        Some(entry) => entry?.0,
        None => 0,
    };
    Ok((head, alert_head))
}

/// Where the register reads the time; tests substitute a clock they control.
pub type Clock = Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>;

/// How a store is opened.
#[derive(Clone)]
pub struct StoreOptions {
    pub rules: RuleSettings,
    pub clock: Clock,
    /// After each flush, fsync the store's file as well (see [`engine::Sled`]).
    pub fsync: bool,
    /// Bytes sled may keep in its page cache (`[store] cache_mib`); sled's own default is
    /// 1 GiB, more than a register's memory budget allows.
    pub cache_bytes: u64,
    /// Revisions between two checkpoints of the counters (`[store] checkpoint_every`): the
    /// most a start after a crash replays, and the most an `as_of` view replays.
    pub checkpoint_every: u64,
    /// Log or index entries one page of risks may read before it answers short, with a token
    /// that resumes the walk (`[store] page_read_limit`): a filter that matches almost nothing
    /// costs many cheap pages, never one unbounded call.
    pub page_read_limit: usize,
    /// Opened by a serving node: on PostgreSQL, other serving nodes may share the register,
    /// taking turns to write it. Otherwise (an offline tool) the register is this process's
    /// alone, and opening it while any node serves it is refused.
    pub serving: bool,
}

/// sled's page cache unless the config says otherwise.
pub const DEFAULT_CACHE_MIB: u64 = 256;

/// Revisions between checkpoints unless the config says otherwise.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 50_000;

/// Entries a page of risks may read unless the config says otherwise: tens of milliseconds.
pub const DEFAULT_PAGE_READ_LIMIT: usize = 100_000;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            rules: RuleSettings::default(),
            clock: Arc::new(time::OffsetDateTime::now_utc),
            fsync: true,
            cache_bytes: DEFAULT_CACHE_MIB * 1024 * 1024,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            page_read_limit: DEFAULT_PAGE_READ_LIMIT,
            serving: false,
        }
    }
}

/// Where the register keeps its data: the engine and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// sled in this directory: one node.
    Sled(PathBuf),
    /// A PostgreSQL database: one node or several sharing it.
    Postgres(PostgresOptions),
}

impl std::fmt::Display for Location {
    /// Names the place without the URL's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sled(dir) => write!(f, "sled store in {}", dir.display()),
            Self::Postgres(options) => match options.url.parse::<postgres::Config>() {
                Ok(config) => {
                    let hosts: Vec<String> = config
                        .get_hosts()
                        .iter()
                        .map(|host| match host {
                            postgres::config::Host::Tcp(name) => name.clone(),
                            postgres::config::Host::Unix(path) => path.display().to_string(),
                        })
                        .collect();
                    write!(
                        f,
                        "PostgreSQL database {} on {}",
                        config.get_dbname().unwrap_or("(default)"),
                        hosts.join(",")
                    )
                }
                Err(_) => f.write_str("PostgreSQL database (URL unreadable)"),
            },
        }
    }
}

/// The register's store; cheap to clone, shared by every handler.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl Store {
    /// Opens (or creates) the store in `dir`, loads the directory and starts the writer.
    /// Blocking: call it before serving or from `spawn_blocking`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens the store with rule settings and a clock.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let engine = engine::Sled::open(dir, options.cache_bytes, options.fsync)?;
        Self::open_on(Box::new(engine), options)
    }

    /// Opens the store wherever `location` says, with these options.
    pub fn open_at(location: &Location, options: StoreOptions) -> Result<Self, StoreError> {
        match location {
            Location::Sled(dir) => Self::open_with(dir, options),
            Location::Postgres(database) => {
                let hold = if options.serving {
                    engine::Hold::Shared
                } else {
                    engine::Hold::Alone
                };
                let engine = engine::Postgres::open(database, hold)?;
                Self::open_on(Box::new(engine), options)
            }
        }
    }

    /// Opens the store on an engine already open (sled lets go of a directory's lock only
    /// some time after a handle is dropped, so a restore hands over the one it wrote with).
    fn open_on(engine: Box<dyn Engine>, options: StoreOptions) -> Result<Self, StoreError> {
        layout::upgrade(&*engine)?;
        let marks = Marks::read(&*engine)?;
        let directory = load_directory(&*engine)?;
        let (head, alert_head) = heads(&*engine)?;
        let (commands, queue) = mpsc::channel(WRITER_QUEUE);
        let shared = Arc::new(Shared {
            engine,
            directory: RwLock::new(directory),
            inspection: RwLock::new(Inspection::default()),
            head: AtomicU64::new(head),
            batches: AtomicU64::new(0),
            commands,
            writer: Mutex::new(None),
            rules: options.rules,
            clock: options.clock,
            alert_head: watch::Sender::new(alert_head),
            draining: watch::Sender::new(false),
            checkpoint_every: options.checkpoint_every.max(1),
            page_read_limit: options.page_read_limit.max(1),
            releasing: tokio::sync::Mutex::new(()),
            counters_rebuilding: watch::Sender::new(false),
            gate: Arc::default(),
            reviews: reviews::ReviewCache::default(),
            current_at: Mutex::new(std::time::Instant::now()),
            turns_seen: AtomicU64::new(marks.turns),
            following: std::sync::atomic::AtomicBool::new(false),
        });
        // The writer loads the counters from the last checkpoint before anything is served.
        let writer = Writer::new(Arc::clone(&shared), head, alert_head, marks)?;
        let handle = std::thread::Builder::new()
            .name("marr-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| StoreError::WriterFailed(e.to_string()))?;
        *shared.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        follow_other_nodes(&shared)?;
        tracing::info!(
            head,
            places = shared.read_directory().geography.len(),
            "store opened"
        );
        Ok(Self { shared })
    }

    /// How long since this node last knew it held the register's head, when other nodes may
    /// write it too (PostgreSQL shared by serving nodes); `None` when no other node can.
    pub fn behind(&self) -> Option<std::time::Duration> {
        self.shared.engine.shared().then(|| {
            self.shared
                .current_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
        })
    }

    /// Sequence of the last durable revision (0 when the log is empty).
    pub fn head_sequence(&self) -> u64 {
        self.shared.head.load(Ordering::Acquire)
    }

    /// Whether the counters are being rebuilt in the background after an import changed the
    /// geography. Until they are, views and alerts count the records written before the
    /// import under the geography they were counted with (see `docs/operations.md`).
    pub fn counters_rebuilding(&self) -> bool {
        *self.shared.counters_rebuilding.borrow()
    }

    /// Waits until no counter rebuild is running: the rebuilt counters are then what readers
    /// see (or, if the rebuild failed, the old ones stay until the next start rebuilds).
    pub async fn counters_rebuilt(&self) {
        let mut rebuilding = self.shared.counters_rebuilding.subscribe();
        // The sender lives in the store, which `self` keeps alive.
        let _ = rebuilding.wait_for(|running| !running).await;
    }

    /// Holds every finished counter rebuild back from the writer until the hold is dropped,
    /// so a test can watch the store while a rebuild is outstanding.
    #[doc(hidden)]
    pub fn hold_counter_rebuilds(&self) -> RebuildHold {
        self.shared.gate.hold()
    }

    /// Record batches made durable since the store was opened.
    pub fn batches_committed(&self) -> u64 {
        self.shared.batches.load(Ordering::Relaxed)
    }

    /// [`Store::check_record`], and on a register other nodes write too, a refusal is checked
    /// again after reading what they wrote: an agency or a place another node has just
    /// registered is then known here as well.
    pub async fn check_record_now(&self, record: &RiskRecord) -> Result<(), Invalid> {
        match self.check_record(record) {
            Err(refusal) if self.shared.engine.shared() => {
                // The writer is asked only if something was written that this node has not
                // read, so a stream of bad records costs it nothing.
                let unseen = self
                    .shared
                    .engine
                    .turns()
                    .map(|turns| turns != self.shared.turns_seen.load(Ordering::Acquire));
                match unseen {
                    Ok(false) => Err(refusal),
                    Ok(true) => match self.follow().await {
                        Ok(()) => self.check_record(record),
                        Err(error) => {
                            tracing::warn!(%error, "could not read what other nodes wrote");
                            Err(refusal)
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, "could not read the register's count of turns");
                        Err(refusal)
                    }
                }
            }
            checked => checked,
        }
    }

    /// Reads what other nodes have written, now, and waits until this node's readers see it.
    pub async fn follow(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Follow { reply: Some(reply) })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)
    }

    /// Checks a record against the directory: a registered agency, a known place in the engine,
    /// inside the agency's footprint.
    pub fn check_record(&self, record: &RiskRecord) -> Result<(), Invalid> {
        let directory = self.shared.read_directory();
        let Some(agency) = directory.agencies.get(&record.key.agency) else {
            return Err(Invalid::one(
                "agency_id",
                format!("agency {} is not registered", record.key.agency),
            ));
        };
        let place = record.place;
        // A replaced code is still a place: the record counts under its successor.
        match directory.geography.current_place(place) {
            None => Err(Invalid::one(
                "place_code",
                format!("{place} is not a known place"),
            )),
            Some(p) if p.level.is_footprint() => Err(Invalid::one(
                "place_code",
                format!("{place} is a {}, not a place in the engine", p.level),
            )),
            Some(_)
                if !agency
                    .footprint
                    .iter()
                    .any(|scope| directory.geography.within(place, *scope)) =>
            {
                Err(Invalid::one(
                    "place_code",
                    format!("{place} is outside the footprint of agency {}", agency.id),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Queues a checked record for the writer; the answer arrives once it is durable.
    /// The writer records who submitted it in the audit chain, in the same atomic step.
    pub async fn enqueue(
        &self,
        record: RiskRecord,
        actor: Arc<Actor>,
    ) -> Result<PendingSubmission, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Record {
            record,
            actor,
            reply,
        })
        .await?;
        Ok(answer)
    }

    /// Checks and submits one record, waiting until it is durable.
    pub async fn submit(
        &self,
        record: RiskRecord,
        actor: Arc<Actor>,
    ) -> Result<Submitted, StoreError> {
        self.check_record_now(&record).await?;
        self.enqueue(record, actor)
            .await?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// The latest revision of a record.
    pub fn record(&self, key: &RecordKey) -> Result<Option<Revision>, StoreError> {
        Log::latest(&*self.shared.engine, key)
    }

    /// Every revision of a record, oldest first, by walking back through the log.
    pub fn history(&self, key: &RecordKey) -> Result<Vec<Revision>, StoreError> {
        let mut revisions = Vec::new();
        let mut next = self.record(key)?.map(|latest| latest.sequence);
        while let Some(sequence) = next {
            let revision = Log::get(&*self.shared.engine, &sequence)?.ok_or_else(|| {
                StoreError::Corrupt(format!("log entry {sequence} of {key} is missing"))
            })?;
            next = revision.previous;
            revisions.push(revision);
        }
        revisions.reverse();
        Ok(revisions)
    }

    /// Imports geography lookup tables; the writer plans and applies them in one batch.
    pub async fn import_places(
        &self,
        tables: Vec<LookupTable>,
        actor: Actor,
    ) -> Result<ImportOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::ImportPlaces {
            tables,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Imports ONS mid-year population tables: read here, written by the writer in one batch
    /// with the audit event. A table without the population columns refuses the whole import;
    /// a figure for a place and year already held is replaced.
    pub async fn import_population(
        &self,
        tables: Vec<LookupTable>,
        actor: Actor,
    ) -> Result<PopulationReport, StoreError> {
        let plan = plan_population(&tables)?;
        let (reply, answer) = oneshot::channel();
        self.send(Command::ImportPopulation {
            figures: plan.figures,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)??;
        Ok(plan.report)
    }

    /// Each client group's count at a place as a rate per 10,000 of its population band, in
    /// the latest year imported for the place; groups are left out where no population is
    /// known (a ward, an ICB, a place the tables do not list).
    pub fn rates(
        &self,
        place: PlaceCode,
        counts: &BTreeMap<ClientGroup, u64>,
    ) -> BTreeMap<ClientGroup, Rate> {
        let directory = self.shared.read_directory();
        let population = &directory.population;
        // A place recoded with the same boundary (Barnsley, Sheffield in 2025) is counted in
        // population tables under its old code until they catch up.
        let counted_as = if population.latest(place).is_some() {
            place
        } else {
            match directory.geography.replaced_codes(place)[..] {
                [only] if population.latest(only).is_some() => only,
                _ => place,
            }
        };
        population.rates(counted_as, counts)
    }

    /// Imports DfE statistical neighbours tables: read here against the geography held now
    /// (every DfE number resolved through its aliases), written by the writer in one batch
    /// with the audit event. A table without the DfE columns refuses the whole import; an
    /// authority imported again has its set replaced.
    pub async fn import_neighbours(
        &self,
        tables: Vec<LookupTable>,
        actor: Actor,
    ) -> Result<NeighboursReport, StoreError> {
        let plan = plan_neighbours(&tables, &self.shared.read_directory().geography)?;
        let (reply, answer) = oneshot::channel();
        self.send(Command::ImportNeighbours {
            sets: plan.sets,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)??;
        Ok(plan.report)
    }

    /// An authority's statistical neighbours, closest first; empty when none are held.
    pub fn neighbours_of(&self, authority: PlaceCode) -> Vec<Neighbour> {
        self.shared
            .read_directory()
            .neighbours
            .of(authority)
            .map(<[Neighbour]>::to_vec)
            .unwrap_or_default()
    }

    /// (place, year) population figures held.
    pub fn population_figures(&self) -> usize {
        self.shared.read_directory().population.len()
    }

    /// Registers an agency, or updates it; answers whether anything changed.
    pub async fn register_agency(&self, agency: Agency, actor: Actor) -> Result<bool, StoreError> {
        agency.check(&self.shared.read_directory().geography)?;
        let (reply, answer) = oneshot::channel();
        self.send(Command::RegisterAgency {
            agency,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub fn agencies(&self) -> Vec<Agency> {
        self.shared
            .read_directory()
            .agencies
            .values()
            .cloned()
            .collect()
    }

    pub fn agency(&self, id: &AgencyId) -> Option<Agency> {
        self.shared.read_directory().agencies.get(id).cloned()
    }

    /// A place named by its GSS code or its NHS ODS code (see [`Geography::code_named`]).
    pub fn code_named(&self, text: &str) -> Result<PlaceCode, String> {
        self.shared.read_directory().geography.code_named(text)
    }

    /// [`Store::code_named`], refused as a violation of `field`.
    pub fn place_code(&self, field: &str, text: &str) -> Result<PlaceCode, Invalid> {
        self.code_named(text)
            .map_err(|reason| Invalid::one(field, reason))
    }

    /// A place or footprint area with its ancestors and areas; for a replaced code, the place
    /// that replaced it.
    pub fn place(&self, code: PlaceCode) -> Option<PlaceDetail> {
        let directory = self.shared.read_directory();
        let geography = &directory.geography;
        let code = geography.current(code);
        let place = geography.place(code)?.clone();
        let mut ancestors: Vec<Place> = geography.ancestors(code).into_iter().cloned().collect();
        ancestors.reverse();
        Some(PlaceDetail {
            place,
            ancestors,
            areas: geography.areas_listing(code),
            aliases: geography.aliases_of(code),
        })
    }

    /// The places with these codes, where known, in one look at the directory.
    /// The names a view shows, as the directory has them now.
    pub fn view_names(&self, view: &PlaceView) -> ViewNames {
        ViewNames::of(&self.shared.read_directory(), view)
    }

    pub fn places(&self, codes: &[PlaceCode]) -> Vec<Option<Place>> {
        let directory = self.shared.read_directory();
        codes
            .iter()
            .map(|code| directory.geography.place(*code).cloned())
            .collect()
    }

    /// A place's children, or a footprint area's members; `None` when the code is unknown.
    pub fn child_places(&self, code: PlaceCode) -> Option<Vec<Place>> {
        let directory = self.shared.read_directory();
        directory.geography.current_place(code)?;
        Some(
            directory
                .geography
                .children(code)
                .into_iter()
                .cloned()
                .collect(),
        )
    }

    /// Bytes the store occupies on disk. Blocking: it walks the store's files.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.shared.engine.size_on_disk()
    }

    /// Whether everything in `place` lies inside `scope` (see [`Scope::covers`]).
    pub fn covers(&self, scope: &Scope, place: PlaceCode) -> bool {
        scope.covers(&self.shared.read_directory().geography, place)
    }

    /// Appends an access to the audit chain and waits until it is durable; answers its
    /// sequence in the chain.
    pub async fn audit(&self, access: Access) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Audit { access, reply }).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Lets the writer finish everything queued before this call, flushes, and stops it.
    /// Later submissions get [`StoreError::Closed`].
    /// [`Store::close`] for code that is not async (offline tools). Blocking.
    pub fn close_blocking(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        if self
            .shared
            .commands
            .blocking_send(Command::Close { reply })
            .is_ok()
        {
            answer.blocking_recv().map_err(|_| StoreError::Closed)??;
        }
        let handle = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            handle
                .join()
                .map_err(|_| StoreError::WriterFailed("writer thread panicked".into()))?;
        }
        Ok(())
    }

    pub async fn close(&self) -> Result<(), StoreError> {
        // A release being computed finishes (and is written, or not at all) first.
        let _no_cut = self.shared.releasing.lock().await;
        let (reply, answer) = oneshot::channel();
        if self
            .shared
            .commands
            .send(Command::Close { reply })
            .await
            .is_ok()
        {
            answer.await.map_err(|_| StoreError::Closed)??;
        }
        let handle = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::WriterFailed(e.to_string()))?
                .map_err(|_| StoreError::WriterFailed("writer thread panicked".into()))?;
        }
        Ok(())
    }

    async fn send(&self, command: Command) -> Result<(), StoreError> {
        self.shared
            .commands
            .send(command)
            .await
            .map_err(|_| StoreError::Closed)
    }
}

impl Shared {
    /// Makes everything written so far durable.
    fn make_durable(&self) -> Result<(), StoreError> {
        self.engine.flush()
    }

    /// What this node's readers see reflects the register at `turns`, which is its head as
    /// of now.
    fn seen(&self, turns: u64) {
        self.turns_seen.store(turns, Ordering::Release);
        self.mark_current();
    }

    /// This node holds the register's head as of now.
    fn mark_current(&self) {
        *self.current_at.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
    }

    fn read_directory(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        // The directory is replaced whole under the lock, so a poisoned lock still holds a
        // consistent value.
        self.directory.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_directory(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|p| p.into_inner())
    }
}
