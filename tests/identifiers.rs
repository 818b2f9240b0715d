//! No raw identifier in any field: free text holding an NHS number, a date, a postcode, an
//! e-mail address or a telephone number is refused with INVALID_ARGUMENT naming the field, and
//! the refused value is written nowhere: not in the answer's message, not in the audit chain,
//! not in the store.

mod common;

use std::path::Path;

use common::*;

use marr::proto;
use tonic::Code;
use tonic_types::StatusExt;

/// Every audit event, paged through as the administrator.
async fn audit_events(connection: &Connection) -> Vec<proto::AuditEvent> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = connection
            .audit()
            .list_audit_events(proto::ListAuditEventsRequest {
                after_sequence: after,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("admin lists the audit chain")
            .into_inner();
        all.extend(page.events);
        if page.next_after_sequence == 0 {
            return all;
        }
        after = page.next_after_sequence;
    }
}

/// Whether any audit event holds `needle` in any field.
async fn audit_holds(connection: &Connection, needle: &str) -> bool {
    format!("{:?}", audit_events(connection).await).contains(needle)
}

/// Whether any file under the store's directory holds `needle`'s bytes.
fn store_holds(dir: &Path, needle: &str) -> bool {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("entry").path());
            }
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        {
            return true;
        }
    }
    false
}

/// Submits `record`, expects INVALID_ARGUMENT naming `field`, and returns the message.
async fn refused(connection: &Connection, record: proto::RiskRecord, field: &str) -> String {
    refusal_naming(connection, record, field)
        .await
        .message()
        .to_string()
}

fn with_note(local_ref: &str, note: &str) -> proto::RiskRecord {
    let mut r = record(local_ref, 1);
    r.note = note.into();
    r
}

/// One value of each kind the register refuses, as agencies' staff would write it: the kind,
/// the words around it, and the identifier.
const IDENTIFIERS_IN_TEXT: &[(&str, &str, &str)] = &[
    ("NHS number", "NHS", "9434765919"),
    ("NHS number", "NHS no.", "943 476 5919"),
    ("NHS number", "NHS", "943-476-5919"),
    ("date", "DOB", "01/02/2015"),
    ("date", "born", "2015-02-01"),
    ("date", "born", "1 Feb 2015"),
    ("postcode", "lives at", "SW1A 1AA"),
    ("postcode", "moved to", "NE1 4ST"),
    ("e-mail address", "mum is", "jo.bloggs@example.org"),
    ("telephone number", "mobile", "07700 900123"),
    ("telephone number", "call", "+44 7700 900123"),
    ("telephone number", "landline", "0191 123 4567"),
];

/// Identifiers that fit a local reference's characters.
const IDENTIFIERS_IN_REFS: &[&str] = &[
    "9434765919",
    "943-476-5919",
    "CIN-943.476.5919",
    "01/02/2015",
    "2015-02-01",
    "NE14ST",
    "07700900123",
    "PF/0191-123-4567",
];

#[tokio::test]
async fn a_note_with_an_nhs_number_in_a_push_is_refused_and_written_nowhere_while_the_rest_land() {
    let (mut server, connection) = TestServer::north_east().await;
    let nhs = "943 476 5919";
    let answers = push_all(
        &connection,
        vec![
            record("PUSH-BEFORE", 1),
            with_note("PUSH-NHS", &format!("GP says NHS {nhs}")),
            record("PUSH-AFTER", 1),
        ],
    )
    .await;
    let outcomes: Vec<i32> = answers.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            proto::Outcome::Accepted as i32,
            proto::Outcome::Rejected as i32,
            proto::Outcome::Accepted as i32
        ]
    );
    assert_eq!(answers[1].field, "note");
    assert!(answers[1].reason.contains("NHS number"), "{:?}", answers[1]);
    assert!(!answers[1].reason.contains("943"), "{:?}", answers[1]);

    // The same record sent on its own: refused, and the refusal the guard chains holds no digit
    // of it.
    let message = refused(
        &connection,
        with_note("SUBMIT-NHS", &format!("NHS {nhs}")),
        "note",
    )
    .await;
    assert!(!message.contains("943"), "{message}");

    assert!(
        head_of(&connection, NEWCASTLE, "PUSH-BEFORE")
            .await
            .is_some()
    );
    assert!(
        head_of(&connection, NEWCASTLE, "PUSH-AFTER")
            .await
            .is_some()
    );
    assert_eq!(head_of(&connection, NEWCASTLE, "PUSH-NHS").await, None);

    let events = audit_events(&connection).await;
    let written: Vec<String> = events
        .iter()
        .filter(|e| e.method.ends_with("/PushRecords"))
        .flat_map(|e| e.records.iter().map(|r| r.local_ref.clone()))
        .collect();
    assert_eq!(written, ["PUSH-BEFORE", "PUSH-AFTER"], "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.method.ends_with("/SubmitRecord") && e.outcome.contains("InvalidArgument")),
        "the refusal is chained"
    );
    for needle in [nhs, "9434765919"] {
        assert!(!audit_holds(&connection, needle).await, "{needle}");
    }

    server.stop().await;
    // The scan sees stored text (the accepted records' notes)...
    assert!(store_holds(server.data_dir(), "Referral from school nurse"));
    // ...and the refused number in none of its spellings.
    for needle in [nhs, "9434765919"] {
        assert!(!store_holds(server.data_dir(), needle), "{needle}");
    }
}

