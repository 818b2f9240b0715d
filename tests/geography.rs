//! Importing the real ONS lookups, and agency footprints drawn from them.

mod common;

use common::*;
use marr::cli::places;
use marr::domain::inspection::{PlaceView, ViewFilter};
use marr::domain::{PlaceLevel, Vocabulary};
use marr::proto;
use tonic::Code;

fn count(counts: &[proto::LevelCount], level: PlaceLevel) -> u64 {
    counts
        .iter()
        .find(|c| c.level == level.number())
        .map(|c| c.count)
        .unwrap_or(0)
}

/// The three files, footprints and LSOAs first so the importer must cope with the order.
fn all_tables() -> Vec<marr::domain::lookup::LookupTable> {
    [LSOAS, POLICE, WARDS]
        .iter()
        .map(|name| places::read_table(&geography_file(name)).expect("readable"))
        .collect()
}

#[tokio::test]
async fn the_three_real_lookups_import_with_only_the_explained_skips() {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    let report = places::import_tables(&connection, all_tables())
        .await
        .expect("import");

    assert_eq!(count(&report.places, PlaceLevel::Ward), 8_887);
    assert_eq!(count(&report.places, PlaceLevel::District), 382);
    assert_eq!(count(&report.places, PlaceLevel::Lsoa), 32_525);
    assert_eq!(count(&report.places, PlaceLevel::Country), 4);
    assert_eq!(count(&report.places, PlaceLevel::Region), 9);
    assert_eq!(
        count(&report.footprint_areas, PlaceLevel::PoliceForceArea),
        43
    );
    assert!(
        count(
            &report.footprint_areas,
            PlaceLevel::CommunitySafetyPartnership
        ) > 250
    );
    assert!(
        count(
            &report.footprint_areas,
            PlaceLevel::ClinicalCommissioningGroup
        ) > 100
    );
    assert_eq!(report.rows_read, 8_887 + 342 + 32_844);

    // The only skips are Buckinghamshire's LSOAs, whose 2020 district the 2019 tree lacks.
    assert_eq!(report.rows_skipped, 319, "{:?}", report.skipped);
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].reason.contains("E06000060"),
        "{}",
        report.skipped[0].reason
    );
    assert_eq!(report.skipped[0].rows, 319);

    // Importing again changes nothing.
    let again = places::import_tables(&connection, all_tables())
        .await
        .expect("re-import");
    assert_eq!(again.places_added, 0);
    assert_eq!(count(&again.places, PlaceLevel::Ward), 8_887);

    // Quoted names with commas survive, and the tree is right.
    let hull = connection
        .directory()
        .get_place(proto::GetPlaceRequest {
            code: "E06000010".into(),
        })
        .await
        .expect("Hull is known")
        .into_inner();
    assert_eq!(
        hull.place.expect("place").name,
        "Kingston upon Hull, City of"
    );
    let chain: Vec<String> = hull.ancestors.iter().map(|p| p.code.clone()).collect();
    assert_eq!(chain, vec!["E92000001", "E12000003"]);

    let ward = connection
        .directory()
        .get_place(proto::GetPlaceRequest {
            code: NEWCASTLE_WARD.into(),
        })
        .await
        .expect("ward known")
        .into_inner();
    let chain: Vec<String> = ward.ancestors.iter().map(|p| p.code.clone()).collect();
    assert_eq!(chain, vec!["E92000001", NORTH_EAST, "E11000007", NEWCASTLE]);

    // A police force area lists its districts.
    let members = connection
        .directory()
        .list_child_places(proto::ListChildPlacesRequest {
            code: NORTHUMBRIA.into(),
        })
        .await
        .expect("members")
        .into_inner()
        .places;
    let codes: Vec<&str> = members.iter().map(|p| p.code.as_str()).collect();
    assert_eq!(
        codes,
        vec![
            "E06000057",
            NEWCASTLE,
            "E08000022",
            "E08000023",
            "E08000024",
            GATESHEAD
        ]
    );
}

