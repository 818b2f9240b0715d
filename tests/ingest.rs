//! Ingest over real gRPC: ordering, idempotency, staleness, history and restart.

mod common;

use common::*;
use marr::proto::{self, Outcome};
use tonic::Code;

fn outcome(answer: &proto::PushRecordsResponse) -> Outcome {
    Outcome::try_from(answer.outcome).expect("known outcome")
}

fn many(count: usize, updated_hours_ago: i64) -> Vec<proto::RiskRecord> {
    (0..count)
        .map(|i| {
            let mut r = record(&format!("CASE-{i:05}"), updated_hours_ago);
            r.subject_key = subject(i as u32 % 997);
            r
        })
        .collect()
}

#[tokio::test]
async fn ten_thousand_records_get_one_in_order_result_each_then_resend_is_unchanged() {
    let (_server, connection) = TestServer::north_east().await;
    let records = many(10_000, 5);
    let answers = push_all(&connection, records.clone()).await;
    assert_eq!(answers.len(), 10_000);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer.index, i as u64, "answers come back in request order");
        assert_eq!(
            outcome(answer),
            Outcome::Accepted,
            "record {i}: {}",
            answer.reason
        );
        assert_eq!(answer.revision, 1);
        assert_eq!(
            answer.sequence,
            i as u64 + 1,
            "sequences are gap-free and follow the stream"
        );
    }

    let again = push_all(&connection, records).await;
    assert_eq!(again.len(), 10_000);
    for (i, answer) in again.iter().enumerate() {
        assert_eq!(outcome(answer), Outcome::Unchanged, "record {i}");
        assert_eq!(
            (answer.revision, answer.sequence),
            (1, i as u64 + 1),
            "unchanged names the stored revision"
        );
    }
}

#[tokio::test]
async fn older_versions_are_stale_and_change_nothing() {
    let (_server, connection) = TestServer::north_east().await;
    let answers = push_all(&connection, many(100, 5)).await;
    assert!(answers.iter().all(|a| outcome(a) == Outcome::Accepted));

    let mut older = many(100, 50);
    for r in &mut older {
        r.severity = proto::Severity::Low as i32;
    }
    let answers = push_all(&connection, older.clone()).await;
    assert_eq!(answers.len(), 100);
    for answer in &answers {
        assert_eq!(outcome(answer), Outcome::Stale);
        assert_eq!(answer.field, "source_updated_at");
        assert!(answer.reason.contains("older"), "{}", answer.reason);
    }
    let stored = head_of(&connection, NEWCASTLE, "CASE-00007")
        .await
        .expect("stored");
    assert_eq!(stored.revision, 1);
    assert_eq!(
        stored.record.expect("record").severity,
        proto::Severity::High as i32
    );

    let status = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest {
            record: Some(older[7].clone()),
        })
        .await
        .expect_err("stale is refused");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("older"), "{}", status.message());
}

#[tokio::test]
async fn same_version_with_different_content_is_refused_not_overwritten() {
    let (_server, connection) = TestServer::north_east().await;
    let mut client = connection.risk_register();
    let original = record("CASE-1", 3);
    client
        .submit_record(proto::SubmitRecordRequest {
            record: Some(original.clone()),
        })
        .await
        .expect("accepted");
    let mut conflicting = original.clone();
    conflicting.severity = proto::Severity::Critical as i32;
    let status = client
        .submit_record(proto::SubmitRecordRequest {
            record: Some(conflicting),
        })
        .await
        .expect_err("conflict refused");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let stored = head_of(&connection, NEWCASTLE, "CASE-1")
        .await
        .expect("stored");
    assert_eq!(
        stored.record.expect("record").severity,
        proto::Severity::High as i32
    );
}