#[tokio::test]
async fn each_kind_of_identifier_is_refused_in_a_note_and_a_local_ref_naming_the_field() {
    let (_server, connection) = TestServer::north_east().await;
    for (i, (kind, words, identifier)) in IDENTIFIERS_IN_TEXT.iter().enumerate() {
        let note = format!("{words} {identifier}");
        let message = refused(&connection, with_note(&format!("N-{i}"), &note), "note").await;
        assert!(message.contains(kind), "{note}: {message}");
        assert!(!message.contains(identifier), "{note}: {message}");
    }
    for reference in IDENTIFIERS_IN_REFS {
        let message = refused(&connection, record(reference, 1), "local_ref").await;
        assert!(!message.contains(reference), "{message}");
    }
    // Nothing refused took a place in the log.
    let answer = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest {
            record: Some(record("AFTER-REFUSALS", 1)),
        })
        .await
        .expect("a good record")
        .into_inner();
    assert_eq!(answer.sequence, 1);
    let chained = format!("{:?}", audit_events(&connection).await);
    for (_, _, identifier) in IDENTIFIERS_IN_TEXT {
        assert!(!chained.contains(identifier), "{identifier}");
    }
    for reference in IDENTIFIERS_IN_REFS {
        assert!(!chained.contains(reference), "{reference}");
    }
}

#[tokio::test]
async fn ordinary_references_and_notes_are_accepted() {
    let (_server, connection) = TestServer::north_east().await;
    let references = [
        "CIN-2024-00123",
        "PF/123456",
        "NCC-000123",
        "12/34567/24",
        "MASH_2026_0042",
        "NE-20240101-1234",
        "1234567890",
    ];
    let notes = [
        "Referral from school nurse",
        "Seen at home, with sibling",
        "Joint visit with police planned; 3 missing episodes in 2 weeks",
        "Strategy meeting held, s47 enquiry opened",
        "May be at risk; review in 6 weeks",
        "Call 999 if seen",
        "",
    ];
    for (reference, note) in references.iter().zip(notes.iter().cycle()) {
        let answer = connection
            .risk_register()
            .submit_record(proto::SubmitRecordRequest {
                record: Some(with_note(reference, note)),
            })
            .await
            .unwrap_or_else(|status| panic!("{reference} / {note}: {status:?}"))
            .into_inner();
        assert_eq!(answer.outcome, proto::Outcome::Accepted as i32);
    }
}

#[tokio::test]
async fn text_fields_refuse_control_bidirectional_and_zero_width_characters() {
    let (_server, connection) = TestServer::north_east().await;
    for (i, hidden) in [
        '\n', '\u{1b}', '\u{202E}', '\u{2067}', '\u{200B}', '\u{FEFF}',
    ]
    .into_iter()
    .enumerate()
    {
        let note = format!("Home visit{hidden} arranged");
        let message = refused(&connection, with_note(&format!("H-{i}"), &note), "note").await;
        assert!(message.contains("zero-width"), "{message}");
        refused(
            &connection,
            record(&format!("H-{i}{hidden}"), 1),
            "local_ref",
        )
        .await;
    }
}

