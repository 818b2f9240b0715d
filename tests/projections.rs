//! Property: whatever agencies send, in whatever order, the projections equal a recount from
//! the revision log, and every answer matches a simple model of the ingest rules, across
//! restarts from checkpoints taken at any interval; a view as of any earlier point equals the
//! view that was live then.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use marr::domain::inspection::ViewFilter;
use marr::domain::*;
use marr::store::{Store, StoreOptions, Submitted};
use proptest::prelude::*;
use time::OffsetDateTime;

/// One submission: which record, where, about whom, how serious, and how old its version is.
#[derive(Debug, Clone)]
struct Op {
    key: usize,
    place: usize,
    subject: Option<u32>,
    client_group: usize,
    severity: usize,
    status: usize,
    version_hours_ago: i64,
}

const KEYS: [(&str, &str); 6] = [
    (NEWCASTLE, "N-1"),
    (NEWCASTLE, "N-2"),
    (NORTHUMBRIA, "P-1"),
    (NORTHUMBRIA, "P-2"),
    ("RTD", "H-1"),
    ("RTD", "H-2"),
];

/// Places a record may sit at; every agency here may report on all of them.
const PLACES: [&str; 5] = [
    NEWCASTLE_WARD,
    NEWCASTLE,
    GATESHEAD_WARD,
    GATESHEAD,
    NEWCASTLE_LSOA,
];

/// Every level a counter is kept at for those places: wards, districts, the metropolitan
/// county, the region, the country, the police force area and both community safety
/// partnerships, the LSOA and its clinical commissioning group.
const CHECKED: [&str; 12] = [
    NEWCASTLE_LSOA,
    NEWCASTLE_GATESHEAD_CCG,
    NEWCASTLE_WARD,
    NEWCASTLE,
    GATESHEAD_WARD,
    GATESHEAD,
    "E11000007",
    NORTH_EAST,
    "E92000001",
    NORTHUMBRIA,
    "E22000244",
    "E22000245",
];

fn op() -> impl Strategy<Value = Op> {
    (
        0..KEYS.len(),
        0..PLACES.len(),
        prop::option::of(0..3u32),
        0..2usize,
        0..4usize,
        0..3usize,
        0..6i64,
    )
        .prop_map(
            |(key, place, subject, client_group, severity, status, version_hours_ago)| Op {
                key,
                place,
                subject,
                client_group,
                severity,
                status,
                version_hours_ago,
            },
        )
}

fn to_record(op: &Op, now: OffsetDateTime) -> RiskRecord {
    let (agency, local_ref) = KEYS[op.key];
    let place = PLACES[op.place];
    let updated = now - time::Duration::hours(op.version_hours_ago);
    RiskRecord {
        key: RecordKey::parse(agency, local_ref).expect("key"),
        subject: op
            .subject
            .map(|n| SubjectKey::parse(&subject(n)).expect("subject")),
        place: PlaceCode::parse(place).expect("place"),
        client_group: [
            ClientGroup::ChildrenInNeed,
            ClientGroup::ChildProtectionPlan,
        ][op.client_group],
        category: RiskCategory::Neglect,
        severity: Severity::ALL[op.severity],
        status: RecordStatus::ALL[op.status],
        assessed_at: updated - time::Duration::hours(1),
        source_updated_at: updated,
        lawful_basis: LawfulBasis::ChildrenAct1989S47,
        note: String::new(),
    }
}

/// The ingest rules, written out plainly: the model the store must agree with.
#[derive(Default)]
struct Model {
    latest: BTreeMap<RecordKey, (RiskRecord, u32, u64)>,
    head: u64,
}

impl Model {
    fn submit(&mut self, record: RiskRecord) -> Submitted {
        match self.latest.get(&record.key) {
            Some((held, revision, sequence))
                if held.source_updated_at == record.source_updated_at && *held == record =>
            {
                Submitted::Unchanged {
                    revision: *revision,
                    sequence: *sequence,
                }
            }
            Some((held, _, _)) if held.source_updated_at >= record.source_updated_at => {
                Submitted::Stale {
                    reason: String::new(),
                }
            }
            held => {
                let revision = held.map_or(1, |h| h.1 + 1);
                self.head += 1;
                self.latest
                    .insert(record.key.clone(), (record, revision, self.head));
                Submitted::Accepted {
                    revision,
                    sequence: self.head,
                }
            }
        }
    }
}

fn same_outcome(a: &Submitted, b: &Submitted) -> bool {
    match (a, b) {
        (Submitted::Stale { .. }, Submitted::Stale { .. }) => true,
        _ => a == b,
    }
}

