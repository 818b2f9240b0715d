//! England as it is today: the 2023–2025 ONS and NHS lookups imported as published, with the
//! code changes that let older tables in the same import name their places by older codes.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

const WARDS_2019: &str = common::WARDS;
const POLICE_2019: &str = common::POLICE;
use marr::cli::places;
use marr::domain::lookup::LookupTable;
use marr::domain::{AgencyKind, PlaceLevel, Vocabulary};
use marr::proto;

const CHANGES: &str = "la-changes-2018-2025.csv";
const DISTRICTS_2022_2023: &str = "lad22-lad23.csv";
const WARDS: &str = "ward-pcon-lad-la-region-2017-2025.csv";
const SAFETY: &str = "lad24-csp24-pfa24.csv";
const LSOA_WARDS: &str = "lsoa21-ward24-lad24-bestfit.csv";
const HEALTH: &str = "lsoa21-sicbl24-icb24.csv";

/// Barnsley before and after its 2025 recode (same boundary), and South Yorkshire's force.
const BARNSLEY_2024: &str = "E08000016";
const BARNSLEY: &str = "E08000038";
const SOUTH_YORKSHIRE_POLICE: &str = "E23000011";
/// Harrogate district (to 2023), a ward of it (2019), and North Yorkshire, its successor.
const HARROGATE: &str = "E07000165";
const HARROGATE_WARD: &str = "E05011309";
const NORTH_YORKSHIRE: &str = "E06000065";
/// The 2019 county council of North Yorkshire, ended in 2023 without a single successor.
const NORTH_YORKSHIRE_COUNTY: &str = "E10000023";

/// NHS North East and North Cumbria Integrated Care Board.
const NORTH_EAST_ICB: &str = "E54000050";
/// Dorset's police force area: Bournemouth, Christchurch and Poole sits in three community
/// safety partnerships of it.
const DORSET_POLICE: &str = "E23000039";
const BCP: &str = "E06000058";
const DORSET: &str = "E06000059";

fn table(name: &str) -> LookupTable {
    places::read_table(&current_geography_file(name)).expect("readable")
}

fn column(table: &LookupTable, name: &str) -> usize {
    table
        .header
        .iter()
        .position(|h| h.trim_start_matches('\u{feff}') == name)
        .unwrap_or_else(|| panic!("{name} in {}", table.name))
}

/// The distinct values of a column, over rows passing `keep`.
fn distinct(table: &LookupTable, name: &str, keep: impl Fn(&[String]) -> bool) -> BTreeSet<String> {
    let i = column(table, name);
    table
        .rows
        .iter()
        .filter(|r| keep(&r.cells))
        .map(|r| r.cells[i].clone())
        .collect()
}

async fn view(connection: &Connection, place: &str) -> proto::PlaceView {
    answer(connection, place).await.view.expect("view")
}

async fn answer(connection: &Connection, place: &str) -> proto::GetPlaceViewResponse {
    connection
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: place.into(),
            filter: None,
            as_of_sequence: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("view of {place}: {e}"))
        .into_inner()
}

/// Pushes records, each of which must be accepted.
async fn accept(connection: &Connection, records: Vec<proto::RiskRecord>) {
    for answer in push_all(connection, records).await {
        assert_eq!(
            answer.outcome,
            proto::Outcome::Accepted as i32,
            "{}",
            answer.reason
        );
    }
}

fn current_tables() -> Vec<LookupTable> {
    current_geography_tables()
}

