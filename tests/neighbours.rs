//! The Department for Education's statistical neighbours: imported as published against
//! England's current geography, and an authority compared with its ten neighbours, its region
//! and England by rate.

mod common;

use std::collections::BTreeMap;

use common::*;
use marr::cli::{neighbours, population};
use marr::domain::AgencyKind;
use marr::proto;
use tonic::Code;
use tonic_types::StatusExt;

/// Newcastle upon Tyne's DfE number.
const NEWCASTLE_DFE: &str = "391";

/// The rows of a CSV file by column name, read with the csv crate (names may hold commas).
fn rows_of(path: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).expect("the file opens");
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.expect("a row");
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// Newcastle's neighbours as the DfE row names them, closest first: each as its GSS code
/// today and its band. A DfE number is named through the neighbours file's own name for it
/// and the 2025 rows of the ward lookup (where Barnsley and Sheffield carry `z` as number).
fn newcastle_neighbours_in_files() -> Vec<(String, String)> {
    let table = rows_of(&neighbours_file(NEIGHBOURS_2025));
    let name_of: BTreeMap<String, String> = table
        .iter()
        .map(|r| (r["old_la_code"].clone(), r["la_name"].clone()))
        .collect();
    let code_of: BTreeMap<String, String> = rows_of(&current_geography_file(CURRENT_WARDS))
        .into_iter()
        .filter(|r| r["most_recent_year_included"] == "2025")
        .map(|r| (r["la_name"].clone(), r["new_la_code"].clone()))
        .collect();
    let row = table
        .iter()
        .find(|r| r["old_la_code"] == NEWCASTLE_DFE)
        .expect("Newcastle's row");
    (1..=10)
        .map(|n| {
            let number = &row[&format!("SN_{n}")];
            let name = &name_of[number];
            let code = code_of
                .get(name)
                .unwrap_or_else(|| panic!("{name} in the 2025 ward lookup"));
            (code.clone(), row[&format!("SN_{n}P")].trim().to_string())
        })
        .collect()
}

/// Children aged 0 to 17 at a place in 2024, from the population file.
fn children_in_2024(place: &str) -> u64 {
    rows_of(&population_file(POPULATION_LA))
        .into_iter()
        .find(|r| r["area_code"] == place && r["year"] == "2024")
        .unwrap_or_else(|| panic!("no 2024 row for {place}"))["population_0_17"]
        .parse()
        .expect("a number")
}

fn band_word(closeness: i32) -> &'static str {
    match proto::Closeness::try_from(closeness) {
        Ok(proto::Closeness::ExtremelyClose) => "Extremely close",
        Ok(proto::Closeness::VeryClose) => "Very close",
        Ok(proto::Closeness::Close) => "Close",
        Ok(proto::Closeness::SomewhatClose) => "Somewhat close",
        Ok(proto::Closeness::NotClose) => "Not close",
        _ => "none",
    }
}

fn neighbours_request(place: &str, rate_of: proto::ClientGroup) -> proto::ComparePlacesRequest {
    proto::ComparePlacesRequest {
        parent_code: place.into(),
        kind: proto::ComparisonKind::StatisticalNeighbours as i32,
        rate_of: rate_of as i32,
        ..Default::default()
    }
}

fn code_of(row: &proto::PlaceComparison) -> String {
    row.place
        .as_ref()
        .map(|p| p.code.clone())
        .unwrap_or_default()
}

fn plans_rate(row: &proto::PlaceComparison) -> Option<f64> {
    row.by_client_group
        .iter()
        .find(|g| g.client_group == proto::ClientGroup::ChildProtectionPlan as i32)
        .and_then(|g| g.rate.as_ref())
        .map(|r| r.per_ten_thousand)
}

