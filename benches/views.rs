//! Place views at national scale: `GetPlaceView` latency from the counters against the same
//! view computed by scanning every record, in one run.
//!
//! `cargo bench --bench views` (MARR_BENCH_RECORDS sets the count, default 1000000).

mod support;

use std::time::Instant;

use marr::cli::{Connection, ServerArgs};
use marr::domain::inspection::ViewFilter;
use marr::proto;
use marr::store::Store;
use support::{code, mib, percentile, rss_mib};
use time::OffsetDateTime;

const SAMPLES: usize = 500;

fn main() {
    let count: usize = std::env::var("MARR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("store");
    let nation = support::Nation::read();
    let total_wards = nation.total_wards;
    runtime.block_on(nation.set_up(&store));

    let load_started = Instant::now();
    runtime.block_on(support::load(
        &store,
        nation.records(count, 7, OffsetDateTime::now_utc()),
    ));
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
        mib(support::dir_bytes(dir.path())),
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