#[tokio::test]
async fn the_current_lookups_import_as_published_and_every_english_council_force_and_icb_registers()
{
    let server = TestServer::start().await;
    let connection = server.connect().await;
    let tables: Vec<LookupTable> = [
        CHANGES,
        DISTRICTS_2022_2023,
        WARDS,
        SAFETY,
        LSOA_WARDS,
        HEALTH,
    ]
    .iter()
    .map(|name| table(name))
    .collect();
    let report = places::import_tables(&connection, tables)
        .await
        .expect("import");

    // Only rows that are not today's geography are passed over: wards of earlier years,
    // combined authorities (E47), which are not places of the register, and their changes.
    let skipped: BTreeMap<&str, u64> = report
        .skipped
        .iter()
        .map(|s| (s.reason.as_str(), s.rows))
        .collect();
    let wards = table(WARDS);
    let last = column(&wards, "most_recent_year_included");
    let earlier = wards
        .rows
        .iter()
        .filter(|r| r.cells[last] != "2025")
        .count() as u64;
    assert_eq!(
        skipped.get("not current: the table's latest year is 2025"),
        Some(&earlier)
    );
    assert!(
        skipped
            .keys()
            .all(|reason| reason.starts_with("not current")
                || reason.ends_with("not a change of code")
                || (reason.starts_with("E47")
                    && reason.ends_with("is not a known place nor in these tables"))),
        "{skipped:?}"
    );
    assert!(report.code_changes >= 40, "{}", report.code_changes);
    let count = |level: PlaceLevel| {
        report
            .places
            .iter()
            .chain(&report.footprint_areas)
            .find(|c| c.level == level.number())
            .map_or(0, |c| c.count)
    };
    assert_eq!(count(PlaceLevel::SubIcbLocation), 106);
    assert_eq!(count(PlaceLevel::IntegratedCareBoard), 42);
    // The NHS's own codes for its footprints, and the DfE's numbers for councils (Barnsley's
    // from before its recode, as today's rows give none).
    assert!(
        report.aliases_added >= 106 + 42 + 153,
        "{}",
        report.aliases_added
    );
    let aliases = |code: &'static str| {
        let connection = &connection;
        async move {
            connection
                .directory()
                .get_place(proto::GetPlaceRequest { code: code.into() })
                .await
                .unwrap_or_else(|e| panic!("{code}: {e}"))
                .into_inner()
        }
    };
    let icb = aliases("QHM").await;
    assert_eq!(
        icb.place.expect("place").code,
        NORTH_EAST_ICB,
        "an ICB by its ODS code"
    );
    let barnsley = aliases("E08000038").await;
    let dfe: Vec<(String, String)> = barnsley
        .aliases
        .iter()
        .map(|a| (a.scheme.clone(), a.code.clone()))
        .collect();
    assert!(dfe.contains(&("dfe".into(), "370".into())), "{dfe:?}");

    // Every upper-tier authority of 2025 (shire counties and unitary, metropolitan and London
    // councils), every force area and every ICB registers with its own code as footprint.
    let current = |cells: &[String]| cells[last] == "2025";
    let english = |code: &String| code.starts_with('E');
    let upper_tier: Vec<String> = distinct(&wards, "new_la_code", current)
        .into_iter()
        .filter(english)
        .collect();
    assert_eq!(
        upper_tier.len(),
        153,
        "the README's count of upper-tier authorities"
    );
    let forces: Vec<String> = distinct(&table(SAFETY), "pfa24_code", |_| true)
        .into_iter()
        .filter(english)
        .collect();
    assert_eq!(forces.len(), 39);
    let boards: Vec<String> = distinct(&table(HEALTH), "icb24_code", |_| true)
        .into_iter()
        .collect();
    assert_eq!(boards.len(), 42);
    for (codes, kind) in [
        (&upper_tier, AgencyKind::ChildrenSocialCare),
        (&forces, AgencyKind::Police),
        (&boards, AgencyKind::Health),
    ] {
        for code in codes {
            marr::cli::agencies::register(
                &connection,
                code,
                kind,
                &format!("agency {code}"),
                std::slice::from_ref(code),
            )
            .await
            .unwrap_or_else(|e| panic!("{code} registers as a {kind} agency: {e}"));
        }
    }

    // Sheffield's LSOAs, named under its 2024 code in the best-fit table, sit in its 2025
    // district.
    let sheffield = view(&connection, "E08000039").await;
    assert!(!sheffield.children.is_empty());
    let place = connection
        .directory()
        .get_place(proto::GetPlaceRequest {
            code: "E01033264".into(),
        })
        .await
        .expect("an LSOA of Sheffield")
        .into_inner();
    let ancestors: Vec<String> = place.ancestors.iter().map(|p| p.code.clone()).collect();
    assert!(
        ancestors.contains(&"E08000039".to_string()),
        "{ancestors:?}"
    );

    // Health footprints add up: records at LSOAs of each sub-ICB location of one ICB.
    marr::cli::agencies::register(
        &connection,
        "RTD",
        AgencyKind::Health,
        "a health trust",
        // As a health system names it: by the ICB's ODS code.
        &["QHM".to_string()],
    )
    .await
    .expect("the trust's footprint is the ICB");
    let health = table(HEALTH);
    let (lsoa, sub_icb, icb) = (
        column(&health, "lsoa21_code"),
        column(&health, "sicbl24_code"),
        column(&health, "icb24_code"),
    );
    let mut by_sub_icb: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in health
        .rows
        .iter()
        .filter(|r| r.cells[icb] == NORTH_EAST_ICB)
    {
        let lsoas = by_sub_icb.entry(row.cells[sub_icb].clone()).or_default();
        if lsoas.len() < 2 {
            lsoas.push(row.cells[lsoa].clone());
        }
    }
    let records: Vec<proto::RiskRecord> = by_sub_icb
        .values()
        .flatten()
        .enumerate()
        .map(|(i, lsoa)| rec("RTD", &format!("H-{i}"), lsoa, 0, proto::Severity::High, 1))
        .collect();
    let pushed = records.len() as u64;
    accept(&connection, records).await;
    let mut sum = 0;
    for code in by_sub_icb.keys() {
        sum += view(&connection, code).await.total_active;
    }
    assert_eq!(view(&connection, NORTH_EAST_ICB).await.total_active, pushed);
    assert_eq!(sum, pushed, "the ICB is the sum of its sub-ICB locations");

    // A force area whose district is split between partnerships still equals its districts.
    marr::cli::agencies::register(
        &connection,
        NORTHUMBRIA,
        AgencyKind::Police,
        "a force",
        &[DORSET_POLICE.to_string()],
    )
    .await
    .expect("the force's footprint");
    let in_district = |district: &str| {
        let i = column(&wards, "lad_code");
        let w = column(&wards, "ward_code");
        wards
            .rows
            .iter()
            .filter(|r| current(&r.cells) && r.cells[i] == district)
            .map(|r| r.cells[w].clone())
            .take(3)
            .collect::<Vec<_>>()
    };
    let places: Vec<String> = in_district(BCP)
        .into_iter()
        .chain(in_district(DORSET))
        .collect();
    let records: Vec<proto::RiskRecord> = places
        .iter()
        .enumerate()
        .map(|(i, ward)| {
            rec(
                NORTHUMBRIA,
                &format!("P-{i}"),
                ward,
                0,
                proto::Severity::High,
                1,
            )
        })
        .collect();
    accept(&connection, records).await;
    let force = view(&connection, DORSET_POLICE).await.total_active;
    let districts =
        view(&connection, BCP).await.total_active + view(&connection, DORSET).await.total_active;
    assert_eq!(force, places.len() as u64);
    assert_eq!(force, districts);
}

