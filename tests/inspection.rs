//! Inspection views over real gRPC and the real North East geography.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

use marr::proto::{self, inspection_client::InspectionClient};
use tonic::Code;

fn inspection(connection: &Connection) -> InspectionClient<marr::cli::Authenticated> {
    connection.inspection()
}

async fn view(connection: &Connection, place: &str, as_of: u64) -> proto::PlaceView {
    inspection(connection)
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: place.into(),
            filter: None,
            as_of_sequence: as_of,
        })
        .await
        .expect("view")
        .into_inner()
        .view
        .expect("view")
}

fn accepted(answers: &[proto::PushRecordsResponse]) {
    for a in answers {
        assert_eq!(
            a.outcome,
            proto::Outcome::Accepted as i32,
            "{}: {}",
            a.index,
            a.reason
        );
    }
}

/// A spread of records from three agencies over Northumbria's districts.
fn spread() -> Vec<proto::RiskRecord> {
    let districts = [
        "E06000057",
        NEWCASTLE,
        "E08000022",
        "E08000023",
        "E08000024",
        GATESHEAD,
    ];
    let severities = [
        proto::Severity::Low,
        proto::Severity::Medium,
        proto::Severity::High,
        proto::Severity::Critical,
    ];
    let mut records = Vec::new();
    for i in 0..120u32 {
        let district = districts[i as usize % districts.len()];
        let severity = severities[i as usize % 4];
        records.push(rec(
            NORTHUMBRIA,
            &format!("P-{i}"),
            district,
            i % 17 + 1,
            severity,
            10,
        ));
        records.push(rec(
            "RTD",
            &format!("H-{i}"),
            district,
            i % 13 + 1,
            severity,
            10,
        ));
    }
    for i in 0..40u32 {
        records.push(rec(
            NEWCASTLE,
            &format!("C-{i}"),
            NEWCASTLE_WARD,
            i % 11 + 1,
            severities[i as usize % 4],
            10,
        ));
    }
    // A Hartlepool record, outside Northumbria, that the force area must not count.
    records.push(rec(
        "RTD",
        "H-HARTLEPOOL",
        HARTLEPOOL,
        1,
        proto::Severity::High,
        10,
    ));
    records
}

#[tokio::test]
async fn a_police_force_area_view_is_the_sum_of_its_districts() {
    let (_server, connection) = TestServer::north_east().await;
    accepted(&push_all(&connection, spread()).await);
    let force = view(&connection, NORTHUMBRIA, 0).await;
    assert_eq!(force.total_active, 280);
    let mut sum_total = 0;
    let mut sum_by_agency: BTreeMap<String, u64> = BTreeMap::new();
    let mut sum_by_severity: BTreeMap<i32, u64> = BTreeMap::new();
    for child in &force.children {
        let district = view(&connection, &child.place.as_ref().expect("place").code, 0).await;
        assert_eq!(child.active, district.total_active);
        sum_total += district.total_active;
        for a in &district.by_agency {
            *sum_by_agency.entry(a.agency_id.clone()).or_default() += a.active;
        }
        for s in &district.by_severity {
            *sum_by_severity.entry(s.severity).or_default() += s.active;
        }
    }
    assert_eq!(force.children.len(), 6);
    assert_eq!(force.total_active, sum_total);
    let force_by_agency: BTreeMap<String, u64> = force
        .by_agency
        .iter()
        .map(|a| (a.agency_id.clone(), a.active))
        .collect();
    assert_eq!(force_by_agency, sum_by_agency);
    let force_by_severity: BTreeMap<i32, u64> = force
        .by_severity
        .iter()
        .map(|s| (s.severity, s.active))
        .collect();
    assert_eq!(force_by_severity, sum_by_severity);
    // The region sees the Hartlepool record too.
    assert_eq!(view(&connection, NORTH_EAST, 0).await.total_active, 281);
}

