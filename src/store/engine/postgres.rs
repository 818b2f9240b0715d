//! PostgreSQL behind the seam: every keyspace in one table of ordered `bytea` keys, a batch
//! as one transaction, and a commit as the point a write is durable (on the standby too when
//! the server replicates synchronously).
//!
//! Readers call the engine synchronously, from the writer thread, from blocking tasks and from
//! async workers alike. The driver's blocking client cannot run inside an async runtime, so
//! each connection lives on a thread of its own and callers hand it their query as a job: a
//! pool of such threads, each reconnecting by itself after the server is lost (a failover
//! included; the URL may name several hosts with `target_session_attrs=read-write`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Statement};

use super::{Engine, Entries, Entry, Heard, TurnListener, WriteBatch};
use crate::store::StoreError;

/// The schema version this build writes; a database at a later one was written by a newer
/// marr and is refused.
pub const SCHEMA_VERSION: i32 = 2;

/// The table every keyspace lives in.
pub const TABLE: &str = "marr_register";

/// How often the thread holding the register's lock checks that its connection lives.
const LOCK_CHECK: Duration = Duration::from_secs(2);

/// The longest a node waits for its turn to write before it answers UNAVAILABLE.
const TURN_WAIT: Duration = Duration::from_secs(30);

/// Connections unless the config says otherwise.
pub const DEFAULT_CONNECTIONS: usize = 8;

/// How to reach the database (`[store] engine = "postgres"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// A libpq-style URL or key=value string; several hosts and
    /// `target_session_attrs=read-write` let a node follow a failover.
    pub url: String,
    /// PEM file of the CA that signs the database's certificate: with it, connections use
    /// TLS and check the certificate (`sslmode=require`); without it, no TLS is offered.
    pub ca: Option<PathBuf>,
    /// The password, read from a file so it stays out of the config.
    pub password_file: Option<PathBuf>,
    /// Connections held open, each on a thread of its own.
    pub connections: usize,
}

impl PostgresOptions {
    /// Options for this URL, with defaults for the rest.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca: None,
            password_file: None,
            connections: DEFAULT_CONNECTIONS,
        }
    }
}

/// Connects with the options' TLS and password: one place, used by every connection thread.
struct Connector {
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Connector {
    fn new(options: &PostgresOptions) -> Result<Self, StoreError> {
        let mut config: postgres::Config = options
            .url
            .parse()
            .map_err(|e| StoreError::Database(format!("[store] url cannot be read: {e}")))?;
        if let Some(file) = &options.password_file {
            let password = std::fs::read_to_string(file).map_err(|e| {
                StoreError::Database(format!(
                    "[store] password_file {} cannot be read: {e}",
                    file.display()
                ))
            })?;
            config.password(password.trim_end_matches(['\r', '\n']));
        }
        config.connect_timeout(Duration::from_secs(5));
        let tls = match &options.ca {
            Some(ca) => Some(tls_with(ca)?),
            None => {
                if config.get_ssl_mode() == postgres::config::SslMode::Require {
                    return Err(StoreError::Database(
                        "[store] url asks for sslmode=require: set [store] ca to the PEM file of \
                         the CA that signs the database's certificate"
                            .into(),
                    ));
                }
                config.ssl_mode(postgres::config::SslMode::Disable);
                None
            }
        };
        if tls.is_some() {
            config.ssl_mode(postgres::config::SslMode::Require);
        }
        Ok(Self { config, tls })
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        }
    }
}

