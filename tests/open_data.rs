//! Open data: comparable per-place figures under disclosure control, for anyone, published as
//! frozen releases, and the tidy CSV export.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use marr::domain::release::ReleaseSchedule;
use marr::proto;
use marr::store::{Due, StoreOptions};
use time::macros::datetime;
use tonic::Code;

/// Newcastle 23 active records, Gateshead 3, Hartlepool 1: a table with small counts to hide.
async fn north_east_with_counts() -> (TestServer, Connection) {
    let (server, connection) = TestServer::north_east().await;
    let mut records = Vec::new();
    for n in 0..23 {
        let mut r = rec(
            NEWCASTLE,
            &format!("N-{n}"),
            NEWCASTLE_WARD,
            0,
            proto::Severity::Medium,
            2,
        );
        r.category = [proto::RiskCategory::Neglect, proto::RiskCategory::Missing][n % 2] as i32;
        records.push(r);
    }
    for n in 0..3 {
        records.push(rec(
            "RTD",
            &format!("G-{n}"),
            GATESHEAD_WARD,
            0,
            proto::Severity::Medium,
            2,
        ));
    }
    records.push(rec("RTD", "H-1", HARTLEPOOL, 0, proto::Severity::Medium, 2));
    let answers = push_all(&connection, records).await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32)
    );
    cut_release(&connection).await;
    (server, connection)
}

/// An administrator cuts a release of the public table now.
async fn cut_release(connection: &Connection) -> proto::Release {
    connection
        .admin
        .open_data()
        .cut_release(proto::CutReleaseRequest {})
        .await
        .expect("an administrator may cut a release")
        .into_inner()
        .release
        .expect("the release cut")
}

/// The table of a release (0: the latest), or the refusal.
async fn table_of(
    connection: &Connection,
    parent: &str,
    level: proto::PlaceLevel,
    release: u64,
) -> Result<proto::GetComparativeTableResponse, tonic::Status> {
    connection
        .public
        .open_data()
        .get_comparative_table(proto::GetComparativeTableRequest {
            parent_code: parent.into(),
            level: level as i32,
            filter: None,
            release,
        })
        .await
        .map(|answer| answer.into_inner())
}

/// A row's total as published, by place code.
fn total_of(table: &proto::GetComparativeTableResponse, code: &str) -> String {
    let row = table
        .rows
        .iter()
        .find(|r| r.place.as_ref().is_some_and(|p| p.code == code))
        .expect("row");
    shown(row.total.as_ref().expect("total"))
}

async fn table(
    connection: &Connection,
    parent: &str,
    level: proto::PlaceLevel,
) -> proto::GetComparativeTableResponse {
    connection
        .public
        .open_data()
        .get_comparative_table(proto::GetComparativeTableRequest {
            parent_code: parent.into(),
            level: level as i32,
            filter: None,
            release: 0,
        })
        .await
        .expect("anyone may ask, without credentials")
        .into_inner()
}

fn shown(count: &proto::PublishedCount) -> String {
    if count.suppressed {
        "c".into()
    } else {
        count.value.to_string()
    }
}

/// What an attacker learns by subtracting the visible cells of a line from its total: for a
/// line with exactly one suppressed cell, the range its true value must lie in (each shown
/// count is within 2 of the truth). `None` when the line does not isolate a cell.
fn isolate(line: &[&proto::PublishedCount], total: &proto::PublishedCount) -> Option<(i64, i64)> {
    let hidden = line.iter().filter(|c| c.suppressed).count() + usize::from(total.suppressed);
    if hidden != 1 || total.suppressed {
        return None;
    }
    let visible: i64 = line
        .iter()
        .filter(|c| !c.suppressed)
        .map(|c| c.value as i64)
        .sum();
    let slack = 2 * (line.len() as i64);
    let estimate = total.value as i64 - visible;
    Some((estimate - slack, estimate + slack))
}

#[tokio::test]
async fn the_public_sees_rounded_counts_small_ones_suppressed_and_none_recoverable() {
    let (_server, connection) = north_east_with_counts().await;
    let answer = table(&connection, NORTH_EAST, proto::PlaceLevel::County).await;
    // The North East has no counties: its twelve upper-tier authorities are all unitary.
    assert_eq!(answer.rows.len(), 12);
    let row = |code: &str| {
        answer
            .rows
            .iter()
            .find(|r| r.place.as_ref().is_some_and(|p| p.code == code))
            .expect("row")
    };
    assert_eq!(shown(row(NEWCASTLE).total.as_ref().expect("total")), "25");
    assert_eq!(shown(row(GATESHEAD).total.as_ref().expect("total")), "c");
    assert_eq!(shown(row(HARTLEPOOL).total.as_ref().expect("total")), "c");
    assert_eq!(shown(row("E06000002").total.as_ref().expect("total")), "0");
    let region = answer.total.as_ref().expect("the region's row");
    assert_eq!(
        region.place.as_ref().map(|p| p.code.as_str()),
        Some(NORTH_EAST)
    );
    // 27 would round to 25, but Newcastle's council holds 23 of them: seeing 25 it would know
    // the other agencies hold 0 to 4 there.
    assert_eq!(
        shown(region.total.as_ref().expect("total")),
        "c",
        "a total one agency could subtract its own records from is not shown"
    );

    let every = answer
        .rows
        .iter()
        .chain(std::iter::once(region))
        .flat_map(|r| {
            r.total
                .iter()
                .chain(&r.by_client_group)
                .chain(&r.by_category)
        });
    for count in every {
        assert!(count.suppressed || count.value % 5 == 0, "{count:?}");
        assert!(
            !count.suppressed || count.value == 0,
            "a suppressed cell carries no value"
        );
    }

    // Try to recover every suppressed cell from a row or column total: it must fail.
    for columns in [
        |r: &proto::ComparativeRow| r.by_client_group.clone(),
        |r: &proto::ComparativeRow| r.by_category.clone(),
    ] {
        for r in &answer.rows {
            let cells = columns(r);
            let line: Vec<&proto::PublishedCount> = cells.iter().collect();
            let recovered = isolate(&line, r.total.as_ref().expect("total"));
            assert_eq!(recovered, None, "a row gives a suppressed cell away: {r:?}");
        }
        let width = columns(region).len();
        for c in 0..width {
            let column: Vec<proto::PublishedCount> =
                answer.rows.iter().map(|r| columns(r)[c]).collect();
            let line: Vec<&proto::PublishedCount> = column.iter().collect();
            let recovered = isolate(&line, &columns(region)[c]);
            assert_eq!(recovered, None, "column {c} gives a suppressed cell away");
        }
        let totals: Vec<proto::PublishedCount> = answer
            .rows
            .iter()
            .map(|r| r.total.expect("total"))
            .collect();
        let line: Vec<&proto::PublishedCount> = totals.iter().collect();
        assert_eq!(isolate(&line, region.total.as_ref().expect("total")), None);
    }
}