#[tokio::test]
async fn a_record_or_footprint_under_a_replaced_code_counts_under_the_code_that_replaced_it() {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    places::import_tables(&connection, current_tables())
        .await
        .expect("import");
    // A council whose case system still says E08000016 registers and reports under it.
    marr::cli::agencies::register(
        &connection,
        NEWCASTLE,
        AgencyKind::ChildrenSocialCare,
        "Barnsley's children's services",
        &[BARNSLEY_2024.to_string()],
    )
    .await
    .expect("a footprint under the replaced code is accepted");
    let records = vec![
        rec(NEWCASTLE, "B-1", BARNSLEY_2024, 1, proto::Severity::High, 2),
        rec(NEWCASTLE, "B-2", BARNSLEY, 2, proto::Severity::High, 1),
    ];
    accept(&connection, records).await;
    let barnsley = answer(&connection, BARNSLEY).await;
    assert_eq!(barnsley.view.as_ref().expect("view").total_active, 2);
    assert_eq!(barnsley.replaced_place_code, "", "asked by its own code");
    let old = answer(&connection, BARNSLEY_2024).await;
    let old_view = old.view.expect("view");
    assert_eq!(
        old.replaced_place_code, BARNSLEY_2024,
        "the answer says the code was replaced"
    );
    assert_eq!(
        old_view.place.expect("place").code,
        BARNSLEY,
        "and answers for its successor"
    );
    assert_eq!(
        old_view.total_active, 2,
        "nothing counted twice, nothing lost"
    );
    assert_eq!(
        view(&connection, SOUTH_YORKSHIRE_POLICE).await.total_active,
        2
    );
    assert_eq!(view(&connection, ENGLAND).await.total_active, 2);

    // Listing Barnsley's risks finds the record under either code, asked by either code.
    for asked in [BARNSLEY, BARNSLEY_2024] {
        let listed = connection
            .inspection()
            .list_risks(proto::ListRisksRequest {
                place_code: asked.into(),
                page_size: 10,
                ..Default::default()
            })
            .await
            .expect("the inspector lists Barnsley's risks")
            .into_inner();
        let mut refs: Vec<String> = listed
            .risks
            .iter()
            .filter_map(|r| r.record.as_ref().map(|r| r.local_ref.clone()))
            .collect();
        refs.sort();
        assert_eq!(refs, ["B-1", "B-2"], "asked as {asked}");
    }

    // Population tables still list Barnsley under its old code: its rate uses that figure.
    let population = marr::cli::population::read_tables(&[population_file(POPULATION_LA)])
        .expect("population table");
    marr::cli::population::import_tables(&connection.admin, population)
        .await
        .expect("population import");
    let la = places::read_table(&population_file(POPULATION_LA)).expect("readable");
    let (area, year, children) = (
        column(&la, "area_code"),
        column(&la, "year"),
        column(&la, "population_0_17"),
    );
    let barnsley_children: f64 = la
        .rows
        .iter()
        .find(|r| r.cells[area] == BARNSLEY_2024 && r.cells[year] == "2024")
        .expect("Barnsley's 2024 row")
        .cells[children]
        .parse()
        .expect("a number");
    let rate = view(&connection, BARNSLEY)
        .await
        .by_client_group
        .iter()
        .find(|g| g.client_group == proto::ClientGroup::ChildProtectionPlan as i32)
        .and_then(|g| g.rate)
        .expect("a rate for Barnsley under its new code");
    assert!((rate.per_ten_thousand - 2.0 * 10_000.0 / barnsley_children).abs() < 1e-9);
    assert_eq!(rate.year, 2024);

    // The code changes travel with a backup: the restored register reads the old code the same.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("marr.backup");
    marr::cli::backup::backup(&connection.admin, &file)
        .await
        .expect("backup");
    let restored_dir = dir.path().join("restored");
    let into = restored_dir.clone();
    tokio::task::spawn_blocking(move || {
        marr::cli::backup::restore(&marr::store::Location::Sled(into), &file)
    })
    .await
    .expect("restore ran")
    .expect("restore");
    let restored = marr::store::Store::open(&restored_dir).expect("the restored store opens");
    let code = marr::domain::PlaceCode::parse(BARNSLEY_2024).expect("code");
    let detail = restored.place(code).expect("the old code is known");
    assert_eq!(detail.place.code.as_str(), BARNSLEY);
    let view = restored
        .place_view(
            detail.place.code,
            &marr::domain::inspection::ViewFilter::default(),
            None,
        )
        .expect("view");
    assert_eq!(view.total, 2, "records under either code count once");
    restored.close().await.expect("close");
}