#[tokio::test]
async fn a_view_as_of_a_sequence_equals_the_live_view_captured_then() {
    let (_server, connection) = TestServer::north_east().await;
    accepted(&push_all(&connection, spread()).await);
    let captured: Vec<proto::PlaceView> = futures_views(
        &connection,
        &[NORTH_EAST, NORTHUMBRIA, NEWCASTLE, NEWCASTLE_WARD],
    )
    .await;
    let head = captured[0].consistent_at_sequence;
    assert_eq!(head, 281);

    // Escalate, close, move and mark in error some of them.
    let mut changes = Vec::new();
    for i in 0..30u32 {
        let mut r = rec(
            NORTHUMBRIA,
            &format!("P-{i}"),
            GATESHEAD_WARD,
            i % 17 + 1,
            proto::Severity::Critical,
            2,
        );
        if i % 3 == 0 {
            r.status = proto::RecordStatus::Closed as i32;
        } else if i % 3 == 1 {
            r.status = proto::RecordStatus::EnteredInError as i32;
        }
        changes.push(r);
    }
    accepted(&push_all(&connection, changes).await);
    let live = view(&connection, NORTHUMBRIA, 0).await;
    assert_ne!(live, captured[1], "the changes moved the live view");

    for (place, then) in [NORTH_EAST, NORTHUMBRIA, NEWCASTLE, NEWCASTLE_WARD]
        .iter()
        .zip(&captured)
    {
        assert_eq!(
            &view(&connection, place, head).await,
            then,
            "{place} as of {head}"
        );
    }
    let ahead = inspection(&connection)
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: NORTH_EAST.into(),
            filter: None,
            as_of_sequence: 10_000,
        })
        .await
        .expect_err("ahead of the head");
    assert_eq!(ahead.code(), Code::InvalidArgument);
}

async fn futures_views(connection: &Connection, places: &[&str]) -> Vec<proto::PlaceView> {
    let mut views = Vec::new();
    for place in places {
        views.push(view(connection, place, 0).await);
    }
    views
}

#[tokio::test]
async fn distinct_subjects_converge_as_agencies_join_and_leave() {
    let (_server, connection) = TestServer::north_east().await;
    let s = 42;
    let counts = |v: proto::PlaceView| {
        (
            v.subjects_at_two_or_more_agencies,
            v.subjects_at_two_or_more_agency_kinds,
        )
    };

    accepted(
        &push_all(
            &connection,
            vec![rec(
                NEWCASTLE,
                "C-1",
                NEWCASTLE_WARD,
                s,
                proto::Severity::High,
                9,
            )],
        )
        .await,
    );
    assert_eq!(
        counts(view(&connection, NEWCASTLE, 0).await),
        (0, 0),
        "one agency"
    );

    accepted(
        &push_all(
            &connection,
            vec![rec(
                NORTHUMBRIA,
                "P-1",
                NEWCASTLE,
                s,
                proto::Severity::High,
                9,
            )],
        )
        .await,
    );
    assert_eq!(
        counts(view(&connection, NEWCASTLE, 0).await),
        (1, 1),
        "two agencies of two kinds"
    );
    assert_eq!(counts(view(&connection, NORTH_EAST, 0).await), (1, 1));
    assert_eq!(
        counts(view(&connection, NEWCASTLE_WARD, 0).await),
        (0, 0),
        "police record is at district level"
    );

    accepted(
        &push_all(
            &connection,
            vec![rec(
                "RTD",
                "H-1",
                NEWCASTLE_WARD,
                s,
                proto::Severity::Low,
                9,
            )],
        )
        .await,
    );
    assert_eq!(
        counts(view(&connection, NEWCASTLE, 0).await),
        (1, 1),
        "three agencies, still one subject"
    );
    assert_eq!(
        counts(view(&connection, NEWCASTLE_WARD, 0).await),
        (1, 1),
        "council and health in the ward"
    );

    // A second subject at the police force alone, twice, counts for nothing.
    accepted(
        &push_all(
            &connection,
            vec![
                rec(NORTHUMBRIA, "P-2", NEWCASTLE, 7, proto::Severity::High, 9),
                rec(NORTHUMBRIA, "P-3", GATESHEAD, 7, proto::Severity::High, 9),
            ],
        )
        .await,
    );
    assert_eq!(counts(view(&connection, NORTH_EAST, 0).await), (1, 1));

    let mut closed = rec(NORTHUMBRIA, "P-1", NEWCASTLE, s, proto::Severity::High, 1);
    closed.status = proto::RecordStatus::Closed as i32;
    accepted(&push_all(&connection, vec![closed]).await);
    assert_eq!(
        counts(view(&connection, NEWCASTLE, 0).await),
        (1, 1),
        "council and health remain"
    );

    let mut gone = rec("RTD", "H-1", NEWCASTLE_WARD, s, proto::Severity::Low, 1);
    gone.status = proto::RecordStatus::EnteredInError as i32;
    accepted(&push_all(&connection, vec![gone]).await);
    assert_eq!(
        counts(view(&connection, NEWCASTLE, 0).await),
        (0, 0),
        "only the council remains"
    );
    assert_eq!(counts(view(&connection, NORTH_EAST, 0).await), (0, 0));
}