#[tokio::test]
async fn nothing_below_district_level_is_published() {
    let (_server, connection) = north_east_with_counts().await;
    for level in [proto::PlaceLevel::Ward, proto::PlaceLevel::Lsoa] {
        let status = connection
            .public
            .open_data()
            .get_comparative_table(proto::GetComparativeTableRequest {
                parent_code: NEWCASTLE.into(),
                level: level as i32,
                filter: None,
                release: 0,
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("below district"), "{status:?}");
    }
    // A police force area's districts are published like any other districts.
    let force = table(&connection, NORTHUMBRIA, proto::PlaceLevel::District).await;
    let codes: Vec<&str> = force
        .rows
        .iter()
        .filter_map(|r| r.place.as_ref().map(|p| p.code.as_str()))
        .collect();
    assert!(
        codes.contains(&NEWCASTLE) && codes.contains(&GATESHEAD),
        "{codes:?}"
    );
    assert!(
        !codes.contains(&HARTLEPOOL),
        "Hartlepool is in Cleveland, not Northumbria"
    );
}

#[tokio::test]
async fn export_writes_the_tidy_layout_of_official_statistics() {
    let (server, _connection) = north_east_with_counts().await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("north-east.csv");
    // The server runs on this test's runtime: wait for the command off it.
    let (url, path) = (server.url.clone(), out.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_marr"))
            .args([
                "export", "--server", &url, "--parent", NORTH_EAST, "--level", "county", "--out",
            ])
            .arg(&path)
            .env_remove("MARR_TOKEN")
            .output()
            .expect("marr export runs")
    })
    .await
    .expect("export task");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reader = csv::Reader::from_path(&out).expect("csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        header,
        [
            "time_period",
            "time_identifier",
            "geographic_level",
            "country_code",
            "country_name",
            "region_code",
            "region_name",
            "new_la_code",
            "la_name",
            "client_group",
            "risk_category",
            "active_risk_records",
            "rate_per_10000",
            "population",
            "population_year",
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    // Twelve authorities and the region, each a total, seven client groups and 16 categories.
    assert_eq!(rows.len(), 13 * (1 + 7 + 16));
    let find = |la: &str, group: &str, category: &str| {
        rows.iter()
            .find(|r| &r[7] == la && &r[9] == group && &r[10] == category)
            .map(|r| (r[2].to_string(), r[11].to_string()))
    };
    assert_eq!(
        find(NEWCASTLE, "Total", "Total"),
        Some(("Local authority".to_string(), "25".to_string()))
    );
    assert_eq!(
        find(GATESHEAD, "Total", "Total").map(|r| r.1),
        Some("c".into())
    );
    let region = rows
        .iter()
        .find(|r| &r[2] == "Regional" && &r[9] == "Total" && &r[10] == "Total")
        .expect("the region's row");
    assert_eq!(
        (&region[3], &region[5], &region[7]),
        ("E92000001", NORTH_EAST, "")
    );
    let newcastle = rows.iter().find(|r| &r[7] == NEWCASTLE).expect("Newcastle");
    assert_eq!(
        (&newcastle[3], &newcastle[5], &newcastle[8]),
        ("E92000001", NORTH_EAST, "Newcastle upon Tyne")
    );
}

#[tokio::test]
async fn the_public_table_is_a_frozen_release_not_the_live_register() {
    let (_server, connection) = TestServer::north_east().await;
    let status = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 0)
        .await
        .expect_err("nothing is published before the first release");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("no release"), "{status:?}");

    // Gateshead: 12 of RTD's records, then a release.
    let gateshead = |from: usize, to: usize| -> Vec<proto::RiskRecord> {
        (from..to)
            .map(|n| {
                rec(
                    "RTD",
                    &format!("G-{n}"),
                    GATESHEAD_WARD,
                    0,
                    proto::Severity::Medium,
                    2,
                )
            })
            .collect()
    };
    push_all(&connection, gateshead(0, 12)).await;
    let first = cut_release(&connection).await;
    assert_eq!(first.number, 1);
    assert!(!first.scheduled);
    assert_eq!(first.sequence, 12, "the release stands at the log's head");
    let table = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 0)
        .await
        .expect("the latest release");
    assert_eq!(total_of(&table, GATESHEAD), "10");
    assert_eq!(table.consistent_at_sequence, 12);
    assert_eq!(table.release.as_ref().map(|r| r.number), Some(1));

    // Records added after the release do not move the public table...
    push_all(&connection, gateshead(12, 30)).await;
    let table = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 0)
        .await
        .expect("the latest release");
    assert_eq!(
        total_of(&table, GATESHEAD),
        "10",
        "frozen until the next release"
    );

    // ...until the next release, while the first stays as it was.
    let second = cut_release(&connection).await;
    assert_eq!((second.number, second.sequence), (2, 30));
    let latest = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 0)
        .await
        .expect("the latest release");
    assert_eq!(total_of(&latest, GATESHEAD), "30");
    let earlier = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 1)
        .await
        .expect("release 1 by number");
    assert_eq!(total_of(&earlier, GATESHEAD), "10");

    let listed = connection
        .public
        .open_data()
        .list_releases(proto::ListReleasesRequest {})
        .await
        .expect("anyone may list the releases")
        .into_inner()
        .releases;
    let listed: Vec<(u64, u64)> = listed.iter().map(|r| (r.number, r.sequence)).collect();
    assert_eq!(
        listed,
        [(2, 30), (1, 12)],
        "newest first, with their sequences"
    );

    let status = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 9)
        .await
        .expect_err("no release 9");
    assert_eq!(status.code(), Code::NotFound);
    // A narrower table beside the whole one could be differenced: releases are whole.
    let status = connection
        .public
        .open_data()
        .get_comparative_table(proto::GetComparativeTableRequest {
            parent_code: NORTH_EAST.into(),
            level: proto::PlaceLevel::County as i32,
            filter: Some(proto::ViewFilter {
                min_severity: proto::Severity::High as i32,
                ..Default::default()
            }),
            release: 0,
        })
        .await
        .expect_err("filters are refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("filter"), "{status:?}");

    // Only an administrator cuts a release out of schedule.
    let status = connection
        .agency(NEWCASTLE)
        .open_data()
        .cut_release(proto::CutReleaseRequest {})
        .await
        .expect_err("an agency may not cut a release");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_agency_adding_its_own_records_never_sees_the_others_small_count() {
    // The attack the releases and contributor-aware suppression close: RTD holds 3 records
    // in Gateshead. The police force adds its own there one at a time, and after each a
    // release is cut. Knowing its own count, it must never learn RTD's 3 from any of them.
    let (_server, connection) = TestServer::north_east().await;
    let rtd: Vec<proto::RiskRecord> = (0..3)
        .map(|n| {
            rec(
                "RTD",
                &format!("G-{n}"),
                GATESHEAD_WARD,
                0,
                proto::Severity::Medium,
                2,
            )
        })
        .collect();
    push_all(&connection, rtd).await;
    for own in 0..=6 {
        if own > 0 {
            push_all(
                &connection,
                vec![rec(
                    NORTHUMBRIA,
                    &format!("P-{own}"),
                    GATESHEAD_WARD,
                    0,
                    proto::Severity::Medium,
                    2,
                )],
            )
            .await;
        }
        cut_release(&connection).await;
        let table = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 0)
            .await
            .expect("the latest release");
        assert_eq!(
            total_of(&table, GATESHEAD),
            "c",
            "with {own} of the police's own records beside RTD's 3"
        );
        let force = table_of(&connection, NORTHUMBRIA, proto::PlaceLevel::District, 0)
            .await
            .expect("the police force area's districts");
        assert_eq!(total_of(&force, GATESHEAD), "c", "with {own} of its own");
    }
}

