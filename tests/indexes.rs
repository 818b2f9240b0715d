//! The indexes that keep reads from costing the whole history: risk listings page through the
//! place index (by place and most recent change) exactly as collecting and sorting every record
//! would, and a store written before the indexes existed is brought up to them when it opens.

mod common;

use std::sync::Arc;

use common::*;
use marr::domain::inspection::ViewFilter;
use marr::domain::*;
use marr::proto;
use marr::store::{RiskPage, Store, StoreOptions};
use proptest::prelude::*;
use time::OffsetDateTime;

/// Records per agency a stream may touch: enough that a region holds more places with
/// records than a listing merges, so both ways of reading a page are exercised.
const KEYS_PER_AGENCY: usize = 120;
const AGENCIES: [&str; 3] = [NEWCASTLE, NORTHUMBRIA, "RTD"];

/// Where records may sit: a few Newcastle and Gateshead places (every agency may report on
/// them) and wards elsewhere in the North East (only the region-wide health trust may).
struct Pool {
    newcastle: Vec<String>,
    gateshead: Vec<String>,
    elsewhere: Vec<String>,
}

impl Pool {
    fn read() -> Self {
        let wards = &north_east_tables()[2];
        let column = |name: &str| {
            wards
                .header
                .iter()
                .position(|h| h == name)
                .expect("lookup column")
        };
        let (ward, district) = (column("WD19CD"), column("LAD19CD"));
        let mut rows: Vec<(String, String)> = wards
            .rows
            .iter()
            .map(|r| (r.cells[ward].clone(), r.cells[district].clone()))
            .collect();
        rows.sort();
        rows.dedup();
        let wards_of = |district: &str, n: usize| -> Vec<String> {
            rows.iter()
                .filter(|(_, d)| d == district)
                .map(|(w, _)| w.clone())
                .take(n)
                .collect()
        };
        let mut newcastle = vec![
            NEWCASTLE.to_string(),
            NEWCASTLE_WARD.to_string(),
            NEWCASTLE_LSOA.to_string(),
        ];
        newcastle.extend(wards_of(NEWCASTLE, 5));
        let mut gateshead = vec![GATESHEAD.to_string(), GATESHEAD_WARD.to_string()];
        gateshead.extend(wards_of(GATESHEAD, 4));
        let elsewhere = rows
            .iter()
            .filter(|(_, d)| d != NEWCASTLE && d != GATESHEAD)
            .map(|(w, _)| w.clone())
            .collect();
        Self {
            newcastle,
            gateshead,
            elsewhere,
        }
    }

    /// The places an agency's record may sit at, within its footprint.
    fn of(&self, agency: &str) -> Vec<&String> {
        match agency {
            NEWCASTLE => self.newcastle.iter().collect(),
            NORTHUMBRIA => self.newcastle.iter().chain(&self.gateshead).collect(),
            _ => self
                .newcastle
                .iter()
                .chain(&self.gateshead)
                .chain(&self.elsewhere)
                .collect(),
        }
    }
}

/// One change: which record, where it now sits (an index into its agency's places), and its
/// coded fields.
#[derive(Debug, Clone)]
struct Change {
    key: usize,
    place: usize,
    client_group: usize,
    category: usize,
    severity: usize,
    status: usize,
}

fn change() -> impl Strategy<Value = Change> {
    (
        0..KEYS_PER_AGENCY * AGENCIES.len(),
        any::<prop::sample::Index>(),
        0..2usize,
        0..2usize,
        0..4usize,
        // Mostly active, so pages are full.
        prop::sample::select(vec![0usize, 0, 0, 1, 2]),
    )
        .prop_map(
            |(key, place, client_group, category, severity, status)| Change {
                key,
                place: place.index(usize::MAX),
                client_group,
                category,
                severity,
                status,
            },
        )
}

fn to_record(change: &Change, pool: &Pool, updated: OffsetDateTime) -> RiskRecord {
    let agency = AGENCIES[change.key % AGENCIES.len()];
    let places = pool.of(agency);
    let place = places[change.place % places.len()];
    RiskRecord {
        key: RecordKey::parse(agency, &format!("L-{}", change.key)).expect("key"),
        subject: None,
        place: PlaceCode::parse(place).expect("place"),
        client_group: [
            ClientGroup::ChildrenInNeed,
            ClientGroup::ChildProtectionPlan,
        ][change.client_group],
        category: [RiskCategory::Neglect, RiskCategory::Missing][change.category],
        severity: Severity::ALL[change.severity],
        status: RecordStatus::ALL[change.status],
        assessed_at: updated - time::Duration::hours(1),
        source_updated_at: updated,
        lawful_basis: LawfulBasis::ChildrenAct1989S47,
        note: String::new(),
    }
}