#[tokio::test]
async fn history_lists_every_revision_oldest_first_and_entered_in_error_keeps_it() {
    let (_server, connection) = TestServer::north_east().await;
    let mut client = connection.risk_register();
    let mut versions = Vec::new();
    for (hours, severity, status) in [
        (30, proto::Severity::Medium, proto::RecordStatus::Active),
        (20, proto::Severity::High, proto::RecordStatus::Active),
        (
            10,
            proto::Severity::High,
            proto::RecordStatus::EnteredInError,
        ),
    ] {
        let mut r = record("CASE-H", hours);
        r.assessed_at = Some(hours_ago(40));
        r.severity = severity as i32;
        r.status = status as i32;
        versions.push(r);
    }
    // A noisy neighbour between the revisions, so sequences are not consecutive.
    for (i, version) in versions.iter().enumerate() {
        let answer = client
            .submit_record(proto::SubmitRecordRequest {
                record: Some(version.clone()),
            })
            .await
            .expect("accepted")
            .into_inner();
        assert_eq!(answer.revision, i as u32 + 1);
        client
            .submit_record(proto::SubmitRecordRequest {
                record: Some(record(&format!("OTHER-{i}"), 1)),
            })
            .await
            .expect("accepted");
    }
    let history = client
        .get_record_history(proto::GetRecordHistoryRequest {
            agency_id: NEWCASTLE.into(),
            local_ref: "CASE-H".into(),
        })
        .await
        .expect("history")
        .into_inner()
        .revisions;
    assert_eq!(history.len(), 3);
    assert_eq!(
        history.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        history.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        vec![1, 3, 5]
    );
    for (revision, version) in history.iter().zip(&versions) {
        assert_eq!(
            revision.record.as_ref(),
            Some(version),
            "each revision is stored exactly as sent"
        );
    }
    let missing = client
        .get_record_history(proto::GetRecordHistoryRequest {
            agency_id: NEWCASTLE.into(),
            local_ref: "NO-SUCH".into(),
        })
        .await
        .expect_err("unknown record");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn a_bad_record_gets_a_rejected_result_and_the_stream_goes_on() {
    let (_server, connection) = TestServer::north_east().await;
    let mut records = many(5, 2);
    records[1].severity = 0;
    records[3].place_code = HARTLEPOOL.into();
    let answers = push_all(&connection, records).await;
    let outcomes: Vec<Outcome> = answers.iter().map(outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Accepted,
            Outcome::Rejected,
            Outcome::Accepted,
            Outcome::Rejected,
            Outcome::Accepted
        ]
    );
    assert_eq!(answers[1].field, "severity");
    assert_eq!(answers[3].field, "place_code");
    assert!(
        answers[3].reason.contains("outside the footprint"),
        "{}",
        answers[3].reason
    );
    assert_eq!(
        answers[4].sequence, 3,
        "rejected records take no sequence number"
    );
}

#[tokio::test]
async fn every_acknowledged_record_revision_and_sequence_survives_a_restart() {
    let (server, connection) = TestServer::north_east().await;
    let first = push_all(&connection, many(500, 10)).await;
    let second = push_all(&connection, many(200, 1)).await;
    assert!(
        second
            .iter()
            .all(|a| outcome(a) == Outcome::Accepted && a.revision == 2)
    );
    let before = head_of(&connection, NEWCASTLE, "CASE-00150")
        .await
        .expect("stored");
    drop(connection);

    let server = server.restart().await;
    let connection = server.connect().await;
    let after = head_of(&connection, NEWCASTLE, "CASE-00150")
        .await
        .expect("still stored");
    assert_eq!(
        after, before,
        "the latest revision is byte-for-byte what was acknowledged"
    );
    for answer in first.iter().skip(200) {
        let local_ref = format!("CASE-{:05}", answer.index);
        let stored = head_of(&connection, NEWCASTLE, &local_ref)
            .await
            .expect("stored");
        assert_eq!((stored.revision, stored.sequence), (1, answer.sequence));
    }
    // Agencies and places survive too, and sequences carry on without a gap.
    let next = push_all(&connection, vec![record("AFTER-RESTART", 1)]).await;
    assert_eq!(outcome(&next[0]), Outcome::Accepted, "{}", next[0].reason);
    assert_eq!(next[0].sequence, 701);
}