/// A clock the test moves.
fn controlled_clock(
    start: time::OffsetDateTime,
) -> (Arc<Mutex<time::OffsetDateTime>>, StoreOptions) {
    let now = Arc::new(Mutex::new(start));
    let reading = Arc::clone(&now);
    let options = StoreOptions {
        clock: Arc::new(move || *reading.lock().expect("clock")),
        ..StoreOptions::default()
    };
    (now, options)
}

#[tokio::test]
async fn releases_are_cut_on_the_schedule_by_the_registers_clock_and_reproduce_from_the_log() {
    let (now, options) = controlled_clock(datetime!(2026-02-20 12:00 UTC));
    let (server, connection) = TestServer::north_east_with(options).await;
    push_all(
        &connection,
        (0..8)
            .map(|n| {
                rec(
                    "RTD",
                    &format!("G-{n}"),
                    GATESHEAD_WARD,
                    0,
                    proto::Severity::Medium,
                    2,
                )
            })
            .collect(),
    )
    .await;
    let store = server.store().clone();
    let due = Due {
        schedule: ReleaseSchedule::new(1, 6).expect("schedule"),
        since: store.now(),
    };
    assert_eq!(
        store.cut_scheduled_release(due).await.expect("checked"),
        None,
        "no release point has passed since the schedule started"
    );
    *now.lock().expect("clock") = datetime!(2026-03-01 06:30 UTC);
    let march = store
        .cut_scheduled_release(due)
        .await
        .expect("checked")
        .expect("the 1 March point has passed");
    assert!(march.scheduled);
    assert_eq!(march.as_at, datetime!(2026-03-01 06:00 UTC));
    assert_eq!(march.sequence, 8);
    assert_eq!(
        store.cut_scheduled_release(due).await.expect("checked"),
        None,
        "one release per point"
    );
    push_all(
        &connection,
        vec![rec(
            NEWCASTLE,
            "N-1",
            NEWCASTLE_WARD,
            0,
            proto::Severity::High,
            2,
        )],
    )
    .await;
    *now.lock().expect("clock") = datetime!(2026-04-03 00:00 UTC);
    let april = store
        .cut_scheduled_release(due)
        .await
        .expect("checked")
        .expect("the 1 April point has passed");
    assert_eq!((april.number, april.sequence), (2, 9));

    // A point that passed while the server was down is released when it is back.
    *now.lock().expect("clock") = datetime!(2026-05-09 00:00 UTC);
    let restarted = Due {
        schedule: due.schedule,
        since: store.now(),
    };
    let may = store
        .cut_scheduled_release(restarted)
        .await
        .expect("checked")
        .expect("the 1 May point passed while the server was down");
    assert_eq!(may.as_at, datetime!(2026-05-01 06:00 UTC));
    assert_eq!(may.cut_at, datetime!(2026-05-09 00:00 UTC));

    let listed = connection
        .public
        .open_data()
        .list_releases(proto::ListReleasesRequest {})
        .await
        .expect("list")
        .into_inner()
        .releases;
    let periods: Vec<&str> = listed.iter().map(|r| r.time_period.as_str()).collect();
    assert_eq!(periods, ["2026-05", "2026-04", "2026-03"]);

    // Every stored release is what the log gives at its sequence.
    let checking = store.clone();
    let problems = tokio::task::spawn_blocking(move || checking.verify_releases())
        .await
        .expect("task")
        .expect("verify");
    assert!(problems.is_empty(), "{problems:?}");

    // The export's time period is the release's, not today's.
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("north-east.csv");
    let rows = export_csv(
        &server.url,
        &["--parent", NORTH_EAST, "--level", "county"],
        &out,
    )
    .await;
    assert!(
        rows.iter().all(|r| &r[0] == "2026" && &r[1] == "May"),
        "{:?}",
        rows.first()
    );
    // An earlier release by number: its own time period.
    let rows = export_csv(
        &server.url,
        &[
            "--parent",
            NORTH_EAST,
            "--level",
            "county",
            "--release",
            "2",
        ],
        &out,
    )
    .await;
    assert!(
        !rows.is_empty() && rows.iter().all(|r| &r[0] == "2026" && &r[1] == "April"),
        "{:?}",
        rows.first()
    );
}

