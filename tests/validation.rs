//! One test per validation rule: each refusal is INVALID_ARGUMENT with a google.rpc.BadRequest
//! naming the field, and the register is left exactly as it was.

mod common;

use common::*;

use marr::proto;
use tonic::Code;
use tonic_types::StatusExt;

/// Submits `record`, expects a refusal naming `field`, and checks nothing was stored.
async fn refused(connection: &Connection, record: proto::RiskRecord, field: &str) -> String {
    let local_ref = record.local_ref.clone();
    let agency = record.agency_id.clone();
    let status = refusal_naming(connection, record, field).await;
    if let Ok(local_ref) = marr::domain::LocalRef::parse(&local_ref)
        && marr::domain::AgencyId::parse(&agency).is_ok()
    {
        assert_eq!(
            head_of(connection, &agency, local_ref.as_str()).await,
            None,
            "nothing was stored"
        );
    }
    // The next good record takes sequence 1: the refusal consumed nothing.
    let probe = format!("PROBE-{}", field.len());
    let answer = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest {
            record: Some(record_with_ref(&probe)),
        })
        .await
        .expect("a good record is still accepted")
        .into_inner();
    assert_eq!(answer.sequence, 1, "the refusal left no trace in the log");
    status.message().to_string()
}

fn record_with_ref(local_ref: &str) -> proto::RiskRecord {
    record(local_ref, 1)
}

async fn check(change: impl FnOnce(&mut proto::RiskRecord), field: &str) -> String {
    let (_server, connection) = TestServer::north_east().await;
    let mut bad = record("CASE-BAD", 1);
    change(&mut bad);
    refused(&connection, bad, field).await
}

#[tokio::test]
async fn agency_id_must_be_shaped_like_a_code() {
    check(|r| r.agency_id = "newcastle council".into(), "agency_id").await;
}

#[tokio::test]
async fn agency_must_be_registered() {
    // Newcastle's system is configured before its agency is registered.
    let server = TestServer::start().await;
    let connection = server.connect().await;
    let status = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest {
            record: Some(record("CASE-1", 1)),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("not registered"), "{status:?}");
}

#[tokio::test]
async fn an_agency_may_submit_only_its_own_records() {
    let (_server, connection) = TestServer::north_east().await;
    let mut other = record("CASE-1", 1);
    other.agency_id = NORTHUMBRIA.into();
    let status = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest {
            record: Some(other),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(head_of(&connection, NORTHUMBRIA, "CASE-1").await, None);
}

#[tokio::test]
async fn local_ref_must_not_be_empty() {
    check(|r| r.local_ref = String::new(), "local_ref").await;
}

#[tokio::test]
async fn local_ref_must_be_at_most_64_characters() {
    check(|r| r.local_ref = "X".repeat(65), "local_ref").await;
}

#[tokio::test]
async fn local_ref_must_be_printable() {
    check(|r| r.local_ref = "CASE\u{7}1".into(), "local_ref").await;
}

#[tokio::test]
async fn subject_key_must_be_64_characters() {
    check(|r| r.subject_key = "abc123".into(), "subject_key").await;
}

#[tokio::test]
async fn subject_key_must_be_lower_case_hex() {
    check(|r| r.subject_key = subject(1).to_uppercase(), "subject_key").await;
}

#[tokio::test]
async fn place_code_must_be_a_gss_code() {
    check(|r| r.place_code = "Newcastle".into(), "place_code").await;
}

#[tokio::test]
async fn place_code_must_be_known() {
    let message = check(|r| r.place_code = "E05999999".into(), "place_code").await;
    assert!(message.contains("not a known place"), "{message}");
}

#[tokio::test]
async fn place_code_must_be_in_the_tree_not_a_footprint_area() {
    check(|r| r.place_code = NORTHUMBRIA.into(), "place_code").await;
}

#[tokio::test]
async fn place_code_must_be_inside_the_agency_footprint() {
    let message = check(|r| r.place_code = GATESHEAD_WARD.into(), "place_code").await;
    assert!(message.contains("outside the footprint"), "{message}");
}

#[tokio::test]
async fn client_group_must_be_specified() {
    check(|r| r.client_group = 0, "client_group").await;
}

#[tokio::test]
async fn category_must_be_known() {
    check(|r| r.category = 99, "category").await;
}

#[tokio::test]
async fn severity_must_be_specified() {
    check(|r| r.severity = 0, "severity").await;
}

#[tokio::test]
async fn status_must_be_specified() {
    check(|r| r.status = 0, "status").await;
}

#[tokio::test]
async fn lawful_basis_must_be_specified() {
    check(|r| r.lawful_basis = 0, "lawful_basis").await;
}

#[tokio::test]
async fn assessed_at_is_required() {
    check(|r| r.assessed_at = None, "assessed_at").await;
}

#[tokio::test]
async fn source_updated_at_must_not_be_in_the_future() {
    check(
        |r| r.source_updated_at = Some(hours_ago(-2)),
        "source_updated_at",
    )
    .await;
}

#[tokio::test]
async fn assessed_at_must_not_follow_source_updated_at() {
    check(|r| r.assessed_at = Some(hours_ago(0)), "assessed_at").await;
}

#[tokio::test]
async fn note_must_be_at_most_140_characters() {
    check(|r| r.note = "n".repeat(141), "note").await;
}

#[tokio::test]
async fn every_bad_field_is_named_in_one_answer() {
    let (_server, connection) = TestServer::north_east().await;
    let mut bad = record("CASE-MANY", 1);
    bad.severity = 0;
    bad.subject_key = "nope".into();
    bad.note = "n".repeat(300);
    let status = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest { record: Some(bad) })
        .await
        .expect_err("refused");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .expect("BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, vec!["subject_key", "severity", "note"]);
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_stores_nothing() {
    let (_server, connection) = TestServer::north_east().await;
    let mut huge = record("CASE-HUGE", 1);
    huge.note = "n".repeat(200_000);
    let status = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest { record: Some(huge) })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(head_of(&connection, NEWCASTLE, "CASE-HUGE").await, None);
}

#[tokio::test]
async fn an_oversized_message_in_a_push_stream_ends_it_and_keeps_what_came_before() {
    let (_server, connection) = TestServer::north_east().await;
    let mut huge = record("CASE-HUGE", 1);
    huge.note = "n".repeat(200_000);
    let requests = tokio_stream::iter(
        [record("CASE-FIRST", 1), huge]
            .into_iter()
            .map(|r| proto::PushRecordsRequest { record: Some(r) }),
    );
    let mut answers = connection
        .risk_register()
        .push_records(requests)
        .await
        .expect("stream opens")
        .into_inner();
    let first = answers.message().await.expect("first answer").expect("one");
    assert_eq!(first.outcome, proto::Outcome::Accepted as i32);
    let status = answers.message().await.expect_err("the stream ends");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        head_of(&connection, NEWCASTLE, "CASE-FIRST")
            .await
            .is_some()
    );
    assert_eq!(head_of(&connection, NEWCASTLE, "CASE-HUGE").await, None);
}