#[tokio::test]
async fn a_value_refused_in_a_coded_field_is_not_repeated_in_the_answer_or_the_chain() {
    let (_server, connection) = TestServer::north_east().await;
    let mut r = record("CODED-1", 1);
    r.place_code = "SW1A 1AA".into();
    let message = refused(&connection, r, "place_code").await;
    assert!(!message.contains("SW1A"), "{message}");
    let mut r = record("CODED-2", 1);
    r.agency_id = "07700900123".into();
    let status = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest { record: Some(r) })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(!status.message().contains("07700"), "{status:?}");
    assert!(!audit_holds(&connection, "SW1A").await);
    assert!(!audit_holds(&connection, "07700").await);
}

#[tokio::test]
async fn timestamps_with_out_of_range_nanos_are_refused_not_normalised() {
    let (_server, connection) = TestServer::north_east().await;
    let mut r = record("NANOS-1", 1);
    let mut at = hours_ago(30);
    // One second and a second's worth of nanos: the same instant as at + 1 s, spelled wrongly.
    at.nanos = 1_000_000_000;
    r.assessed_at = Some(at);
    let message = refused(&connection, r, "assessed_at").await;
    assert!(message.contains("nanos"), "{message}");
    let mut r = record("NANOS-2", 1);
    let mut at = hours_ago(1);
    at.nanos = -1;
    r.source_updated_at = Some(at);
    refused(&connection, r, "source_updated_at").await;
    assert_eq!(head_of(&connection, NEWCASTLE, "NANOS-1").await, None);
}

#[tokio::test]
async fn a_purpose_needs_ten_visible_characters_and_no_identifier_and_is_never_chained_when_refused()
 {
    let (_server, connection) = TestServer::north_east().await;
    push_all(&connection, vec![record("TRAIL-1", 1)]).await;
    let follow = |purpose: &str| {
        let mut inspection = connection.inspection();
        let request = proto::FollowSubjectRequest {
            subject_key: subject(1),
            purpose: purpose.into(),
            as_of_sequence: 0,
        };
        async move { inspection.follow_subject(request).await }
    };
    for purpose in [
        "a b c d e f g h i",
        "Safeguarding review for DOB 01/02/2015",
        "Review of case, mother on 07700 900123",
        "Joint\u{202E} inspection of exploitation",
    ] {
        let status = follow(purpose).await.expect_err(purpose);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{purpose}: {status:?}"
        );
        let fields: Vec<String> = status
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["purpose"]);
    }
    let trail = follow("Joint targeted area inspection: exploitation")
        .await
        .expect("a real purpose")
        .into_inner();
    assert_eq!(trail.trail.len(), 1);
    for needle in ["a b c d e f g h i", "01/02/2015", "07700", "Joint\u{202E}"] {
        assert!(!audit_holds(&connection, needle).await, "{needle:?}");
    }
    assert!(audit_holds(&connection, "Joint targeted area inspection: exploitation").await);
}

#[tokio::test]
async fn snapshot_labels_and_agency_names_are_screened() {
    let (_server, connection) = TestServer::north_east().await;
    let status = connection
        .inspection()
        .create_snapshot(proto::CreateSnapshotRequest {
            place_code: NEWCASTLE.into(),
            filter: None,
            label: "Family at NE1 4ST".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("label"), "{status:?}");
    for name in ["Call 0191 123 4567", "Newcastle\u{200B} City Council"] {
        let status = connection
            .directory()
            .register_agency(proto::RegisterAgencyRequest {
                agency: Some(proto::Agency {
                    id: "R0B".into(),
                    kind: proto::AgencyKind::Health as i32,
                    name: name.into(),
                    footprint: vec![NEWCASTLE.into()],
                }),
            })
            .await
            .expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with("name"), "{status:?}");
    }
    let agencies = connection
        .directory()
        .list_agencies(proto::ListAgenciesRequest {})
        .await
        .expect("agencies")
        .into_inner()
        .agencies;
    assert!(agencies.iter().all(|a| a.id != "R0B"), "nothing registered");
}