/// A row's counts: the total, then the client groups, then the categories.
fn counts(row: &proto::ComparativeRow) -> Vec<proto::PublishedCount> {
    row.total
        .iter()
        .chain(&row.by_client_group)
        .chain(&row.by_category)
        .copied()
        .collect()
}

/// A row's place code.
fn code(row: &proto::ComparativeRow) -> String {
    row.place.as_ref().expect("place").code.clone()
}

/// Runs `marr export` against the server and reads back the data rows, after the header.
async fn export_csv(url: &str, args: &[&str], out: &std::path::Path) -> Vec<csv::StringRecord> {
    let (url, path) = (url.to_string(), out.to_path_buf());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_marr"))
            .args(["export", "--server", &url])
            .args(&args)
            .arg("--out")
            .arg(&path)
            .env_remove("MARR_TOKEN")
            .output()
            .expect("marr export runs")
    })
    .await
    .expect("export task");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reader = csv::Reader::from_path(out).expect("csv");
    let header = reader.headers().expect("header").clone();
    let mut rows = vec![header];
    rows.extend(reader.records().map(|r| r.expect("row")));
    rows.remove(0);
    rows
}

#[tokio::test]
async fn a_police_force_areas_export_names_the_force_on_its_rows_and_its_own() {
    let (server, _connection) = north_east_with_counts().await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("northumbria.csv");
    let rows = export_csv(
        &server.url,
        &["--parent", NORTHUMBRIA, "--level", "district"],
        &out,
    )
    .await;
    let mut reader = csv::Reader::from_path(&out).expect("csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let code = header
        .iter()
        .position(|c| c == "police_force_area_code")
        .expect("a column for the force's code");
    let name = header
        .iter()
        .position(|c| c == "police_force_area_name")
        .expect("a column for the force's name");
    let force_row = rows
        .iter()
        .find(|r| {
            &r[2] == "Police force area"
                && &r[header.len() - 6] == "Total"
                && &r[header.len() - 5] == "Total"
        })
        .expect("the force's own row");
    assert_eq!(&force_row[code], NORTHUMBRIA);
    assert_eq!(&force_row[name], "Northumbria");
    let newcastle = rows
        .iter()
        .find(|r| &r[7] == NEWCASTLE)
        .expect("Newcastle's row");
    assert_eq!(
        (&newcastle[code], &newcastle[name]),
        (NORTHUMBRIA, "Northumbria"),
        "a district of the force's table lies in the force"
    );

    // The force's community safety partnerships: a column pair for each footprint level.
    let out = dir.path().join("northumbria-csps.csv");
    let rows = export_csv(
        &server.url,
        &[
            "--parent",
            NORTHUMBRIA,
            "--level",
            "community_safety_partnership",
        ],
        &out,
    )
    .await;
    let header: Vec<String> = csv::Reader::from_path(&out)
        .expect("csv")
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let column = |name: &str| header.iter().position(|c| c == name).expect(name);
    let (partnership, force) = (
        column("community_safety_partnership_code"),
        column("police_force_area_code"),
    );
    let force_row = rows
        .iter()
        .find(|r| &r[2] == "Police force area")
        .expect("the force's own row");
    assert_eq!(
        (&force_row[force], &force_row[partnership]),
        (NORTHUMBRIA, "")
    );
    let csp_row = rows
        .iter()
        .find(|r| &r[2] == "Community safety partnership")
        .expect("a partnership's row");
    assert_eq!(&csp_row[force], NORTHUMBRIA);
    assert!(csp_row[partnership].starts_with("E22"), "{csp_row:?}");
}

#[tokio::test]
async fn a_backup_carries_the_releases_and_a_restart_keeps_them() {
    let (server, connection) = north_east_with_counts().await;
    let before = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 1)
        .await
        .expect("release 1");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("marr.backup");
    let (summary, _) = marr::cli::backup::backup(&connection.admin, &file)
        .await
        .expect("backup");
    assert_eq!(summary.releases, 1);

    let restored_dir = dir.path().join("restored");
    let (restored_dir, from) = (restored_dir.clone(), file.clone());
    let restored = tokio::task::spawn_blocking(move || {
        let input = std::fs::File::open(&from).expect("backup file");
        marr::store::Store::restore(&restored_dir, input).expect("restore");
        // sled lets go of the directory's lock a moment after the restore's handle is dropped.
        open_retrying(&restored_dir, Default::default()).expect("the restored store opens")
    })
    .await
    .expect("restore task");
    let original = server.store();
    let parent = marr::domain::PlaceCode::parse(NORTH_EAST).expect("code");
    let level = marr::domain::PlaceLevel::County;
    assert_eq!(
        restored.releases().expect("releases"),
        original.releases().expect("releases")
    );
    assert_eq!(
        restored.release_table(1, parent, level).expect("read"),
        original.release_table(1, parent, level).expect("read"),
    );
    assert!(
        restored
            .release_table(1, parent, level)
            .expect("read")
            .is_some()
    );
    let checking = restored.clone();
    let problems = tokio::task::spawn_blocking(move || checking.verify_releases())
        .await
        .expect("task")
        .expect("verify");
    assert!(problems.is_empty(), "{problems:?}");
    restored.close().await.expect("close");

    // A restart serves the same release, frozen as it was.
    let server = server.restart().await;
    let connection = server.connect().await;
    let after = table_of(&connection, NORTH_EAST, proto::PlaceLevel::County, 0)
        .await
        .expect("the latest release after a restart");
    assert_eq!(after, before);
}

