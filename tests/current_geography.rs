//! England as it is today: the 2023–2025 ONS and NHS lookups imported as published, with the
//! code changes that let older tables in the same import name their places by older codes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
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

/// NHS North East and North Cumbria Integrated Care Board.
const NORTH_EAST_ICB: &str = "E54000050";
/// Dorset's police force area: Bournemouth, Christchurch and Poole sits in three community
/// safety partnerships of it.
const DORSET_POLICE: &str = "E23000039";
const BCP: &str = "E06000058";
const DORSET: &str = "E06000059";

fn current_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/geography-2025")
        .join(name)
}

fn table(name: &str) -> LookupTable {
    places::read_table(&current_file(name)).expect("readable")
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
        .view
        .expect("view")
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

    // Only rows that are not today's geography are passed over: wards of earlier years, and
    // changes that are not a change of code (an abolished county, a combined authority).
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
                || reason.ends_with("not a change of code")),
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
        &[NORTH_EAST_ICB.to_string()],
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
    for answer in push_all(&connection, records).await {
        assert_eq!(
            answer.outcome,
            proto::Outcome::Accepted as i32,
            "{}",
            answer.reason
        );
    }
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
    for answer in push_all(&connection, records).await {
        assert_eq!(
            answer.outcome,
            proto::Outcome::Accepted as i32,
            "{}",
            answer.reason
        );
    }
    let force = view(&connection, DORSET_POLICE).await.total_active;
    let districts =
        view(&connection, BCP).await.total_active + view(&connection, DORSET).await.total_active;
    assert_eq!(force, places.len() as u64);
    assert_eq!(force, districts);
}
