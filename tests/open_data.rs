//! Open data: comparable per-place figures under disclosure control, for anyone, and the
//! tidy CSV export.

mod common;

use std::process::Command;

use common::*;
use marr::proto;
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
    (server, connection)
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