#[tokio::test]
async fn the_server_keeps_the_release_schedule_as_its_clock_passes_a_point() {
    let (now, options) = controlled_clock(datetime!(2026-06-30 23:59 UTC));
    let (server, connection) = TestServer::north_east_with(options).await;
    let store = server.store().clone();
    let keeping = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .keep_release_schedule(
                    ReleaseSchedule::default(),
                    std::time::Duration::from_millis(20),
                )
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        store.releases().expect("releases").is_empty(),
        "no point has passed yet"
    );
    *now.lock().expect("clock") = datetime!(2026-07-01 00:01 UTC);
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = connection
            .public
            .open_data()
            .list_releases(proto::ListReleasesRequest {})
            .await
            .expect("list")
            .into_inner()
            .releases;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let periods: Vec<(&str, bool)> = listed
        .iter()
        .map(|r| (r.time_period.as_str(), r.scheduled))
        .collect();
    assert_eq!(periods, [("2026-07", true)]);
    keeping.abort();
}

/// For each LSOA of the North East, every published place containing it: its district, the
/// district's county (where there is one), region and country, its clinical commissioning
/// group, and the district's community safety partnership and police force area.
fn north_east_containers() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>>
{
    let [lsoas, police, wards] = <[_; 3]>::try_from(north_east_tables()).expect("three tables");
    let column = |table: &marr::domain::lookup::LookupTable, name: &str| {
        table
            .header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} column"))
    };
    let mut above: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let (lad, cty, rgn, ctry) = (
        column(&wards, "LAD19CD"),
        column(&wards, "CTY19CD"),
        column(&wards, "RGN19CD"),
        column(&wards, "CTRY19CD"),
    );
    for row in &wards.rows {
        let places = above.entry(row.cells[lad].clone()).or_default();
        for code in [&row.cells[cty], &row.cells[rgn], &row.cells[ctry]] {
            if !code.is_empty() && !places.contains(code) {
                places.push(code.clone());
            }
        }
    }
    let (lad, csp, pfa) = (
        column(&police, "LAD19CD"),
        column(&police, "CSP19CD"),
        column(&police, "PFA19CD"),
    );
    for row in &police.rows {
        let places = above.entry(row.cells[lad].clone()).or_default();
        places.push(row.cells[csp].clone());
        places.push(row.cells[pfa].clone());
    }
    let (lsoa, ccg, lad) = (
        column(&lsoas, "LSOA11CD"),
        column(&lsoas, "CCG20CD"),
        column(&lsoas, "LAD20CD"),
    );
    lsoas
        .rows
        .iter()
        .map(|row| {
            let district = &row.cells[lad];
            let mut places: std::collections::BTreeSet<String> =
                above.get(district).into_iter().flatten().cloned().collect();
            places.insert(district.clone());
            places.insert(row.cells[ccg].clone());
            (row.cells[lsoa].clone(), places)
        })
        .collect()
}