/// A rustls client that trusts only the CA in this PEM file.
fn tls_with(ca: &std::path::Path) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let unreadable = |e: &dyn std::fmt::Display| {
        StoreError::Database(format!("[store] ca {}: {e}", ca.display()))
    };
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca).map_err(|e| unreadable(&e))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| unreadable(&e))?;
        roots.add(certificate).map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"holds no certificate"));
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unreadable(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// One connection thread's state: the client (none while the server is unreachable) and the
/// statements it has prepared.
struct Link {
    connector: Arc<Connector>,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

impl Link {
    fn new(connector: &Arc<Connector>) -> Self {
        Self {
            connector: Arc::clone(connector),
            client: None,
            statements: HashMap::new(),
        }
    }

    fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            self.client = Some(self.connector.connect()?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    /// The statement for this SQL, prepared once per connection.
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client()?.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// A read, tried once more on a new connection if this one was lost: a connection left
    /// open to a server that has since gone (a failover) fails its next query, and a read
    /// can safely be asked again. Writes are never retried: whether a lost commit landed is
    /// for the writer to find out.
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        self.retried(|link| {
            let statement = link.statement(sql)?;
            link.client()?.query(&statement, params)
        })
    }

    /// Runs `attempt`, and once more on a new connection if this one was lost (see
    /// [`Link::query`]); only for what can safely be asked twice.
    fn retried<T>(
        &mut self,
        attempt: impl Fn(&mut Self) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        match attempt(self) {
            Err(error) if matches!(classify_ref(&error), Reach::Lost) => {
                self.client = None;
                self.statements.clear();
                attempt(self)
            }
            answered => answered,
        }
    }

    /// After an error, drops a connection that is no longer usable so the next job reconnects.
    fn after_error(&mut self) {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            self.statements.clear();
        }
    }
}

type Job = Box<dyn FnOnce(&mut Link) + Send>;

thread_local! {
    /// Connections of threads outside any async runtime (the writer, offline tools), by
    /// engine: such a thread queries on its own connection, without handing each query to a
    /// pool thread and waiting for it to come back.
    static OWN_LINKS: std::cell::RefCell<HashMap<u64, Link>> = std::cell::RefCell::new(HashMap::new());
}

/// The engine: a pool of connection threads taking jobs from one queue.
pub struct Postgres {
    /// Tells this engine's connections apart from another's in [`OWN_LINKS`].
    id: u64,
    connector: Arc<Connector>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    table: String,
    /// The engine's statements, written out for its table once.
    sql: Statements,
    /// Dropped to let go of the register's lock.
    hold: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// Shared with other serving nodes, or this process's alone.
    hold_kind: Hold,
}

/// Listens for the notification each turn ends with, on a connection of its own.
struct Listener {
    connector: Arc<Connector>,
    channel: String,
    client: Option<Client>,
}

impl TurnListener for Listener {
    fn wait(&mut self, timeout: Duration) -> Result<Heard, StoreError> {
        let heard = self.listen(timeout);
        if heard.is_err() {
            self.client = None;
        }
        heard.map_err(classify)
    }
}

impl Listener {
    fn listen(&mut self, timeout: Duration) -> Result<Heard, postgres::Error> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let mut client = self.connector.connect()?;
            client.batch_execute(&format!("LISTEN \"{}\"", self.channel))?;
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("just connected");
        let notified = {
            let mut notifications = client.notifications();
            let notified = notifications.timeout_iter(timeout).next()?.is_some();
            // Several turns heard at once are one reason to look.
            while let Ok(Some(_)) = notifications.iter().next() {}
            notified
        };
        let turns: i64 = client.query_one(TURNS, &[&self.channel])?.get(0);
        Ok(Heard {
            notified,
            turns: turns as u64,
        })
    }
}

/// The SQL of every statement the engine runs on its table.
struct Statements {
    get: String,
    upsert: String,
    remove: String,
    empty: String,
    /// Every entry of several ranges, range by range, each by the primary key's index.
    ranges: String,
    /// Counts a writer's turn, if the count is still the one its turn began with, and tells
    /// the nodes listening.
    fence: &'static str,
    /// Takes the turn's lock and reads the count, in one round trip: a turn lasts
    /// milliseconds, so a node that cannot have it within [`TURN_WAIT`] is stuck behind
    /// another that is (it answers UNAVAILABLE meanwhile).
    begin_turn: String,
    /// The advisory lock of the register's turns (the key after the register's own).
    turn_key: i64,
}

/// The register's count of turns.
const TURNS: &str = "SELECT turns FROM marr_turns WHERE register = $1";

