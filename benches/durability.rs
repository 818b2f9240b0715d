//! Durable acknowledgements: group commit (many submissions queued, one flush per batch)
//! against one flush per record (each submission waits for its own), with and without an fsync
//! after each flush, in one run. Straight to the store, so only the commit strategy differs.
//!
//! `cargo bench --bench durability` (MARR_BENCH_RECORDS sets the group-commit count, default
//! 20000; a tenth as many go one at a time).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use marr::domain::*;
use marr::store::{Store, StoreOptions, Submitted};
use time::OffsetDateTime;

const NEWCASTLE: &str = "E08000021";
const ROUNDS: usize = 3;

fn records(count: usize, wards: &[PlaceCode]) -> Vec<RiskRecord> {
    let now = OffsetDateTime::now_utc();
    (0..count)
        .map(|i| RiskRecord {
            key: RecordKey::parse(NEWCASTLE, &format!("D-{i:08}")).expect("key"),
            subject: None,
            place: wards[i % wards.len()],
            client_group: ClientGroup::ALL[i % 7],
            category: RiskCategory::ALL[i % 16],
            severity: Severity::ALL[i % 3],
            status: RecordStatus::Active,
            assessed_at: now - time::Duration::days(3),
            source_updated_at: now - time::Duration::days(2),
            lawful_basis: LawfulBasis::ChildrenAct1989S17,
            note: String::new(),
        })
        .collect()
}

async fn open(dir: &Path, fsync: bool) -> Store {
    let options = StoreOptions {
        fsync,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir, options).expect("store");
    store
        .import_places(support::wards_of(NEWCASTLE).0, support::operator())
        .await
        .expect("import");
    store
        .register_agency(
            Agency {
                id: AgencyId::parse(NEWCASTLE).expect("id"),
                kind: AgencyKind::ChildrenSocialCare,
                name: "Newcastle".into(),
                footprint: vec![PlaceCode::parse(NEWCASTLE).expect("code")],
            },
            support::operator(),
        )
        .await
        .expect("agency");
    store
}

/// Every record queued at once; the writer commits them in batches, one flush each.
async fn group_commit(fsync: bool, batch: Vec<RiskRecord>) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("dir");
    let store = open(dir.path(), fsync).await;
    let actor = Arc::new(support::operator());
    let before = store.batches_committed();
    let start = Instant::now();
    let mut pending = Vec::with_capacity(batch.len());
    for record in batch {
        pending.push(
            store
                .enqueue(record, Arc::clone(&actor))
                .await
                .expect("queued"),
        );
    }
    for answer in pending {
        let answer = answer.await.expect("answer").expect("stored");
        assert!(matches!(answer, Submitted::Accepted { .. }));
    }
    let elapsed = start.elapsed();
    let batches = store.batches_committed() - before;
    store.close().await.expect("close");
    (elapsed, batches)
}

/// Each record waits for its own acknowledgement before the next is sent.
async fn one_at_a_time(fsync: bool, batch: Vec<RiskRecord>) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("dir");
    let store = open(dir.path(), fsync).await;
    let actor = Arc::new(support::operator());
    let before = store.batches_committed();
    let start = Instant::now();
    for record in batch {
        let answer = store
            .submit(record, Arc::clone(&actor))
            .await
            .expect("stored");
        assert!(matches!(answer, Submitted::Accepted { .. }));
    }
    let elapsed = start.elapsed();
    let batches = store.batches_committed() - before;
    store.close().await.expect("close");
    (elapsed, batches)
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let grouped: usize = std::env::var("MARR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let single = (grouped / 10).max(1);
    let wards: Vec<PlaceCode> = support::wards_of(NEWCASTLE)
        .1
        .iter()
        .map(|ward| support::code(ward))
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "durable acknowledgements: {grouped} records group-committed, {single} one at a time, median of {ROUNDS}"
    );
    println!("| commit | fsync after flush | records/s | flushes | records per flush |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let mut table = std::collections::BTreeMap::new();
    for fsync in [false, true] {
        for grouping in [false, true] {
            let count = if grouping { grouped } else { single };
            let mut rates = Vec::new();
            let mut flushes = 0;
            for _ in 0..ROUNDS {
                let batch = records(count, &wards);
                let (elapsed, batches) = runtime.block_on(async {
                    if grouping {
                        group_commit(fsync, batch).await
                    } else {
                        one_at_a_time(fsync, batch).await
                    }
                });
                rates.push(count as f64 / elapsed.as_secs_f64());
                flushes = batches;
            }
            let rate = median(rates);
            table.insert((fsync, grouping), rate);
            println!(
                "| {} | {} | {rate:.0} | {flushes} | {:.0} |",
                if grouping {
                    "group commit"
                } else {
                    "one flush per record"
                },
                if fsync { "yes" } else { "no" },
                count as f64 / flushes.max(1) as f64
            );
        }
    }
    for fsync in [false, true] {
        println!(
            "group commit / one flush per record, fsync {}: {:.1}x",
            if fsync { "on" } else { "off" },
            table[&(fsync, true)] / table[&(fsync, false)]
        );
    }
    println!(
        "cost of fsync: group commit {:.2}x, one flush per record {:.2}x",
        table[&(true, true)] / table[&(false, true)],
        table[&(true, false)] / table[&(false, false)]
    );
}