/// Records of the health trust at the LSOAs of every district of the North East, a few in
/// each, small and not so small counts side by side, so that suppression in one table picks
/// complements another table shows. `prefix` starts their local references.
async fn push_across_the_north_east(
    connection: &Connection,
    containers: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    prefix: &str,
) {
    let mut lsoas_of: std::collections::BTreeMap<String, Vec<&String>> = Default::default();
    for (lsoa, places) in containers {
        for place in places
            .iter()
            .filter(|p| p.starts_with("E06") || p.starts_with("E08"))
        {
            lsoas_of.entry(place.clone()).or_default().push(lsoa);
        }
    }
    // Each district a few records at its LSOAs, small and not so small counts side by side,
    // so that suppression in one table picks complements another table shows.
    let sizes = [3, 7, 12, 1, 25, 6, 2, 9, 5, 14, 4, 8];
    let categories = [
        proto::RiskCategory::Neglect,
        proto::RiskCategory::Missing,
        proto::RiskCategory::DomesticAbuse,
    ];
    let mut records = Vec::new();
    for (d, (_, lsoas)) in lsoas_of.iter().enumerate() {
        for n in 0..sizes[d % sizes.len()] {
            let lsoa = lsoas[(n * 7) % lsoas.len()];
            let mut r = rec(
                "RTD",
                &format!("{prefix}{d}-{n}"),
                lsoa,
                0,
                proto::Severity::Medium,
                2,
            );
            r.category = categories[(n + d) % categories.len()] as i32;
            records.push(r);
        }
    }
    let answers = push_all(connection, records).await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32),
        "{answers:?}"
    );
}