impl Statements {
    fn for_table(table: &str) -> Self {
        Self {
            get: format!("SELECT value FROM {table} WHERE key = $1"),
            upsert: format!(
                "INSERT INTO {table} (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            remove: format!("DELETE FROM {table} WHERE key = ANY($1::bytea[])"),
            empty: format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"),
            ranges: format!(
                "SELECT r.key, r.value \
                 FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS b(low, high, n) \
                 CROSS JOIN LATERAL (SELECT key, value FROM {table} \
                     WHERE key >= b.low AND key < b.high) r \
                 ORDER BY b.n, r.key"
            ),
            fence: "WITH counted AS (UPDATE marr_turns SET turns = turns + 1 \
                    WHERE register = $1 AND turns = $2 RETURNING turns) \
                    SELECT pg_notify($1, turns::text) FROM counted",
            begin_turn: format!(
                "SET lock_timeout = '{}s'; SELECT pg_advisory_lock({}); \
                 SELECT turns FROM marr_turns WHERE register = '{table}'",
                TURN_WAIT.as_secs(),
                lock_key(table).wrapping_add(1),
            ),
            turn_key: lock_key(table).wrapping_add(1),
        }
    }
}

/// The advisory lock on a register: every serving node holds it shared for as long as it has
/// the register open, and an offline tool (a restore, a move, a verify) holds it alone, so a
/// tool never runs under a serving node nor a node under a tool. Turns use the key after it.
fn lock_key(table: &str) -> i64 {
    // FNV-1a: stable across builds, unlike the standard library's hasher.
    table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    }) as i64
}

/// How a process holds a register on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A serving node: any number of them share the register, taking turns to write.
    Shared,
    /// An offline tool: no node and no other tool may have the register open meanwhile.
    Alone,
}

