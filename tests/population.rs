//! Population denominators from the ONS mid-year estimates, and the rates per 10,000 that
//! place views and comparisons show with them.

mod common;

use common::*;
use marr::cli::population;
use marr::proto;
use tonic::Code;

/// The two published tables: districts, upper-tier authorities, regions and England; and
/// police force areas.
fn both_tables() -> Vec<marr::domain::lookup::LookupTable> {
    population::read_tables(&[
        population_file(POPULATION_LA),
        population_file(POPULATION_PFA),
    ])
    .expect("the population tables read")
}

/// A column of a place's row for one year, read from the published file itself.
fn figure_in_file(file: &str, place: &str, year: &str, column: &str) -> u64 {
    let mut reader = csv::Reader::from_path(population_file(file)).expect("the file opens");
    let header = reader.headers().expect("a header").clone();
    let at = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (code, when, wanted) = (at("area_code"), at("year"), at(column));
    reader
        .records()
        .map(|r| r.expect("a row"))
        .find(|r| &r[code] == place && &r[when] == year)
        .unwrap_or_else(|| panic!("no {year} row for {place}"))[wanted]
        .parse()
        .expect("a number")
}

/// Rows of a file, less its header.
fn rows_in_file(file: &str) -> u64 {
    csv::Reader::from_path(population_file(file))
        .expect("the file opens")
        .records()
        .count() as u64
}

/// Three active children's records in a Newcastle ward (child protection plans), and one
/// youth justice record of the police there.
async fn newcastle_records(connection: &Connection) {
    let records = vec![
        rec(
            NEWCASTLE,
            "P-1",
            NEWCASTLE_WARD,
            1,
            proto::Severity::High,
            3,
        ),
        rec(NEWCASTLE, "P-2", NEWCASTLE_WARD, 2, proto::Severity::Low, 3),
        rec(
            NEWCASTLE,
            "P-3",
            NEWCASTLE_WARD,
            3,
            proto::Severity::Medium,
            3,
        ),
        rec(
            NORTHUMBRIA,
            "Y-1",
            NEWCASTLE_WARD,
            1,
            proto::Severity::High,
            3,
        ),
    ];
    for answer in push_all(connection, records).await {
        assert_eq!(
            answer.outcome,
            proto::Outcome::Accepted as i32,
            "{answer:?}"
        );
    }
}

async fn view_of(connection: &Connection, place: &str) -> proto::PlaceView {
    connection
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: place.into(),
            ..Default::default()
        })
        .await
        .expect("the view")
        .into_inner()
        .view
        .expect("a view")
}

fn group(view: &proto::PlaceView, group: proto::ClientGroup) -> &proto::ClientGroupTotal {
    view.by_client_group
        .iter()
        .find(|g| g.client_group == group as i32)
        .unwrap_or_else(|| panic!("no {group:?} in the view"))
}

#[tokio::test]
async fn importing_the_two_published_tables_reports_what_it_read() {
    let (server, connection) = TestServer::north_east().await;
    let report = population::import_tables(&connection.admin, both_tables())
        .await
        .expect("the import");

    let rows = rows_in_file(POPULATION_LA) + rows_in_file(POPULATION_PFA);
    assert_eq!(report.rows_read, rows);
    assert_eq!(report.rows_skipped, 0, "{:?}", report.skipped);
    assert_eq!(report.figures_stored, rows);
    // 296 districts, 153 upper-tier authorities (unitaries are both), 9 regions, England
    // and 39 police force areas, each for three years.
    assert_eq!(report.figures_stored, report.places * 3);
    assert_eq!(report.years, vec![2022, 2023, 2024]);
    assert_eq!(report.tables.len(), 2);
    assert!(
        report.tables[0]
            .ignored_columns
            .contains(&"area_name".to_string()),
        "{:?}",
        report.tables[0]
    );
    let lines = population::report_lines(&report).join("\n");
    assert!(lines.contains("figures stored"), "{lines}");

    // Importing again replaces each place-year rather than adding to it.
    let again = population::import_tables(&connection.admin, both_tables())
        .await
        .expect("the import again");
    assert_eq!(again.figures_stored, rows);
    assert_eq!(server.store().population_figures() as u64, rows);
}