/// Every table of the latest release, as (parent, level, table): each place above LSOA of the
/// North East (and England), each published level, those with places under them.
async fn every_table_of_the_release(
    connection: &Connection,
    containers: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<(
    String,
    proto::PlaceLevel,
    proto::GetComparativeTableResponse,
)> {
    let parents: std::collections::BTreeSet<&String> = containers.values().flatten().collect();
    let levels = [
        proto::PlaceLevel::Country,
        proto::PlaceLevel::Region,
        proto::PlaceLevel::County,
        proto::PlaceLevel::District,
        proto::PlaceLevel::PoliceForceArea,
        proto::PlaceLevel::CommunitySafetyPartnership,
        proto::PlaceLevel::ClinicalCommissioningGroup,
    ];
    let mut tables = Vec::new();
    for parent in parents {
        for level in levels {
            let answer = table_of(connection, parent, level, 0)
                .await
                .expect("every table of the release");
            if !answer.rows.is_empty() {
                tables.push((parent.clone(), level, answer));
            }
        }
    }
    tables
}

#[tokio::test]
async fn no_suppressed_count_is_recovered_by_differencing_the_tables_of_a_release() {
    // One count appears in many tables of a release: a district's row under its county, its
    // region, England, its police force area and its community safety partnership; a
    // table's margin row is its parent's row in the tables above. An attacker knows the
    // geography, collects every count shown anywhere in the release, and subtracts.
    let (_server, connection) = TestServer::north_east().await;
    let containers = north_east_containers();
    push_across_the_north_east(&connection, &containers, "D").await;
    cut_release(&connection).await;

    let tables = every_table_of_the_release(&connection, &containers).await;
    // Whether the rows of a table are, between them, all of the parent, each LSOA in it in
    // exactly one: then the margin row is the parent's own count.
    let partitions = |parent: &String, rows: &[proto::ComparativeRow]| {
        let codes: Vec<String> = rows.iter().map(code).collect();
        containers.values().all(|places| {
            let inside = codes.iter().filter(|c| places.contains(*c)).count();
            if places.contains(parent) {
                inside == 1
            } else {
                inside == 0
            }
        })
    };
    // Every (place, column) published, with whether each table that publishes it shows it.
    let mut published: std::collections::BTreeMap<(String, usize), Vec<(String, bool)>> =
        Default::default();
    let mut whole = Vec::new();
    for (parent, level, table) in &tables {
        let name = format!("{parent} by {level:?}");
        let margin = table.total.as_ref().expect("the parent's row");
        let partitioned = partitions(parent, &table.rows);
        whole.push(partitioned);
        // The last row is the parent's own count in every table, whether or not the rows
        // make it up.
        let rows = table.rows.iter().chain(std::iter::once(margin));
        for row in rows {
            for (c, count) in counts(row).iter().enumerate() {
                published
                    .entry((code(row), c))
                    .or_default()
                    .push((name.clone(), !count.suppressed));
            }
        }
    }
    for ((place, column), seen) in &published {
        let shown: Vec<&String> = seen.iter().filter(|s| s.1).map(|s| &s.0).collect();
        let hidden: Vec<&String> = seen.iter().filter(|s| !s.1).map(|s| &s.0).collect();
        assert!(
            shown.is_empty() || hidden.is_empty(),
            "column {column} of {place} is suppressed in {hidden:?} but shown in {shown:?}"
        );
    }
    let known = |place: &String, column: usize| {
        published
            .get(&(place.clone(), column))
            .is_some_and(|seen| seen.iter().any(|s| s.1))
    };

    // The attacker: every line of every table (a row's client groups or categories against
    // its total; a column against the parent's count, where the rows make up the parent)
    // whose total is shown somewhere in the release and which has exactly one count shown
    // nowhere gives that count away.
    let groups = table_columns(&tables[0].2).0;
    let width = 1 + groups + table_columns(&tables[0].2).1;
    for ((parent, level, table), partitioned) in tables.iter().zip(&whole) {
        let margin = table.total.as_ref().expect("the parent's row");
        let rows: Vec<&proto::ComparativeRow> = table
            .rows
            .iter()
            .chain(partitioned.then_some(margin))
            .collect();
        for row in &rows {
            let place = code(row);
            if !known(&place, 0) {
                continue;
            }
            for line in [1..1 + groups, 1 + groups..width] {
                let unknown: Vec<usize> = line.filter(|&c| !known(&place, c)).collect();
                assert_ne!(
                    unknown.len(),
                    1,
                    "{place}'s column {unknown:?} follows from its total (table {parent} by \
                     {level:?})"
                );
            }
        }
        if !partitioned {
            continue;
        }
        for column in 0..width {
            if !known(parent, column) {
                continue;
            }
            let unknown: Vec<String> = table
                .rows
                .iter()
                .map(code)
                .filter(|place| !known(place, column))
                .collect();
            assert_ne!(
                unknown.len(),
                1,
                "column {column} of {unknown:?} follows from {parent}'s, less the other rows of \
                 its table by {level:?}"
            );
        }
    }
}

#[tokio::test]
async fn records_outside_a_tables_rows_are_not_given_away_by_its_total() {
    // Clinical commissioning groups are made of LSOAs: records placed at a ward are in their
    // district, region and England, but in no clinical commissioning group. The table of the
    // North East by clinical commissioning group then has a remainder, the region less its
    // rows, that no row shows; three records there must not follow by subtraction.
    // (Records of the health trust are child protection plans, under neglect.)
    let (_server, connection) = TestServer::north_east().await;
    let containers = north_east_containers();
    // Ten records at an LSOA of each clinical commissioning group and of Newcastle, so that
    // every row shows, then the three at a ward of Newcastle.
    let mut lsoa_of: std::collections::BTreeMap<&String, &String> = Default::default();
    for (lsoa, places) in &containers {
        for ccg in places.iter().filter(|p| p.starts_with("E38")) {
            lsoa_of.entry(ccg).or_insert(lsoa);
        }
    }
    let places = lsoa_of
        .values()
        .map(|lsoa| lsoa.as_str())
        .chain(std::iter::once(NEWCASTLE_LSOA))
        .flat_map(|lsoa| std::iter::repeat_n(lsoa, 10))
        .chain(std::iter::repeat_n(NEWCASTLE_WARD, 3));
    let records: Vec<proto::RiskRecord> = places
        .enumerate()
        .map(|(n, place)| {
            rec(
                "RTD",
                &format!("W-{n}"),
                place,
                0,
                proto::Severity::Medium,
                2,
            )
        })
        .collect();
    let answers = push_all(&connection, records).await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32)
    );
    cut_release(&connection).await;
    let tables = every_table_of_the_release(&connection, &containers).await;

    // Every (place, column) shown anywhere in the release: the rows of every table, and the
    // parent's row of every table.
    let mut known: std::collections::BTreeSet<(String, usize)> = Default::default();
    for (_, _, table) in &tables {
        for row in table.rows.iter().chain(table.total.as_ref()) {
            for (c, count) in counts(row).iter().enumerate() {
                if !count.suppressed {
                    known.insert((code(row), c));
                }
            }
        }
    }
    // The columns the three records are in: the total, their client group, their category.
    let (groups, _) = table_columns(&tables[0].2);
    let group = tables[0]
        .2
        .client_groups
        .iter()
        .position(|g| *g == proto::ClientGroup::ChildProtectionPlan as i32)
        .expect("client group column");
    let category = tables[0]
        .2
        .categories
        .iter()
        .position(|c| *c == proto::RiskCategory::Neglect as i32)
        .expect("category column");
    let mut checked = 0;
    for (parent, level, table) in &tables {
        let contains_the_ward = parent == NORTH_EAST || parent == ENGLAND;
        if *level != proto::PlaceLevel::ClinicalCommissioningGroup || !contains_the_ward {
            continue;
        }
        for column in [0, 1 + group, 1 + groups + category] {
            let parent_shown = known.contains(&(parent.clone(), column));
            let rows_shown = table
                .rows
                .iter()
                .all(|row| known.contains(&(code(row), column)));
            assert!(
                !(parent_shown && rows_shown),
                "column {column} of {parent} less its clinical commissioning groups gives away \
                 the 3 records outside them"
            );
            checked += 1;
        }
        // The table's own last row is the parent's count, suppressed where the parent's row is
        // suppressed anywhere in the release.
        let margin = counts(table.total.as_ref().expect("the parent's row"));
        for (c, count) in margin.iter().enumerate() {
            assert_eq!(
                !count.suppressed,
                known.contains(&(parent.clone(), c)),
                "column {c} of {parent}'s row in its table by clinical commissioning group"
            );
        }
    }
    assert_eq!(
        checked, 6,
        "the North East's and England's tables were checked"
    );
}

/// How many client-group and category columns a table has.
fn table_columns(table: &proto::GetComparativeTableResponse) -> (usize, usize) {
    (table.client_groups.len(), table.categories.len())
}

