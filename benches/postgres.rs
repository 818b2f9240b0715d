//! The register on PostgreSQL beside the register on sled, same records, same run: durable
//! ingest through `PushRecords` (PostgreSQL with one node and with two sharing the database),
//! raw PostgreSQL inserts of the same records with the same commit size as the baseline, a
//! page of risks read through each engine, place views on a node that writes beside views on
//! a node that follows it, and the table's size per record.
//!
//! `cargo bench --bench postgres` (MARR_BENCH_RECORDS changes the count, default 20000). It
//! starts its own PostgreSQL server from the distribution's packages, as the tests do.

mod support;

#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod cluster;

use std::time::{Duration, Instant};

use marr::api::convert::record_from_proto;
use marr::proto;
use marr::store::{Location, Store, StoreOptions};
use time::OffsetDateTime;

use support::NEWCASTLE;

const ROUNDS: usize = 3;
const PAGE_READS: usize = 200;

/// Raw PostgreSQL: the same records, encoded the same way, into a key/value table like the
/// engine's, one multi-row insert and one commit per batch of `batch_size`.
fn raw_postgres(url: &str, records: &[proto::RiskRecord], batch_size: usize) -> Duration {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .batch_execute(
            "DROP TABLE IF EXISTS raw; CREATE TABLE raw (key bytea PRIMARY KEY, value bytea NOT NULL)",
        )
        .expect("table");
    let now = OffsetDateTime::now_utc();
    let insert = client
        .prepare("INSERT INTO raw (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[])")
        .expect("prepare");
    let start = Instant::now();
    for chunk in records.chunks(batch_size) {
        let mut keys = Vec::with_capacity(chunk.len());
        let mut values = Vec::with_capacity(chunk.len());
        for record in chunk {
            let record = record_from_proto(Some(record.clone()), now).expect("valid");
            keys.push(format!("{}/{}", record.key.agency, record.key.local_ref).into_bytes());
            values.push(postcard::to_stdvec(&record).expect("encode"));
        }
        let mut transaction = client.transaction().expect("begin");
        transaction
            .execute(&insert, &[&keys, &values])
            .expect("insert");
        transaction.commit().expect("commit");
    }
    start.elapsed()
}

struct Run {
    ingest: Duration,
    batches: u64,
    /// Pages of risks at the district, each reading up to [`PAGE_READS`] records.
    pages: Vec<Duration>,
}

