//! The web pages at national scale against the gRPC calls they are built from, in one run:
//! the place page (view, 12-month trend, child map) against `GetPlaceView`, the comparison page
//! against its two `ComparePlaces` calls, and the bytes of a first visit.
//!
//! `cargo bench --bench web` (MARR_BENCH_RECORDS sets the count, default 1000000).

mod support;
#[allow(dead_code)]
#[path = "../tests/common/web.rs"]
mod web;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use marr::cli::{Connection, ServerArgs, boundaries, neighbours, places, population};
use marr::domain::inspection::ViewFilter;
use marr::proto;
use marr::store::{Store, StoreOptions};
use prost::Message;
use support::{mib, percentile, rss_mib};
use time::OffsetDateTime;
use web::WebClient;

/// Timed samples of each page and each call, after the warm-up.
const SAMPLES: usize = 300;
const WARM_UP: usize = 20;
/// The log covers this span before now, so that every month of the trend has its own as-of
/// view to replay.
const SPAN_SECONDS: i64 = 400 * 24 * 60 * 60;
/// The goals: every page's p99, and the bytes of a first visit.
const GOAL_P99_MS: f64 = 50.0;
const GOAL_FIRST_VISIT_BYTES: usize = 300_000;

const NEWCASTLE: &str = "E08000021";

fn shared_file(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(dir)
        .join(name)
}

/// England's lookups as they are today, imported over the 2019 ones: they carry the DfE's
/// authority numbers that the statistical neighbours are published under.
fn current_geography() -> Vec<PathBuf> {
    [
        "la-changes-2018-2025.csv",
        "lad22-lad23.csv",
        "ward-pcon-lad-la-region-2017-2025.csv",
        "lad24-csp24-pfa24.csv",
        "lsoa21-ward24-lad24-bestfit.csv",
        "lsoa21-sicbl24-icb24.csv",
    ]
    .iter()
    .map(|name| shared_file("geography-2025", name))
    .collect()
}

