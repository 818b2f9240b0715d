//! The audit chain: every write and every record- or subject-level read leaves one event naming
//! who, what and why; an agency sees who read its records; tampering is found at the event.

mod common;

use std::process::Command;

use common::*;

use marr::domain::audit::AuditEvent;
use marr::proto;
use marr::store::Location;

async fn events(
    connection: &Connection,
    request: proto::ListAuditEventsRequest,
) -> Vec<proto::AuditEvent> {
    connection
        .audit()
        .list_audit_events(request)
        .await
        .expect("admin lists the audit chain")
        .into_inner()
        .events
}

fn methods(events: &[proto::AuditEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.method.rsplit('/').next().unwrap_or_default())
        .collect()
}

/// The North East with two Newcastle records and an inspector who has looked at them.
async fn inspected() -> (TestServer, Connection) {
    let (server, connection) = TestServer::north_east().await;
    push_all(
        &connection,
        vec![
            rec(
                NEWCASTLE,
                "A-1",
                NEWCASTLE_WARD,
                1,
                proto::Severity::High,
                3,
            ),
            rec(
                NEWCASTLE,
                "A-2",
                NEWCASTLE_WARD,
                2,
                proto::Severity::Medium,
                2,
            ),
            rec(
                NORTHUMBRIA,
                "P-1",
                NEWCASTLE_WARD,
                1,
                proto::Severity::High,
                1,
            ),
        ],
    )
    .await;
    let mut inspection = connection.inspection();
    inspection
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: NEWCASTLE.into(),
            ..Default::default()
        })
        .await
        .expect("view");
    inspection
        .list_risks(proto::ListRisksRequest {
            place_code: NEWCASTLE_WARD.into(),
            ..Default::default()
        })
        .await
        .expect("risks");
    inspection
        .follow_subject(proto::FollowSubjectRequest {
            subject_key: subject(1),
            purpose: "Joint targeted area inspection: exploitation".into(),
            as_of_sequence: 0,
        })
        .await
        .expect("trail");
    (server, connection)
}