/// The register at `location`: one PushRecords stream timed until the last durable
/// acknowledgement, then pages of risks at the district.
async fn register(
    location: Location,
    records: &[proto::RiskRecord],
    tables: Vec<marr::domain::lookup::LookupTable>,
) -> Run {
    let server = node(location, tables).await;
    let (ingest, batches) = server.push(records).await;
    let mut pages = Vec::new();
    let mut token = String::new();
    for _ in 0..50 {
        let start = Instant::now();
        let page = server
            .inspector
            .inspection()
            .list_risks(proto::ListRisksRequest {
                place_code: NEWCASTLE.into(),
                page_size: PAGE_READS as u32,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        pages.push(start.elapsed());
        assert_eq!(page.risks.len(), PAGE_READS, "full pages");
        token = page.next_page_token;
    }
    server.stop().await;
    Run {
        ingest,
        batches,
        pages,
    }
}

/// A serving node on the register at `location`, as `marr serve` opens it.
async fn node(
    location: Location,
    tables: Vec<marr::domain::lookup::LookupTable>,
) -> support::CouncilServer {
    let store = tokio::task::spawn_blocking(move || {
        let options = StoreOptions {
            serving: true,
            ..StoreOptions::default()
        };
        Store::open_at(&location, options).expect("store")
    })
    .await
    .expect("open");
    support::CouncilServer::start(store, tables).await
}

struct TwoNodes {
    /// Both halves of the records, one through each node at once.
    ingest: Duration,
    /// Place views read on the node taking the writes, and on the node following it, while
    /// the second set of records goes in through the first.
    views_writing: Vec<Duration>,
    views_following: Vec<Duration>,
    /// From the writing node's last acknowledgement to the following node holding the head.
    caught_up: Duration,
}

/// Place views of Newcastle read one after another on `server` until `stop`.
async fn read_views(
    inspector: marr::cli::Connection,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Duration> {
    let mut took = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let start = Instant::now();
        inspector
            .inspection()
            .get_place_view(proto::GetPlaceViewRequest {
                place_code: NEWCASTLE.into(),
                ..Default::default()
            })
            .await
            .expect("view");
        took.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    took
}

/// Two nodes on one database: `first` pushed half through each at once, then `second`
/// pushed through the first node alone while both answer place views.
async fn two_nodes(
    location: Location,
    first: &[proto::RiskRecord],
    second: &[proto::RiskRecord],
    tables: Vec<marr::domain::lookup::LookupTable>,
) -> TwoNodes {
    let writing = node(location.clone(), tables.clone()).await;
    let following = node(location, tables).await;
    let (left, right) = first.split_at(first.len() / 2);
    let start = Instant::now();
    tokio::join!(writing.push(left), following.push(right));
    let ingest = start.elapsed();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers = [&writing, &following].map(|server| {
        tokio::spawn(read_views(
            server.inspector.clone(),
            std::sync::Arc::clone(&stop),
        ))
    });
    writing.push(second).await;
    let head = writing.store.head_sequence();
    let acknowledged = Instant::now();
    while following.store.head_sequence() < head {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let caught_up = acknowledged.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let [views_writing, views_following] = readers;
    let views_writing = views_writing.await.expect("reader");
    let views_following = views_following.await.expect("reader");
    writing.stop().await;
    following.stop().await;
    TwoNodes {
        ingest,
        views_writing,
        views_following,
        caught_up,
    }
}

/// Bytes the register's table and its index take in the database at `url`.
fn table_bytes(url: &str) -> i64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .query_one("SELECT pg_total_relation_size('marr_register')", &[])
        .expect("size")
        .get(0)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let count: usize = std::env::var("MARR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let (tables, wards) = support::wards_of(NEWCASTLE);
    let all_records = support::council_records(count * 2, &wards);
    let (records, more_records) = all_records.split_at(count);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = cluster::Cluster::start(&[]);

    let mut runs: Vec<(&str, Vec<Run>)> = Vec::new();
    for engine in ["sled", "postgres"] {
        let mut engine_runs = Vec::new();
        for _ in 0..ROUNDS {
            let dir = tempfile::tempdir().expect("dir");
            let location = match engine {
                "sled" => Location::Sled(dir.path().to_path_buf()),
                _ => cluster.database(),
            };
            engine_runs.push(runtime.block_on(register(location, records, tables.clone())));
        }
        runs.push((engine, engine_runs));
    }
    let postgres_batches: u64 = runs[1].1.iter().map(|run| run.batches).sum();
    let commit = (count as f64 * ROUNDS as f64 / postgres_batches as f64)
        .round()
        .max(1.0) as usize;
    let raw_url = match cluster.database() {
        Location::Postgres(options) => options.url,
        Location::Sled(_) => unreachable!(),
    };
    let raw: Vec<Duration> = (0..ROUNDS)
        .map(|_| raw_postgres(&raw_url, records, commit))
        .collect();
    let mut pairs = Vec::new();
    let mut bytes_per_record = 0.0;
    for _ in 0..ROUNDS {
        let location = cluster.database();
        let Location::Postgres(options) = &location else {
            unreachable!()
        };
        let url = options.url.clone();
        pairs.push(runtime.block_on(two_nodes(location, records, more_records, tables.clone())));
        bytes_per_record = table_bytes(&url) as f64 / (2 * count) as f64;
    }

    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    let raw = median(raw);
    println!("durable ingest: {count} records, {ROUNDS} rounds each, median shown");
    println!("| path | records/s | seconds | commits |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| raw PostgreSQL: 1 row per record, 1 commit per {commit} | {:.0} | {:.2} | {} |",
        rate(raw),
        raw.as_secs_f64(),
        count.div_ceil(commit)
    );
    let mut rates = Vec::new();
    for (engine, engine_runs) in &runs {
        let ingest = median(engine_runs.iter().map(|run| run.ingest).collect());
        let batches = engine_runs.iter().map(|run| run.batches).sum::<u64>() as f64 / ROUNDS as f64;
        rates.push(rate(ingest));
        println!(
            "| marr PushRecords on {engine}: log + projections + audit, durable ack | {:.0} | {:.2} | {batches:.0} |",
            rate(ingest),
            ingest.as_secs_f64()
        );
    }
    let pair_ingest = median(pairs.iter().map(|pair| pair.ingest).collect());
    rates.push(rate(pair_ingest));
    println!(
        "| marr PushRecords on PostgreSQL, two nodes, half through each at once | {:.0} | {:.2} | |",
        rate(pair_ingest),
        pair_ingest.as_secs_f64()
    );
    println!(
        "ratio marr on PostgreSQL / raw PostgreSQL: {:.2}; marr on PostgreSQL / marr on sled: {:.2}; two nodes / one node: {:.2}",
        rates[1] / rate(raw),
        rates[1] / rates[0],
        rates[2] / rates[1]
    );
    println!();
    println!("GetPlaceView at Newcastle while {count} more records go in through the writing node");
    println!("| node | views | p50 | p99 |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, views) in [
        (
            "writing (baseline)",
            pairs
                .iter()
                .flat_map(|p| p.views_writing.clone())
                .collect::<Vec<_>>(),
        ),
        (
            "following",
            pairs
                .iter()
                .flat_map(|p| p.views_following.clone())
                .collect(),
        ),
    ] {
        let mut views = views;
        views.sort();
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms |",
            views.len(),
            support::percentile(&views, 0.50).as_secs_f64() * 1e3,
            support::percentile(&views, 0.99).as_secs_f64() * 1e3
        );
    }
    let caught_up: Vec<Duration> = pairs.iter().map(|pair| pair.caught_up).collect();
    println!(
        "the following node held the head {:?} (median; each round {caught_up:?}) after the last acknowledgement",
        median(caught_up.clone())
    );
    println!(
        "marr_register: {bytes_per_record:.0} bytes per record (table and index, {} records)",
        2 * count
    );
    println!();
    println!(
        "ListRisks at Newcastle, pages of {PAGE_READS}, {} pages a round",
        50
    );
    println!("| engine | p50 | p99 |");
    println!("| --- | ---: | ---: |");
    for (engine, engine_runs) in &runs {
        let mut pages: Vec<Duration> = engine_runs
            .iter()
            .flat_map(|run| run.pages.clone())
            .collect();
        pages.sort();
        println!(
            "| {engine} | {:.2} ms | {:.2} ms |",
            support::percentile(&pages, 0.50).as_secs_f64() * 1e3,
            support::percentile(&pages, 0.99).as_secs_f64() * 1e3
        );
    }
}
