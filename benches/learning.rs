//! Learning from reviews at national scale: lessons, lines of enquiry and review listings over
//! gRPC, against reading every stored review (the scan lessons and enquiries would make without
//! the store's copy of the latest revisions) and the cheapest public call (ListThemes, the
//! transport alone), in one run.
//!
//! `cargo bench --bench learning` (MARR_BENCH_REVIEWS sets the reviews, default 2000;
//! MARR_BENCH_RECORDS the records behind the places' profiles, default 200000).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use marr::cli::{Connection, ServerArgs};
use marr::domain::review::{
    Finding, Judgement, PracticeTheme, Recommendation, ReviewDraft, ReviewKind, Theme,
};
use marr::domain::{ClientGroup, PlaceCode, RiskCategory, Vocabulary};
use marr::proto;
use marr::store::{ReviewChange, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{code, percentile, rss_mib};
use time::OffsetDateTime;

const SAMPLES: usize = 200;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every upper-tier authority of England: the counties and unitaries under its regions.
fn authorities(store: &Store) -> Vec<PlaceCode> {
    let regions = store.child_places(code("E92000001")).expect("England");
    regions
        .iter()
        .flat_map(|region| store.child_places(region.code).unwrap_or_default())
        .map(|place| place.code)
        .filter(|c| {
            ["E06", "E08", "E09", "E10"]
                .iter()
                .any(|p| c.as_str().starts_with(p))
        })
        .collect()
}

fn theme(rng: &mut StdRng) -> Theme {
    match rng.random_range(0..3) {
        0 => Theme::ClientGroup(ClientGroup::ALL[rng.random_range(0..ClientGroup::ALL.len())]),
        1 => Theme::Category(RiskCategory::ALL[rng.random_range(0..RiskCategory::ALL.len())]),
        _ => Theme::Practice(PracticeTheme::ALL[rng.random_range(0..PracticeTheme::ALL.len())]),
    }
}

/// Times `call` SAMPLES times after a warm-up, slowest last.
fn timed(runtime: &tokio::runtime::Runtime, mut call: impl AsyncCall) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES + 10 {
        let started = Instant::now();
        runtime.block_on(call.call());
        if i >= 10 {
            latencies.push(started.elapsed());
        }
    }
    latencies.sort();
    latencies
}

/// One call to time.
trait AsyncCall {
    fn call(&mut self) -> impl std::future::Future<Output = ()>;
}

impl<F: FnMut() -> Fut, Fut: std::future::Future<Output = ()>> AsyncCall for F {
    fn call(&mut self) -> impl std::future::Future<Output = ()> {
        self()
    }
}