#[tokio::test]
async fn writes_and_record_level_reads_each_leave_one_event_naming_who_what_and_why() {
    let (_server, connection) = inspected().await;
    let all = events(&connection, proto::ListAuditEventsRequest::default()).await;
    let sequences: Vec<u64> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    assert!(
        all.iter()
            .skip(1)
            .all(|e| e.previous_hash != "0".repeat(64)),
        "chained"
    );

    // One event per caller for each batch the writer made of its records.
    let (pushes, others): (Vec<_>, Vec<_>) =
        all.iter().partition(|e| e.method.ends_with("/PushRecords"));
    let others: Vec<proto::AuditEvent> = others.into_iter().cloned().collect();
    assert_eq!(
        methods(&others),
        [
            "ImportPlaces",
            "RegisterAgency",
            "RegisterAgency",
            "RegisterAgency",
            "ListRisks",
            "FollowSubject",
        ],
        "aggregate views are not record-level reads"
    );
    let newcastle: Vec<&proto::AuditEvent> = pushes
        .iter()
        .copied()
        .filter(|e| e.principal == format!("agency {NEWCASTLE}"))
        .collect();
    assert!(
        newcastle
            .iter()
            .all(|e| e.role == proto::Role::Agency as i32)
    );
    let pushed: Vec<&str> = newcastle
        .iter()
        .flat_map(|e| e.records.iter().map(|r| r.local_ref.as_str()))
        .collect();
    assert_eq!(pushed, ["A-1", "A-2"]);
    let accepted: u32 = newcastle
        .iter()
        .map(|e| {
            let counted = e
                .outcome
                .strip_prefix("OK: accepted ")
                .expect("a write's outcome");
            counted
                .split(',')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .expect("a count")
        })
        .sum();
    assert_eq!(accepted, 2);

    let trail = all.last().expect("events");
    assert_eq!(trail.principal, "inspector");
    assert_eq!(trail.subject_key, subject(1));
    assert_eq!(
        trail.purpose,
        "Joint targeted area inspection: exploitation"
    );
    let read: Vec<&str> = trail.records.iter().map(|r| r.local_ref.as_str()).collect();
    assert_eq!(read, ["A-1", "P-1"], "the trail's records");

    let by_method = events(
        &connection,
        proto::ListAuditEventsRequest {
            method: "FollowSubject".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(methods(&by_method), ["FollowSubject"]);
    let by_principal = events(
        &connection,
        proto::ListAuditEventsRequest {
            principal: "inspector".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(methods(&by_principal), ["ListRisks", "FollowSubject"]);
    let before_any = events(
        &connection,
        proto::ListAuditEventsRequest {
            to: Some(hours_ago(1)),
            ..Default::default()
        },
    )
    .await;
    assert!(before_any.is_empty(), "nothing happened an hour ago");
}

#[tokio::test]
async fn an_agency_sees_who_read_its_records_and_why_but_not_its_own_submissions() {
    let (_server, connection) = inspected().await;
    let seen = connection
        .agency(NEWCASTLE)
        .audit()
        .list_access_to_my_records(proto::ListAccessToMyRecordsRequest::default())
        .await
        .expect("an agency asks who read its records")
        .into_inner()
        .events;
    assert_eq!(methods(&seen), ["ListRisks", "FollowSubject"]);
    assert!(seen.iter().all(|e| e.principal == "inspector"));
    assert_eq!(
        seen[1].purpose,
        "Joint targeted area inspection: exploitation"
    );

    for event in &seen {
        assert!(
            event.records.iter().all(|r| r.agency_id == NEWCASTLE),
            "another agency's records are not shown: {event:?}"
        );
        assert_eq!(
            event.subject_key, "",
            "nor the subject that tied them together"
        );
    }

    // The police force's record was read only through the trail.
    let police = connection
        .agency(NORTHUMBRIA)
        .audit()
        .list_access_to_my_records(proto::ListAccessToMyRecordsRequest::default())
        .await
        .expect("listing")
        .into_inner()
        .events;
    assert_eq!(methods(&police), ["ListRisks", "FollowSubject"]);
}

/// Rewrites one stored audit event so it says someone else did it, as a person with access to
/// the disk might.
fn tamper_with(location: &Location, sequence: u64) {
    let engine = common::postgres::engine_at(location);
    let mut key = vec![b'U'];
    key.extend_from_slice(&sequence.to_be_bytes());
    let stored = engine
        .get(&key)
        .expect("read")
        .expect("the event is stored");
    let mut event: AuditEvent = postcard::from_bytes(&stored).expect("decodes");
    event.principal = "someone else".into();
    let mut batch = marr::store::engine::WriteBatch::default();
    batch.insert(key, postcard::to_stdvec(&event).expect("encodes"));
    engine.apply(batch).expect("write");
    engine.flush().expect("flush");
}

fn verify_offline(location: &Location) -> (Option<i32>, String) {
    let scratch = tempfile::tempdir().expect("scratch");
    let output = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(["verify", "--audit"])
        .args(common::postgres::store_args(location, scratch.path()))
        .env_remove("MARR_TOKEN")
        .output()
        .expect("marr verify runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test]
async fn changing_one_stored_event_is_found_at_that_event() {
    let (server, connection) = inspected().await;
    let recorded = events(&connection, proto::ListAuditEventsRequest::default()).await;
    let verdict = connection
        .audit()
        .verify_audit(proto::VerifyAuditRequest {})
        .await
        .expect("verify")
        .into_inner();
    assert!(verdict.intact, "{verdict:?}");
    // Reading the chain is itself recorded, after its answer was assembled.
    assert_eq!(verdict.events_checked, recorded.len() as u64 + 1);
    drop(connection);

    let mut server = server;
    server.stop().await;
    let data = server.location().clone();
    let (code, text) = verify_offline(&data);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("audit chain intact"), "{text}");

    tamper_with(&data, 5);
    let (code, text) = verify_offline(&data);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("broken at event 5"), "{text}");

    // The server still starts, and says the same to an administrator who asks.
    let server = server.restart().await;
    let connection = server.connect().await;
    let verdict = connection
        .audit()
        .verify_audit(proto::VerifyAuditRequest {})
        .await
        .expect("verify")
        .into_inner();
    assert!(!verdict.intact);
    assert_eq!(verdict.broken_at_sequence, 5, "{verdict:?}");
}

#[tokio::test]
async fn changing_the_last_event_is_found_too() {
    let (server, connection) = inspected().await;
    drop(connection);
    let mut server = server;
    server.stop().await;
    let data = server.location().clone();
    let last = {
        let store = marr::store::Store::open_at(&data, Default::default()).expect("opens");
        let head = store.audit_head().expect("head");
        store.close().await.expect("close");
        head
    };
    tamper_with(&data, last);
    let (code, text) = verify_offline(&data);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("broken at event {last}")), "{text}");
}

/// Every page of a listing, each as the sequences it holds, with the `next_after` it gave.
type Pages = Vec<(Vec<u64>, u64)>;

/// The same pages asked of the store with a scan of the whole chain.
fn scanned_pages(
    store: &marr::store::Store,
    filter: &marr::domain::audit::AuditFilter,
    asked: &Pages,
    page_size: usize,
) -> Pages {
    let mut after = 0;
    asked
        .iter()
        .map(|_| {
            let page = store
                .scan_audit_events(filter, after, page_size)
                .expect("scan");
            after = page.next_after.unwrap_or(0);
            (
                page.events.iter().map(|e| e.sequence).collect(),
                page.next_after.unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn paging_by_principal_or_agency_through_the_indexes_gives_exactly_what_a_scan_gives() {
    use marr::domain::AgencyId;
    use marr::domain::audit::AuditFilter;

    let (server, connection) = TestServer::north_east().await;
    let newcastle_inspector = connection.as_token(NEWCASTLE_INSPECTOR);
    for round in 0..6i64 {
        push_all(
            &connection,
            vec![
                rec(
                    NEWCASTLE,
                    &format!("I-{round}"),
                    NEWCASTLE_WARD,
                    1,
                    proto::Severity::High,
                    50 - round,
                ),
                rec(
                    NORTHUMBRIA,
                    &format!("I-{round}"),
                    GATESHEAD_WARD,
                    2,
                    proto::Severity::Medium,
                    50 - round,
                ),
                rec(
                    "RTD",
                    &format!("I-{round}"),
                    NEWCASTLE_LSOA,
                    0,
                    proto::Severity::High,
                    50 - round,
                ),
            ],
        )
        .await;
        for (inspector, place) in [
            (&connection.inspector, NORTH_EAST),
            (&connection.inspector, GATESHEAD_WARD),
            (&newcastle_inspector, NEWCASTLE),
        ] {
            inspector
                .inspection()
                .list_risks(proto::ListRisksRequest {
                    place_code: place.into(),
                    page_size: 4,
                    ..Default::default()
                })
                .await
                .expect("risks");
        }
    }
    let store = server.store();

    // Agencies asking who read their records: the agency index, the agency's own writes left
    // out by the filter.
    for (agency, page_size) in [(NEWCASTLE, 1u32), (NORTHUMBRIA, 2), ("RTD", 3)] {
        let mut pages: Pages = Vec::new();
        let mut after = 0;
        loop {
            let page = connection
                .agency(agency)
                .audit()
                .list_access_to_my_records(proto::ListAccessToMyRecordsRequest {
                    after_sequence: after,
                    page_size,
                    ..Default::default()
                })
                .await
                .expect("an agency lists who read its records")
                .into_inner();
            pages.push((
                page.events.iter().map(|e| e.sequence).collect(),
                page.next_after_sequence,
            ));
            if page.next_after_sequence == 0 {
                break;
            }
            after = page.next_after_sequence;
        }
        assert!(pages.len() > 2, "several pages for {agency}: {pages:?}");
        let filter = AuditFilter {
            agency: Some(AgencyId::parse(agency).expect("agency")),
            except_methods: vec![
                "/marr.v1.RiskRegister/SubmitRecord".into(),
                "/marr.v1.RiskRegister/PushRecords".into(),
            ],
            ..AuditFilter::default()
        };
        assert_eq!(
            pages,
            scanned_pages(store, &filter, &pages, page_size as usize),
            "{agency}"
        );
    }

    // Administrators listing one principal's events, alone or with a method: the principal
    // index.
    for (principal, method, page_size) in [
        ("inspector", "", 2u32),
        ("newcastle-inspector", "", 2),
        ("agency E08000021", "", 1),
        ("inspector", "ListRisks", 5),
        ("agency RTD", "PushRecords", 2),
    ] {
        let mut pages: Pages = Vec::new();
        let mut after = 0;
        loop {
            let page = connection
                .audit()
                .list_audit_events(proto::ListAuditEventsRequest {
                    principal: principal.into(),
                    method: method.into(),
                    after_sequence: after,
                    page_size,
                    ..Default::default()
                })
                .await
                .expect("the administrator lists a principal's events")
                .into_inner();
            assert!(page.events.iter().all(|e| e.principal == principal));
            pages.push((
                page.events.iter().map(|e| e.sequence).collect(),
                page.next_after_sequence,
            ));
            if page.next_after_sequence == 0 {
                break;
            }
            after = page.next_after_sequence;
        }
        let filter = AuditFilter {
            principal: Some(principal.into()),
            method: (!method.is_empty()).then(|| method.into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            pages,
            scanned_pages(store, &filter, &pages, page_size as usize),
            "{principal} {method}"
        );
        if method.is_empty() {
            assert!(pages.len() > 2, "several pages for {principal}: {pages:?}");
        }
    }

    // An agency's events including its own writes, read through the agency index.
    for agency in [NEWCASTLE, NORTHUMBRIA, "RTD"] {
        let filter = AuditFilter {
            agency: Some(AgencyId::parse(agency).expect("agency")),
            ..AuditFilter::default()
        };
        let mut after = 0;
        loop {
            let indexed = store.audit_events(&filter, after, 4).expect("indexed");
            let scanned = store.scan_audit_events(&filter, after, 4).expect("scan");
            assert_eq!(indexed, scanned, "{agency} after {after}");
            match indexed.next_after {
                Some(next) => after = next,
                None => break,
            }
        }
    }
}