#[tokio::test]
async fn marr_push_refuses_identifier_rows_on_the_agency_side_and_keeps_them_out_of_the_rejects_file()
 {
    let (server, connection) = TestServer::north_east().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("extract.csv");
    let row = |local_ref: &str, note: &str| {
        format!(
            "{NEWCASTLE},{local_ref},,{NEWCASTLE_WARD},children_in_need,neglect,medium,active,2026-01-05T09:00:00Z,2026-01-06T10:30:00Z,children_act_1989_s17,\"{note}\""
        )
    };
    let text = [
        "agency_id,local_ref,subject_key,place_code,client_group,category,severity,status,assessed_at,source_updated_at,lawful_basis,note".to_string(),
        row("CIN-2024-00123", "Seen at home, with sibling"),
        row("CIN-2024-00124", "Mum: jo.bloggs@example.org"),
        row("943-476-5919", "Referral from school nurse"),
        // Columns shifted by a careless export: identifiers land in coded fields.
        format!(
            "{NEWCASTLE},943/476/5919,,{NEWCASTLE_WARD},children_in_need,neglect,9434765919,active,NE1 4ST,2026-01-06T10:30:00Z,children_act_1989_s17,"
        ),
    ]
    .join("\n");
    std::fs::write(&file, &text).expect("write extract");

    // The reader alone refuses the two rows, naming line and field: they are never sent.
    let rows: Vec<_> = marr::cli::extract::read(&file).expect("reads").collect();
    let refusals: Vec<(u64, String)> = rows
        .iter()
        .filter_map(|r| r.record.as_ref().err().map(|v| (r.line, v.field.clone())))
        .collect();
    assert_eq!(refusals[..2], [(3, "note".into()), (4, "local_ref".into())]);
    assert_eq!(refusals.len(), 3);

    let summary = marr::cli::push::push_file(connection.agency(NEWCASTLE), &file)
        .await
        .expect("push");
    assert_eq!((summary.accepted, summary.rejected), (1, 3), "{summary}");
    let rejects = std::fs::read_to_string(marr::cli::push::rejects_path(&file)).expect("rejects");
    assert!(rejects.contains("e-mail address"), "{rejects}");
    for needle in [
        "jo.bloggs",
        "943-476-5919",
        "943/476/5919",
        "9434765919",
        "NE1 4ST",
    ] {
        assert!(!rejects.contains(needle), "{needle} in {rejects}");
        assert!(!audit_holds(&connection, needle).await, "{needle}");
    }
    drop(server);
}

#[tokio::test]
async fn a_record_stored_under_older_reference_rules_can_still_be_read_and_closed_by_its_agency() {
    let (server, c) = TestServer::north_east().await;
    // A reference with spaces, as the register took them before references were restricted.
    let legacy = "CIN 2019 7";
    let mut stored = marr::api::convert::record_from_proto(
        Some(record("CIN-LEGACY", 48)),
        time::OffsetDateTime::now_utc(),
    )
    .expect("valid record");
    stored.key.local_ref = marr::domain::LocalRef::from_stored(legacy).expect("stored form");
    server
        .store()
        .submit(stored, std::sync::Arc::new(operator()))
        .await
        .expect("stored");

    let read = head_of(&c, NEWCASTLE, legacy)
        .await
        .expect("its agency reads it");
    assert_eq!(read.revision, 1);
    let mut closing = record(legacy, 1);
    closing.status = proto::RecordStatus::Closed as i32;
    let answers = push_as(c.agency(NEWCASTLE), vec![closing]).await;
    assert_eq!(
        answers[0].outcome,
        proto::Outcome::Accepted as i32,
        "{answers:?}"
    );
    assert_eq!(
        head_of(&c, NEWCASTLE, legacy)
            .await
            .expect("closed")
            .revision,
        2
    );

    // Another agency learns nothing: the same refusal as for any record not its own.
    let other = c
        .agency(NORTHUMBRIA)
        .risk_register()
        .get_record(proto::GetRecordRequest {
            agency_id: NEWCASTLE.into(),
            local_ref: legacy.into(),
        })
        .await
        .expect_err("not its record");
    assert_eq!(other.code(), tonic::Code::InvalidArgument);
    // A new record under such a reference is still refused.
    let answers = push_as(c.agency(NEWCASTLE), vec![record("CIN 2019 8", 1)]).await;
    assert_eq!(answers[0].outcome, proto::Outcome::Rejected as i32);
    assert_eq!(answers[0].field, "local_ref");
}