fn main() {
    let reviews = env_count("MARR_BENCH_REVIEWS", 2000);
    let records = env_count("MARR_BENCH_RECORDS", 200_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("store");
    let nation = support::Nation::read();
    runtime.block_on(nation.set_up(&store));
    let neighbours = marr::cli::neighbours::read_tables(&[Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/statistical-neighbours/children-services-2025.csv")])
    .expect("neighbours readable");
    runtime
        .block_on(store.import_neighbours(neighbours, support::operator()))
        .expect("neighbours");
    let now = OffsetDateTime::now_utc();
    runtime.block_on(support::load(&store, nation.records(records, 7, now)));

    // Reviews of random authorities over the last three years, five findings each, every
    // recommendation to one registered agency.
    let places = authorities(&store);
    let agency = nation.agencies()[0].id.clone();
    let mut rng = StdRng::seed_from_u64(15);
    let recorded_started = Instant::now();
    for n in 0..reviews {
        let published_at = now - time::Duration::days(rng.random_range(1..3 * 365));
        let fieldwork_end = published_at.date() - time::Duration::days(40);
        let findings = (0..5)
            .map(|_| Finding {
                theme: theme(&mut rng),
                judgement: Judgement::ALL[rng.random_range(0..3)],
                summary: "Partners do not share what they know soon enough".into(),
                recommendations: vec![Recommendation {
                    text: "Agree a shared protocol and audit it every quarter".into(),
                    agency: agency.clone(),
                }],
            })
            .collect();
        let draft = ReviewDraft {
            kind: ReviewKind::ALL[n % ReviewKind::ALL.len()],
            title: format!("Review {n} of the multi-agency arrangements"),
            place: places[rng.random_range(0..places.len())],
            agencies: vec![agency.clone()],
            fieldwork_start: fieldwork_end - time::Duration::days(10),
            fieldwork_end,
            published_at,
            findings,
            note: String::new(),
        };
        runtime
            .block_on(store.record_review(
                ReviewChange {
                    draft,
                    correcting: None,
                },
                support::operator(),
            ))
            .expect("review");
    }
    let recording = recorded_started.elapsed();

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
    let public = runtime
        .block_on(Connection::open(&ServerArgs::plain(url)))
        .expect("connect");
    let inspector = public.with_token(support::INSPECTOR_TOKEN).expect("token");

    println!(
        "learning: {reviews} reviews of {} authorities ({} findings), recorded in {:.1} s ({:.0} reviews/s, each durable with its audit event), over {} records; RSS {:.0} MiB",
        places.len(),
        reviews * 5,
        recording.as_secs_f64(),
        reviews as f64 / recording.as_secs_f64(),
        store.head_sequence(),
        rss_mib()
    );
    let scan = {
        let store = store.clone();
        timed(&runtime, move || {
            let store = store.clone();
            async move {
                // Every review decoded from the store, as a call would without the cache.
                let mut read = 0;
                store
                    .each_review_after(0, |_| {
                        read += 1;
                        Ok(true)
                    })
                    .expect("reviews");
                assert_eq!(read, reviews);
            }
        })
    };
    let themes = {
        let c = public.clone();
        timed(&runtime, move || {
            let mut client = c.open_data();
            async move {
                client
                    .list_themes(proto::ListThemesRequest {})
                    .await
                    .expect("themes");
            }
        })
    };
    let lessons = |area: &'static str| {
        let c = public.clone();
        timed(&runtime, move || {
            let mut client = c.open_data();
            async move {
                client
                    .get_lessons(proto::GetLessonsRequest {
                        area_code: area.into(),
                        ..Default::default()
                    })
                    .await
                    .expect("lessons");
            }
        })
    };
    let england = lessons("E92000001");
    let north_east = lessons("E12000001");
    let enquiries = {
        let c = inspector.clone();
        timed(&runtime, move || {
            let mut client = c.inspection();
            async move {
                let answer = client
                    .get_lines_of_enquiry(proto::GetLinesOfEnquiryRequest {
                        place_code: "E08000021".into(),
                    })
                    .await
                    .expect("enquiries")
                    .into_inner();
                assert!(!answer.lines.is_empty());
            }
        })
    };
    let listing = {
        let c = public.clone();
        timed(&runtime, move || {
            let mut client = c.open_data();
            async move {
                client
                    .list_reviews(proto::ListReviewsRequest {
                        page_size: 100,
                        ..Default::default()
                    })
                    .await
                    .expect("list");
            }
        })
    };
    let one = {
        let c = public.clone();
        timed(&runtime, move || {
            let mut client = c.open_data();
            async move {
                client
                    .get_review(proto::GetReviewRequest {
                        review_id: 1,
                        revision: 0,
                    })
                    .await
                    .expect("review");
            }
        })
    };
    // What each answer weighs on the wire, from one call each.
    let bytes = runtime.block_on(async {
        use prost::Message;
        let mut open = public.open_data();
        let lessons = |area: &str| proto::GetLessonsRequest {
            area_code: area.into(),
            ..Default::default()
        };
        let england = open
            .get_lessons(lessons("E92000001"))
            .await
            .expect("lessons");
        let north_east = open
            .get_lessons(lessons("E12000001"))
            .await
            .expect("lessons");
        let enquiries = inspector
            .inspection()
            .get_lines_of_enquiry(proto::GetLinesOfEnquiryRequest {
                place_code: "E08000021".into(),
            })
            .await
            .expect("enquiries");
        let listing = open
            .list_reviews(proto::ListReviewsRequest {
                page_size: 100,
                ..Default::default()
            })
            .await
            .expect("list");
        let one = open
            .get_review(proto::GetReviewRequest {
                review_id: 1,
                revision: 0,
            })
            .await
            .expect("review");
        [
            0,
            0,
            england.get_ref().encoded_len(),
            north_east.get_ref().encoded_len(),
            enquiries.get_ref().encoded_len(),
            listing.get_ref().encoded_len(),
            one.get_ref().encoded_len(),
        ]
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let scan_p50 = percentile(&scan, 0.50);
    println!("| call | p50 | p99 | p50 / reading every review | answer bytes |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for ((name, latencies), bytes) in [
        (
            "baseline: reading every review from the store (in-process)",
            &scan,
        ),
        ("baseline: ListThemes (the transport alone)", &themes),
        ("GetLessons, England", &england),
        ("GetLessons, North East", &north_east),
        ("GetLinesOfEnquiry, Newcastle upon Tyne", &enquiries),
        ("ListReviews, first 100", &listing),
        ("GetReview", &one),
    ]
    .into_iter()
    .zip(bytes)
    {
        let p50 = percentile(latencies, 0.50);
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} | {} |",
            ms(p50),
            ms(percentile(latencies, 0.99)),
            p50.as_secs_f64() / scan_p50.as_secs_f64(),
            if bytes == 0 {
                "".to_string()
            } else {
                bytes.to_string()
            }
        );
    }
    drop(public);
    drop(inspector);
    let _ = stop.send(());
    runtime.block_on(server).expect("server").expect("stops");
    runtime.block_on(store.close()).expect("close");
}