/// The ends of the 11 months before this one (each the first instant of the next), as the
/// place page's trend takes them.
fn month_ends(now: OffsetDateTime) -> Vec<OffsetDateTime> {
    let months = now.year() * 12 + i32::from(u8::from(now.month())) - 1;
    (0..11)
        .map(|back| {
            let m = months - back;
            let month = time::Month::try_from((m.rem_euclid(12) + 1) as u8).expect("a month");
            time::Date::from_calendar_date(m.div_euclid(12), month, 1)
                .expect("a date")
                .midnight()
                .assume_utc()
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p99 of some samples.
struct Timing {
    p50: Duration,
    p99: Duration,
}

impl Timing {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self {
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
        }
    }
}

/// One line of the table.
struct Row {
    what: String,
    timing: Option<Timing>,
    /// Only a first visit's single time.
    once: Option<Duration>,
    bytes: usize,
    /// p50 (or the single time) over the baseline's p50, and p99 over its p99.
    ratio: String,
}

fn ratio(page: &Timing, baseline: &Timing) -> String {
    format!(
        "{:.1}× / {:.1}×",
        page.p50.as_secs_f64() / baseline.p50.as_secs_f64(),
        page.p99.as_secs_f64() / baseline.p99.as_secs_f64()
    )
}

/// Times a page and its baseline in turns (one of each per round), so that load from others
/// on the machine falls on both alike; the bytes are the last answer's.
fn interleaved<B>(
    runtime: &tokio::runtime::Runtime,
    client: &mut WebClient,
    path: &str,
    mut baseline: impl FnMut() -> B,
) -> (Timing, usize, Timing, usize)
where
    B: Future<Output = usize>,
{
    let (mut pages, mut calls) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    let (mut page_bytes, mut call_bytes) = (0, 0);
    for i in 0..WARM_UP + SAMPLES {
        let started = Instant::now();
        page_bytes = runtime.block_on(page(client, path)).len();
        let page_time = started.elapsed();
        let started = Instant::now();
        call_bytes = runtime.block_on(baseline());
        let call_time = started.elapsed();
        if i >= WARM_UP {
            pages.push(page_time);
            calls.push(call_time);
        }
    }
    (Timing::of(pages), page_bytes, Timing::of(calls), call_bytes)
}

/// A page's body, which must be a 200.
async fn page(client: &mut WebClient, path: &str) -> String {
    let page = client.get(path).await;
    assert_eq!(page.status, 200, "GET {path}: {}", page.text());
    page.body
}

/// The child map's SVG in a page: its bytes and its areas (0, 0 when the page has none).
fn map_of(body: &str) -> (usize, usize) {
    let Some(title) = body.find("<title id=\"child-map-title\">") else {
        return (0, 0);
    };
    let start = body[..title].rfind("<svg").unwrap_or(title);
    let end = body[title..]
        .find("</svg>")
        .map_or(body.len(), |at| title + at + "</svg>".len());
    let svg = &body[start..end];
    (svg.len(), svg.matches(" data-code=").count())
}

/// The `/assets/…` paths a page refers to.
fn assets_of(body: &str) -> BTreeSet<String> {
    body.match_indices("\"/assets/")
        .filter_map(|(at, _)| {
            let rest = &body[at + 1..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

fn main() {
    let count: usize = std::env::var("MARR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");

    // The store's clock runs behind the real one by `lag`, which the loader shrinks from
    // SPAN_SECONDS to nothing: the log is received over the 13 months before now, as a
    // register's is, so the trend's month ends fall inside it.
    let lag = Arc::new(AtomicI64::new(SPAN_SECONDS));
    let clock_lag = Arc::clone(&lag);
    let options = StoreOptions {
        clock: Arc::new(move || {
            OffsetDateTime::now_utc() - time::Duration::seconds(clock_lag.load(Ordering::Acquire))
        }),
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).expect("store");
    let nation = support::Nation::read();
    runtime.block_on(nation.set_up(&store));

    let load_started = Instant::now();
    let generated_at = OffsetDateTime::now_utc() - time::Duration::seconds(SPAN_SECONDS);
    let records = nation
        .records(count, 7, generated_at)
        .enumerate()
        .map(|(i, mut record)| {
            let left = SPAN_SECONDS - (SPAN_SECONDS as i128 * i as i128 / count as i128) as i64;
            lag.store(left.max(0), Ordering::Release);
            // Each record was updated up to about 14 months before it is received.
            let received = OffsetDateTime::now_utc() - time::Duration::seconds(left.max(0));
            let shift = received - generated_at;
            record.assessed_at += shift;
            record.source_updated_at += shift;
            record
        });
    runtime.block_on(support::load(&store, records));
    lag.store(0, Ordering::Release);
    let loaded = store.head_sequence();
    let load_time = load_started.elapsed();

    let grpc = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let web_listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", grpc.local_addr().expect("addr"));
    let web_url = format!("http://{}", web_listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(marr::serve_with_web(
        grpc,
        Some(web_listener),
        store.clone(),
        support::config(NEWCASTLE),
        async move {
            let _ = stopped.await;
        },
    ));
    let connection = runtime
        .block_on(Connection::open(&ServerArgs::plain(url)))
        .expect("connect");
    let admin = connection
        .with_token(support::ADMIN_TOKEN)
        .expect("admin token");
    let inspector = connection
        .with_token(support::INSPECTOR_TOKEN)
        .expect("inspector token");

    // Today's geography, population, statistical neighbours and boundaries, as an operator
    // imports them.
    let imports_started = Instant::now();
    runtime.block_on(async {
        let tables = places::read_tables(&current_geography()).expect("geography readable");
        places::import_tables(&admin, tables)
            .await
            .expect("the current geography imports");
        let tables = population::read_tables(&[shared_file(
            "population",
            "mid-year-estimates-la-2022-2024.csv",
        )])
        .expect("population readable");
        let report = population::import_tables(&admin, tables)
            .await
            .expect("the population imports");
        println!("population: {}", population::summary_line(&report));
        let tables = neighbours::read_tables(&[shared_file(
            "statistical-neighbours",
            "children-services-2025.csv",
        )])
        .expect("neighbours readable");
        let report = neighbours::import_tables(&admin, tables)
            .await
            .expect("the neighbours import");
        println!(
            "neighbours: {}",
            neighbours::report_lines(&report)
                .first()
                .cloned()
                .unwrap_or_default()
        );
        let files = boundaries::read_files(&[shared_file(
            "boundaries",
            "uk-local-authorities-2014-2025.topo.json",
        )])
        .expect("boundaries readable");
        let report = boundaries::import_files(&admin, files)
            .await
            .expect("the boundaries import");
        println!("boundaries: {}", boundaries::summary_line(&report));
        // The new geography's counters (and their checkpoints, which as-of views start from)
        // are rebuilt in the background: measure once they are in.
        store.counters_rebuilt().await;
    });
    let imports = imports_started.elapsed();
    let year_ago = store
        .sequence_at(OffsetDateTime::now_utc() - time::Duration::days(330))
        .expect("sequence");

    println!(
        "machine: {} cores, load average {}; release build; client and server in one process on loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "web: {loaded} records loaded over {} real wards in {:.0} s, received over the {} days before now ({year_ago} by 330 days ago); imports and counter rebuild {:.0} s; store {:.0} MiB on disk; RSS {:.0} MiB",
        nation.total_wards,
        load_time.as_secs_f64(),
        SPAN_SECONDS / 86_400,
        imports.as_secs_f64(),
        mib(support::dir_bytes(dir.path())),
        rss_mib()
    );

    // Sign in as a person would: the form, then the post.
    let mut client = WebClient::new(&web_url);
    let form = runtime.block_on(client.get("/sign-in"));
    assert_eq!(form.status, 200, "the sign-in page");
    let csrf = form.csrf();
    let sign_in_page = form.body;
    let signed_in = runtime.block_on(client.post(
        "/sign-in",
        &[("csrf", &csrf), ("token", support::INSPECTOR_TOKEN)],
    ));
    assert_eq!(signed_in.status, 303, "signed in: {}", signed_in.text());

    let targets = [
        ("England", "E92000001"),
        ("North East", "E12000001"),
        ("Newcastle upon Tyne", NEWCASTLE),
    ];
    let mut rows: Vec<Row> = Vec::new();
    let mut goals: Vec<(String, bool)> = Vec::new();
    // First visits, before anything else asks for these places: the trend's as-of views are
    // replayed from the log (the cache is per process and starts empty).
    let mut cold = Vec::new();
    let mut bodies = std::collections::BTreeMap::new();
    for (name, code) in targets {
        let path = format!("/places/{code}");
        let started = Instant::now();
        let first = runtime.block_on(page(&mut client, &path));
        let answered = started.elapsed();
        // The first visit answers at once and works the month ends out in the background;
        // the time until a visit shows the whole trend is kept too.
        let body = loop {
            let body = runtime.block_on(page(&mut client, &path));
            if !body.contains("being worked out") {
                break body;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        println!(
            "{name}'s trend shown {:.0} ms after the first visit",
            ms(started.elapsed())
        );
        cold.push((name, code, answered, first.len()));
        let (map_bytes, areas) = map_of(&body);
        // An authority's children are wards, which have no boundaries: no map there.
        assert!(
            areas > 0 || code == NEWCASTLE,
            "{name}'s page draws its map"
        );
        println!(
            "{name}'s page: {} bytes, of which the child map {map_bytes} bytes ({areas} areas)",
            body.len()
        );
        bodies.insert(code, body);
    }
    for ((name, code), (_, _, first, first_bytes)) in targets.into_iter().zip(cold) {
        let path = format!("/places/{code}");
        let grpc = inspector.inspection();
        let request = proto::GetPlaceViewRequest {
            place_code: code.into(),
            filter: None,
            as_of_sequence: 0,
        };
        let (page_timing, page_bytes, call_timing, call_bytes) =
            interleaved(&runtime, &mut client, &path, || {
                let request = request.clone();
                let mut grpc = grpc.clone();
                async move {
                    grpc.get_place_view(request)
                        .await
                        .expect("view")
                        .into_inner()
                        .encoded_len()
                }
            });
        rows.push(Row {
            what: format!("GET /places/{code} ({name}), first visit: trend being worked out"),
            timing: None,
            once: Some(first),
            bytes: first_bytes,
            ratio: format!(
                "{:.1}×",
                first.as_secs_f64() / call_timing.p50.as_secs_f64()
            ),
        });
        goals.push((
            format!(
                "{name}'s page p99 {:.1} ms under {GOAL_P99_MS:.0} ms",
                ms(page_timing.p99)
            ),
            ms(page_timing.p99) < GOAL_P99_MS,
        ));
        goals.push((
            format!(
                "{name}'s first visit after a start (one visit, not a p99) {:.1} ms under {GOAL_P99_MS:.0} ms",
                ms(first)
            ),
            ms(first) < GOAL_P99_MS,
        ));
        rows.push(Row {
            what: format!("GET /places/{code} ({name}): trend cached"),
            ratio: ratio(&page_timing, &call_timing),
            timing: Some(page_timing),
            once: None,
            bytes: page_bytes,
        });
        rows.push(Row {
            what: format!("  baseline: gRPC GetPlaceView {code}"),
            timing: Some(call_timing),
            once: None,
            bytes: call_bytes,
            ratio: "1×".into(),
        });
    }

    // The comparison page against the two calls it makes.
    {
        let path = format!("/places/{NEWCASTLE}/compare?rate_of=child_protection_plan");
        let grpc = inspector.inspection();
        let neighbours_request = proto::ComparePlacesRequest {
            parent_code: NEWCASTLE.into(),
            filter: None,
            sort_by: 0,
            kind: proto::ComparisonKind::StatisticalNeighbours as i32,
            rate_of: proto::ClientGroup::ChildProtectionPlan as i32,
        };
        let children_request = proto::ComparePlacesRequest {
            parent_code: NEWCASTLE.into(),
            filter: None,
            sort_by: 0,
            kind: proto::ComparisonKind::Children as i32,
            rate_of: 0,
        };
        let body = runtime.block_on(page(&mut client, &path));
        assert!(
            body.contains("Statistical neighbour"),
            "the comparison page lists Newcastle's neighbours"
        );
        let (page_timing, page_bytes, call_timing, call_bytes) =
            interleaved(&runtime, &mut client, &path, || {
                let mut grpc = grpc.clone();
                let (neighbours, children) = (neighbours_request.clone(), children_request.clone());
                async move {
                    let a = grpc
                        .compare_places(neighbours)
                        .await
                        .expect("neighbours")
                        .into_inner();
                    let b = grpc
                        .compare_places(children)
                        .await
                        .expect("children")
                        .into_inner();
                    a.encoded_len() + b.encoded_len()
                }
            });
        goals.push((
            format!(
                "the comparison page's p99 {:.1} ms under {GOAL_P99_MS:.0} ms",
                ms(page_timing.p99)
            ),
            ms(page_timing.p99) < GOAL_P99_MS,
        ));
        rows.push(Row {
            what: format!("GET /places/{NEWCASTLE}/compare?rate_of=child_protection_plan"),
            ratio: ratio(&page_timing, &call_timing),
            timing: Some(page_timing),
            once: None,
            bytes: page_bytes,
        });
        rows.push(Row {
            what: "  baseline: gRPC ComparePlaces neighbours + children".into(),
            timing: Some(call_timing),
            once: None,
            bytes: call_bytes,
            ratio: "1×".into(),
        });
    }

    // A first visit: the sign-in page, the Newcastle and England pages and every asset they
    // refer to (the stylesheet, and any script).
    let visited = [
        ("sign-in page", sign_in_page.as_str()),
        ("Newcastle's page", bodies[NEWCASTLE].as_str()),
        ("England's page", bodies["E92000001"].as_str()),
    ];
    let mut assets = BTreeSet::new();
    for (_, body) in &visited {
        assets.extend(assets_of(body));
    }
    let mut parts: Vec<(String, usize)> = visited
        .iter()
        .map(|(what, body)| (what.to_string(), body.len()))
        .collect();
    for asset in &assets {
        let body = runtime.block_on(page(&mut client, asset));
        parts.push((asset.clone(), body.len()));
    }
    let first_visit: usize = parts.iter().map(|(_, n)| n).sum();
    rows.push(Row {
        what: format!(
            "first visit: {}",
            parts
                .iter()
                .map(|(what, n)| format!("{what} {n}"))
                .collect::<Vec<_>>()
                .join(" + ")
        ),
        timing: None,
        once: None,
        bytes: first_visit,
        ratio: String::new(),
    });
    goals.push((
        format!("first visit {first_visit} bytes under {GOAL_FIRST_VISIT_BYTES}"),
        first_visit < GOAL_FIRST_VISIT_BYTES,
    ));

    println!(
        "pages over HTTP/1.1 with the session cookie, gRPC over HTTP/2; {SAMPLES} samples each after {WARM_UP} warm-up rounds, page and baseline taken in turns; ratio = page p50 / baseline p50 and page p99 / baseline p99 (a first visit: its one time / baseline p50); bytes = body bytes (gRPC: encoded response)"
    );
    println!("| what | p50 ms | p99 ms | bytes | ratio to its baseline |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for row in rows {
        let (p50, p99) = match (&row.timing, row.once) {
            (Some(t), _) => (format!("{:.2}", ms(t.p50)), format!("{:.2}", ms(t.p99))),
            (None, Some(once)) => (format!("{:.2} (once)", ms(once)), String::new()),
            (None, None) => (String::new(), String::new()),
        };
        println!(
            "| {} | {p50} | {p99} | {} | {} |",
            row.what, row.bytes, row.ratio
        );
    }
    for (goal, held) in goals {
        println!("goal: {goal}: {}", if held { "met" } else { "NOT met" });
    }
    // What a place page is made of, in-process on the same store: the trend's as-of views
    // (paid on a first visit), the month ends looked up in the log (paid on every visit) and
    // the children's shapes for the map.
    println!(
        "| in-process, once | trend: 11 as-of views | slowest of them | 11 month ends found in the log | the children's shapes read |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, code) in targets {
        let place = support::code(code);
        let started = Instant::now();
        let sequences: Vec<u64> = month_ends(OffsetDateTime::now_utc())
            .into_iter()
            .map(|end| store.sequence_at(end).expect("sequence"))
            .collect();
        let lookups = started.elapsed();
        let mut views = Duration::ZERO;
        let mut slowest = Duration::ZERO;
        for sequence in sequences {
            let started = Instant::now();
            store
                .place_view(place, &ViewFilter::default(), Some(sequence))
                .expect("as-of view");
            let took = started.elapsed();
            views += took;
            slowest = slowest.max(took);
        }
        let children: Vec<_> = store
            .child_places(place)
            .unwrap_or_default()
            .into_iter()
            .map(|child| child.code)
            .collect();
        let started = Instant::now();
        let shapes = store.shapes(&children).expect("shapes");
        let shapes_time = started.elapsed();
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.2} ms | {:.2} ms ({} of {}) |",
            ms(views),
            ms(slowest),
            ms(lookups),
            ms(shapes_time),
            shapes.iter().flatten().count(),
            children.len()
        );
    }
    println!("RSS after the pages: {:.0} MiB", rss_mib());
    drop(inspector);
    drop(admin);
    drop(connection);
    let _ = stop.send(());
    runtime.block_on(server).expect("server").expect("stops");
    runtime.block_on(store.close()).expect("close");
}