#[tokio::test]
async fn following_a_subject_needs_a_purpose_and_shows_every_revision_in_time_order() {
    let (_server, connection) = TestServer::north_east().await;
    let s = 5;
    accepted(
        &push_all(
            &connection,
            vec![
                rec(
                    NEWCASTLE,
                    "C-1",
                    NEWCASTLE_WARD,
                    s,
                    proto::Severity::Medium,
                    50,
                ),
                rec(
                    NORTHUMBRIA,
                    "P-1",
                    GATESHEAD_WARD,
                    s,
                    proto::Severity::High,
                    40,
                ),
                rec(
                    NEWCASTLE,
                    "C-1",
                    NEWCASTLE_WARD,
                    s,
                    proto::Severity::Critical,
                    30,
                ),
                rec(
                    NEWCASTLE,
                    "C-OTHER",
                    NEWCASTLE_WARD,
                    6,
                    proto::Severity::Critical,
                    30,
                ),
            ],
        )
        .await,
    );
    let refused = inspection(&connection)
        .follow_subject(proto::FollowSubjectRequest {
            subject_key: subject(s),
            purpose: "checking".into(),
            as_of_sequence: 0,
        })
        .await
        .expect_err("purpose too short");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("purpose"),
        "{}",
        refused.message()
    );

    let trail = inspection(&connection)
        .follow_subject(proto::FollowSubjectRequest {
            subject_key: subject(s),
            purpose: "Joint inspection: missing-from-home episodes".into(),
            as_of_sequence: 0,
        })
        .await
        .expect("trail")
        .into_inner()
        .trail;
    let steps: Vec<(String, u32, String)> = trail
        .iter()
        .map(|t| {
            let r = t.revision.as_ref().expect("revision");
            (
                r.record.as_ref().expect("record").local_ref.clone(),
                r.revision,
                t.agency_name.clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("C-1".to_string(), 1, format!("agency {NEWCASTLE}")),
            ("P-1".to_string(), 1, format!("agency {NORTHUMBRIA}")),
            ("C-1".to_string(), 2, format!("agency {NEWCASTLE}")),
        ]
    );
    assert_eq!(trail[1].place_name, "Winlaton and High Spen");

    // As of sequence 2, the council's escalation had not happened yet.
    let then = inspection(&connection)
        .follow_subject(proto::FollowSubjectRequest {
            subject_key: subject(s),
            purpose: "Joint inspection: missing-from-home episodes".into(),
            as_of_sequence: 2,
        })
        .await
        .expect("trail")
        .into_inner();
    assert_eq!(then.consistent_at_sequence, 2);
    let revisions: Vec<u64> = then
        .trail
        .iter()
        .map(|t| t.revision.as_ref().expect("revision").sequence)
        .collect();
    assert_eq!(revisions, vec![1, 2]);
}