async fn run(
    ops: Vec<Op>,
    batches: Vec<usize>,
    checkpoint_every: u64,
    restarts: Vec<bool>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("dir");
    let options = StoreOptions {
        checkpoint_every,
        ..StoreOptions::default()
    };
    let location = common::postgres::location_in(dir.path());
    let mut store = Store::open_at(&location, options.clone()).expect("open");
    store
        .import_places(north_east_tables(), operator())
        .await
        .expect("import");
    for (id, kind, footprint) in [
        (NEWCASTLE, AgencyKind::ChildrenSocialCare, NORTH_EAST),
        (NORTHUMBRIA, AgencyKind::Police, NORTHUMBRIA),
        ("RTD", AgencyKind::Health, NORTH_EAST),
    ] {
        let agency = Agency {
            id: AgencyId::parse(id).expect("id"),
            kind,
            name: id.into(),
            footprint: vec![PlaceCode::parse(footprint).expect("code")],
        };
        store
            .register_agency(agency, operator())
            .await
            .expect("register");
    }
    let now = OffsetDateTime::now_utc();
    let mut model = Model::default();
    let mut ops = ops.into_iter().peekable();
    // What every checked place looked like after each chunk, to ask for again as of then.
    let mut seen: Vec<(
        u64,
        PlaceCode,
        ViewFilter,
        marr::domain::inspection::PlaceView,
    )> = Vec::new();
    // Queue several submissions before awaiting any, so the writer sees them in one batch,
    // often with the same record more than once.
    for (size, restart) in batches.into_iter().zip(restarts) {
        let chunk: Vec<Op> = ops.by_ref().take(size).collect();
        if chunk.is_empty() {
            break;
        }
        let mut answers = Vec::new();
        for op in &chunk {
            let record = to_record(op, now);
            store.check_record(&record).expect("valid by construction");
            answers.push((
                store
                    .enqueue(record.clone(), Arc::new(operator()))
                    .await
                    .expect("queued"),
                record,
            ));
        }
        for (answer, record) in answers {
            let got = answer.await.expect("answered").expect("written");
            let expected = model.submit(record);
            prop_assert!(
                same_outcome(&got, &expected),
                "store said {got:?}, model says {expected:?}"
            );
        }
        let problems = store.verify_projections().expect("verify");
        prop_assert!(problems.is_empty(), "{problems:?}");
        // Every counter, at every level and footprint, equals a recount from the records.
        let filters = [
            ViewFilter::default(),
            ViewFilter {
                client_groups: vec![ClientGroup::ChildrenInNeed],
                categories: vec![],
                min_severity: Some(Severity::High),
            },
        ];
        for place in CHECKED {
            let place = PlaceCode::parse(place).expect("code");
            for filter in &filters {
                let counted = store.place_view(place, filter, None).expect("view");
                let recounted = store.scan_place_view(place, filter).expect("scan");
                prop_assert_eq!(&counted, &recounted, "place {}", place);
                seen.push((store.head_sequence(), place, filter.clone(), counted));
            }
        }
        if restart {
            // A clean stop checkpoints at the head; a start loads the last checkpoint and
            // replays what follows it.
            store.close().await.expect("close");
            drop(store);
            let at = location.clone();
            let reopening = options.clone();
            store = tokio::task::spawn_blocking(move || open_retrying_at(&at, reopening))
                .await
                .expect("open task")
                .expect("reopens");
            let problems = store.verify_projections().expect("verify");
            prop_assert!(problems.is_empty(), "after a restart: {problems:?}");
        }
    }
    for (head, place, filter, live) in &seen {
        let then = store
            .place_view(*place, filter, Some(*head))
            .expect("as of");
        prop_assert_eq!(&then, live, "place {} as of {}", place, head);
    }
    for (key, (record, revision, sequence)) in &model.latest {
        let stored = store.record(key).expect("read").expect("present");
        prop_assert_eq!(&stored.record, record);
        prop_assert_eq!((stored.revision, stored.sequence), (*revision, *sequence));
        prop_assert_eq!(store.history(key).expect("history").len() as u32, *revision);
    }
    for place in PLACES {
        let code = PlaceCode::parse(place).expect("code");
        let expected: BTreeSet<RecordKey> = model
            .latest
            .values()
            .filter(|r| r.0.place == code)
            .map(|r| r.0.key.clone())
            .collect();
        let stored: BTreeSet<RecordKey> =
            store.records_at(code).expect("index").into_iter().collect();
        prop_assert_eq!(stored, expected);
    }
    for n in 0..3 {
        let key = SubjectKey::parse(&subject(n)).expect("subject");
        let expected: BTreeSet<RecordKey> = model
            .latest
            .values()
            .filter(|r| r.0.subject == Some(key))
            .map(|r| r.0.key.clone())
            .collect();
        let stored: BTreeSet<RecordKey> = store
            .records_of_subject(key)
            .expect("index")
            .into_iter()
            .collect();
        prop_assert_eq!(stored, expected);
    }
    prop_assert_eq!(store.head_sequence(), model.head);
    store.close().await.expect("close");
    Ok(())
}

proptest! {
    // On PostgreSQL every read is a round trip: the engine run samples fewer cases.
    #![proptest_config(ProptestConfig {
        cases: if common::postgres::selected() { 6 } else { 40 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn projections_equal_a_recount_from_the_log(
        ops in prop::collection::vec(op(), 1..60),
        batches in prop::collection::vec(1..12usize, 60),
        checkpoint_every in 1..16u64,
        restarts in prop::collection::vec(prop::bool::weighted(0.1), 60),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(run(ops, batches, checkpoint_every, restarts))?;
    }
}
