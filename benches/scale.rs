//! The register at national scale, in one run on the real wards: load rate through the writer
//! and through `PushRecords` against raw sled, memory after loading and after the views, bytes
//! on disk per record, time to SERVING after a clean stop and after a kill, `GetPlaceView` at
//! four levels over gRPC and in process, views as of earlier sequences, and the first page of
//! `ListRisks` for the country.
//!
//! `cargo bench --bench scale` (MARR_BENCH_RECORDS sets the count, default 200000, which takes
//! two to three minutes on two shared cores; 1000000 takes about seven). Progress goes to stderr,
//! the table to stdout.

#[path = "../tests/common/mod.rs"]
mod common;

/// The allocator `marr serve` runs with, so the in-process figures and the raw sled baseline
/// are measured as the server would run them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use marr::api::convert::record_to_proto;
use marr::cli::{Connection, ServerArgs, places};
use marr::domain::inspection::ViewFilter;
use marr::domain::{ClientGroup, RiskCategory, Vocabulary};
use marr::proto;
use marr::store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{Nation, code, dir_bytes, mib, percentile, rss_mib, rss_mib_of};
use time::OffsetDateTime;

const DEFAULT_RECORDS: usize = 200_000;
const SEED: u64 = 7;
const VIEW_SAMPLES: usize = 500;
const WARM_UP: usize = 20;
/// Measures that replay the log or read every record at a level take samples until this much
/// time has gone, at least `SLOW_LEAST` of them and at most their own number.
const SLOW_BUDGET: Duration = Duration::from_secs(30);
const SLOW_LEAST: usize = 3;
const AS_OF_SAMPLES: usize = 50;
const LIST_SAMPLES: usize = 36;
const PAGE_SIZE: u32 = 100;
/// Agencies' systems pushing at once.
const STREAMS: usize = 32;
/// How long a starting server may take to say SERVING before the run gives up on it.
const START_LIMIT: Duration = Duration::from_secs(1800);
/// The service whose health the server reports SERVING once its store is open.
const SERVICE: &str = "marr.v1.RiskRegister";
const ENGLAND: &str = "E92000001";
const LEVELS: [(&str, &str, &str); 4] = [
    ("country", ENGLAND, "England"),
    ("region", "E12000007", "London"),
    ("police force area", "E23000001", "Metropolitan Police"),
    ("district", "E08000025", "Birmingham"),
];

/// Where a line sits in the table, whatever order the run measures in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Load,
    Memory,
    Disk,
    Start,
    Views,
    AsOf,
    Risks,
}

/// One line of the table: what is measured, its figure, and the baseline with the ratio where
/// there is one.
struct Row {
    section: Section,
    measure: String,
    figure: String,
    baseline: String,
    ratio: String,
}

#[derive(Default)]
struct Table(Vec<Row>);

impl Table {
    fn add(&mut self, section: Section, measure: impl Into<String>, figure: impl Into<String>) {
        self.compare(section, measure, figure, "", "");
    }

    fn compare(
        &mut self,
        section: Section,
        measure: impl Into<String>,
        figure: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
    ) {
        self.0.push(Row {
            section,
            measure: measure.into(),
            figure: figure.into(),
            baseline: baseline.into(),
            ratio: ratio.into(),
        });
    }

    fn print(mut self) {
        self.0.sort_by_key(|row| row.section);
        println!("| measure | figure | baseline (same run) | ratio |");
        println!("| --- | ---: | ---: | ---: |");
        for row in &self.0 {
            println!(
                "| {} | {} | {} | {} |",
                row.measure, row.figure, row.baseline, row.ratio
            );
        }
    }
}

/// Progress on stderr, with the time since the run began.
struct Progress(Instant);

impl Progress {
    fn say(&self, what: impl std::fmt::Display) {
        eprintln!("[{:>6.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// Timed calls, sorted, and how many failed.
#[derive(Default)]
struct Samples {
    sorted: Vec<Duration>,
    failed: usize,
    first_error: Option<String>,
}

impl Samples {
    /// Times `call` up to `most` times, stopping once `budget` has gone by after at least
    /// `least` calls. Failed calls are counted, not timed.
    fn take(
        least: usize,
        most: usize,
        budget: Duration,
        mut call: impl FnMut(usize) -> Result<(), String>,
    ) -> Self {
        let started = Instant::now();
        let mut samples = Self::default();
        for i in 0..most {
            if i >= least && started.elapsed() >= budget {
                break;
            }
            let call_started = Instant::now();
            match call(i) {
                Ok(()) => samples.sorted.push(call_started.elapsed()),
                Err(error) => {
                    samples.failed += 1;
                    samples.first_error.get_or_insert(error);
                }
            }
        }
        samples.sorted.sort();
        samples
    }

    /// "p50 / p99 (calls)", with the failures where there were any.
    fn figure(&self) -> String {
        let ms = |p| percentile(&self.sorted, p).as_secs_f64() * 1e3;
        let mut text = if self.sorted.is_empty() {
            "no call answered".to_string()
        } else {
            format!(
                "{} ms / {} ms ({} calls)",
                millis(ms(0.50)),
                millis(ms(0.99)),
                self.sorted.len()
            )
        };
        if let Some(error) = &self.first_error {
            text.push_str(&format!("; {} failed, first: {error}", self.failed));
        }
        text
    }
}

fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.3}")
    } else {
        thousands(ms.round() as u64)
    }
}

