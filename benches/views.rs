//! Place views at national scale: `GetPlaceView` latency from the counters against the same
//! view computed by scanning every record, in one run.
//!
//! `cargo bench --bench views` (MARR_BENCH_RECORDS sets the count, default 1000000).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use marr::cli::{Connection, ServerArgs, places};
use marr::domain::inspection::ViewFilter;
use marr::domain::lookup::LookupTable;
use marr::domain::*;
use marr::proto;
use marr::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Digest;
use time::OffsetDateTime;

const SAMPLES: usize = 500;

fn geography(name: &str) -> LookupTable {
    places::read_table(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/geography")
            .join(name),
    )
    .expect("lookup readable")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_mib(dir: &Path) -> f64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

fn code(c: &str) -> PlaceCode {
    PlaceCode::parse(c).expect("code")
}

fn main() {
    let count: usize = std::env::var("MARR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("store");
    let wards = geography("ward-lad-county-region-country-2019.csv");
    let police = geography("lad-csp-police-force-area-2019.csv");

    // Each district's wards, and its police force area where it has one.
    let mut wards_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &wards.rows {
        wards_of
            .entry(row.cells[3].clone())
            .or_default()
            .push(row.cells[1].clone());
    }
    let force_of: BTreeMap<String, String> = police
        .rows
        .iter()
        .map(|r| (r.cells[1].clone(), r.cells[5].clone()))
        .collect();
    let total_wards: usize = wards_of.values().map(Vec::len).sum();

    runtime.block_on(async {
        store
            .import_places(vec![police.clone(), wards.clone()], support::operator())
            .await
            .expect("import");
        let mut registered = std::collections::BTreeSet::new();
        for district in wards_of.keys() {
            let mut agencies = vec![(
                district.clone(),
                AgencyKind::ChildrenSocialCare,
                district.clone(),
            )];
            if let Some(force) = force_of.get(district) {
                agencies.push((force.clone(), AgencyKind::Police, force.clone()));
            }
            // One health body per district's country, reporting anywhere in it.
            let country = store.place(code(district)).expect("district").ancestors[0]
                .code
                .to_string();
            agencies.push((format!("H{}", &country[..3]), AgencyKind::Health, country));
            for (id, kind, footprint) in agencies {
                if registered.insert(id.clone()) {
                    let agency = Agency {
                        id: AgencyId::parse(&id).expect("id"),
                        kind,
                        name: id.clone(),
                        footprint: vec![code(&footprint)],
                    };
                    store
                        .register_agency(agency, support::operator())
                        .await
                        .expect("register");
                }
            }
        }
    });

    // Records per district in proportion to its wards; subjects recur within a district so
    // some are known to several agencies there.
    let mut rng = StdRng::seed_from_u64(7);
    let now = OffsetDateTime::now_utc();
    let load_started = Instant::now();
    let loader = Arc::new(support::operator());
    runtime.block_on(async {
        let mut pending = Vec::new();
        let mut n = 0usize;
        for (d, (district, ward_codes)) in wards_of.iter().enumerate() {
            let share = count * ward_codes.len() / total_wards;
            let country = store.place(code(district)).expect("district").ancestors[0]
                .code
                .to_string();
            let mut agencies = vec![district.clone(), format!("H{}", &country[..3])];
            if let Some(force) = force_of.get(district) {
                agencies.push(force.clone());
            }
            for _ in 0..share {
                n += 1;
                let agency = &agencies[rng.random_range(0..agencies.len())];
                let subject = (d * 1_000_000 + rng.random_range(0..share.max(2) / 2)).to_le_bytes();
                let updated = now - time::Duration::hours(rng.random_range(1..10_000));
                let record = RiskRecord {
                    key: RecordKey::parse(agency, &format!("R{n:08}")).expect("key"),
                    subject: Some(SubjectKey::from_bytes(sha2::Sha256::digest(subject).into())),
                    place: code(&ward_codes[rng.random_range(0..ward_codes.len())]),
                    client_group: ClientGroup::ALL[rng.random_range(0..7)],
                    category: RiskCategory::ALL[rng.random_range(0..16)],
                    severity: Severity::ALL[rng.random_range(0..4)],
                    status: if rng.random_bool(0.85) {
                        RecordStatus::Active
                    } else {
                        RecordStatus::Closed
                    },
                    assessed_at: updated - time::Duration::hours(2),
                    source_updated_at: updated,
                    lawful_basis: LawfulBasis::ChildrenAct1989S17,
                    note: String::new(),
                };
                store.check_record(&record).expect("valid");
                pending.push(
                    store
                        .enqueue(record, Arc::clone(&loader))
                        .await
                        .expect("queued"),
                );
                if pending.len() >= 8192 {
                    for answer in pending.drain(..) {
                        answer.await.expect("answer").expect("written");
                    }
                }
            }
        }
        for answer in pending {
            answer.await.expect("answer").expect("written");
        }
    });
    let loaded = store.head_sequence();
    let load_time = load_started.elapsed();

    // Serve it and time GetPlaceView over gRPC on loopback.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(marr::serve(
        listener,
        store.clone(),
        support::config("E08000021"),
        async move {
            let _ = stopped.await;
        },
    ));
    let connection = runtime
        .block_on(Connection::open(&ServerArgs::plain(url)))
        .expect("connect")
        .with_token(support::INSPECTOR_TOKEN)
        .expect("token");
    let levels = [
        ("country", "E92000001", "England"),
        ("region", "E12000007", "London"),
        ("police force area", "E23000001", "Metropolitan Police"),
        ("district", "E08000025", "Birmingham"),
    ];
    println!(
        "views: {loaded} records loaded over {total_wards} real wards in {:.0} s ({:.0} records/s); store {:.0} MiB on disk; RSS {:.0} MiB",
        load_time.as_secs_f64(),
        loaded as f64 / load_time.as_secs_f64(),
        dir_mib(dir.path()),
        rss_mib()
    );
    println!(
        "| level | place | active | GetPlaceView p50 | p99 | counters in-process p50 | p99 | scan of every record | scan / p50 |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (level, place, name) in levels {
        let mut client = connection.inspection();
        let request = proto::GetPlaceViewRequest {
            place_code: place.into(),
            filter: None,
            as_of_sequence: 0,
        };
        let mut latencies = Vec::with_capacity(SAMPLES);
        let mut active = 0;
        for i in 0..SAMPLES + 20 {
            let started = Instant::now();
            let view = runtime
                .block_on(client.get_place_view(request.clone()))
                .expect("view")
                .into_inner();
            if i >= 20 {
                latencies.push(started.elapsed());
            }
            active = view.view.map_or(0, |v| v.total_active);
        }
        latencies.sort();
        let mut direct = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let started = Instant::now();
            let view = store
                .place_view(code(place), &ViewFilter::default(), None)
                .expect("view");
            direct.push(started.elapsed());
            assert_eq!(view.total, active);
        }
        direct.sort();
        let scan_started = Instant::now();
        let scanned = store
            .scan_place_view(code(place), &ViewFilter::default())
            .expect("scan");
        let scan = scan_started.elapsed();
        assert_eq!(scanned.total, active, "the scan and the counters agree");
        let p50 = percentile(&latencies, 0.50);
        println!(
            "| {level} | {name} ({place}) | {active} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.0} ms | {:.0}x |",
            p50.as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            percentile(&direct, 0.50).as_secs_f64() * 1e3,
            percentile(&direct, 0.99).as_secs_f64() * 1e3,
            scan.as_secs_f64() * 1e3,
            scan.as_secs_f64() / p50.as_secs_f64()
        );
    }
    println!("RSS after the views: {:.0} MiB", rss_mib());
    drop(connection);
    let _ = stop.send(());
    runtime.block_on(server).expect("server").expect("stops");

    // Start-up replays the log into the counters and the rule state: what a restart costs.
    drop(store);
    let reopened = Instant::now();
    let store = Store::open(dir.path()).expect("reopen");
    println!(
        "reopen with {} records: {:.1} s to rebuild the counters and rule state from the log",
        store.head_sequence(),
        reopened.elapsed().as_secs_f64()
    );
    runtime.block_on(store.close()).expect("close");
}