/// Takes the register's lock on a connection of its own, kept on a thread of its own until
/// the sender it answers is dropped.
fn hold_register(
    connector: Arc<Connector>,
    table: &str,
    hold: Hold,
) -> Result<(mpsc::Sender<()>, std::thread::JoinHandle<()>), StoreError> {
    let key = lock_key(table);
    let (take, refusal) = match hold {
        Hold::Shared => (
            "SELECT pg_try_advisory_lock_shared($1)",
            "an offline tool (a restore, a move, a verify) has this register to itself: \
             nodes can open it once the tool is done",
        ),
        Hold::Alone => (
            "SELECT pg_try_advisory_lock($1)",
            "a marr node or another tool has this register open: stop every node serving it \
             before running an offline tool",
        ),
    };
    let (ready, held) = mpsc::sync_channel(1);
    let (release, released) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("marr-pg-lock".into())
        .spawn(move || {
            let take_lock = || {
                connector
                    .connect()
                    .map_err(classify)
                    .and_then(|mut client| {
                        let taken: bool = client.query_one(take, &[&key]).map_err(classify)?.get(0);
                        Ok((client, taken))
                    })
            };
            let mut client = match take_lock() {
                Ok((client, true)) => {
                    let _ = ready.send(Ok(()));
                    Some(client)
                }
                Ok((_, false)) => {
                    let _ = ready.send(Err(StoreError::Unavailable(refusal.into())));
                    return;
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            // Until the engine is dropped (the lock goes with the connection). A lock lost
            // with its server (a failover) is taken again on the new primary.
            while let Err(mpsc::RecvTimeoutError::Timeout) = released.recv_timeout(LOCK_CHECK) {
                let alive = client
                    .as_mut()
                    .is_some_and(|client| client.simple_query("SELECT 1").is_ok());
                if alive {
                    continue;
                }
                client = match take_lock() {
                    Ok((taken, true)) => {
                        tracing::info!("the register's lock is held again");
                        Some(taken)
                    }
                    Ok((_, false)) => {
                        tracing::error!(refusal, "the register's lock was lost and is taken");
                        None
                    }
                    Err(error) => {
                        tracing::debug!(%error, "the register's lock is not held; retrying");
                        None
                    }
                };
            }
        })
        .map_err(|e| StoreError::Database(e.to_string()))?;
    match held.recv() {
        Ok(Ok(())) => Ok((release, thread)),
        Ok(Err(error)) => {
            let _ = thread.join();
            Err(error)
        }
        Err(_) => {
            let _ = thread.join();
            Err(StoreError::Closed)
        }
    }
}

impl Postgres {
    /// Connects, creates or checks the schema, and starts the pool.
    pub fn open(options: &PostgresOptions, hold: Hold) -> Result<Self, StoreError> {
        Self::open_table(options, TABLE, hold)
    }

    /// The engine on a table of another name (a restore builds into one, then renames it).
    pub(crate) fn open_table(
        options: &PostgresOptions,
        table: &str,
        hold: Hold,
    ) -> Result<Self, StoreError> {
        let connector = Arc::new(Connector::new(options)?);
        let held = hold_register(Arc::clone(&connector), table, hold)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut threads = Vec::new();
        for n in 0..options.connections.max(1) {
            let queue = Arc::clone(&queue);
            let mut link = Link::new(&connector);
            let thread = std::thread::Builder::new()
                .name(format!("marr-pg-{n}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                            queue.recv()
                        };
                        match job {
                            Ok(job) => job(&mut link),
                            Err(_) => break,
                        }
                    }
                })
                .map_err(|e| StoreError::Database(e.to_string()))?;
            threads.push(thread);
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let engine = Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            connector: Arc::clone(&connector),
            jobs: Mutex::new(Some(jobs)),
            threads: Mutex::new(threads),
            table: table.to_string(),
            sql: Statements::for_table(table),
            hold: Mutex::new(Some(held)),
            hold_kind: hold,
        };
        // On a connection thread, as every query is: the caller may be inside a runtime.
        let table = table.to_string();
        engine.run_checked(move |link| migrate(link.client().map_err(classify)?, &table))?;
        Ok(engine)
    }

    /// Runs `work` on a connection thread and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Link) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run_checked(move |link| work(link).map_err(classify))
    }

    /// [`Postgres::run`] for work that says itself what went wrong.
    fn run_checked<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Link) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // The driver's blocking client runs its own runtime, which cannot start inside
        // another: only a thread outside every runtime may query on its own connection.
        if tokio::runtime::Handle::try_current().is_err() {
            return OWN_LINKS.with(|links| {
                let mut links = links.borrow_mut();
                let link = links
                    .entry(self.id)
                    .or_insert_with(|| Link::new(&self.connector));
                let result = work(link);
                if result.is_err() {
                    link.after_error();
                }
                result
            });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |link| {
            let result = work(link);
            if result.is_err() {
                link.after_error();
            }
            let _ = reply.send(result);
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|jobs| jobs.send(job).is_ok());
        if sent != Some(true) {
            return Err(StoreError::Closed);
        }
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Renames this engine's table to `to`, replacing an empty table of that name, in one
    /// transaction: a restore becomes visible whole or not at all.
    pub(crate) fn rename_into(&self, to: &str) -> Result<(), StoreError> {
        let from = self.table.clone();
        let to = to.to_string();
        self.run(move |link| {
            let client = link.client()?;
            let mut transaction = client.transaction()?;
            let occupied = transaction
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {to})"), &[])?
                .get::<_, bool>(0);
            if occupied {
                return Ok(false);
            }
            transaction.batch_execute(&format!(
                "DROP TABLE {to}; ALTER TABLE {from} RENAME TO {to}; \
                 ALTER INDEX IF EXISTS {from}_pkey RENAME TO {to}_pkey"
            ))?;
            transaction.commit()?;
            Ok(true)
        })
        .and_then(|renamed| {
            if renamed {
                Ok(())
            } else {
                Err(StoreError::Corrupt(
                    "the database's register is no longer empty; the restore was not applied"
                        .into(),
                ))
            }
        })
    }

    /// Drops this engine's table (a restore that failed part-way).
    pub(crate) fn drop_table(&self) -> Result<(), StoreError> {
        let sql = format!("DROP TABLE IF EXISTS {}", self.table);
        self.run(move |link| link.client()?.batch_execute(&sql))
    }

    /// One page of entries in `window`, ascending or descending.
    fn page(
        &self,
        window: &Window,
        descending: bool,
        limit: i64,
    ) -> Result<Vec<Entry>, StoreError> {
        let low = if window.low_inclusive { ">=" } else { ">" };
        let mut sql = format!("SELECT key, value FROM {} WHERE key {low} $1", self.table);
        if window.high.is_some() {
            sql.push_str(" AND key < $2");
        }
        sql.push_str(if descending {
            " ORDER BY key DESC"
        } else {
            " ORDER BY key"
        });
        sql.push_str(if window.high.is_some() {
            " LIMIT $3"
        } else {
            " LIMIT $2"
        });
        let from = window.low.clone();
        let until = window.high.clone();
        self.run(move |link| {
            let rows = match &until {
                Some(until) => link.query(&sql, &[&from, until, &limit])?,
                None => link.query(&sql, &[&from, &limit])?,
            };
            Ok(rows
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // This thread's own connection, if it has one (another thread's goes with it).
        let _ = OWN_LINKS.try_with(|links| links.borrow_mut().remove(&self.id));
        // Closing the queue ends every connection thread once its job is done.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        for thread in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = thread.join();
        }
        // Then the lock, so a process that opens the register next finds it free.
        if let Some((release, thread)) = self.hold.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            drop(release);
            let _ = thread.join();
        }
    }
}