fn mebibytes(mib: f64) -> String {
    format!("{} MiB", thousands(mib.round() as u64))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn rate(records: u64, took: Duration) -> f64 {
    records as f64 / took.as_secs_f64()
}

/// What the in-process half hands on to the rest of the run.
struct InProcess {
    loaded: u64,
    mean_batch: usize,
    writer_rate: f64,
    /// The store's directory after a clean close.
    bytes: u64,
    /// Active records at each level, to check the server's answers against.
    active: Vec<u64>,
}

/// The store loaded through its writer and read in process.
fn in_process(
    runtime: &tokio::runtime::Runtime,
    nation: &Nation,
    count: usize,
    table: &mut Table,
    progress: &Progress,
) -> InProcess {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("store");
    runtime.block_on(nation.set_up(&store));
    progress.say(format!(
        "in process: {} agencies registered; loading {count} records through the writer",
        nation.agencies().len()
    ));
    let batches_before = store.batches_committed();
    let started = Instant::now();
    runtime.block_on(support::load(
        &store,
        nation.records(count, SEED, OffsetDateTime::now_utc()),
    ));
    let took = started.elapsed();
    let loaded = store.head_sequence();
    let batches = (store.batches_committed() - batches_before).max(1);
    let writer_rate = rate(loaded, took);
    progress.say(format!(
        "loaded {loaded} records in {:.1} s ({writer_rate:.0}/s, {batches} batches)",
        took.as_secs_f64()
    ));
    table.add(
        Section::Memory,
        "RSS after load, in process (loaded through the writer)",
        mebibytes(rss_mib()),
    );

    let mut active = Vec::new();
    for (level, place, name) in LEVELS {
        let mut total = 0;
        let samples = Samples::take(VIEW_SAMPLES, VIEW_SAMPLES, Duration::ZERO, |_| {
            let view = store
                .place_view(code(place), &ViewFilter::default(), None)
                .map_err(|e| e.to_string())?;
            total = view.total;
            Ok(())
        });
        active.push(total);
        table.add(
            Section::Views,
            format!(
                "`Store::place_view` p50 / p99, {level}: {name}, {} active",
                thousands(total)
            ),
            samples.figure(),
        );
    }
    progress.say("in-process views timed; views as of earlier sequences");

    let mut rng = StdRng::seed_from_u64(SEED);
    let head = store.head_sequence().max(2);
    let as_of = Samples::take(SLOW_LEAST, AS_OF_SAMPLES, SLOW_BUDGET, |_| {
        let sequence = rng.random_range(1..head);
        store
            .place_view(code(ENGLAND), &ViewFilter::default(), Some(sequence))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    table.add(
        Section::AsOf,
        "as-of place view p50 / p99, in process: England as of a random earlier sequence",
        as_of.figure(),
    );
    progress.say("as-of views timed; first pages of risks for England");

    let list = Samples::take(SLOW_LEAST, LIST_SAMPLES, SLOW_BUDGET, |_| {
        store
            .list_risks(
                code(ENGLAND),
                &ViewFilter::default(),
                PAGE_SIZE as usize,
                None,
                None,
            )
            .map(drop)
            .map_err(|e| e.to_string())
    });
    table.add(
        Section::Risks,
        format!(
            "first risks page ({PAGE_SIZE}) p50 / p99, in process (`Store::list_risks`): England"
        ),
        list.figure(),
    );
    // A filter that matches about one record in 30,000 under a district: without the cap on
    // reads a page would walk millions of entries; with it, a page costs at most
    // `page_read_limit` reads and answers short with a token.
    let narrow = ViewFilter {
        client_groups: vec![ClientGroup::ALL[0]],
        categories: vec![RiskCategory::ALL[0]],
        min_severity: None,
    };
    let (_, birmingham, _) = LEVELS[3];
    let narrow_page = Samples::take(SLOW_LEAST, LIST_SAMPLES, SLOW_BUDGET, |_| {
        let sequence = rng.random_range(1..head);
        store
            .list_risks(
                code(birmingham),
                &narrow,
                PAGE_SIZE as usize,
                None,
                Some(sequence),
            )
            .map(drop)
            .map_err(|e| e.to_string())
    });
    table.add(
        Section::Risks,
        format!(
            "risks page ({PAGE_SIZE}) p50 / p99, in process: Birmingham, one client group and \
             category, as of a random earlier sequence (reads capped at {} entries)",
            marr::store::DEFAULT_PAGE_READ_LIMIT
        ),
        narrow_page.figure(),
    );
    table.add(
        Section::Memory,
        "RSS after the views, in process",
        mebibytes(rss_mib()),
    );
    if let Err(error) = runtime.block_on(store.close()) {
        progress.say(format!("closing the store failed: {error}"));
    }
    drop(store);
    InProcess {
        bytes: dir_bytes(dir.path()),
        loaded,
        mean_batch: (loaded as usize).div_ceil(batches as usize).max(1),
        writer_rate,
        active,
    }
}

/// Raw sled: a fresh database, one insert a record (its postcard encoding, as the log holds
/// it) in batches of `batch`, each applied then made durable as the writer does (flush, then
/// fsync of the database file).
fn raw_sled(nation: &Nation, count: usize, batch: usize) -> RawSled {
    let dir = tempfile::tempdir().expect("dir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(StoreOptions::default().cache_bytes)
        .open()
        .expect("sled");
    let tree = db.open_tree("raw").expect("tree");
    let file = std::fs::File::open(dir.path().join("db")).expect("sled's file");
    let mut records = nation
        .records(count, SEED, OffsetDateTime::now_utc())
        .peekable();
    let mut written = 0u64;
    let started = Instant::now();
    while records.peek().is_some() {
        let mut writes = sled::Batch::default();
        for record in records.by_ref().take(batch) {
            let key = format!("{}/{}", record.key.agency, record.key.local_ref);
            writes.insert(
                key.as_bytes(),
                postcard::to_stdvec(&record).expect("encode"),
            );
            written += 1;
        }
        tree.apply_batch(writes).expect("apply");
        db.flush().expect("flush");
        file.sync_all().expect("fsync");
    }
    let took = started.elapsed();
    drop(tree);
    drop(db);
    RawSled {
        rate: rate(written, took),
        written,
        bytes: dir_bytes(dir.path()),
    }
}

/// The baseline: what raw sled did with the same records in the same run.
struct RawSled {
    rate: f64,
    written: u64,
    /// The database's directory once written.
    bytes: u64,
}

impl RawSled {
    /// A load rate against raw sled's.
    fn load(&self, table: &mut Table, through: &str, records_per_second: f64) {
        table.compare(
            Section::Load,
            format!("load rate through {through}, records/s"),
            thousands(records_per_second as u64),
            format!("raw sled {}", thousands(self.rate as u64)),
            format!("{:.2}", records_per_second / self.rate),
        );
    }

    /// A store's bytes on disk per record against raw sled's.
    fn disk(&self, table: &mut Table, loaded: &str, bytes: u64, records: u64) {
        let per_record = bytes / records.max(1);
        let raw = self.bytes / self.written.max(1);
        table.compare(
            Section::Disk,
            format!("bytes on disk per record, {loaded}"),
            format!("{} ({})", thousands(per_record), mebibytes(mib(bytes))),
            format!("raw sled {}", thousands(raw)),
            format!("{:.2}", per_record as f64 / raw.max(1) as f64),
        );
    }
}

/// A `marr serve` child until it says SERVING for the register's service; the time since it
/// was started.
async fn until_serving(url: &str, started: Instant) -> Result<Duration, String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    while started.elapsed() < START_LIMIT {
        if let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.to_string())
            && let Ok(channel) = endpoint.connect().await
            && let Ok(answer) = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: SERVICE.into(),
                })
                .await
            && answer.into_inner().status == ServingStatus::Serving as i32
        {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("not SERVING within {} s", START_LIMIT.as_secs()))
}

/// Starts `marr serve` as the tests do and waits until it serves.
fn start(
    runtime: &tokio::runtime::Runtime,
    config: &Path,
    data: &Path,
) -> (common::ServeProcess, String, Result<Duration, String>) {
    let started = Instant::now();
    let (server, url) = common::spawn_serve(config, data);
    let serving = runtime.block_on(until_serving(&url, started));
    (server, url, serving)
}

/// SIGTERM, then waits for the process to exit; the time it took.
fn terminate(server: common::ServeProcess) -> Result<Duration, String> {
    let started = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    let status = server.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    Ok(started.elapsed())
}

/// Pushes each agency's records through its own `PushRecords` stream, `STREAMS` at once;
/// answers the time to the last durable answer and the records accepted.
async fn push(
    url: &str,
    by_agency: Vec<(String, Vec<proto::RiskRecord>)>,
) -> Result<(Duration, u64), String> {
    let public = Connection::open(&ServerArgs::plain(url))
        .await
        .map_err(|e| e.to_string())?;
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(STREAMS));
    let mut streams = tokio::task::JoinSet::new();
    let started = Instant::now();
    for (agency, records) in by_agency {
        let system = public
            .with_token(&support::agency_token(&agency))
            .map_err(|e| e.to_string())?;
        let permits = std::sync::Arc::clone(&permits);
        streams.spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let answers = common::push_as(&system, records).await;
            let accepted = answers
                .iter()
                .filter(|a| a.outcome == proto::Outcome::Accepted as i32)
                .count() as u64;
            Ok::<u64, String>(accepted)
        });
    }
    let mut accepted = 0;
    while let Some(done) = streams.join_next().await {
        accepted += done.map_err(|e| e.to_string())??;
    }
    Ok((started.elapsed(), accepted))
}

