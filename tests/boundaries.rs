//! Boundaries for maps: the ONS boundary files imported over gRPC as published, every current
//! English district and upper-tier authority given its shape, and every police force area the
//! outline of its districts.

mod common;

use std::collections::BTreeSet;

use common::*;
use marr::cli::{ClientError, boundaries};
use marr::domain::boundaries::{Bounds, Shape};
use marr::domain::{PlaceCode, PlaceLevel};
use marr::proto;
use tonic::Code;

const SAFETY: &str = "lad24-csp24-pfa24.csv";
/// Northumbria's force: Newcastle, Gateshead, North and South Tyneside, Sunderland and
/// Northumberland, one coastline with a few islands.
const NORTHUMBRIA_POLICE: &str = "E23000007";

fn code(text: &str) -> PlaceCode {
    PlaceCode::parse(text).expect("a code")
}

fn the_files() -> Vec<marr::domain::boundaries::BoundaryFile> {
    boundaries::read_files(&[
        boundaries_file(BOUNDARIES_TOPO),
        boundaries_file(BOUNDARIES_ICB),
        boundaries_file(BOUNDARIES_SUB_ICB),
    ])
    .expect("the boundary files read")
}

/// England's police force areas, as the published lookup lists them.
fn english_police_force_areas() -> BTreeSet<String> {
    let table = marr::cli::places::read_table(&current_geography_file(SAFETY)).expect("readable");
    let column = table
        .header
        .iter()
        .position(|h| h.trim_start_matches('\u{feff}') == "pfa24_code")
        .expect("pfa24_code");
    table
        .rows
        .iter()
        .map(|row| row.cells[column].clone())
        .filter(|code| code.starts_with("E23"))
        .collect()
}

/// England's upper-tier authorities and districts as the directory lists them: walked down
/// from England through its regions, as a map of a region's children would be.
fn english_authorities(server: &TestServer) -> (BTreeSet<PlaceCode>, BTreeSet<PlaceCode>) {
    let store = server.store();
    let mut upper = BTreeSet::new();
    let mut districts = BTreeSet::new();
    let regions = store.child_places(code(ENGLAND)).expect("England");
    assert_eq!(regions.len(), 9);
    for region in regions {
        for child in store.child_places(region.code).expect("a region") {
            match child.level {
                PlaceLevel::District => {
                    upper.insert(child.code);
                    districts.insert(child.code);
                }
                PlaceLevel::County => {
                    // A metropolitan county (E11) has no council: its districts are the upper tier.
                    let council = !child.code.as_str().starts_with("E11");
                    if council {
                        upper.insert(child.code);
                    }
                    for district in store.child_places(child.code).expect("a county") {
                        if !council {
                            upper.insert(district.code);
                        }
                        districts.insert(district.code);
                    }
                }
                other => panic!("{} under a region is a {other}", child.code),
            }
        }
    }
    (upper, districts)
}

fn bounds(shape: &Shape) -> Bounds {
    shape.bounds().expect("a shape with points")
}