/// Creates the schema, or checks a schema already there and brings an earlier one up to
/// date, under a lock so nodes starting together do not race.
fn migrate(client: &mut Client, table: &str) -> Result<(), StoreError> {
    let mut transaction = client.transaction().map_err(classify)?;
    // Any constant: the lock only orders schema changes between marr nodes.
    transaction
        .execute("SELECT pg_advisory_xact_lock(7261072)", &[])
        .map_err(classify)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS marr_schema (
                 version integer NOT NULL,
                 migrated_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(classify)?;
    let version: Option<i32> = transaction
        .query_one("SELECT max(version) FROM marr_schema", &[])
        .map_err(classify)?
        .get(0);
    if let Some(version) = version
        && version > SCHEMA_VERSION
    {
        return Err(StoreError::Corrupt(format!(
            "the database's schema is version {version}, written by a later marr; this \
             build knows version {SCHEMA_VERSION} and will not touch it"
        )));
    }
    // Version 1: every keyspace in one table of ordered keys (bytea orders as sled does,
    // byte by byte, shorter first).
    transaction
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 key bytea PRIMARY KEY,
                 value bytea NOT NULL
             )"
        ))
        .map_err(classify)?;
    // Version 2: nodes share a register and count their turns to write it, in place of
    // version 1's one writer per register.
    transaction
        .batch_execute(
            "DROP TABLE IF EXISTS marr_writer;
             CREATE TABLE IF NOT EXISTS marr_turns (
                 register text PRIMARY KEY,
                 turns bigint NOT NULL
             )",
        )
        .map_err(classify)?;
    transaction
        .execute(
            "INSERT INTO marr_turns (register, turns) VALUES ($1, 0) ON CONFLICT DO NOTHING",
            &[&table],
        )
        .map_err(classify)?;
    if version != Some(SCHEMA_VERSION) {
        transaction
            .execute(
                "INSERT INTO marr_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .map_err(classify)?;
    }
    let synchronous: String = transaction
        .query_one("SELECT current_setting('synchronous_commit')", &[])
        .map_err(classify)?
        .get(0);
    if synchronous == "off" {
        return Err(StoreError::Database(
            "the database has synchronous_commit = off: an acknowledged write could be lost; \
             set it to on (or remote_apply) for the register's role"
                .into(),
        ));
    }
    transaction.commit().map_err(classify)
}

/// Whether a failure was in reaching the database or in what was asked of it.
enum Reach {
    /// The connection is gone, or the server is not (or no longer) the primary: it can be
    /// asked again, after a failover too.
    Lost,
    Answered,
}

fn classify_ref(error: &postgres::Error) -> Reach {
    let lost = error.is_closed()
        || match error.code() {
            None => error.as_db_error().is_none(),
            Some(code) => {
                let code = code.code();
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code.starts_with("53")
                    || *code == *SqlState::READ_ONLY_SQL_TRANSACTION.code()
                    // A turn not had in time: another node holds it.
                    || *code == *SqlState::LOCK_NOT_AVAILABLE.code()
            }
        };
    if lost { Reach::Lost } else { Reach::Answered }
}