/// A `marr serve` child on a fresh data directory: loaded through `PushRecords`, read over
/// gRPC, stopped cleanly and killed, and timed to SERVING after each.
fn served(
    runtime: &tokio::runtime::Runtime,
    nation: &Nation,
    count: usize,
    earlier: &InProcess,
    raw: &RawSled,
    table: &mut Table,
    progress: &Progress,
) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("marr.toml");
    let agencies = nation.agencies();
    std::fs::write(&config, support::national_config_text(&agencies)).expect("config");
    let data = dir.path().join("store");
    let (server, url, serving) = start(runtime, &config, &data);
    serving?;
    let admin = runtime
        .block_on(Connection::open(&ServerArgs::plain(&url)))
        .and_then(|c| c.with_token(support::ADMIN_TOKEN))
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        places::import_tables(&admin, nation.tables())
            .await
            .map_err(|e| e.to_string())?;
        for agency in &agencies {
            let footprint: Vec<String> = agency.footprint.iter().map(|c| c.to_string()).collect();
            marr::cli::agencies::register(
                &admin,
                &agency.id.to_string(),
                agency.kind,
                &agency.name,
                &footprint,
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    })?;

    let mut by_agency: std::collections::BTreeMap<String, Vec<proto::RiskRecord>> =
        Default::default();
    for record in nation.records(count, SEED, OffsetDateTime::now_utc()) {
        by_agency
            .entry(record.key.agency.to_string())
            .or_default()
            .push(record_to_proto(&record));
    }
    // The largest first, so that no one long stream is left alone at the end.
    let mut by_agency: Vec<_> = by_agency.into_iter().collect();
    by_agency.sort_by_key(|(_, records)| std::cmp::Reverse(records.len()));
    progress.say(format!(
        "marr serve (pid {}): directory set up; pushing {} records from {} agencies, {STREAMS} streams at once",
        server.id(),
        earlier.loaded,
        by_agency.len()
    ));
    let (took, accepted) = runtime.block_on(push(&url, by_agency))?;
    let push_rate = rate(accepted, took);
    progress.say(format!(
        "pushed: {accepted} accepted in {:.1} s ({push_rate:.0}/s)",
        took.as_secs_f64()
    ));
    if accepted != earlier.loaded {
        progress.say(format!(
            "warning: {accepted} accepted over gRPC, {} through the writer",
            earlier.loaded
        ));
    }
    raw.load(
        table,
        &format!("`PushRecords` (marr serve, {STREAMS} agency streams at once)"),
        push_rate,
    );
    table.add(
        Section::Memory,
        "RSS after load, marr serve (loaded through `PushRecords`)",
        mebibytes(rss_mib_of(server.id())),
    );

    let inspector = admin
        .with_token(support::INSPECTOR_TOKEN)
        .map_err(|e| e.to_string())?;
    let mut client = inspector.inspection();
    for (i, (level, place, name)) in LEVELS.into_iter().enumerate() {
        let request = proto::GetPlaceViewRequest {
            place_code: place.into(),
            filter: None,
            as_of_sequence: 0,
        };
        let mut total = 0;
        let mut call = |_| {
            let view = runtime
                .block_on(client.get_place_view(request.clone()))
                .map_err(|e| e.to_string())?
                .into_inner();
            total = view.view.map_or(0, |v| v.total_active);
            Ok(())
        };
        Samples::take(WARM_UP, WARM_UP, Duration::ZERO, &mut call);
        let samples = Samples::take(VIEW_SAMPLES, VIEW_SAMPLES, Duration::ZERO, &mut call);
        if total != earlier.active[i] {
            progress.say(format!(
                "warning: {name} has {total} active over gRPC, {} in process",
                earlier.active[i]
            ));
        }
        table.add(
            Section::Views,
            format!(
                "`GetPlaceView` p50 / p99 over gRPC, {level}: {name}, {} active",
                thousands(total)
            ),
            samples.figure(),
        );
    }
    progress.say("views over gRPC timed; first pages of risks for England");
    let list = Samples::take(SLOW_LEAST, LIST_SAMPLES, SLOW_BUDGET, |_| {
        runtime
            .block_on(client.list_risks(proto::ListRisksRequest {
                place_code: ENGLAND.into(),
                filter: None,
                page_size: PAGE_SIZE,
                page_token: String::new(),
                as_of_sequence: 0,
            }))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    table.add(
        Section::Risks,
        format!("first `ListRisks` page ({PAGE_SIZE}) p50 / p99 over gRPC: England"),
        list.figure(),
    );
    table.add(
        Section::Memory,
        "RSS after the views, marr serve",
        mebibytes(rss_mib_of(server.id())),
    );
    drop(client);
    drop(inspector);
    drop(admin);

    progress.say("stopping marr serve with SIGTERM");
    let stopped = terminate(server)?;
    raw.disk(
        table,
        "loaded through `PushRecords` (after SIGTERM)",
        dir_bytes(&data),
        accepted,
    );
    let (server, _, serving) = start(runtime, &config, &data);
    let after_stop = serving?;
    table.add(
        Section::Start,
        format!(
            "start to SERVING after a clean stop (SIGTERM, exit in {:.1} s)",
            stopped.as_secs_f64()
        ),
        format!("{:.2} s", after_stop.as_secs_f64()),
    );
    table.add(
        Section::Memory,
        "RSS after start-up, marr serve",
        mebibytes(rss_mib_of(server.id())),
    );
    progress.say(format!(
        "SERVING {:.2} s after a clean stop; killing it",
        after_stop.as_secs_f64()
    ));
    drop(server); // SIGKILL, then waits for it to go
    let (server, _, serving) = start(runtime, &config, &data);
    let after_kill = serving?;
    table.add(
        Section::Start,
        "start to SERVING after SIGKILL",
        format!("{:.2} s", after_kill.as_secs_f64()),
    );
    progress.say(format!(
        "SERVING {:.2} s after SIGKILL; stopping it",
        after_kill.as_secs_f64()
    ));
    terminate(server)?;
    Ok(())
}

fn main() {
    let count: usize = std::env::var("MARR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RECORDS);
    let progress = Progress(Instant::now());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nation = Nation::read();
    progress.say(format!(
        "{} wards in {} districts",
        nation.total_wards,
        nation.districts.len()
    ));
    let mut table = Table::default();
    let earlier = in_process(&runtime, &nation, count, &mut table, &progress);

    progress.say(format!(
        "raw sled: {} records in batches of {}",
        earlier.loaded, earlier.mean_batch
    ));
    let raw = raw_sled(&nation, count, earlier.mean_batch);
    progress.say(format!("raw sled: {:.0} records/s", raw.rate));
    raw.load(
        &mut table,
        "the writer (in process, `Store::enqueue`, group commit)",
        earlier.writer_rate,
    );
    raw.disk(
        &mut table,
        "loaded through the writer (after a clean close)",
        earlier.bytes,
        earlier.loaded,
    );
    if let Err(error) = served(
        &runtime, &nation, count, &earlier, &raw, &mut table, &progress,
    ) {
        progress.say(format!("marr serve: stopped early: {error}"));
        table.add(
            Section::Start,
            "marr serve measures",
            format!("stopped early: {error}"),
        );
    }
    println!(
        "scale: {} records over {} real wards; raw sled baseline: one insert a record, batches of {} (the writer's mean), flush and fsync per batch, {} bytes a record on disk",
        thousands(earlier.loaded),
        thousands(nation.total_wards as u64),
        earlier.mean_batch,
        thousands(raw.bytes / raw.written.max(1))
    );
    table.print();
}
