//! Ingest throughput: records per second through `PushRecords` with durable acknowledgements,
//! against raw sled inserts of the same records with one flush per batch, in one run.
//!
//! `cargo bench --bench ingest` (set MARR_BENCH_RECORDS to change the count, default 100000).

mod support;

use std::time::{Duration, Instant};

use marr::api::convert::record_from_proto;
use marr::proto;
use marr::store::Store;
use time::OffsetDateTime;

use support::NEWCASTLE;

const ROUNDS: usize = 3;

/// Raw sled: the same records, encoded the same way, one insert each, one flush per batch.
fn raw_sled(records: &[proto::RiskRecord], batch_size: usize) -> Duration {
    let dir = tempfile::tempdir().expect("dir");
    let db = sled::open(dir.path()).expect("sled");
    let tree = db.open_tree("raw").expect("tree");
    let now = OffsetDateTime::now_utc();
    let start = Instant::now();
    for chunk in records.chunks(batch_size) {
        let mut batch = sled::Batch::default();
        for record in chunk {
            let record = record_from_proto(Some(record.clone()), now).expect("valid");
            let key = format!("{}/{}", record.key.agency, record.key.local_ref);
            batch.insert(
                key.as_bytes(),
                postcard::to_stdvec(&record).expect("encode"),
            );
        }
        tree.apply_batch(batch).expect("apply");
        db.flush().expect("flush");
    }
    start.elapsed()
}

/// Raw sled with the register's layout: the same four entries per record (log, latest pointer,
/// place index, subject index) with the same key shapes, but no gRPC, validation or decisions.
fn raw_sled_layout(records: &[proto::RiskRecord], batch_size: usize) -> Duration {
    let dir = tempfile::tempdir().expect("dir");
    let db = sled::open(dir.path()).expect("sled");
    let tree = db.open_tree("raw").expect("tree");
    let now = OffsetDateTime::now_utc();
    let start = Instant::now();
    let mut sequence = 0u64;
    for chunk in records.chunks(batch_size) {
        let mut batch = sled::Batch::default();
        for record in chunk {
            let record = record_from_proto(Some(record.clone()), now).expect("valid");
            sequence += 1;
            let key = format!("{}{}", record.key.agency, record.key.local_ref);
            let mut log = vec![b'L'];
            log.extend_from_slice(&sequence.to_be_bytes());
            batch.insert(log, postcard::to_stdvec(&record).expect("encode"));
            batch.insert([b"R", key.as_bytes()].concat(), &sequence.to_be_bytes()[..]);
            batch.insert(
                [b"P", record.place.as_bytes().as_slice(), key.as_bytes()].concat(),
                &[][..],
            );
            if let Some(subject) = record.subject {
                batch.insert(
                    [b"S", subject.as_bytes().as_slice(), key.as_bytes()].concat(),
                    &[][..],
                );
            }
        }
        tree.apply_batch(batch).expect("apply");
        db.flush().expect("flush");
    }
    start.elapsed()
}

/// The register: one PushRecords stream, timed until the last durable acknowledgement.
async fn register(
    records: &[proto::RiskRecord],
    tables: Vec<marr::domain::lookup::LookupTable>,
) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("store");
    let server = support::CouncilServer::start(store, tables).await;
    let pushed = server.push(records).await;
    server.stop().await;
    pushed
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let count: usize = std::env::var("MARR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (tables, wards) = support::wards_of(NEWCASTLE);
    let records = support::council_records(count, &wards);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let mut register_times = Vec::new();
    let mut batch_counts = Vec::new();
    for _ in 0..ROUNDS {
        let (elapsed, batches) = runtime.block_on(register(&records, tables.clone()));
        register_times.push(elapsed);
        batch_counts.push(batches);
    }
    let mean_batch = count as f64 * ROUNDS as f64 / batch_counts.iter().sum::<u64>() as f64;
    let raw_batch = mean_batch.round().max(1.0) as usize;
    let raw_times: Vec<Duration> = (0..ROUNDS).map(|_| raw_sled(&records, raw_batch)).collect();
    let layout_times: Vec<Duration> = (0..ROUNDS)
        .map(|_| raw_sled_layout(&records, raw_batch))
        .collect();

    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    let register = median(register_times);
    let raw = median(raw_times);
    let layout = median(layout_times);
    println!("ingest: {count} records, {ROUNDS} rounds each, median shown");
    println!("| path | records/s | seconds | batches |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| raw sled: 1 insert per record, 1 flush per batch of {raw_batch} | {:.0} | {:.2} | {} |",
        rate(raw),
        raw.as_secs_f64(),
        count.div_ceil(raw_batch)
    );
    println!(
        "| raw sled, the register's layout: 4 inserts per record, same batches | {:.0} | {:.2} | {} |",
        rate(layout),
        layout.as_secs_f64(),
        count.div_ceil(raw_batch)
    );
    println!(
        "| marr PushRecords: validate, log + 3 projections, durable ack | {:.0} | {:.2} | {:.0} |",
        rate(register),
        register.as_secs_f64(),
        batch_counts.iter().sum::<u64>() as f64 / ROUNDS as f64
    );
    println!(
        "ratio marr / raw sled: {:.2} (goal: at least 0.50)",
        rate(register) / rate(raw)
    );
}