/// A failure to reach the database (it can be retried, after a failover too) or any other.
fn classify(error: postgres::Error) -> StoreError {
    let unreachable = matches!(classify_ref(&error), Reach::Lost);
    // The driver's own text for a server error is only "db error": the server's says what.
    let text = match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        // The cause (a refused certificate, a connection refused) is in the sources.
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    };
    if unreachable {
        StoreError::Unavailable(text)
    } else {
        StoreError::Database(text)
    }
}

/// The keys a paged read has not yet handed out, from both ends.
#[derive(Clone)]
struct Window {
    low: Vec<u8>,
    low_inclusive: bool,
    /// Exclusive; none: up to the end.
    high: Option<Vec<u8>>,
}

/// A range read a page at a time from either end, each page one query.
struct Paged<'a> {
    engine: &'a Postgres,
    window: Window,
    front: VecDeque<Entry>,
    /// Descending: the back's next entry is at the front of this queue.
    back: VecDeque<Entry>,
    /// No key is left in the window.
    exhausted: bool,
    page: i64,
    failed: bool,
}

/// The first page is small (many reads want one entry); later pages grow.
const FIRST_PAGE: i64 = 32;
const LARGEST_PAGE: i64 = 2048;

impl<'a> Paged<'a> {
    fn new(engine: &'a Postgres, from: Vec<u8>, until: Option<Vec<u8>>) -> Self {
        Self {
            engine,
            window: Window {
                low: from,
                low_inclusive: true,
                high: until,
            },
            front: VecDeque::new(),
            back: VecDeque::new(),
            exhausted: false,
            page: FIRST_PAGE,
            failed: false,
        }
    }

    /// Reads the next page from one end into its queue; false when the window is empty.
    fn fill(&mut self, descending: bool) -> Result<bool, StoreError> {
        if self.exhausted {
            return Ok(false);
        }
        let entries = self.engine.page(&self.window, descending, self.page)?;
        // A short page means the window holds nothing more.
        self.exhausted = (entries.len() as i64) < self.page;
        self.page = (self.page * 4).min(LARGEST_PAGE);
        let Some(last) = entries.last() else {
            self.exhausted = true;
            return Ok(false);
        };
        if descending {
            self.window.high = Some(last.0.clone());
            self.back.extend(entries);
        } else {
            self.window.low = last.0.clone();
            self.window.low_inclusive = false;
            self.front.extend(entries);
        }
        Ok(true)
    }

    /// The queue of entries read ahead at one end.
    fn queue(&mut self, descending: bool) -> &mut VecDeque<Entry> {
        if descending {
            &mut self.back
        } else {
            &mut self.front
        }
    }

    fn step(&mut self, descending: bool) -> Option<Result<Entry, StoreError>> {
        if self.failed {
            return None;
        }
        if let Some(entry) = self.queue(descending).pop_front() {
            return Some(Ok(entry));
        }
        match self.fill(descending) {
            Ok(true) => self.queue(descending).pop_front().map(Ok),
            // The window is empty: what is left is what the other end read but has not
            // handed out yet, taken from its far side.
            Ok(false) => self.queue(!descending).pop_back().map(Ok),
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}

impl Iterator for Paged<'_> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for Paged<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

/// The least key after every key that starts with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Engine for Postgres {
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        // The last write of a key wins, as in a sled batch; one statement each for the
        // upserts and the removals.
        let mut last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for (key, value) in batch.writes {
            last.insert(key, value);
        }
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut removed = Vec::new();
        for (key, value) in last {
            match value {
                Some(value) => {
                    keys.push(key);
                    values.push(value);
                }
                None => removed.push(key),
            }
        }
        let upsert = self.sql.upsert.clone();
        let remove = self.sql.remove.clone();
        let fence = self.sql.fence;
        let table = self.table.clone();
        let turn = batch.turn.map(|turn| turn as i64);
        self.run_checked(move |link| {
            let statements =
                [upsert.as_str(), remove.as_str(), fence].map(|sql| link.statement(sql));
            let [upsert, remove, fence] = statements;
            let (upsert, remove, fence) = (
                upsert.map_err(classify)?,
                remove.map_err(classify)?,
                fence.map_err(classify)?,
            );
            let client = link.client().map_err(classify)?;
            let mut transaction = client.transaction().map_err(classify)?;
            // First, under the count's row lock: has no other node written since this
            // node's turn began? (Its turn's lock went with a lost connection, say.)
            if let Some(turn) = turn {
                let counted = transaction
                    .query(&fence, &[&table, &turn])
                    .map_err(classify)?;
                if counted.is_empty() {
                    return Err(StoreError::Unavailable(
                        "another node wrote to the register during this node's turn; this \
                         node reads the register back before it writes again"
                            .into(),
                    ));
                }
            }
            if !removed.is_empty() {
                transaction
                    .execute(&remove, &[&removed])
                    .map_err(classify)?;
            }
            if !keys.is_empty() {
                transaction
                    .execute(&upsert, &[&keys, &values])
                    .map_err(classify)?;
            }
            transaction.commit().map_err(classify)
        })
    }