/// A filter as the store reads it and as a client sends it.
fn filter(n: usize) -> (ViewFilter, Option<proto::ViewFilter>) {
    match n {
        0 => (ViewFilter::default(), None),
        1 => (
            ViewFilter {
                min_severity: Some(Severity::High),
                ..ViewFilter::default()
            },
            Some(proto::ViewFilter {
                min_severity: proto::Severity::High as i32,
                ..Default::default()
            }),
        ),
        2 => (
            ViewFilter {
                client_groups: vec![ClientGroup::ChildProtectionPlan],
                categories: vec![RiskCategory::Missing],
                min_severity: None,
            },
            Some(proto::ViewFilter {
                client_groups: vec![proto::ClientGroup::ChildProtectionPlan as i32],
                categories: vec![proto::RiskCategory::Missing as i32],
                ..Default::default()
            }),
        ),
        _ => (
            ViewFilter {
                client_groups: vec![ClientGroup::ChildrenInNeed],
                categories: vec![],
                min_severity: Some(Severity::Medium),
            },
            Some(proto::ViewFilter {
                client_groups: vec![proto::ClientGroup::ChildrenInNeed as i32],
                min_severity: proto::Severity::Medium as i32,
                ..Default::default()
            }),
        ),
    }
}

/// Writes the changes, in batches the writer takes together, each version newer than the last.
async fn write(store: &Store, pool: &Pool, changes: &[Change]) {
    let start = OffsetDateTime::now_utc() - time::Duration::days(30);
    let mut pending = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        let record = to_record(change, pool, start + time::Duration::minutes(i as i64));
        store.check_record(&record).expect("valid by construction");
        pending.push(
            store
                .enqueue(record, Arc::new(operator()))
                .await
                .expect("queued"),
        );
        if pending.len() == 16 || i + 1 == changes.len() {
            for answer in pending.drain(..) {
                answer.await.expect("answered").expect("written");
            }
        }
    }
}

/// Pages through a place's risks over gRPC as the inspector, checking every page against the
/// collect-and-sort baseline asked for the same page: the same revisions, or the first of them
/// and a token to go on when the page spent its reads before it was full.
async fn page_through(
    connection: &Connection,
    store: &Store,
    place: &str,
    filter_n: usize,
    page_size: u32,
) -> Result<usize, TestCaseError> {
    let (view_filter, proto_filter) = filter(filter_n);
    let code = PlaceCode::parse(place).expect("code");
    let mut token = String::new();
    let mut listed = 0;
    loop {
        let before = (!token.is_empty()).then(|| token.parse::<u64>().expect("token"));
        let page = connection
            .inspection()
            .list_risks(proto::ListRisksRequest {
                place_code: place.into(),
                filter: proto_filter.clone(),
                page_size,
                page_token: token.clone(),
                as_of_sequence: 0,
            })
            .await
            .expect("the inspector lists risks")
            .into_inner();
        let RiskPage {
            revisions, next, ..
        } = store
            .scan_risks(code, &view_filter, page_size as usize, before)
            .expect("baseline");
        let got: Vec<(u64, String)> = page
            .risks
            .iter()
            .map(|r| {
                let record = r.record.as_ref().expect("record");
                (
                    r.sequence,
                    format!("{}/{}", record.agency_id, record.local_ref),
                )
            })
            .collect();
        let expected: Vec<(u64, String)> = revisions
            .iter()
            .map(|r| (r.sequence, r.record.key.to_string()))
            .collect();
        prop_assert!(got.len() <= page_size as usize);
        if got.len() < expected.len() {
            prop_assert_eq!(
                &got[..],
                &expected[..got.len()],
                "short page of {} before {:?}",
                place,
                before
            );
            prop_assert!(
                !page.next_page_token.is_empty(),
                "a short page of {} goes on",
                place
            );
        } else {
            prop_assert_eq!(&got, &expected, "page of {} before {:?}", place, before);
            if page.next_page_token.is_empty() {
                prop_assert_eq!(next, None, "last page of {}", place);
            }
        }
        listed += got.len();
        if page.next_page_token.is_empty() {
            return Ok(listed);
        }
        token = page.next_page_token;
    }
}

