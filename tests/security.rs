//! Who may call what: the authorisation matrix, generated from the one declaration of method
//! rules, and the limits every call passes through.

mod common;

use common::*;

use marr::auth::policy::METHOD_RULES;
use marr::domain::audit::AuditFilter;
use marr::domain::{AgencyKind, Role};
use marr::proto;
use marr::proto::reviews_client::ReviewsClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;

/// What a request is about: the place, the agency whose record, the snapshot.
#[derive(Debug, Clone, Copy)]
struct Target {
    place: &'static str,
    agency: &'static str,
}

/// The snapshots the matrix server holds, one per place, in creation order.
const SNAPSHOT_PLACES: [&str; 3] = [NEWCASTLE, GATESHEAD, HARTLEPOOL];

fn snapshot_of(place: &str) -> u64 {
    SNAPSHOT_PLACES
        .iter()
        .position(|p| *p == place)
        .map_or(999, |i| i as u64 + 1)
}

/// The review the matrix server holds: of Newcastle, published, with one recommendation to
/// each of Newcastle's council and Northumbria Police, and one action under each.
const MATRIX_REVIEW: u64 = 1;

/// A published review of `place` with one recommendation to `agency` and one to Northumbria.
fn review_of(place: &str, agency: &str) -> proto::Review {
    let recommendation = |agency: &str| proto::Recommendation {
        text: "Share every missing episode within one working day".into(),
        agency_id: agency.into(),
        ..Default::default()
    };
    proto::Review {
        kind: proto::ReviewKind::JointTargetedAreaInspection as i32,
        title: "Joint inspection of the response to children missing from home".into(),
        place_code: place.into(),
        agency_ids: vec![agency.into(), NORTHUMBRIA.into()],
        fieldwork_start: "2026-03-02".into(),
        fieldwork_end: "2026-03-13".into(),
        published_at: Some(prost_types::Timestamp {
            seconds: 1_777_000_000,
            nanos: 0,
        }),
        findings: vec![proto::Finding {
            theme: "information_sharing".into(),
            judgement: proto::Judgement::PriorityAction as i32,
            summary: "Police and health do not share missing episodes in time".into(),
            recommendations: vec![recommendation(agency), recommendation(NORTHUMBRIA)],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The matrix review's recommendation addressed to `agency`.
fn recommendation_for(agency: &str) -> proto::RecommendationRef {
    proto::RecommendationRef {
        review_id: MATRIX_REVIEW,
        finding: 1,
        recommendation: if agency == NORTHUMBRIA { 2 } else { 1 },
    }
}

/// The record the matrix server holds for each agency.
fn record_of(agency: &str) -> proto::RiskRecord {
    if agency == NEWCASTLE {
        record("M-1", 2)
    } else {
        rec(agency, "M-2", NEWCASTLE_WARD, 1, proto::Severity::High, 2)
    }
}

fn answered<T>(result: Result<T, tonic::Status>) -> Code {
    result.map_or_else(|status| status.code(), |_| Code::Ok)
}

fn client_answer<T>(result: Result<T, marr::cli::ClientError>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(marr::cli::ClientError::Refused(status)) => status.code(),
        Err(other) => panic!("not an answer from the server: {other}"),
    }
}

/// The code of a server-streaming call: the refusal, or the first message's outcome.
async fn first_of<T>(opened: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>) -> Code {
    match opened {
        Err(status) => status.code(),
        Ok(stream) => answered(stream.into_inner().message().await),
    }
}

/// Calls `method` on `c` with a small valid request about `target`, and gives the code of the
/// answer. Every method needs an example here: the matrix fails for one that has none.
async fn call(c: &marr::cli::Connection, method: &str, target: Target) -> Code {
    let filter = || {
        Some(proto::AlertFilter {
            place_code: target.place.into(),
            ..Default::default()
        })
    };
    match method {
        "/marr.v1.RiskRegister/SubmitRecord" => answered(
            c.risk_register()
                .submit_record(proto::SubmitRecordRequest {
                    record: Some(record_of(target.agency)),
                })
                .await,
        ),
        "/marr.v1.RiskRegister/PushRecords" => {
            let requests = tokio_stream::iter(vec![proto::PushRecordsRequest {
                record: Some(record_of(target.agency)),
            }]);
            first_of(c.risk_register().push_records(requests).await).await
        }
        "/marr.v1.RiskRegister/GetRecord" => answered(
            c.risk_register()
                .get_record(proto::GetRecordRequest {
                    agency_id: target.agency.into(),
                    local_ref: record_of(target.agency).local_ref,
                })
                .await,
        ),
        "/marr.v1.RiskRegister/GetRecordHistory" => answered(
            c.risk_register()
                .get_record_history(proto::GetRecordHistoryRequest {
                    agency_id: target.agency.into(),
                    local_ref: record_of(target.agency).local_ref,
                })
                .await,
        ),
        "/marr.v1.Inspection/GetPlaceView" => answered(
            c.inspection()
                .get_place_view(proto::GetPlaceViewRequest {
                    place_code: target.place.into(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.Inspection/ComparePlaces" => answered(
            c.inspection()
                .compare_places(proto::ComparePlacesRequest {
                    parent_code: target.place.into(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.Inspection/ListRisks" => answered(
            c.inspection()
                .list_risks(proto::ListRisksRequest {
                    place_code: target.place.into(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.Inspection/FollowSubject" => answered(
            c.inspection()
                .follow_subject(proto::FollowSubjectRequest {
                    subject_key: subject(1),
                    purpose: "Joint targeted area inspection".into(),
                    as_of_sequence: 0,
                })
                .await,
        ),
        "/marr.v1.Inspection/CreateSnapshot" => answered(
            c.inspection()
                .create_snapshot(proto::CreateSnapshotRequest {
                    place_code: target.place.into(),
                    label: "Matrix".into(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.Inspection/GetSnapshot" => answered(
            c.inspection()
                .get_snapshot(proto::GetSnapshotRequest {
                    id: snapshot_of(target.place),
                })
                .await,
        ),
        "/marr.v1.Alerts/Watch" => {
            first_of(
                c.alerts()
                    .watch(proto::WatchRequest {
                        from_sequence: 0,
                        filter: filter(),
                    })
                    .await,
            )
            .await
        }
        "/marr.v1.Alerts/ListAlerts" => answered(
            c.alerts()
                .list_alerts(proto::ListAlertsRequest {
                    filter: filter(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.Directory/ImportPlaces" => {
            let police = north_east_tables().swap_remove(1);
            client_answer(marr::cli::places::import_tables(c, vec![police]).await)
        }
        "/marr.v1.Directory/ImportPopulation" => {
            let tables = marr::cli::population::read_tables(&[population_file(POPULATION_PFA)])
                .expect("the population table reads");
            client_answer(marr::cli::population::import_tables(c, tables).await)
        }
        "/marr.v1.Directory/ImportStatisticalNeighbours" => {
            let tables = marr::cli::neighbours::read_tables(&[neighbours_file(NEIGHBOURS_2025)])
                .expect("the neighbours table reads");
            client_answer(marr::cli::neighbours::import_tables(c, tables).await)
        }
        "/marr.v1.Directory/ImportBoundaries" => {
            let files = marr::cli::boundaries::read_files(&[boundaries_file(BOUNDARIES_TOPO)])
                .expect("the boundaries read");
            client_answer(marr::cli::boundaries::import_files(c, files).await)
        }
        "/marr.v1.Directory/GetPlace" => answered(
            c.directory()
                .get_place(proto::GetPlaceRequest {
                    code: target.place.into(),
                })
                .await,
        ),
        "/marr.v1.Directory/ListChildPlaces" => answered(
            c.directory()
                .list_child_places(proto::ListChildPlacesRequest {
                    code: target.place.into(),
                })
                .await,
        ),
        "/marr.v1.Directory/RegisterAgency" => client_answer(
            marr::cli::agencies::register(
                c,
                NEWCASTLE,
                AgencyKind::ChildrenSocialCare,
                &format!("agency {NEWCASTLE}"),
                &[NEWCASTLE.to_string()],
            )
            .await,
        ),
        "/marr.v1.Directory/ListAgencies" => answered(
            c.directory()
                .list_agencies(proto::ListAgenciesRequest {})
                .await,
        ),
        "/marr.v1.Audit/ListAuditEvents" => answered(
            c.audit()
                .list_audit_events(proto::ListAuditEventsRequest::default())
                .await,
        ),
        "/marr.v1.Audit/VerifyAudit" => {
            answered(c.audit().verify_audit(proto::VerifyAuditRequest {}).await)
        }
        "/marr.v1.Audit/ListAccessToMyRecords" => answered(
            c.audit()
                .list_access_to_my_records(proto::ListAccessToMyRecordsRequest::default())
                .await,
        ),
        "/marr.v1.OpenData/GetComparativeTable" => answered(
            c.open_data()
                .get_comparative_table(proto::GetComparativeTableRequest {
                    parent_code: target.place.into(),
                    level: proto::PlaceLevel::District as i32,
                    filter: None,
                    release: 0,
                })
                .await,
        ),
        "/marr.v1.OpenData/ListReleases" => answered(
            c.open_data()
                .list_releases(proto::ListReleasesRequest {})
                .await,
        ),
        "/marr.v1.OpenData/CutRelease" => {
            answered(c.open_data().cut_release(proto::CutReleaseRequest {}).await)
        }
        "/marr.v1.OpenData/ListThemes" => {
            answered(c.open_data().list_themes(proto::ListThemesRequest {}).await)
        }
        "/marr.v1.OpenData/ListReviews" => answered(
            c.open_data()
                .list_reviews(proto::ListReviewsRequest {
                    place_code: target.place.into(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.OpenData/GetReview" => answered(
            c.open_data()
                .get_review(proto::GetReviewRequest {
                    review_id: MATRIX_REVIEW,
                    revision: 0,
                })
                .await,
        ),
        "/marr.v1.OpenData/ListActions" => answered(
            c.open_data()
                .list_actions(proto::ListActionsRequest {
                    place_code: target.place.into(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.OpenData/GetLessons" => answered(
            c.open_data()
                .get_lessons(proto::GetLessonsRequest {
                    area_code: target.place.into(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.Inspection/GetLinesOfEnquiry" => answered(
            c.inspection()
                .get_lines_of_enquiry(proto::GetLinesOfEnquiryRequest {
                    place_code: target.place.into(),
                })
                .await,
        ),
        "/marr.v1.Reviews/RecordReview" => answered(
            c.client(ReviewsClient::new)
                .record_review(proto::RecordReviewRequest {
                    review: Some(review_of(target.place, target.agency)),
                    expected_revision: 0,
                })
                .await,
        ),
        "/marr.v1.Reviews/PlanAction" => answered(
            c.client(ReviewsClient::new)
                .plan_action(proto::PlanActionRequest {
                    recommendation: Some(recommendation_for(target.agency)),
                    description: "Weekly review of missing episodes".into(),
                    owner: "Head of Safeguarding".into(),
                    due: "2030-01-31".into(),
                    ..Default::default()
                })
                .await,
        ),
        "/marr.v1.Reviews/UpdateAction" => {
            // The matrix updates each action once at most (as its agency, in scope), so the
            // update is made against the revision the action was planned at.
            let at = recommendation_for(target.agency);
            let revision = 1;
            answered(
                c.client(ReviewsClient::new)
                    .update_action(proto::UpdateActionRequest {
                        recommendation: Some(at),
                        number: 1,
                        expected_revision: revision,
                        description: "Daily missing-episode meeting".into(),
                        owner: "Head of Safeguarding".into(),
                        due: "2030-01-31".into(),
                        status: proto::ActionStatus::InProgress as i32,
                        note: "Started".into(),
                    })
                    .await,
            )
        }
        "/marr.v1.Operations/Backup" => {
            first_of(c.operations().backup(proto::BackupRequest {}).await).await
        }
        "/grpc.health.v1.Health/Check" => answered(
            c.client(HealthClient::new)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await,
        ),
        "/grpc.health.v1.Health/Watch" => {
            first_of(
                c.client(HealthClient::new)
                    .watch(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await,
            )
            .await
        }
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo" => {
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            first_of(
                c.client(ServerReflectionClient::new)
                    .server_reflection_info(tokio_stream::iter(vec![request]))
                    .await,
            )
            .await
        }
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => {
            use tonic_reflection::pb::v1alpha as alpha;
            let request = alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
                ),
            };
            first_of(
                c.client(alpha::server_reflection_client::ServerReflectionClient::new)
                    .server_reflection_info(tokio_stream::iter(vec![request]))
                    .await,
            )
            .await
        }
        other => panic!("no example call for {other}: add one to the authorisation matrix"),
    }
}

/// The principal each role is tried as, and the requests in and out of its scope.
fn role_under_test(role: Role) -> (Option<&'static str>, Target, Target) {
    let anywhere = Target {
        place: NEWCASTLE,
        agency: NEWCASTLE,
    };
    match role {
        Role::Agency => (
            Some(agency_token(NEWCASTLE)),
            anywhere,
            Target {
                agency: NORTHUMBRIA,
                ..anywhere
            },
        ),
        Role::Inspector => (
            Some(NEWCASTLE_INSPECTOR),
            anywhere,
            Target {
                place: HARTLEPOOL,
                ..anywhere
            },
        ),
        Role::Board => (
            Some(GATESHEAD_BOARD),
            Target {
                place: GATESHEAD,
                ..anywhere
            },
            Target {
                place: HARTLEPOOL,
                ..anywhere
            },
        ),
        Role::Admin => (Some(ADMIN), anywhere, anywhere),
        Role::Public => (None, anywhere, anywhere),
    }
}

/// What a request outside the caller's scope gets, for methods that have a scope.
fn outside_scope(method: &str) -> Code {
    match method {
        // Answered as if absent, so snapshot numbers reveal nothing about other areas.
        "/marr.v1.Inspection/GetSnapshot" => Code::NotFound,
        // A trail outside the caller's places is answered with what lies inside them.
        "/marr.v1.Inspection/FollowSubject" => Code::Ok,
        m if m.starts_with("/marr.v1.RiskRegister/")
            || m.starts_with("/marr.v1.Reviews/")
            || m.starts_with("/marr.v1.Inspection/")
            || m.starts_with("/marr.v1.Alerts/") =>
        {
            Code::PermissionDenied
        }
        _ => Code::Ok,
    }
}

#[tokio::test]
async fn every_role_against_every_method_in_and_out_of_scope() {
    let (server, connection) = TestServer::north_east().await;
    let answers = push_all(
        &connection,
        vec![record_of(NEWCASTLE), record_of(NORTHUMBRIA)],
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32)
    );
    for place in SNAPSHOT_PLACES {
        connection
            .inspection()
            .create_snapshot(proto::CreateSnapshotRequest {
                place_code: place.into(),
                label: format!("Snapshot of {place}"),
                ..Default::default()
            })
            .await
            .expect("snapshot");
    }
    // A published review of Newcastle, with an action under each recommendation.
    connection
        .inspector
        .client(ReviewsClient::new)
        .record_review(proto::RecordReviewRequest {
            review: Some(review_of(NEWCASTLE, NEWCASTLE)),
            expected_revision: 0,
        })
        .await
        .expect("the matrix review");
    for agency in [NEWCASTLE, NORTHUMBRIA] {
        connection
            .agency(agency)
            .client(ReviewsClient::new)
            .plan_action(proto::PlanActionRequest {
                recommendation: Some(recommendation_for(agency)),
                description: "Daily missing-episode meeting".into(),
                owner: "Head of Safeguarding".into(),
                due: "2030-01-31".into(),
                ..Default::default()
            })
            .await
            .expect("the matrix action");
    }
    // The public table is read from releases: cut one before asking for it.
    connection
        .admin
        .open_data()
        .cut_release(proto::CutReleaseRequest {})
        .await
        .expect("release");

    let mut refusals = 0;
    let mut failures = Vec::new();
    for rule in METHOD_RULES {
        for role in Role::ALL {
            let (token, inside, outside) = role_under_test(role);
            let caller = match token {
                Some(token) => connection.as_token(token),
                None => connection.public.clone(),
            };
            let admitted = rule.admits(role);
            let refused_as = if role == Role::Public {
                Code::Unauthenticated
            } else {
                Code::PermissionDenied
            };
            let mut cases = vec![(
                "in scope",
                inside,
                if admitted { Code::Ok } else { refused_as },
            )];
            if admitted && !matches!(role, Role::Admin | Role::Public) {
                cases.push(("out of scope", outside, outside_scope(rule.method)));
            }
            for (case, target, expected) in cases {
                let got = call(&caller, rule.method, target).await;
                if got != Code::Ok {
                    refusals += 1;
                }
                if got != expected {
                    failures.push(format!(
                        "{} as {role} ({case}): expected {expected:?}, got {got:?}",
                        rule.method
                    ));
                }
            }
        }
        // A token nobody holds is refused everywhere, even where the public is welcome.
        let got = call(
            &connection.as_token("not-a-real-token"),
            rule.method,
            Target {
                place: NEWCASTLE,
                agency: NEWCASTLE,
            },
        )
        .await;
        refusals += 1;
        if got != Code::Unauthenticated {
            failures.push(format!(
                "{} with an unknown token: expected Unauthenticated, got {got:?}",
                rule.method
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every refusal left exactly one trace in the audit chain, and the chain holds.
    let store = server.store().clone();
    let (recorded, intact) = tokio::task::spawn_blocking(move || {
        let page = store
            .audit_events(&AuditFilter::default(), 0, 1_000_000)
            .expect("audit");
        let recorded = page
            .events
            .iter()
            .filter(|e| !e.outcome.starts_with("OK"))
            .count();
        (recorded, store.verify_audit().expect("verify"))
    })
    .await
    .expect("audit task");
    assert_eq!(recorded, refusals, "one audit event per refusal");
    assert!(intact.is_ok(), "{intact:?}");
}

#[tokio::test]
async fn a_refusal_does_not_say_whether_the_record_exists() {
    let (_server, connection) = TestServer::north_east().await;
    push_all(&connection, vec![record_of(NORTHUMBRIA)]).await;
    let newcastle = connection.agency(NEWCASTLE);
    let ask = |local_ref: &'static str| {
        let newcastle = newcastle.clone();
        async move {
            newcastle
                .risk_register()
                .get_record(proto::GetRecordRequest {
                    agency_id: NORTHUMBRIA.into(),
                    local_ref: local_ref.into(),
                })
                .await
                .expect_err("refused")
        }
    };
    let existing = ask("M-2").await;
    let missing = ask("NO-SUCH-RECORD").await;
    assert_eq!(existing.code(), Code::PermissionDenied);
    assert_eq!(
        (existing.code(), existing.message()),
        (missing.code(), missing.message()),
        "the same answer whether the record exists or not"
    );
}

#[tokio::test]
async fn an_inspector_follows_a_subject_only_inside_its_places() {
    let (_server, connection) = TestServer::north_east().await;
    push_all(
        &connection,
        vec![
            rec(
                NEWCASTLE,
                "T-1",
                NEWCASTLE_WARD,
                5,
                proto::Severity::High,
                3,
            ),
            rec("RTD", "T-2", HARTLEPOOL, 5, proto::Severity::High, 2),
        ],
    )
    .await;
    let trail = |token: &'static str| {
        let caller = connection.as_token(token);
        async move {
            caller
                .inspection()
                .follow_subject(proto::FollowSubjectRequest {
                    subject_key: subject(5),
                    purpose: "Joint targeted area inspection".into(),
                    as_of_sequence: 0,
                })
                .await
                .expect("trail")
                .into_inner()
                .trail
                .iter()
                .map(|e| {
                    e.revision
                        .as_ref()
                        .and_then(|r| r.record.as_ref())
                        .map(|r| r.local_ref.clone())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(trail(INSPECTOR).await, ["T-1", "T-2"], "England sees both");
    assert_eq!(
        trail(NEWCASTLE_INSPECTOR).await,
        ["T-1"],
        "Newcastle sees its own"
    );
}

#[tokio::test]
async fn past_the_rate_limit_calls_are_refused_and_what_was_accepted_is_intact() {
    let text = format!(
        "{}[limits]\ncalls_per_second = 1\nburst = 20\n",
        principals_toml()
    );
    let config: marr::config::Config = toml::from_str(&text).expect("config");
    let server = TestServer::start_configured(config).await;
    let admin = marr::cli::Connection::open(&marr::cli::ServerArgs::plain(server.url.clone()))
        .await
        .expect("connects")
        .with_token(ADMIN)
        .expect("token");
    marr::cli::places::import_tables(&admin, north_east_tables())
        .await
        .expect("import");
    marr::cli::agencies::register(
        &admin,
        NEWCASTLE,
        AgencyKind::ChildrenSocialCare,
        "Newcastle",
        &[NEWCASTLE.into()],
    )
    .await
    .expect("register");
    let newcastle = admin.with_token(agency_token(NEWCASTLE)).expect("token");

    let mut accepted = Vec::new();
    let mut exhausted = None;
    for n in 0..40 {
        let local_ref = format!("RATE-{n}");
        match newcastle
            .risk_register()
            .submit_record(proto::SubmitRecordRequest {
                record: Some(record(&local_ref, 1)),
            })
            .await
        {
            Ok(answer) => accepted.push((local_ref, answer.into_inner().sequence)),
            Err(status) => {
                exhausted = Some(status);
                break;
            }
        }
    }
    let status = exhausted.expect("the limit was reached within 40 calls");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("rate limit"), "{status:?}");
    assert!(
        accepted.len() >= 15,
        "the burst was allowed: {}",
        accepted.len()
    );
    // Another principal has its own allowance.
    admin
        .directory()
        .list_agencies(proto::ListAgenciesRequest {})
        .await
        .expect("the administrator is not limited by the agency's calls");

    let store = server.store().clone();
    let expected: Vec<u64> = (1..=accepted.len() as u64).collect();
    let sequences: Vec<u64> = accepted.iter().map(|(_, s)| *s).collect();
    assert_eq!(sequences, expected, "gap-free, nothing half written");
    for (local_ref, sequence) in &accepted {
        let key = marr::domain::RecordKey::parse(NEWCASTLE, local_ref).expect("key");
        assert_eq!(
            store.record(&key).expect("read").map(|r| r.sequence),
            Some(*sequence)
        );
    }
    assert_eq!(store.head_sequence(), accepted.len() as u64);
    assert_eq!(
        store.verify_projections().expect("verify"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn past_the_concurrency_limit_calls_are_refused_not_queued() {
    let text = format!("{}[limits]\nmax_concurrent_calls = 1\n", principals_toml());
    let config: marr::config::Config = toml::from_str(&text).expect("config");
    let server = TestServer::start_configured(config).await;
    let connection = server.connect().await;
    // An import answers only when its last chunk has arrived: until then it holds the slot.
    let (chunks, held) = tokio::sync::mpsc::channel::<proto::ImportPlacesRequest>(4);
    let police = north_east_tables().swap_remove(1);
    chunks
        .send(proto::ImportPlacesRequest {
            table: "police".into(),
            header: police.header.clone(),
            rows: police
                .rows
                .iter()
                .map(|row| proto::LookupRow {
                    line: row.line,
                    cells: row.cells.clone(),
                })
                .collect(),
        })
        .await
        .expect("chunk");
    let mut directory = connection.directory();
    let import = tokio::spawn(async move {
        directory
            .import_places(tokio_stream::wrappers::ReceiverStream::new(held))
            .await
    });
    // A call holds its slot until its answer has gone out, so the import is given a moment to
    // take the slot first rather than race the calls below for it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut refused = None;
    for _ in 0..100 {
        match connection
            .inspection()
            .get_place_view(proto::GetPlaceViewRequest {
                place_code: NORTHUMBRIA.into(),
                ..Default::default()
            })
            .await
        {
            Err(status) if status.code() == Code::ResourceExhausted => {
                refused = Some(status);
                break;
            }
            // The import has not reached the server yet.
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let refused = refused.expect("a second call while the import holds the only slot is refused");
    assert!(
        refused.message().contains("calls in progress"),
        "{refused:?}"
    );

    drop(chunks);
    let imported = import
        .await
        .expect("task")
        .expect("the held import completes");
    assert!(imported.into_inner().rows_read > 0);
    connection
        .directory()
        .list_agencies(proto::ListAgenciesRequest {})
        .await
        .expect("with the slot free again, the call is answered");
}