#[tokio::test]
async fn list_risks_pages_newest_first_through_exactly_the_active_records_under_a_place() {
    let (_server, connection) = TestServer::north_east().await;
    accepted(&push_all(&connection, spread()).await);
    let mut closed = rec(NORTHUMBRIA, "P-0", "E06000057", 1, proto::Severity::Low, 1);
    closed.status = proto::RecordStatus::Closed as i32;
    accepted(&push_all(&connection, vec![closed]).await);

    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = inspection(&connection)
            .list_risks(proto::ListRisksRequest {
                place_code: NORTHUMBRIA.into(),
                filter: Some(proto::ViewFilter {
                    client_groups: vec![],
                    categories: vec![],
                    min_severity: proto::Severity::High as i32,
                }),
                page_size: 25,
                page_token: token.clone(),
                as_of_sequence: 0,
            })
            .await
            .expect("page")
            .into_inner();
        assert!(page.risks.len() <= 25);
        seen.extend(page.risks.iter().map(|r| r.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        seen.len(),
        "no record twice"
    );
    let expected = view(&connection, NORTHUMBRIA, 0).await;
    let high_or_worse: u64 = expected
        .by_severity
        .iter()
        .filter(|s| s.severity >= proto::Severity::High as i32)
        .map(|s| s.active)
        .sum();
    assert_eq!(
        seen.len() as u64,
        high_or_worse,
        "the list agrees with the counters"
    );
}

#[tokio::test]
async fn a_snapshot_never_changes_and_views_survive_a_restart() {
    let (server, connection) = TestServer::north_east().await;
    accepted(&push_all(&connection, spread()).await);
    let snapshot = inspection(&connection)
        .create_snapshot(proto::CreateSnapshotRequest {
            place_code: NORTHUMBRIA.into(),
            filter: None,
            label: "Joint inspection, Northumbria, spring".into(),
        })
        .await
        .expect("snapshot")
        .into_inner()
        .snapshot
        .expect("snapshot");
    accepted(
        &push_all(
            &connection,
            vec![rec(
                NORTHUMBRIA,
                "P-NEW",
                GATESHEAD,
                3,
                proto::Severity::Critical,
                1,
            )],
        )
        .await,
    );
    let before_restart = view(&connection, NORTH_EAST, 0).await;
    drop(connection);

    let server = server.restart().await;
    let connection = server.connect().await;
    let again = inspection(&connection)
        .get_snapshot(proto::GetSnapshotRequest { id: snapshot.id })
        .await
        .expect("snapshot")
        .into_inner()
        .snapshot
        .expect("snapshot");
    assert_eq!(again, snapshot, "a snapshot is returned exactly as frozen");
    assert_eq!(snapshot.view.as_ref().expect("view").total_active, 280);
    assert_eq!(
        view(&connection, NORTH_EAST, 0).await,
        before_restart,
        "counters are rebuilt from the log"
    );
    let missing = inspection(&connection)
        .get_snapshot(proto::GetSnapshotRequest { id: 99 })
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn compare_places_ranks_the_districts_of_a_force_area() {
    let (_server, connection) = TestServer::north_east().await;
    let mut records = spread();
    // Newcastle has 30 critical records from the spread; Gateshead 20 and these.
    for i in 0..20 {
        records.push(rec(
            NORTHUMBRIA,
            &format!("EXTRA-{i}"),
            GATESHEAD_WARD,
            0,
            proto::Severity::Critical,
            5,
        ));
    }
    accepted(&push_all(&connection, records).await);
    let rows = inspection(&connection)
        .compare_places(proto::ComparePlacesRequest {
            parent_code: NORTHUMBRIA.into(),
            filter: None,
            sort_by: proto::PlaceMeasure::Critical as i32,
            ..Default::default()
        })
        .await
        .expect("compare")
        .into_inner()
        .rows;
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].place.as_ref().expect("place").code, GATESHEAD);
    assert!(rows.windows(2).all(|w| w[0].critical >= w[1].critical));
    let unknown = inspection(&connection)
        .compare_places(proto::ComparePlacesRequest {
            parent_code: "E23999999".into(),
            filter: None,
            sort_by: 0,
            ..Default::default()
        })
        .await
        .expect_err("unknown place");
    assert_eq!(unknown.code(), Code::NotFound);
}