/// Every risk listed under a place, a page of `page_size` at a time, live or as of a sequence.
async fn listed(
    connection: &Connection,
    place: &str,
    page_size: u32,
    as_of_sequence: u64,
) -> Vec<(u64, String)> {
    let mut token = String::new();
    let mut all = Vec::new();
    loop {
        let page = connection
            .inspection()
            .list_risks(proto::ListRisksRequest {
                place_code: place.into(),
                filter: None,
                page_size,
                page_token: token.clone(),
                as_of_sequence,
            })
            .await
            .expect("the inspector lists risks")
            .into_inner();
        all.extend(page.risks.iter().map(|r| {
            let record = r.record.as_ref().expect("record");
            (
                r.sequence,
                format!("{}/{}", record.agency_id, record.local_ref),
            )
        }));
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

async fn run(
    changes: Vec<Change>,
    sizes: Vec<u32>,
    filters: Vec<usize>,
    page_read_limit: usize,
) -> Result<(), TestCaseError> {
    let (server, connection) = TestServer::north_east_with(StoreOptions {
        page_read_limit,
        ..StoreOptions::default()
    })
    .await;
    let pool = Pool::read();
    let store = server.store().clone();
    // A ward, a district, a footprint area, the region and the country.
    let places = [NEWCASTLE_WARD, NEWCASTLE, NORTHUMBRIA, NORTH_EAST, ENGLAND];
    // Half the changes, and every list as it stood then; later, asked for as of then, each
    // list must be exactly what it was, however many changes came after.
    let (first, second) = changes.split_at(changes.len() / 2);
    write(&store, &pool, first).await;
    let then = store.head_sequence();
    let mut lists_then = Vec::new();
    for place in places {
        lists_then.push(listed(&connection, place, 1000, 0).await);
    }
    write(&store, &pool, second).await;
    for (place, list) in places.iter().zip(&lists_then) {
        let page_size = sizes[0];
        prop_assert_eq!(
            &listed(&connection, place, page_size, then).await,
            list,
            "{} as of {}",
            place,
            then
        );
    }
    for (i, place) in places.iter().enumerate() {
        let listed = page_through(&connection, &store, place, filters[i], sizes[i]).await?;
        let everything = page_through(&connection, &store, place, 0, 1000).await?;
        prop_assert!(listed <= everything);
    }
    Ok(())
}

proptest! {
    // Each case pages hundreds of times; on PostgreSQL every read is a round trip, so the
    // engine run samples one case (the engines suite checks the reads themselves).
    #![proptest_config(ProptestConfig {
        cases: if common::postgres::selected() { 1 } else { 10 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn risk_pages_through_the_place_index_equal_collecting_and_sorting_every_record(
        changes in prop::collection::vec(change(), 200..320),
        sizes in prop::collection::vec(1..12u32, 5),
        filters in prop::collection::vec(0..4usize, 5),
        page_read_limit in prop_oneof![8..40usize, Just(100_000)],
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(changes, sizes, filters, page_read_limit))?;
    }
}

/// The key of a record in a keyspace, as layout 1 wrote it after the prefix and place.
fn record_key(agency: &str, local_ref: &str) -> Vec<u8> {
    let mut key = vec![agency.len() as u8];
    key.extend_from_slice(agency.as_bytes());
    key.extend_from_slice(&(local_ref.len() as u16).to_be_bytes());
    key.extend_from_slice(local_ref.as_bytes());
    key
}

#[tokio::test]
async fn a_store_written_before_the_indexes_opens_and_lists_risks_and_audit_events_through_them() {
    let (server, connection) = TestServer::north_east().await;
    let mut records = Vec::new();
    for n in 0..30 {
        let place = [NEWCASTLE_WARD, NEWCASTLE_LSOA, NEWCASTLE][n % 3];
        let severity = [proto::Severity::High, proto::Severity::Medium][n % 2];
        records.push(rec(
            NEWCASTLE,
            &format!("M-{n}"),
            place,
            0,
            severity,
            100 - n as i64,
        ));
    }
    // Some move, some of those close, and the health trust adds records in Gateshead.
    for n in 0..10 {
        let mut moved = rec(
            NEWCASTLE,
            &format!("M-{n}"),
            [NEWCASTLE_WARD, NEWCASTLE_LSOA, NEWCASTLE][(n + 1) % 3],
            0,
            proto::Severity::Critical,
            50 - n as i64,
        );
        if n % 3 == 0 {
            moved.status = proto::RecordStatus::Closed as i32;
        }
        records.push(moved);
    }
    for n in 0..10 {
        records.push(rec(
            "RTD",
            &format!("R-{n}"),
            GATESHEAD_WARD,
            0,
            proto::Severity::High,
            40 - n as i64,
        ));
    }
    let answers = push_all(&connection, records).await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32),
        "{answers:?}"
    );
    // Reads leave audit events naming the inspector and the agencies whose records were read.
    for place in [NEWCASTLE, GATESHEAD_WARD, NORTH_EAST] {
        connection
            .inspection()
            .list_risks(proto::ListRisksRequest {
                place_code: place.into(),
                page_size: 5,
                ..Default::default()
            })
            .await
            .expect("risks");
    }
    let risks_before = all_risks(&connection).await;
    let audit_before = audit_pages(&connection).await;
    assert!(!risks_before.iter().all(|page| page.is_empty()));
    assert!(
        audit_before.iter().all(|pages| pages.len() > 1),
        "{audit_before:?}"
    );
    let mut server = server;
    drop(connection);
    server.stop().await;

    // Put the store back in the previous layout: place entries keyed (place, record), no
    // audit indexes, no layout key.
    let data = server.location().clone();
    {
        let tree = common::postgres::Tree::open(&data);
        let mut old_entries = 0;
        for prefix in [b'Q', b'H', b'J', b'Y'] {
            for entry in tree.scan_prefix([prefix]) {
                let (key, _) = entry.expect("readable");
                if prefix == b'Q' {
                    let place = &key[1..10];
                    let sequence = u64::from_be_bytes(key[10..18].try_into().expect("sequence"));
                    let mut log_key = vec![b'L'];
                    log_key.extend_from_slice(&sequence.to_be_bytes());
                    let revision = tree.get(log_key).expect("readable").expect("a log entry");
                    let revision: Revision = postcard::from_bytes(&revision).expect("revision");
                    let mut old = vec![b'P'];
                    old.extend_from_slice(place);
                    old.extend(record_key(
                        revision.record.key.agency.as_str(),
                        revision.record.key.local_ref.as_str(),
                    ));
                    tree.insert(old, &[][..]).expect("insert");
                    old_entries += 1;
                }
                tree.remove(key).expect("remove");
            }
        }
        assert_eq!(old_entries, 40, "one place entry per record");
        tree.flush();
    }

    let server = server.restart().await;
    let connection = server.connect().await;
    // The audit listings first: listing risks adds to the inspector's events.
    assert_eq!(audit_pages(&connection).await, audit_before);
    assert_eq!(all_risks(&connection).await, risks_before);
    let store = server.store().clone();
    let problems = tokio::task::spawn_blocking(move || store.verify_projections())
        .await
        .expect("task")
        .expect("verify");
    assert!(problems.is_empty(), "{problems:?}");
}