#[tokio::test]
async fn importing_todays_geography_over_2019_rehomes_the_records_of_merged_districts() {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    let older: Vec<LookupTable> = [WARDS_2019, POLICE_2019]
        .iter()
        .map(|name| places::read_table(&geography_file(name)).expect("2019 lookup"))
        .collect();
    places::import_tables(&connection, older)
        .await
        .expect("2019 import");
    marr::cli::agencies::register(
        &connection,
        NEWCASTLE,
        AgencyKind::ChildrenSocialCare,
        "North Yorkshire's children's services",
        &[HARROGATE.to_string()],
    )
    .await
    .expect("Harrogate is a district in 2019");
    let before = vec![
        rec(
            NEWCASTLE,
            "H-1",
            HARROGATE_WARD,
            1,
            proto::Severity::High,
            3,
        ),
        rec(NEWCASTLE, "H-2", HARROGATE, 2, proto::Severity::High, 2),
    ];
    accept(&connection, before).await;
    assert_eq!(
        view(&connection, NORTH_YORKSHIRE_COUNTY).await.total_active,
        2
    );

    let report = places::import_tables(&connection, current_tables())
        .await
        .expect("today's import over 2019");
    assert_eq!(
        report.places_ended, 6,
        "six county councils ended, 2019 to 2023"
    );
    // North Yorkshire's county council ended: it is no longer one of the region's places.
    let yorkshire: Vec<String> = connection
        .inspection()
        .compare_places(proto::ComparePlacesRequest {
            parent_code: "E12000003".into(),
            ..Default::default()
        })
        .await
        .expect("the region's places")
        .into_inner()
        .rows
        .iter()
        .filter_map(|row| row.place.as_ref().map(|p| p.code.clone()))
        .collect();
    assert!(
        yorkshire.contains(&NORTH_YORKSHIRE.to_string()),
        "{yorkshire:?}"
    );
    assert!(
        !yorkshire.contains(&NORTH_YORKSHIRE_COUNTY.to_string()),
        "{yorkshire:?}"
    );
    assert!(
        report.places_moved > 0,
        "metropolitan districts move up to their regions"
    );
    // Writes go on under the old codes, and count under the new.
    let after = vec![rec(
        NEWCASTLE,
        "H-3",
        HARROGATE_WARD,
        3,
        proto::Severity::High,
        1,
    )];
    accept(&connection, after).await;
    server.store().counters_rebuilt().await;

    let north_yorkshire = view(&connection, NORTH_YORKSHIRE).await;
    assert_eq!(
        north_yorkshire.total_active, 3,
        "the old district's records, re-homed"
    );
    assert!(
        north_yorkshire
            .children
            .iter()
            .any(|c| c.place.as_ref().is_some_and(|p| p.code == HARROGATE_WARD)),
        "the old ward shows among North Yorkshire's places"
    );
    let harrogate = answer(&connection, HARROGATE).await;
    assert_eq!(harrogate.replaced_place_code, HARROGATE);
    assert_eq!(harrogate.view.expect("view").total_active, 3);
    assert_eq!(
        view(&connection, NORTH_YORKSHIRE_COUNTY).await.total_active,
        0,
        "the ended county no longer counts the merged district"
    );
    // Every record once: England before and after is the same count.
    assert_eq!(view(&connection, ENGLAND).await.total_active, 3);
    let place = connection
        .directory()
        .get_place(proto::GetPlaceRequest {
            code: HARROGATE_WARD.into(),
        })
        .await
        .expect("the old ward is still a place")
        .into_inner();
    let ancestors: Vec<String> = place.ancestors.iter().map(|p| p.code.clone()).collect();
    assert!(
        ancestors.contains(&NORTH_YORKSHIRE.to_string()),
        "{ancestors:?}"
    );
}