#[tokio::test]
async fn a_district_view_shows_each_group_per_10000_of_its_band_in_the_latest_year() {
    let (_server, connection) = TestServer::north_east().await;
    newcastle_records(&connection).await;
    population::import_tables(&connection.admin, both_tables())
        .await
        .expect("the import");

    let children = figure_in_file(POPULATION_LA, NEWCASTLE, "2024", "population_0_17");
    let view = view_of(&connection, NEWCASTLE).await;
    let plans = group(&view, proto::ClientGroup::ChildProtectionPlan);
    assert_eq!(plans.active, 3);
    let rate = plans
        .rate
        .as_ref()
        .expect("Newcastle's population is known");
    assert_eq!(rate.population, children);
    assert_eq!(rate.year, 2024);
    assert_eq!(rate.band, proto::PopulationBand::Children as i32);
    let expected = 3.0 * 10_000.0 / children as f64;
    assert!(
        (rate.per_ten_thousand - expected).abs() < 1e-9,
        "{} against {expected}",
        rate.per_ten_thousand
    );
    // Youth justice is set against the children too.
    let youth = group(&view, proto::ClientGroup::YouthJustice);
    assert_eq!(youth.rate.as_ref().map(|r| r.population), Some(children));

    // The police force area's view uses the force area's own row.
    let force_children = figure_in_file(POPULATION_PFA, NORTHUMBRIA, "2024", "population_0_17");
    let force = view_of(&connection, NORTHUMBRIA).await;
    let force_rate = group(&force, proto::ClientGroup::ChildProtectionPlan)
        .rate
        .as_ref()
        .expect("Northumbria's population is known");
    assert_eq!(force_rate.population, force_children);

    // Comparing the force area's districts shows Newcastle's rate in its row.
    let compared = connection
        .inspection()
        .compare_places(proto::ComparePlacesRequest {
            parent_code: NORTHUMBRIA.into(),
            ..Default::default()
        })
        .await
        .expect("the comparison")
        .into_inner();
    let row = compared
        .rows
        .iter()
        .find(|r| r.place.as_ref().is_some_and(|p| p.code == NEWCASTLE))
        .expect("Newcastle's row");
    let in_row = row
        .by_client_group
        .iter()
        .find(|g| g.client_group == proto::ClientGroup::ChildProtectionPlan as i32)
        .and_then(|g| g.rate.as_ref())
        .expect("a rate in Newcastle's row");
    assert!((in_row.per_ten_thousand - expected).abs() < 1e-9);
}

#[tokio::test]
async fn a_ward_or_a_health_area_has_counts_but_no_rate() {
    let (_server, connection) = TestServer::north_east().await;
    newcastle_records(&connection).await;
    population::import_tables(&connection.admin, both_tables())
        .await
        .expect("the import");

    // One more record in an LSOA, which the health area (a set of LSOAs) counts.
    let in_lsoa = rec(
        NEWCASTLE,
        "P-4",
        NEWCASTLE_LSOA,
        4,
        proto::Severity::High,
        3,
    );
    push_all(&connection, vec![in_lsoa]).await;

    for (place, active) in [(NEWCASTLE_WARD, 3), (NEWCASTLE_GATESHEAD_CCG, 1)] {
        let view = view_of(&connection, place).await;
        let plans = group(&view, proto::ClientGroup::ChildProtectionPlan);
        assert_eq!(plans.active, active, "{place}");
        assert_eq!(plans.rate, None, "{place} has no population, so no rate");
    }
    // The district above both has one.
    let district = view_of(&connection, NEWCASTLE).await;
    assert!(
        group(&district, proto::ClientGroup::ChildProtectionPlan)
            .rate
            .is_some()
    );
}

#[tokio::test]
async fn an_import_by_anyone_but_an_administrator_is_refused_and_changes_nothing() {
    let (server, connection) = TestServer::north_east().await;
    newcastle_records(&connection).await;
    for token in [INSPECTOR, agency_token(NEWCASTLE)] {
        let refused = population::import_tables(&connection.as_token(token), both_tables())
            .await
            .expect_err("not an administrator");
        match refused {
            marr::cli::ClientError::Refused(status) => {
                assert_eq!(status.code(), Code::PermissionDenied, "{status:?}")
            }
            other => panic!("not a refusal: {other}"),
        }
    }
    assert_eq!(server.store().population_figures(), 0);
    let view = view_of(&connection, NEWCASTLE).await;
    assert_eq!(
        group(&view, proto::ClientGroup::ChildProtectionPlan).rate,
        None
    );
}