    fn ranges(&self, bounds: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<Entry>, StoreError> {
        if bounds.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.sql.ranges.clone();
        let (from, until): (Vec<Vec<u8>>, Vec<Vec<u8>>) = bounds.iter().cloned().unzip();
        self.run(move |link| {
            Ok(link
                .query(&sql, &[&from, &until])?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }

    fn shared(&self) -> bool {
        self.hold_kind == Hold::Shared
    }

    fn begin_turn(&self) -> Result<u64, StoreError> {
        let sql = self.sql.begin_turn.clone();
        self.run(move |link| {
            let answer = link.retried(|link| link.client()?.simple_query(&sql))?;
            Ok(answer.into_iter().rev().find_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|t| t.parse().ok()),
                _ => None,
            }))
        })?
        .ok_or_else(|| StoreError::Corrupt("the register's count of turns is missing".into()))
    }

    fn end_turn(&self) {
        let key = self.sql.turn_key;
        if let Err(error) = self.run(move |link| match link.client.as_mut() {
            // A lost connection took the lock with it: nothing to let go of, and no new
            // connection is worth waiting for to say so.
            Some(client) if !client.is_closed() => client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .map(drop),
            _ => Ok(()),
        }) {
            // The lock went with the connection.
            tracing::debug!(%error, "a turn ended without its connection");
        }
    }

    fn turns(&self) -> Result<u64, StoreError> {
        let table = self.table.clone();
        let turns: i64 = self
            .run(move |link| link.query(TURNS, &[&table]))?
            .first()
            .map(|row| row.get(0))
            .ok_or_else(|| {
                StoreError::Corrupt("the register's count of turns is missing".into())
            })?;
        Ok(turns as u64)
    }

    fn listen(&self) -> Option<Box<dyn TurnListener>> {
        if !self.shared() {
            return None;
        }
        Some(Box::new(Listener {
            connector: Arc::clone(&self.connector),
            channel: self.table.clone(),
            client: None,
        }))
    }

    /// Each batch is committed by [`Engine::apply`]: nothing is left to flush.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = self.sql.get.clone();
        let key = key.to_vec();
        self.run(move |link| {
            let rows = link.query(&sql, &[&key])?;
            Ok(rows.into_iter().next().map(|row| row.get(0)))
        })
    }

    fn range(&self, from: &[u8], until: &[u8]) -> Entries<'_> {
        if from >= until {
            return Box::new(std::iter::empty());
        }
        Box::new(Paged::new(self, from.to_vec(), Some(until.to_vec())))
    }

    fn first_after(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        let window = Window {
            low: key.to_vec(),
            low_inclusive: false,
            high: None,
        };
        Ok(self.page(&window, false, 1)?.into_iter().next())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Entries<'_> {
        Box::new(Paged::new(self, prefix.to_vec(), prefix_end(prefix)))
    }

    fn is_empty(&self) -> bool {
        let sql = self.sql.empty.clone();
        self.run(move |link| Ok(link.query(&sql, &[])?[0].get::<_, bool>(0)))
            .unwrap_or(false)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let table = self.table.clone();
        self.run(move |link| {
            let rows = link.query(
                "SELECT coalesce(pg_total_relation_size(to_regclass($1)), 0)",
                &[&table],
            )?;
            Ok(rows[0].get::<_, i64>(0).max(0) as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