/// The field a BadRequest status names.
fn fields_named(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// `n` child protection plans of `agency` at `place`.
fn plans(agency: &str, place: &str, n: usize) -> Vec<proto::RiskRecord> {
    (0..n)
        .map(|i| {
            let mut r = rec(
                agency,
                &format!("{agency}-{i}"),
                place,
                0,
                proto::Severity::High,
                3,
            );
            r.client_group = proto::ClientGroup::ChildProtectionPlan as i32;
            r
        })
        .collect()
}

#[tokio::test]
async fn an_authority_is_compared_with_its_dfe_neighbours_region_and_england_by_rate() {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    marr::cli::places::import_tables(&connection, current_geography_tables())
        .await
        .expect("the current geography imports");
    population::import_tables(
        &connection.admin,
        population::read_tables(&[population_file(POPULATION_LA)]).expect("readable"),
    )
    .await
    .expect("the population imports");

    let tables = neighbours::read_tables(&[neighbours_file(NEIGHBOURS_2025)]).expect("readable");
    let report = neighbours::import_tables(&connection.admin, tables)
        .await
        .expect("the neighbours import");
    assert_eq!(report.rows_read, 153);
    assert_eq!(report.rows_skipped, 0, "{:?}", report.skipped);
    assert_eq!(report.authorities_stored, 153);
    let lines = neighbours::report_lines(&report).join("\n");
    assert!(
        lines.contains("neighbours stored for 153 authorities"),
        "{lines}"
    );

    // Records at Newcastle and its first and third neighbours, from agencies whose
    // footprints are those places.
    let expected = newcastle_neighbours_in_files();
    let (first, third) = (expected[0].0.clone(), expected[2].0.clone());
    for (agency, kind, footprint) in [
        (NEWCASTLE, AgencyKind::ChildrenSocialCare, NEWCASTLE),
        (NORTHUMBRIA, AgencyKind::Police, first.as_str()),
        ("RTD", AgencyKind::Health, third.as_str()),
    ] {
        marr::cli::agencies::register(
            &connection,
            agency,
            kind,
            &format!("agency {agency}"),
            &[footprint.to_string()],
        )
        .await
        .expect("the agency registers");
    }
    let counts = [(NEWCASTLE, 3u64), (first.as_str(), 5), (third.as_str(), 1)];
    let mut records = plans(NEWCASTLE, NEWCASTLE, 3);
    records.extend(plans(NORTHUMBRIA, &first, 5));
    records.extend(plans("RTD", &third, 1));
    for answer in push_all(&connection, records).await {
        assert_eq!(
            answer.outcome,
            proto::Outcome::Accepted as i32,
            "{}",
            answer.reason
        );
    }

    let compared = connection
        .inspection()
        .compare_places(neighbours_request(
            NEWCASTLE,
            proto::ClientGroup::ChildProtectionPlan,
        ))
        .await
        .expect("the comparison")
        .into_inner();
    let roles: Vec<i32> = compared.rows.iter().map(|r| r.role).collect();
    let mut expected_roles = vec![proto::ComparisonRole::Place as i32];
    expected_roles.extend([proto::ComparisonRole::Neighbour as i32; 10]);
    expected_roles.extend([
        proto::ComparisonRole::Region as i32,
        proto::ComparisonRole::England as i32,
    ]);
    assert_eq!(roles, expected_roles);
    assert_eq!(code_of(&compared.rows[0]), NEWCASTLE);
    let shown: Vec<(String, String)> = compared.rows[1..11]
        .iter()
        .map(|r| (code_of(r), band_word(r.closeness).to_string()))
        .collect();
    assert_eq!(shown, expected);
    assert_eq!(code_of(&compared.rows[11]), NORTH_EAST);
    assert_eq!(code_of(&compared.rows[12]), ENGLAND);
    assert_eq!(compared.rows[12].total_active, 9);
    assert_eq!(compared.neighbours_left_out_for_scope, 0);

    // Rates from the counts and the population file; every neighbour with a population is
    // ranked, those without records at a rate of 0.
    let rate = |place: &str, count: u64| count as f64 * 10_000.0 / children_in_2024(place) as f64;
    for (place, count) in counts {
        let row = compared
            .rows
            .iter()
            .find(|r| code_of(r) == place)
            .expect("a row");
        let shown = plans_rate(row).expect("a rate");
        assert!(
            (shown - rate(place, count)).abs() < 1e-9,
            "{place}: {shown}"
        );
    }
    let newcastle = rate(NEWCASTLE, 3);
    let others: Vec<f64> = compared.rows[1..11].iter().filter_map(plans_rate).collect();
    assert_eq!(others.len(), 10, "every neighbour has a population");
    let rank = 1 + others.iter().filter(|r| **r > newcastle).count() as u32;
    let standing = compared.standing.expect("a standing");
    assert_eq!(standing.rank, rank);
    assert_eq!(standing.of, 11);
    assert_eq!(standing.quartile, 4 * (rank - 1) / 11 + 1);
    assert_eq!(
        standing.rate_of,
        proto::ClientGroup::ChildProtectionPlan as i32
    );

    // An inspector of Newcastle alone sees Newcastle's row and is told ten were left out.
    let scoped = connection
        .as_token(NEWCASTLE_INSPECTOR)
        .inspection()
        .compare_places(neighbours_request(
            NEWCASTLE,
            proto::ClientGroup::ChildProtectionPlan,
        ))
        .await
        .expect("the scoped comparison")
        .into_inner();
    let codes: Vec<String> = scoped.rows.iter().map(code_of).collect();
    assert_eq!(codes, vec![NEWCASTLE.to_string()]);
    assert_eq!(scoped.neighbours_left_out_for_scope, 10);
    let alone = scoped.standing.expect("a standing among the rows shown");
    assert_eq!((alone.rank, alone.of, alone.quartile), (1, 1, 1));

    // The ranking group must be named.
    let status = connection
        .inspection()
        .compare_places(neighbours_request(
            NEWCASTLE,
            proto::ClientGroup::Unspecified,
        ))
        .await
        .expect_err("rate_of is required");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields_named(&status), vec!["rate_of".to_string()]);

    // A district of a shire county (Ashford, in Kent) has no neighbours of its own.
    let district = connection
        .inspection()
        .compare_places(neighbours_request(
            "E07000105",
            proto::ClientGroup::ChildProtectionPlan,
        ))
        .await
        .expect_err("no neighbours for a shire district");
    assert_eq!(district.code(), Code::InvalidArgument, "{district:?}");
    assert_eq!(fields_named(&district), vec!["parent_code".to_string()]);

    // The default comparison is still of children.
    let children = connection
        .inspection()
        .compare_places(proto::ComparePlacesRequest {
            parent_code: NORTH_EAST.into(),
            ..Default::default()
        })
        .await
        .expect("children of the region")
        .into_inner();
    assert!(children.standing.is_none());
    assert!(
        children
            .rows
            .iter()
            .all(|r| r.role == proto::ComparisonRole::Unspecified as i32)
    );
}