#[tokio::test]
async fn a_release_stands_at_its_point_while_records_arrive_and_cuts_never_interleave() {
    // Computing a release happens off the writer, so records keep arriving meanwhile; the
    // release must still stand exactly at the point it was fixed. (How long a push waits
    // during a cut is a matter for a benchmark, not a timed test.)
    let (server, connection) = TestServer::north_east().await;
    let containers = north_east_containers();
    push_across_the_north_east(&connection, &containers, "A").await;
    let first = cut_release(&connection).await;
    push_across_the_north_east(&connection, &containers, "B").await;
    let cutting = {
        let connection = connection.clone();
        tokio::spawn(async move { cut_release(&connection).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let answers = push_all(
        &connection,
        vec![rec(
            NEWCASTLE,
            "during-the-cut",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Medium,
            2,
        )],
    )
    .await;
    let second = cutting.await.expect("the cut");
    assert_eq!(answers[0].outcome, proto::Outcome::Accepted as i32);
    // Whichever of the two reached the writer first, the release stands at its own point
    // (checked against the log below) and takes the next number.
    assert_eq!(second.number, first.number + 1);
    // Two cuts asked for at once are cut one after the other: numbers without a gap, each
    // standing at its own point.
    let (a, b) = tokio::join!(cut_release(&connection), cut_release(&connection));
    let mut numbers = [a.number, b.number];
    numbers.sort_unstable();
    assert_eq!(numbers, [second.number + 1, second.number + 2]);
    // And each is what the log gives at its sequence.
    let checking = server.store().clone();
    let problems = tokio::task::spawn_blocking(move || checking.verify_releases())
        .await
        .expect("task")
        .expect("verify");
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn the_public_table_gives_rates_from_the_published_counts_and_none_for_a_suppressed_one() {
    let (_server, connection) = north_east_with_counts().await;
    let before = table(&connection, NORTH_EAST, proto::PlaceLevel::County).await;
    assert!(
        before
            .rows
            .iter()
            .flat_map(|r| &r.by_client_group)
            .all(|c| c.rate.is_none()),
        "no population imported, no rates"
    );
    let population = marr::cli::population::read_tables(&[population_file(POPULATION_LA)])
        .expect("population table");
    marr::cli::population::import_tables(&connection.admin, population)
        .await
        .expect("population import");
    let after = table(&connection, NORTH_EAST, proto::PlaceLevel::County).await;
    let group = after
        .client_groups
        .iter()
        .position(|g| *g == proto::ClientGroup::ChildProtectionPlan as i32)
        .expect("a column for child protection plans");
    let cell = |code: &str| {
        after
            .rows
            .iter()
            .find(|r| r.place.as_ref().is_some_and(|p| p.code == code))
            .map(|r| r.by_client_group[group])
            .expect("row")
    };
    // Newcastle's 23 children on a plan are published as 25; the rate is of the 25.
    let newcastle = cell(NEWCASTLE);
    assert_eq!((newcastle.value, newcastle.suppressed), (25, false));
    let la = marr::cli::places::read_table(&population_file(POPULATION_LA)).expect("readable");
    let column = |name: &str| la.header.iter().position(|h| h == name).expect(name);
    let (area, year, children) = (
        column("area_code"),
        column("year"),
        column("population_0_17"),
    );
    let newcastle_children: u64 = la
        .rows
        .iter()
        .find(|r| r.cells[area] == NEWCASTLE && r.cells[year] == "2024")
        .expect("Newcastle's 2024 row")
        .cells[children]
        .parse()
        .expect("a number");
    let rate = newcastle.rate.expect("a rate for a shown count");
    assert_eq!((rate.population, rate.year), (newcastle_children, 2024));
    assert!((rate.per_ten_thousand - 25.0 * 10_000.0 / newcastle_children as f64).abs() < 1e-9);
    // Gateshead's three are suppressed: a rate with the population would give them away.
    let gateshead = cell(GATESHEAD);
    assert!(gateshead.suppressed);
    assert!(gateshead.rate.is_none());
    // Categories have no population of their own.
    assert!(
        after
            .rows
            .iter()
            .flat_map(|r| &r.by_category)
            .all(|c| c.rate.is_none())
    );
}

/// A web download of a release's table is laid out by the application; `marr export` lays out
/// the gRPC answer. Both go through one layout, so the two files are the same, line for line,
/// for a local authority table and for a police force's (with its footprint columns).
#[tokio::test]
async fn the_applications_tidy_table_is_the_file_marr_export_writes() {
    let (server, _connection) = north_east_with_counts().await;
    let trail = Arc::new(marr::app::AuditTrail::new(
        server.store().clone(),
        std::num::NonZeroU32::MAX,
        std::num::NonZeroU32::MAX,
    ));
    let app = marr::app::Application::new(server.store().clone(), trail);
    let rule =
        marr::auth::policy::rule_for("/marr.v1.OpenData/GetComparativeTable").expect("a rule");
    let public = Arc::new(marr::auth::Principal::public("a browser"));
    let caller = marr::auth::Caller::new(public, rule, "a browser");
    let dir = tempfile::tempdir().expect("dir");
    for (parent, level, word) in [
        (NORTH_EAST, marr::domain::PlaceLevel::County, "county"),
        (NORTHUMBRIA, marr::domain::PlaceLevel::District, "district"),
    ] {
        let out = dir.path().join(format!("{parent}.csv"));
        let exported = export_csv(&server.url, &["--parent", parent, "--level", word], &out).await;
        let mut reader = csv::Reader::from_path(&out).expect("csv");
        let header: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(String::from)
            .collect();
        let exported: Vec<Vec<String>> = exported
            .iter()
            .map(|line| line.iter().map(String::from).collect())
            .collect();

        let tidy = app
            .tidy_table(&caller, parent, Some(level), None)
            .expect("the latest release's table");
        assert_eq!(tidy.header, header, "{parent}");
        assert!(!exported.is_empty(), "{parent}: the export has lines");
        assert_eq!(tidy.lines, exported, "{parent}");
    }
}