#[tokio::test]
async fn a_table_that_is_not_a_population_table_refuses_the_whole_import() {
    let (server, connection) = TestServer::north_east().await;
    newcastle_records(&connection).await;
    let dir = tempfile::tempdir().expect("dir");
    let malformed = dir.path().join("children.csv");
    std::fs::write(
        &malformed,
        "area_code,year,children\nE08000021,2024,52000\n",
    )
    .expect("written");
    // The good table first: the bad one still refuses everything.
    let tables = population::read_tables(&[population_file(POPULATION_LA), malformed])
        .expect("both read as CSV");
    let refused = population::import_tables(&connection.admin, tables)
        .await
        .expect_err("not a population table");
    let marr::cli::ClientError::Refused(status) = refused else {
        panic!("not a refusal: {refused}");
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    for named in ["children.csv", "population_0_17", "population_all"] {
        assert!(status.message().contains(named), "{}", status.message());
    }
    assert_eq!(server.store().population_figures(), 0);
    let view = view_of(&connection, NEWCASTLE).await;
    assert_eq!(
        group(&view, proto::ClientGroup::ChildProtectionPlan).rate,
        None
    );
}

#[tokio::test]
async fn population_survives_a_restart_and_a_backup_and_verify_finds_nothing_wrong() {
    let (server, connection) = TestServer::north_east().await;
    newcastle_records(&connection).await;
    population::import_tables(&connection.admin, both_tables())
        .await
        .expect("the import");
    let figures = server.store().population_figures();
    assert!(figures > 0);
    assert_eq!(
        server.store().verify_projections().expect("verify"),
        Vec::<String>::new()
    );

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("marr.backup");
    let (summary, _) = marr::cli::backup::backup(&connection.admin, &file)
        .await
        .expect("backup");
    assert!(
        summary
            .to_string()
            .contains(&format!("{figures} population figures")),
        "{summary}"
    );
    let restored_dir = dir.path().join("restored");
    let input = std::fs::File::open(&file).expect("the backup opens");
    tokio::task::spawn_blocking(move || {
        marr::store::Store::restore(&restored_dir, input).expect("restores");
        let restored = marr::store::Store::open(&restored_dir).expect("opens");
        assert_eq!(restored.population_figures(), figures);
        restored.close_blocking().expect("closes");
    })
    .await
    .expect("restore");

    let server = server.restart().await;
    let connection = server.connect().await;
    let view = view_of(&connection, NEWCASTLE).await;
    assert!(
        group(&view, proto::ClientGroup::ChildProtectionPlan)
            .rate
            .is_some(),
        "the population is still there after a restart"
    );
}

/// Runs the `marr` binary as a user would.
async fn marr(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_marr"))
            .args(args)
            .env_remove("MARR_TOKEN")
            .output()
            .expect("marr runs")
    })
    .await
    .expect("marr task")
}

#[tokio::test]
async fn marr_population_import_prints_its_report_and_marr_view_shows_the_rates() {
    let (server, connection) = TestServer::north_east().await;
    newcastle_records(&connection).await;
    let files = [POPULATION_LA, POPULATION_PFA].map(|f| population_file(f).display().to_string());
    let mut args: Vec<String> = vec!["population".into(), "import".into()];
    args.extend(files);
    args.extend([
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        ADMIN.into(),
    ]);
    let output = marr(args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = rows_in_file(POPULATION_LA) + rows_in_file(POPULATION_PFA);
    assert!(
        stdout.contains(&format!("{rows} rows read, {rows} figures stored")),
        "{stdout}"
    );
    assert!(
        stdout.contains("(years 2022, 2023, 2024), 0 rows skipped"),
        "{stdout}"
    );

    let output = marr(vec![
        "view".into(),
        NEWCASTLE.into(),
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        INSPECTOR.into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let children = figure_in_file(POPULATION_LA, NEWCASTLE, "2024", "population_0_17");
    let expected = format!(
        "{:.1}   of {children} aged 0 to 17 in 2024",
        3.0 * 10_000.0 / children as f64
    );
    assert!(stdout.contains(&expected), "{expected} in {stdout}");
}