#[tokio::test]
async fn only_an_administrator_imports_neighbours_and_a_refusal_stores_nothing() {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    marr::cli::places::import_tables(&connection, current_geography_tables())
        .await
        .expect("the current geography imports");
    let tables = neighbours::read_tables(&[neighbours_file(NEIGHBOURS_2025)]).expect("readable");
    for token in [INSPECTOR, agency_token(NEWCASTLE)] {
        let refused = neighbours::import_tables(&connection.as_token(token), tables.clone())
            .await
            .expect_err("only an administrator imports");
        assert!(
            matches!(&refused, marr::cli::ClientError::Refused(s) if s.code() == Code::PermissionDenied),
            "{refused:?}"
        );
    }
    let status = connection
        .inspection()
        .compare_places(neighbours_request(
            NEWCASTLE,
            proto::ClientGroup::ChildProtectionPlan,
        ))
        .await
        .expect_err("no neighbours were stored");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields_named(&status), vec!["parent_code".to_string()]);
    assert!(
        status.message().contains("marr neighbours import"),
        "{status:?}"
    );

    // A table of another layout (the 2021 model) is refused whole.
    let old = neighbours::read_tables(&[neighbours_file("children-services-2021.csv")])
        .expect("readable");
    let refused = neighbours::import_tables(&connection.admin, old)
        .await
        .expect_err("the 2021 layout is not read");
    assert!(
        matches!(&refused, marr::cli::ClientError::Refused(s) if s.code() == Code::InvalidArgument && s.message().contains("SN_1P")),
        "{refused:?}"
    );

    // Imported, they survive a backup and restore, and a restart, and verify finds nothing
    // wrong.
    neighbours::import_tables(&connection.admin, tables)
        .await
        .expect("the administrator imports");
    assert_eq!(
        server.store().verify_projections().expect("verify"),
        Vec::<String>::new()
    );
    let newcastle = marr::domain::PlaceCode::parse(NEWCASTLE).expect("code");
    let held = server.store().neighbours_of(newcastle);
    assert_eq!(held.len(), 10);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("marr.backup");
    let (summary, _) = marr::cli::backup::backup(&connection.admin, &file)
        .await
        .expect("backup");
    assert!(
        summary
            .to_string()
            .contains("153 authorities' statistical neighbours"),
        "{summary}"
    );
    let restored_dir = dir.path().join("restored");
    let input = std::fs::File::open(&file).expect("the backup opens");
    tokio::task::spawn_blocking(move || {
        marr::store::Store::restore(&restored_dir, input).expect("restores");
        let restored = marr::store::Store::open(&restored_dir).expect("opens");
        assert_eq!(restored.neighbours_of(newcastle), held);
        restored.close_blocking().expect("closes");
    })
    .await
    .expect("restore");
    let server = server.restart().await;
    let connection = server.connect().await;
    let compared = connection
        .inspection()
        .compare_places(neighbours_request(
            NEWCASTLE,
            proto::ClientGroup::ChildProtectionPlan,
        ))
        .await
        .expect("neighbours are held after a restart")
        .into_inner();
    assert_eq!(compared.rows.len(), 13);
}