/// Every page of the active records at a ward, a district and the region, three at a time.
async fn all_risks(connection: &Connection) -> Vec<Vec<(u64, String)>> {
    let mut pages = Vec::new();
    for place in [NEWCASTLE_WARD, GATESHEAD_WARD, NEWCASTLE, NORTH_EAST] {
        let mut token = String::new();
        loop {
            let page = connection
                .inspection()
                .list_risks(proto::ListRisksRequest {
                    place_code: place.into(),
                    page_size: 3,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .expect("risks")
                .into_inner();
            pages.push(
                page.risks
                    .iter()
                    .map(|r| {
                        let record = r.record.as_ref().expect("record");
                        (r.sequence, record.local_ref.clone())
                    })
                    .collect(),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
    }
    pages
}

/// Every page of the inspector's events and of the reads of two agencies' records, two at a
/// time, as sequences.
async fn audit_pages(connection: &Connection) -> Vec<Vec<Vec<u64>>> {
    let mut listings = Vec::new();
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = connection
            .audit()
            .list_audit_events(proto::ListAuditEventsRequest {
                principal: "inspector".into(),
                after_sequence: after,
                page_size: 2,
                ..Default::default()
            })
            .await
            .expect("audit")
            .into_inner();
        pages.push(page.events.iter().map(|e| e.sequence).collect());
        if page.next_after_sequence == 0 {
            break;
        }
        after = page.next_after_sequence;
    }
    listings.push(pages);
    for agency in [NEWCASTLE, "RTD"] {
        let mut after = 0;
        let mut pages = Vec::new();
        loop {
            let page = connection
                .agency(agency)
                .audit()
                .list_access_to_my_records(proto::ListAccessToMyRecordsRequest {
                    after_sequence: after,
                    page_size: 1,
                    ..Default::default()
                })
                .await
                .expect("access to my records")
                .into_inner();
            pages.push(page.events.iter().map(|e| e.sequence).collect());
            if page.next_after_sequence == 0 {
                break;
            }
            after = page.next_after_sequence;
        }
        listings.push(pages);
    }
    listings
}

/// The pages of a filtered listing, each as (its records, whether it gave a token to go on).
async fn pages_of(
    connection: &Connection,
    place: &str,
    filter: Option<proto::ViewFilter>,
    as_of_sequence: u64,
) -> Vec<(Vec<String>, bool)> {
    let mut token = String::new();
    let mut pages = Vec::new();
    loop {
        let page = connection
            .inspection()
            .list_risks(proto::ListRisksRequest {
                place_code: place.into(),
                filter: filter.clone(),
                page_size: 5,
                page_token: token.clone(),
                as_of_sequence,
            })
            .await
            .expect("the inspector lists risks")
            .into_inner();
        let records = page
            .risks
            .iter()
            .map(|r| {
                let record = r.record.as_ref().expect("record");
                format!("{}/{}", record.agency_id, record.local_ref)
            })
            .collect();
        let goes_on = !page.next_page_token.is_empty();
        pages.push((records, goes_on));
        if !goes_on {
            return pages;
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn a_filter_that_matches_almost_nothing_costs_many_bounded_pages_not_one_walk_of_the_log() {
    const READS: usize = 25;
    let (server, connection) = TestServer::north_east_with(StoreOptions {
        page_read_limit: READS,
        ..StoreOptions::default()
    })
    .await;
    let pool = Pool::read();
    // 200 of Newcastle's records; only the oldest is a child on a plan who went missing.
    let changes: Vec<Change> = (0..200)
        .map(|i| Change {
            key: i * AGENCIES.len(),
            place: i,
            client_group: usize::from(i == 0),
            category: usize::from(i == 0),
            severity: 2,
            status: 0,
        })
        .collect();
    write(server.store(), &pool, &changes).await;
    let head = server.store().head_sequence();
    let rare = filter(2).1;
    // The district merges its places' index entries; the country walks the log; as of a
    // sequence walks the log and checks each revision was its record's latest then.
    for (place, as_of) in [(NEWCASTLE, 0), (ENGLAND, 0), (ENGLAND, head)] {
        let pages = pages_of(&connection, place, rare.clone(), as_of).await;
        let found: Vec<&String> = pages.iter().flat_map(|(records, _)| records).collect();
        assert_eq!(
            found,
            [&format!("{NEWCASTLE}/L-0")],
            "{place} as of {as_of}: the one match is still found"
        );
        assert!(
            pages[0].0.is_empty() && pages[0].1,
            "{place} as of {as_of}: the first page spends its reads and answers empty, with a token"
        );
        assert!(
            pages.len() >= 200 / READS,
            "{place} as of {as_of}: {} pages for 200 records at {READS} reads a page",
            pages.len()
        );
        // Without a filter the pages are full: the limit only shortens pages that must read
        // more than it allows.
        let unfiltered = pages_of(&connection, place, None, as_of).await;
        assert!(
            unfiltered[..unfiltered.len() - 1]
                .iter()
                .all(|(records, _)| records.len() == 5)
        );
        assert_eq!(unfiltered.iter().map(|(r, _)| r.len()).sum::<usize>(), 200);
    }
}
