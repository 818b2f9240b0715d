//! Importing the real ONS lookups, and agency footprints drawn from them.

mod common;

use common::*;
use marr::cli::places;
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