#[tokio::test]
async fn every_current_district_and_upper_tier_authority_has_a_shape_and_every_police_force_area_its_districts_outline()
 {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    marr::cli::places::import_tables(&connection, current_geography_tables())
        .await
        .expect("the current geography imports");

    let report = boundaries::import_files(&connection.admin, the_files())
        .await
        .expect("the boundaries import");
    assert!(report.shapes_stored > 500, "{report:?}");
    // 43 forces of England and Wales, and every community safety partnership.
    assert!(report.shapes_dissolved > 43 + 250, "{report:?}");
    let unknown = report
        .skipped
        .iter()
        .find(|s| s.reason == "no such place")
        .expect("combined authorities are not places of the register");
    assert!(
        unknown.examples.iter().any(|e| e.starts_with("E47")),
        "{unknown:?}"
    );
    // Districts merged or recoded since 2014 are named in the file too: their successors
    // have shapes of their own.
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.reason == "replaced by a place with a shape of its own"),
        "{report:?}"
    );
    assert_eq!(
        report.features_read,
        report.shapes_stored + report.features_skipped,
        "every feature was stored or skipped with its reason: {report:?}"
    );

    let store = server.store();
    let (upper, districts) = english_authorities(&server);
    assert!(upper.len() >= 150 && districts.len() >= 290, "{upper:?}");
    for place in upper.iter().chain(&districts) {
        assert!(
            store.shape(*place).expect("readable").is_some(),
            "{place} has no shape"
        );
    }

    let forces = english_police_force_areas();
    assert_eq!(forces.len(), 39);
    for force in &forces {
        let force = code(force);
        let outline = store
            .shape(force)
            .expect("readable")
            .unwrap_or_else(|| panic!("{force} has no outline"));
        let members: Vec<PlaceCode> = store
            .child_places(force)
            .expect("a force")
            .iter()
            .map(|p| p.code)
            .collect();
        assert!(!members.is_empty(), "{force}");
        let shapes = store.shapes(&members).expect("readable");
        let mut held = shapes.iter().map(|s| s.as_ref().expect("a member's shape"));
        let first = bounds(held.next().expect("a member"));
        let union = held.fold(first, |all, shape| all.union(bounds(shape)));
        assert_eq!(bounds(&outline), union, "{force}");
        // Shared borders cancel: the outline has fewer rings than its districts together.
        let member_rings: usize = shapes.iter().flatten().map(|s| s.rings().count()).sum();
        if members.len() > 1 {
            assert!(
                outline.rings().count() < member_rings,
                "{force}: {} rings from {member_rings}",
                outline.rings().count()
            );
        }
    }

    // Northumbria's six districts make one mainland outline, not six.
    let northumbria = store
        .shape(code(NORTHUMBRIA_POLICE))
        .expect("readable")
        .expect("Northumbria's outline");
    let members = store.child_places(code(NORTHUMBRIA_POLICE)).expect("force");
    assert_eq!(members.len(), 6);
    // Northumberland's mainland and its islands (Holy Island, the Farnes, Coquet…), with the
    // five Tyne and Wear districts joined to the mainland, and no hole left between them.
    let northumberland = store
        .shape(code("E06000057"))
        .expect("read")
        .expect("shape");
    assert!(northumberland.polygons.len() > 1);
    assert_eq!(northumbria.polygons.len(), northumberland.polygons.len());
    assert!(northumbria.polygons.iter().all(|p| p.rings.len() == 1));
    // Newcastle lies inside the force, away from its edge: its border is not on the outline.
    let outline: BTreeSet<_> = northumbria
        .rings()
        .flat_map(|r| r.points.iter().copied())
        .collect();
    let newcastle = store.shape(code(NEWCASTLE)).expect("read").expect("shape");
    let border = &newcastle.polygons[0].rings[0].points;
    let inside = border.iter().filter(|p| !outline.contains(p)).count();
    assert!(inside > border.len() / 2, "{inside} of {}", border.len());
}

#[tokio::test]
async fn an_import_by_anyone_but_an_administrator_is_refused_and_stores_nothing() {
    let (server, connection) = TestServer::north_east().await;
    for (caller, refused_as) in [
        (
            connection.as_token(agency_token(NEWCASTLE)),
            Code::PermissionDenied,
        ),
        (connection.as_token(INSPECTOR), Code::PermissionDenied),
        (connection.as_token(BOARD), Code::PermissionDenied),
        (connection.public.clone(), Code::Unauthenticated),
    ] {
        let refused = boundaries::import_files(&caller, the_files())
            .await
            .expect_err("not an administrator");
        let ClientError::Refused(status) = refused else {
            panic!("not a refusal: {refused}");
        };
        assert_eq!(status.code(), refused_as, "{status:?}");
    }
    assert_eq!(server.store().boundaries_held().expect("readable"), 0);
    assert_eq!(server.store().shape(code(NEWCASTLE)).expect("read"), None);
}

fn ring(coordinates: Vec<i32>) -> proto::BoundaryPolygon {
    proto::BoundaryPolygon {
        rings: vec![proto::BoundaryRing { coordinates }],
    }
}

#[tokio::test]
async fn a_malformed_file_or_shape_is_refused_naming_the_reason_and_nothing_is_stored() {
    let (server, connection) = TestServer::north_east().await;
    let dir = tempfile::tempdir().expect("dir");

    // Eastings and northings (British National Grid), not longitude and latitude.
    let projected = dir.path().join("lad-bng.geo.json");
    std::fs::write(
        &projected,
        r#"{"type": "FeatureCollection", "features": [{"type": "Feature",
            "properties": {"LAD24CD": "E08000021"}, "geometry": {"type": "Polygon",
            "coordinates": [[[420000, 560000], [430000, 560000], [430000, 570000], [420000, 560000]]]}}]}"#,
    )
    .expect("written");
    let refused = boundaries::read_files(&[boundaries_file(BOUNDARIES_ICB), projected])
        .expect_err("not in degrees");
    let message = refused.to_string();
    for named in ["lad-bng.geo.json", "feature 1", "WGS84"] {
        assert!(message.contains(named), "{message}");
    }

    // A topology naming an arc it does not have.
    let broken = dir.path().join("broken.topo.json");
    std::fs::write(
        &broken,
        r#"{"type": "Topology", "arcs": [], "objects": {"ltla": {"type": "GeometryCollection",
            "geometries": [{"type": "Polygon", "arcs": [[0]], "properties": {"areacd": "E08000021"}}]}}}"#,
    )
    .expect("written");
    let refused = boundaries::read_files(&[broken]).expect_err("no such arc");
    assert!(refused.to_string().contains("arc 0"), "{refused}");

    // Sent by another client: a good shape, then one whose ring does not close. The whole
    // import is refused, the good shape with it.
    let chunk = proto::ImportBoundariesRequest {
        source: "hand-made.geo.json".into(),
        shapes: vec![
            proto::BoundaryShape {
                code: NEWCASTLE.into(),
                polygons: vec![ring(vec![
                    -16_000, 549_700, -15_000, 549_700, -15_000, 550_500, -16_000, 549_700,
                ])],
            },
            proto::BoundaryShape {
                code: GATESHEAD.into(),
                polygons: vec![ring(vec![
                    -16_000, 549_000, -15_000, 549_000, -15_000, 549_600, -16_000, 549_100,
                ])],
            },
        ],
        skipped: Vec::new(),
    };
    let status = connection
        .admin
        .directory()
        .import_boundaries(tokio_stream::iter(vec![chunk]))
        .await
        .expect_err("a ring that does not close");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    for named in [GATESHEAD, "not closed", "hand-made.geo.json"] {
        assert!(status.message().contains(named), "{}", status.message());
    }
    assert_eq!(server.store().boundaries_held().expect("readable"), 0);
    assert_eq!(server.store().shape(code(NEWCASTLE)).expect("read"), None);
}