#[tokio::test]
async fn a_table_without_place_columns_is_refused_and_imports_nothing() {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    let mut tables = north_east_tables();
    tables.push(marr::domain::lookup::LookupTable {
        name: "people.csv".into(),
        header: vec!["NAME".into(), "AGE".into()],
        rows: vec![],
    });
    let status = places::import_tables(&connection, tables)
        .await
        .expect_err("refused");
    assert!(status.to_string().contains("people.csv"), "{status}");
    let missing = connection
        .directory()
        .get_place(proto::GetPlaceRequest {
            code: NEWCASTLE.into(),
        })
        .await
        .expect_err("nothing imported");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn a_police_agency_reports_anywhere_in_its_force_area_and_nowhere_else() {
    let (_server, connection) = TestServer::north_east().await;
    let mut in_area = record("P-1", 1);
    in_area.agency_id = NORTHUMBRIA.into();
    in_area.place_code = GATESHEAD_WARD.into();
    in_area.lawful_basis = proto::LawfulBasis::CrimeAndDisorderAct1998S115 as i32;
    let mut outside = in_area.clone();
    outside.local_ref = "P-2".into();
    outside.place_code = HARTLEPOOL.into();
    let answers = push_all(&connection, vec![in_area, outside]).await;
    assert_eq!(
        answers[0].outcome,
        proto::Outcome::Accepted as i32,
        "{}",
        answers[0].reason
    );
    assert_eq!(answers[1].outcome, proto::Outcome::Rejected as i32);
    assert_eq!(answers[1].field, "place_code");
}

#[tokio::test]
async fn an_agency_footprint_must_name_known_places() {
    let (_server, connection) = TestServer::north_east().await;
    let status = marr::cli::agencies::register(
        &connection,
        "RX1",
        marr::domain::AgencyKind::Health,
        "Somewhere Trust",
        &["E38000999".into()],
    )
    .await
    .expect_err("unknown footprint refused");
    assert!(status.to_string().contains("E38000999"), "{status}");
    let agencies = connection
        .directory()
        .list_agencies(proto::ListAgenciesRequest {})
        .await
        .expect("list")
        .into_inner()
        .agencies;
    let ids: Vec<&str> = agencies.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, vec![NEWCASTLE, NORTHUMBRIA, "RTD"]);
}

/// Places whose counters an import of the police lookup moves, for records in Newcastle and
/// Gateshead: the new police force area and community safety partnerships, and every level
/// of the ward tree.
const COUNTED: [&str; 10] = [
    NORTHUMBRIA,
    "E22000244",
    "E22000245",
    NEWCASTLE_WARD,
    NEWCASTLE,
    GATESHEAD_WARD,
    GATESHEAD,
    "E11000007",
    NORTH_EAST,
    ENGLAND,
];

/// Records of Newcastle's council and the regional health trust in Newcastle and Gateshead,
/// naming a few hundred subjects so that some converge across agencies.
fn spread(from: u32, count: u32) -> Vec<proto::RiskRecord> {
    (from..from + count)
        .map(|n| {
            let (agency, place) = match n % 3 {
                0 => (NEWCASTLE, NEWCASTLE_WARD),
                1 => ("RTD", GATESHEAD_WARD),
                _ => ("RTD", NEWCASTLE),
            };
            let severity = [
                proto::Severity::Low,
                proto::Severity::Medium,
                proto::Severity::High,
                proto::Severity::Critical,
            ][(n % 4) as usize];
            rec(agency, &format!("R-{n}"), place, n % 301 + 1, severity, 1)
        })
        .collect()
}

/// A store holding thousands of records in Newcastle and Gateshead under the ward tree
/// alone, with checkpoints every 100 revisions.
async fn wards_only_with_records() -> (TestServer, Connection) {
    let options = marr::store::StoreOptions {
        checkpoint_every: 100,
        ..marr::store::StoreOptions::default()
    };
    let server = TestServer::start_with(options).await;
    let connection = server.connect().await;
    let wards = north_east_tables().swap_remove(2);
    places::import_tables(&connection, vec![wards])
        .await
        .expect("wards import");
    for (id, kind, footprint) in [
        (
            NEWCASTLE,
            marr::domain::AgencyKind::ChildrenSocialCare,
            NEWCASTLE,
        ),
        ("RTD", marr::domain::AgencyKind::Health, NORTH_EAST),
    ] {
        marr::cli::agencies::register(&connection, id, kind, id, &[footprint.to_string()])
            .await
            .expect("register agency");
    }
    let answers = push_all(&connection, spread(0, 3_000)).await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32)
    );
    (server, connection)
}