#[tokio::test]
async fn boundaries_survive_a_backup_and_a_restore() {
    let (server, connection) = TestServer::north_east().await;
    let report = boundaries::import_files(&connection.admin, the_files())
        .await
        .expect("the import");
    assert!(report.shapes_dissolved >= 1, "Northumbria: {report:?}");
    let held = server.store().boundaries_held().expect("readable");
    let newcastle = server.store().shape(code(NEWCASTLE)).expect("read");
    let northumbria = server.store().shape(code(NORTHUMBRIA)).expect("read");
    assert!(newcastle.is_some() && northumbria.is_some());
    // The import is in the audit chain, with what it stored.
    let events = connection
        .audit()
        .list_audit_events(proto::ListAuditEventsRequest::default())
        .await
        .expect("the audit chain")
        .into_inner()
        .events;
    let import = events
        .iter()
        .find(|e| e.method.ends_with("/ImportBoundaries"))
        .expect("the import's audit event");
    assert!(
        import.outcome.contains(&format!(
            "{} boundaries stored, {} dissolved",
            report.shapes_stored, report.shapes_dissolved
        )),
        "{import:?}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("marr.backup");
    let (summary, _) = marr::cli::backup::backup(&connection.admin, &file)
        .await
        .expect("backup");
    assert!(
        summary.to_string().contains(&format!("{held} boundaries")),
        "{summary}"
    );
    let restored_dir = dir.path().join("restored");
    let input = std::fs::File::open(&file).expect("the backup opens");
    tokio::task::spawn_blocking(move || {
        marr::store::Store::restore(&restored_dir, input).expect("restores");
        let restored = marr::store::Store::open(&restored_dir).expect("opens");
        assert_eq!(restored.boundaries_held().expect("readable"), held);
        assert_eq!(restored.shape(code(NEWCASTLE)).expect("read"), newcastle);
        assert_eq!(
            restored.shape(code(NORTHUMBRIA)).expect("read"),
            northumbria
        );
        restored.close_blocking().expect("closes");
    })
    .await
    .expect("restore");
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
async fn marr_boundaries_import_prints_its_report_or_one_line_naming_a_bad_file() {
    let (server, _connection) = TestServer::north_east().await;
    let import = |file: String| -> Vec<String> {
        vec![
            "boundaries".into(),
            "import".into(),
            file,
            "--server".into(),
            server.url.clone(),
            "--token".into(),
            ADMIN.into(),
        ]
    };

    let output = marr(import(
        boundaries_file(BOUNDARIES_TOPO).display().to_string(),
    ))
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The North East's districts and more; Northumbria's force dissolved from its six.
    assert!(stdout.contains("shapes stored"), "{stdout}");
    assert!(
        stdout.contains("dissolved from districts") && stdout.contains("skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("no such place"), "{stdout}");
    let held = server.store().boundaries_held().expect("readable");
    assert!(held > 10, "{held}");

    let dir = tempfile::tempdir().expect("dir");
    let csv = dir.path().join("districts.csv");
    std::fs::write(&csv, "LAD24CD,LAD24NM\nE08000021,Newcastle upon Tyne\n").expect("written");
    let output = marr(import(csv.display().to_string())).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("marr: INVALID_ARGUMENT: ") && stderr.contains("districts.csv"),
        "{stderr}"
    );
    assert_eq!(server.store().boundaries_held().expect("readable"), held);
}