/// Imports the police lookup, which puts Newcastle and Gateshead in Northumbria's police
/// force area and their community safety partnerships, while the rebuild of the counters is
/// held back; pushes records meanwhile and answers how many were accepted.
async fn import_police_and_write_meanwhile(
    server: &TestServer,
    connection: &Connection,
) -> (marr::store::RebuildHold, usize) {
    let store = server.store();
    let hold = store.hold_counter_rebuilds();
    let police = north_east_tables().swap_remove(1);
    places::import_tables(connection, vec![police])
        .await
        .expect("police import");
    assert!(
        store.counters_rebuilding(),
        "the import answers before the counters are rebuilt"
    );
    let answers = push_all(connection, spread(3_000, 150)).await;
    let accepted = answers
        .iter()
        .filter(|a| a.outcome == proto::Outcome::Accepted as i32)
        .count();
    assert_eq!(accepted, 150, "writes go on while the counters are rebuilt");
    // Every write was answered while the rebuild was still outstanding.
    assert!(store.counters_rebuilding());
    (hold, accepted)
}

/// Every counted place's view, plain and filtered, equals a recount from the records, and
/// the projections agree with the log.
async fn assert_counters_are_a_recount(store: &marr::store::Store) -> Vec<PlaceView> {
    let filters = [
        ViewFilter::default(),
        ViewFilter {
            client_groups: vec![],
            categories: vec![],
            min_severity: Some(marr::domain::Severity::High),
        },
    ];
    let mut views = Vec::new();
    for place in COUNTED {
        let place = marr::domain::PlaceCode::parse(place).expect("code");
        for filter in &filters {
            let counted = store.place_view(place, filter, None).expect("view");
            let recounted = store.scan_place_view(place, filter).expect("scan");
            assert_eq!(counted, recounted, "place {place}");
            views.push(counted);
        }
    }
    let checking = store.clone();
    let problems = tokio::task::spawn_blocking(move || checking.verify_projections())
        .await
        .expect("verify task")
        .expect("verify");
    assert!(problems.is_empty(), "{problems:?}");
    views
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_an_import_rebuilds_the_counters() {
    let (server, connection) = wards_only_with_records().await;
    let (hold, accepted) = import_police_and_write_meanwhile(&server, &connection).await;
    let store = server.store();
    let northumbria = marr::domain::PlaceCode::parse(NORTHUMBRIA).expect("code");
    // Until the rebuilt counters are taken, the new area counts only what was written since.
    let meanwhile = store
        .place_view(northumbria, &ViewFilter::default(), None)
        .expect("view");
    let recounted = store
        .scan_place_view(northumbria, &ViewFilter::default())
        .expect("scan");
    assert_ne!(meanwhile, recounted);

    drop(hold);
    store.counters_rebuilt().await;
    assert!(!store.counters_rebuilding());
    assert_counters_are_a_recount(store).await;
    let view = store
        .place_view(northumbria, &ViewFilter::default(), None)
        .expect("view");
    assert_eq!(
        view.total,
        3_000 + accepted as u64,
        "Northumbria counts every record written before and during the import"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_an_import_rebuilds_the_counters_gives_a_recount() {
    let (server, connection) = wards_only_with_records().await;
    let (hold, _) = import_police_and_write_meanwhile(&server, &connection).await;
    // The store stops with the rebuild outstanding; the next start replays under the new
    // geography.
    let server = server.restart().await;
    drop(hold);
    assert!(!server.store().counters_rebuilding());
    assert_counters_are_a_recount(server.store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_an_import_rebuilt_the_counters_keeps_them() {
    let (server, connection) = wards_only_with_records().await;
    let (hold, _) = import_police_and_write_meanwhile(&server, &connection).await;
    drop(hold);
    server.store().counters_rebuilt().await;
    let before = assert_counters_are_a_recount(server.store()).await;
    let server = server.restart().await;
    let after = assert_counters_are_a_recount(server.store()).await;
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_import_during_a_rebuild_is_counted_as_well() {
    let (server, connection) = wards_only_with_records().await;
    let store = server.store();
    let hold = store.hold_counter_rebuilds();
    // Newcastle joins Northumbria's police force area, then Gateshead, while the first
    // import's rebuild is still outstanding.
    for district in [NEWCASTLE, GATESHEAD] {
        let mut police = north_east_tables().swap_remove(1);
        police.rows.retain(|row| row.cells[1] == district);
        assert_eq!(police.rows.len(), 1);
        places::import_tables(&connection, vec![police])
            .await
            .expect("police import");
        assert!(store.counters_rebuilding());
    }
    let answers = push_all(&connection, spread(3_000, 30)).await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32)
    );
    drop(hold);
    store.counters_rebuilt().await;
    assert_counters_are_a_recount(store).await;
    let northumbria = marr::domain::PlaceCode::parse(NORTHUMBRIA).expect("code");
    let view = store
        .place_view(northumbria, &ViewFilter::default(), None)
        .expect("view");
    assert_eq!(
        view.total, 3_030,
        "both districts' records count in the area"
    );
}
