//! Reviews, action plans, collective lessons and lines of enquiry: publication on the clock,
//! corrections with their history, actions changed only by their accountable agency, overdue
//! actions alerted once, lessons that equal a recount, enquiries that name their evidence,
//! and every change in the audit chain.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::*;
use marr::domain::PlaceCode;
use marr::domain::audit::AuditFilter;
use marr::proto;
use marr::proto::reviews_client::ReviewsClient;
use marr::store::StoreOptions;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;
use tonic_types::StatusExt;

/// Noon today (UTC): a controlled clock starts here, so a day's step never lands near a
/// change of date, whatever time the test runs.
fn noon_today() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc().replace_time(time::macros::time!(12:00))
}

/// A clock that stands at noon today plus `days`, moving on with the real one.
fn shifted_clock(days: &Arc<AtomicI64>) -> StoreOptions {
    let days = Arc::clone(days);
    let started = std::time::Instant::now();
    let noon = noon_today();
    StoreOptions {
        clock: Arc::new(move || {
            noon + started.elapsed() + time::Duration::days(days.load(Ordering::SeqCst))
        }),
        ..StoreOptions::default()
    }
}

fn timestamp(at: time::OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    }
}

fn day(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    at.date().format(&format).expect("formats")
}

fn finding(theme: &str, judgement: proto::Judgement, to: &[&str]) -> proto::Finding {
    proto::Finding {
        theme: theme.into(),
        judgement: judgement as i32,
        summary: format!(
            "Practice on {} needs attention across partners",
            theme.replace('_', " ")
        ),
        recommendations: to
            .iter()
            .map(|agency| proto::Recommendation {
                text: "Agree a shared protocol and audit it quarterly".into(),
                agency_id: (*agency).into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A review of `place` published at `published_at`, its agencies those its findings address.
fn review(
    place: &str,
    published_at: time::OffsetDateTime,
    findings: Vec<proto::Finding>,
) -> proto::Review {
    let mut agencies: Vec<String> = findings
        .iter()
        .flat_map(|f| f.recommendations.iter().map(|r| r.agency_id.clone()))
        .collect();
    agencies.sort();
    agencies.dedup();
    if agencies.is_empty() {
        agencies.push(NEWCASTLE.into());
    }
    let fieldwork_end = published_at - time::Duration::days(30);
    proto::Review {
        kind: proto::ReviewKind::JointTargetedAreaInspection as i32,
        title: format!("Joint targeted area inspection of {place}"),
        place_code: place.into(),
        agency_ids: agencies,
        fieldwork_start: day(fieldwork_end - time::Duration::days(10)),
        fieldwork_end: day(fieldwork_end),
        published_at: Some(timestamp(published_at)),
        findings,
        ..Default::default()
    }
}

async fn record(
    c: &marr::cli::Connection,
    review: proto::Review,
) -> Result<proto::Review, tonic::Status> {
    let id = review.id;
    let expected = if id == 0 { 0 } else { review.revision };
    c.client(ReviewsClient::new)
        .record_review(proto::RecordReviewRequest {
            review: Some(review),
            expected_revision: expected,
        })
        .await
        .map(|r| r.into_inner().review.expect("the review"))
}

async fn get(
    c: &marr::cli::Connection,
    id: u64,
    revision: u32,
) -> Result<proto::GetReviewResponse, tonic::Status> {
    c.open_data()
        .get_review(proto::GetReviewRequest {
            review_id: id,
            revision,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn listed(c: &marr::cli::Connection, unpublished: bool) -> Vec<u64> {
    c.open_data()
        .list_reviews(proto::ListReviewsRequest {
            include_unpublished: unpublished,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .reviews
        .iter()
        .map(|r| r.id)
        .collect()
}

fn field_of(status: &tonic::Status) -> String {
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

fn plan(at: (u64, u32, u32), due: &str, description: &str) -> proto::PlanActionRequest {
    proto::PlanActionRequest {
        recommendation: Some(proto::RecommendationRef {
            review_id: at.0,
            finding: at.1,
            recommendation: at.2,
        }),
        description: description.into(),
        owner: "Head of Children's Safeguarding".into(),
        due: due.into(),
        ..Default::default()
    }
}

fn update(
    action: &proto::Action,
    status: proto::ActionStatus,
    due: &str,
) -> proto::UpdateActionRequest {
    proto::UpdateActionRequest {
        recommendation: action.recommendation,
        number: action.number,
        expected_revision: action.revision,
        description: action.description.clone(),
        owner: action.owner.clone(),
        due: due.into(),
        status: status as i32,
        note: "Updated at the partnership meeting".into(),
    }
}

async fn actions_of(c: &marr::cli::Connection, review: u64) -> Vec<proto::Action> {
    c.open_data()
        .list_actions(proto::ListActionsRequest {
            review_id: review,
            ..Default::default()
        })
        .await
        .expect("actions")
        .into_inner()
        .actions
}

#[tokio::test]
async fn a_review_is_public_from_its_publication_time_without_a_restart_and_corrections_keep_history()
 {
    let days = Arc::new(AtomicI64::new(0));
    let (_server, connection) = TestServer::north_east_with(shifted_clock(&days)).await;
    let now = noon_today();
    let newcastle_inspector = connection.as_token(NEWCASTLE_INSPECTOR);

    // Set ahead: published in two days' time.
    let draft = review(
        NEWCASTLE,
        now + time::Duration::days(2),
        vec![finding(
            "child_criminal_exploitation",
            proto::Judgement::PriorityAction,
            &[NEWCASTLE, NORTHUMBRIA],
        )],
    );
    let recorded = record(&newcastle_inspector, draft).await.expect("recorded");
    assert_eq!(
        (recorded.id, recorded.revision, recorded.published),
        (1, 1, false)
    );

    // Before then: not there for the public, nor for an agency or a board; there for the
    // inspectors whose places cover it.
    for caller in [
        &connection.public,
        connection.agency(NEWCASTLE),
        &connection.board,
    ] {
        let refused = get(caller, 1, 0).await.expect_err("not yet published");
        assert_eq!(refused.code(), Code::NotFound);
        assert!(listed(caller, false).await.is_empty());
    }
    let gateshead_board = connection.as_token(GATESHEAD_BOARD);
    assert_eq!(
        get(&gateshead_board, 1, 0)
            .await
            .expect_err("hidden")
            .code(),
        Code::NotFound
    );
    let seen = get(&newcastle_inspector, 1, 0)
        .await
        .expect("in its places");
    assert!(!seen.review.expect("review").published);
    assert_eq!(listed(&connection.inspector, true).await, vec![1]);
    let refused = connection
        .public
        .open_data()
        .list_reviews(proto::ListReviewsRequest {
            include_unpublished: true,
            ..Default::default()
        })
        .await
        .expect_err("only inspectors list unpublished reviews");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Nobody plans actions on a review that is not published.
    let refused = connection
        .agency(NEWCASTLE)
        .client(ReviewsClient::new)
        .plan_action(plan((1, 1, 1), "2031-01-31", "Daily exploitation triage"))
        .await
        .expect_err("not published");
    assert_eq!(refused.code(), Code::NotFound);

    // A correction before publication may move the date.
    let mut correction = recorded.clone();
    correction.note = "Corrects the title".into();
    correction.title = "Joint targeted area inspection: child criminal exploitation".into();
    let corrected = record(&newcastle_inspector, correction.clone())
        .await
        .expect("corrected");
    assert_eq!(corrected.revision, 2);
    let listed_now = connection
        .inspector
        .open_data()
        .list_reviews(proto::ListReviewsRequest {
            include_unpublished: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .reviews;
    assert_eq!(
        listed_now
            .iter()
            .map(|r| (r.id, r.revision))
            .collect::<Vec<_>>(),
        vec![(1, 2)],
        "a listing shows each review once, as its latest revision"
    );

    // The clock passes the publication time: public at once, no restart.
    days.store(3, Ordering::SeqCst);
    let public = get(&connection.public, 1, 0).await.expect("published");
    let shown = public.review.expect("review");
    assert!(shown.published);
    assert_eq!(shown.title, correction.title);
    assert_eq!(shown.recorded_by, "", "open data names no principal");
    assert_eq!(public.revisions, 2);
    assert_eq!(listed(&connection.public, false).await, vec![1]);
    // The history is kept: revision 1 reads as it was recorded.
    let first = get(&connection.public, 1, 1).await.expect("revision 1");
    assert_eq!(
        first.review.expect("review").title,
        "Joint targeted area inspection of E08000021"
    );

    // Never unpublished: a correction cannot move the publication time now.
    let mut unpublish = corrected.clone();
    unpublish.note = "Withdraws the review".into();
    unpublish.published_at = Some(timestamp(now + time::Duration::days(30)));
    let refused = record(&newcastle_inspector, unpublish)
        .await
        .expect_err("stays published");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_of(&refused), "review.published_at");
    // A correction made against an old revision is stale.
    let refused = record(&newcastle_inspector, correction)
        .await
        .expect_err("stale");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // An inspector elsewhere cannot correct it, and learns nothing from trying.
    let mut elsewhere = corrected.clone();
    elsewhere.note = "Correction from elsewhere".into();
    let gateshead_inspector_refusal = record(&connection.as_token(GATESHEAD_BOARD), elsewhere)
        .await
        .expect_err("a board records no review");
    assert_eq!(gateshead_inspector_refusal.code(), Code::PermissionDenied);
    assert_eq!(
        get(&connection.public, 1, 0).await.expect("read").revisions,
        2
    );
}

#[tokio::test]
async fn free_text_holding_an_identifier_is_refused_by_field_and_nothing_is_recorded() {
    let (server, connection) = TestServer::north_east().await;
    let now = time::OffsetDateTime::now_utc();
    let mut leaky = review(
        NEWCASTLE,
        now,
        vec![finding(
            "neglect",
            proto::Judgement::AreaForImprovement,
            &[NEWCASTLE],
        )],
    );
    leaky.findings[0].recommendations[0].text =
        "Call the family on 0191 498 0000 before the conference".into();
    let refused = record(&connection.inspector, leaky)
        .await
        .expect_err("screened");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        field_of(&refused),
        "review.findings[0].recommendations[0].text"
    );
    assert!(
        !refused.message().contains("0191"),
        "the refusal does not repeat the text: {}",
        refused.message()
    );
    let mut unknown = review(
        NEWCASTLE,
        now,
        vec![finding("front door", proto::Judgement::Strength, &[])],
    );
    unknown.agency_ids = vec!["NOSUCHAGENCY".into()];
    let refused = record(&connection.inspector, unknown)
        .await
        .expect_err("theme");
    assert_eq!(field_of(&refused), "review.findings[0].theme");
    assert!(listed(&connection.inspector, true).await.is_empty());

    // An action holding a postcode is refused and leaves the plan as it was.
    let published = record(
        &connection.inspector,
        review(
            NEWCASTLE,
            now,
            vec![finding(
                "missing",
                proto::Judgement::PriorityAction,
                &[NEWCASTLE],
            )],
        ),
    )
    .await
    .expect("recorded");
    let refused = connection
        .agency(NEWCASTLE)
        .client(ReviewsClient::new)
        .plan_action(plan(
            (published.id, 1, 1),
            "2031-01-31",
            "Visit the home at NE1 4ST weekly",
        ))
        .await
        .expect_err("screened");
    assert_eq!(field_of(&refused), "description");
    assert!(
        actions_of(&connection.public, published.id)
            .await
            .is_empty()
    );
    drop(server);
}

#[tokio::test]
async fn only_the_accountable_agency_plans_and_updates_its_actions() {
    let (_server, connection) = TestServer::north_east().await;
    let now = time::OffsetDateTime::now_utc();
    let recorded = record(
        &connection.inspector,
        review(
            NEWCASTLE,
            now - time::Duration::hours(1),
            vec![finding(
                "missing",
                proto::Judgement::PriorityAction,
                &[NEWCASTLE, NORTHUMBRIA],
            )],
        ),
    )
    .await
    .expect("recorded");
    let reviews = |agency: &str| connection.agency(agency).client(ReviewsClient::new);

    // Northumbria Police cannot plan against the council's recommendation.
    let refused = reviews(NORTHUMBRIA)
        .plan_action(plan(
            (recorded.id, 1, 1),
            "2031-01-31",
            "Missing-episode triage",
        ))
        .await
        .expect_err("not its recommendation");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(actions_of(&connection.public, recorded.id).await.is_empty());
    // An inspector is no agency.
    let refused = connection
        .inspector
        .client(ReviewsClient::new)
        .plan_action(plan(
            (recorded.id, 1, 1),
            "2031-01-31",
            "Missing-episode triage",
        ))
        .await
        .expect_err("agencies only");
    assert_eq!(refused.code(), Code::PermissionDenied);

    let council = reviews(NEWCASTLE)
        .plan_action(plan(
            (recorded.id, 1, 1),
            "2031-01-31",
            "Missing-episode triage",
        ))
        .await
        .expect("the council plans")
        .into_inner()
        .action
        .expect("action");
    let police = reviews(NORTHUMBRIA)
        .plan_action(plan(
            (recorded.id, 1, 2),
            "2031-03-31",
            "Return-home interviews within 72 hours",
        ))
        .await
        .expect("the police plan")
        .into_inner()
        .action
        .expect("action");
    assert_eq!((council.number, council.revision, police.number), (1, 1, 1));
    assert_eq!(council.status, proto::ActionStatus::Planned as i32);

    // The police cannot update the council's action; the council can, against its revision.
    let refused = reviews(NORTHUMBRIA)
        .update_action(update(&council, proto::ActionStatus::Done, "2031-01-31"))
        .await
        .expect_err("not its action");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let moved = reviews(NEWCASTLE)
        .update_action(update(
            &council,
            proto::ActionStatus::InProgress,
            "2031-01-31",
        ))
        .await
        .expect("updated")
        .into_inner()
        .action
        .expect("action");
    assert_eq!(
        (moved.revision, moved.status),
        (2, proto::ActionStatus::InProgress as i32)
    );
    let stale = reviews(NEWCASTLE)
        .update_action(update(&council, proto::ActionStatus::Done, "2031-01-31"))
        .await
        .expect_err("made against revision 1");
    assert_eq!(stale.code(), Code::FailedPrecondition);

    // The published plan shows each action as it stands, to anyone.
    let plan_now = get(&connection.public, recorded.id, 0)
        .await
        .expect("plan")
        .actions;
    assert!(
        plan_now.iter().all(|a| a.updated_by.is_empty()),
        "open data names no principal"
    );
    let statuses: Vec<(String, i32, u32)> = plan_now
        .iter()
        .map(|a| (a.agency_id.clone(), a.status, a.revision))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (
                NEWCASTLE.to_string(),
                proto::ActionStatus::InProgress as i32,
                2
            ),
            (
                NORTHUMBRIA.to_string(),
                proto::ActionStatus::Planned as i32,
                1
            ),
        ]
    );

    // A correction may not drop a recommendation that has actions.
    let mut drop_it = recorded.clone();
    drop_it.note = "Drops the police recommendation".into();
    drop_it.findings[0].recommendations.truncate(1);
    drop_it.agency_ids = vec![NEWCASTLE.into()];
    let refused = record(&connection.inspector, drop_it)
        .await
        .expect_err("has actions");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_of(&refused), "review.findings[0].recommendations[1]");
}

#[tokio::test]
async fn an_overdue_action_raises_one_alert_to_the_boards_of_the_place_once_across_a_restart() {
    let days = Arc::new(AtomicI64::new(0));
    let (server, connection) = TestServer::north_east_with(shifted_clock(&days)).await;
    let now = noon_today();
    let recorded = record(
        &connection.inspector,
        review(
            NEWCASTLE,
            now - time::Duration::hours(1),
            vec![finding(
                "domestic_abuse",
                proto::Judgement::PriorityAction,
                &[NEWCASTLE],
            )],
        ),
    )
    .await
    .expect("recorded");
    let council = connection.agency(NEWCASTLE).client(ReviewsClient::new);
    let due = day(now + time::Duration::days(1));
    let action = council
        .clone()
        .plan_action(plan(
            (recorded.id, 1, 1),
            &due,
            "Domestic abuse triage at the front door",
        ))
        .await
        .expect("planned")
        .into_inner()
        .action
        .expect("action");
    let sweep = |server: &TestServer| {
        let store = server.store().clone();
        async move { store.sweep_stale().await.expect("sweep") }
    };
    let overdue_alerts = |board: marr::cli::Connection| async move {
        board
            .alerts()
            .list_alerts(proto::ListAlertsRequest {
                filter: Some(proto::AlertFilter {
                    kinds: vec![proto::AlertKind::OverdueAction as i32],
                    ..Default::default()
                }),
                after_sequence: 0,
                page_size: 100,
            })
            .await
            .expect("alerts")
            .into_inner()
            .alerts
    };

    assert_eq!(sweep(&server).await, 0, "not due yet");
    days.store(1, Ordering::SeqCst);
    assert_eq!(sweep(&server).await, 0, "due today is not overdue");
    days.store(2, Ordering::SeqCst);
    assert_eq!(sweep(&server).await, 1, "overdue the day after it was due");
    assert_eq!(sweep(&server).await, 0, "once");
    let alerts = overdue_alerts(connection.board.clone()).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].place_code, NEWCASTLE);
    assert_eq!(alerts[0].agency_ids, vec![NEWCASTLE.to_string()]);
    assert_eq!(
        alerts[0].severity,
        proto::Severity::High as i32,
        "a priority action"
    );
    assert!(alerts[0].detail.contains("was due"), "{}", alerts[0].detail);
    // A board of another place does not receive it.
    assert!(
        overdue_alerts(connection.as_token(GATESHEAD_BOARD))
            .await
            .is_empty()
    );
    let listed = connection
        .public
        .open_data()
        .list_actions(proto::ListActionsRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .expect("overdue actions")
        .into_inner()
        .actions;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].overdue);

    // Across a restart: still once.
    drop(connection);
    let server = server.restart().await;
    assert_eq!(sweep(&server).await, 0, "not raised again after a restart");
    let connection = server.connect().await;
    let council = connection.agency(NEWCASTLE).client(ReviewsClient::new);
    // An update that keeps the date does not raise it again; a new date, once passed, does.
    let kept = council
        .clone()
        .update_action(update(&action, proto::ActionStatus::Overdue, &due))
        .await
        .expect("updated")
        .into_inner()
        .action
        .expect("action");
    assert_eq!(sweep(&server).await, 0);
    let later = day(now + time::Duration::days(5));
    let moved = council
        .clone()
        .update_action(update(&kept, proto::ActionStatus::InProgress, &later))
        .await
        .expect("moved")
        .into_inner()
        .action
        .expect("action");
    assert!(!moved.overdue);
    days.store(6, Ordering::SeqCst);
    assert_eq!(sweep(&server).await, 1, "the new due date passed");
    // Done is never overdue.
    let done = council
        .clone()
        .update_action(update(
            &moved,
            proto::ActionStatus::Done,
            &day(now + time::Duration::days(7)),
        ))
        .await
        .expect("done")
        .into_inner()
        .action
        .expect("action");
    days.store(30, Ordering::SeqCst);
    assert_eq!(sweep(&server).await, 0);
    assert!(!done.overdue);
    assert_eq!(overdue_alerts(connection.board.clone()).await.len(), 2);
}

/// One finding as the test recorded it: its theme and judgement.
type Coded = (String, i32);

#[tokio::test]
async fn lessons_equal_a_recount_of_the_published_findings_of_the_area_and_period() {
    let (_server, connection) = TestServer::north_east().await;
    let now = time::OffsetDateTime::now_utc();
    let themes = [
        "neglect",
        "missing",
        "information_sharing",
        "front_door",
        "voice_of_the_child",
        "children_in_need",
    ];
    let judgements = [
        proto::Judgement::Strength,
        proto::Judgement::AreaForImprovement,
        proto::Judgement::PriorityAction,
    ];
    let places = [NEWCASTLE, GATESHEAD, HARTLEPOOL, NORTHUMBRIA];
    let mut rng = StdRng::seed_from_u64(15);
    // The test's own account: review id → (place, publication, findings).
    let mut model: BTreeMap<u64, (String, time::OffsetDateTime, Vec<Coded>)> = BTreeMap::new();
    for _ in 0..14 {
        // Published from 700 days ago to 20 days ahead (those stay unpublished).
        let published = now - time::Duration::days(rng.random_range(-20..700));
        let place = places[rng.random_range(0..places.len())];
        let findings: Vec<proto::Finding> = (0..rng.random_range(1..5))
            .map(|_| {
                let judgement = judgements[rng.random_range(0..3)];
                let to: &[&str] = if judgement == proto::Judgement::PriorityAction {
                    &[NEWCASTLE]
                } else {
                    &[]
                };
                finding(themes[rng.random_range(0..themes.len())], judgement, to)
            })
            .collect();
        let coded = findings
            .iter()
            .map(|f| (f.theme.clone(), f.judgement))
            .collect();
        let recorded = record(&connection.inspector, review(place, published, findings))
            .await
            .expect("recorded");
        model.insert(recorded.id, (place.to_string(), published, coded));
    }
    // Corrections count as the latest revision only: re-theme a published review's first
    // finding.
    let (&corrected_id, _) = model
        .iter()
        .find(|(_, (_, published, _))| *published < now)
        .expect("a published review");
    let mut correction = get(&connection.inspector, corrected_id, 0)
        .await
        .expect("read")
        .review
        .expect("review");
    correction.findings[0].theme = "transitions_to_adulthood".into();
    correction.note = "Re-codes the first finding".into();
    record(&connection.inspector, correction)
        .await
        .expect("corrected");
    model.get_mut(&corrected_id).expect("in the model").2[0].0 = "transitions_to_adulthood".into();

    let from = now - time::Duration::days(365);
    let until = now + time::Duration::days(1);
    for area in [NORTH_EAST, NEWCASTLE, ENGLAND] {
        let lessons = connection
            .public
            .open_data()
            .get_lessons(proto::GetLessonsRequest {
                area_code: area.into(),
                from: day(from),
                until: day(until),
            })
            .await
            .expect("lessons")
            .into_inner();
        // The recount: published, inside the area, publication date within the period.
        let inside = |place: &str| area != NEWCASTLE || place == NEWCASTLE;
        let in_period =
            |at: time::OffsetDateTime| at.date() >= from.date() && at.date() < until.date();
        let mut expected: BTreeMap<String, [u64; 3]> = BTreeMap::new();
        let (mut reviews, mut findings) = (0, 0);
        for (place, published, coded) in model.values() {
            if *published > now || !inside(place) || !in_period(*published) {
                continue;
            }
            reviews += 1;
            for (theme, judgement) in coded {
                findings += 1;
                expected.entry(theme.clone()).or_default()[(*judgement - 1) as usize] += 1;
            }
        }
        let got: BTreeMap<String, [u64; 3]> = lessons
            .themes
            .iter()
            .filter(|t| t.total > 0)
            .map(|t| {
                let theme = t.theme.as_ref().expect("theme").word.clone();
                assert_eq!(
                    t.evidence.len() as u64,
                    t.total,
                    "{theme}: one piece of evidence per finding counted"
                );
                (
                    theme,
                    [t.strengths, t.areas_for_improvement, t.priority_actions],
                )
            })
            .collect();
        assert_eq!(got, expected, "lessons of {area}");
        assert_eq!(
            (lessons.reviews, lessons.findings),
            (reviews, findings),
            "{area}"
        );
        for theme in &lessons.themes {
            for evidence in &theme.evidence {
                let (place, published, _) = &model[&evidence.review_id];
                assert!(*published <= now && inside(place), "evidence {evidence:?}");
            }
        }
    }
}

#[tokio::test]
async fn lines_of_enquiry_name_their_evidence_and_follow_new_reviews_of_neighbours() {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    marr::cli::places::import_tables(&connection, current_geography_tables())
        .await
        .expect("the current geography imports");
    let tables =
        marr::cli::neighbours::read_tables(&[neighbours_file(NEIGHBOURS_2025)]).expect("readable");
    marr::cli::neighbours::import_tables(&connection.admin, tables)
        .await
        .expect("the neighbours import");
    let newcastle = PlaceCode::parse(NEWCASTLE).expect("code");
    let neighbours: Vec<String> = server
        .store()
        .neighbours_of(newcastle)
        .iter()
        .map(|n| n.place.to_string())
        .collect();
    assert_eq!(neighbours.len(), 10);
    // A North East authority that is not one of Newcastle's neighbours.
    let region_place = [
        GATESHEAD,
        HARTLEPOOL,
        "E08000022",
        "E08000023",
        "E08000024",
        "E06000047",
        "E06000057",
        "E06000005",
    ]
    .into_iter()
    .find(|code| !neighbours.iter().any(|n| n == code))
    .expect("a regional authority outside the neighbours");
    for place in neighbours
        .iter()
        .map(String::as_str)
        .chain([NEWCASTLE, region_place])
    {
        marr::cli::agencies::register(
            &connection,
            place,
            marr::domain::AgencyKind::ChildrenSocialCare,
            &format!("council {place}"),
            &[place.to_string()],
        )
        .await
        .expect("the agency registers");
    }
    let now = time::OffsetDateTime::now_utc();
    let enquiries = |c: marr::cli::Connection| async move {
        c.inspection()
            .get_lines_of_enquiry(proto::GetLinesOfEnquiryRequest {
                place_code: NEWCASTLE.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    };
    let themes_of = |answer: &proto::GetLinesOfEnquiryResponse| -> Vec<String> {
        answer
            .lines
            .iter()
            .map(|l| l.theme.as_ref().expect("theme").word.clone())
            .collect()
    };

    assert!(
        enquiries(connection.inspector.clone())
            .await
            .expect("answered")
            .lines
            .is_empty()
    );

    // A neighbour's review with a priority action on information sharing.
    let first = &neighbours[0];
    let a = record(
        &connection.inspector,
        review(
            first,
            now - time::Duration::days(40),
            vec![
                finding(
                    "information_sharing",
                    proto::Judgement::PriorityAction,
                    &[first],
                ),
                finding("early_help", proto::Judgement::Strength, &[]),
            ],
        ),
    )
    .await
    .expect("recorded");
    let answer = enquiries(connection.inspector.clone())
        .await
        .expect("answered");
    assert_eq!(
        themes_of(&answer),
        vec!["information_sharing"],
        "strengths suggest nothing"
    );
    let line = &answer.lines[0];
    assert_eq!(line.rank, 1);
    assert_eq!(line.evidence.len(), 1);
    let evidence = line.evidence[0].finding.as_ref().expect("finding");
    assert_eq!((evidence.review_id, evidence.finding), (a.id, 1));
    assert_eq!(evidence.place_code, *first);
    assert_eq!(line.evidence[0].relation, proto::Relation::Neighbour as i32);
    assert!(
        line.reason.contains("Information sharing"),
        "{}",
        line.reason
    );

    // A second neighbour's review on neglect, and one elsewhere in the region on the front
    // door: both appear, the neighbour's above the region's.
    let second = &neighbours[1];
    record(
        &connection.inspector,
        review(
            second,
            now - time::Duration::days(10),
            vec![finding(
                "neglect",
                proto::Judgement::AreaForImprovement,
                &[second],
            )],
        ),
    )
    .await
    .expect("recorded");
    record(
        &connection.inspector,
        review(
            region_place,
            now - time::Duration::days(5),
            vec![finding(
                "front_door",
                proto::Judgement::AreaForImprovement,
                &[region_place],
            )],
        ),
    )
    .await
    .expect("recorded");
    // Not yet published: no evidence yet.
    record(
        &connection.inspector,
        review(
            second,
            now + time::Duration::days(5),
            vec![finding(
                "workforce",
                proto::Judgement::PriorityAction,
                &[second],
            )],
        ),
    )
    .await
    .expect("recorded");
    let answer = enquiries(connection.as_token(NEWCASTLE_INSPECTOR))
        .await
        .expect("answered in its own place");
    assert_eq!(
        themes_of(&answer),
        vec!["information_sharing", "neglect", "front_door"]
    );
    let region = answer.lines[2].evidence[0]
        .finding
        .as_ref()
        .expect("finding");
    assert_eq!(region.place_code, region_place);
    assert_eq!(
        answer.lines[2].evidence[0].relation,
        proto::Relation::Region as i32
    );

    // Newcastle's own recent review covered information sharing: it leaves the lines and is
    // listed as covered, with the finding.
    let own = record(
        &connection.inspector,
        review(
            NEWCASTLE,
            now - time::Duration::days(1),
            vec![finding(
                "information_sharing",
                proto::Judgement::Strength,
                &[],
            )],
        ),
    )
    .await
    .expect("recorded");
    let answer = enquiries(connection.inspector.clone())
        .await
        .expect("answered");
    assert_eq!(themes_of(&answer), vec!["neglect", "front_door"]);
    let covered = &answer.covered[0];
    assert_eq!(
        covered.theme.as_ref().expect("theme").word,
        "information_sharing"
    );
    assert_eq!(covered.evidence[0].review_id, own.id);

    // Lines of enquiry stay within the caller's places.
    let refused = enquiries(connection.as_token(GATESHEAD_BOARD))
        .await
        .expect_err("Newcastle is outside Gateshead's places");
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn publication_corrections_and_action_updates_are_in_the_audit_chain() {
    let (server, connection) = TestServer::north_east().await;
    let now = time::OffsetDateTime::now_utc();
    let recorded = record(
        &connection.inspector,
        review(
            NEWCASTLE,
            now - time::Duration::hours(2),
            vec![finding(
                "self_harm",
                proto::Judgement::PriorityAction,
                &[NEWCASTLE],
            )],
        ),
    )
    .await
    .expect("recorded");
    let mut correction = recorded.clone();
    correction.note = "Corrects the fieldwork dates".into();
    correction.fieldwork_start = day(now - time::Duration::days(60));
    record(&connection.inspector, correction)
        .await
        .expect("corrected");
    let council = connection.agency(NEWCASTLE).client(ReviewsClient::new);
    let action = council
        .clone()
        .plan_action(plan(
            (recorded.id, 1, 1),
            "2031-01-31",
            "Self-harm pathway with the trust",
        ))
        .await
        .expect("planned")
        .into_inner()
        .action
        .expect("action");
    council
        .clone()
        .update_action(update(
            &action,
            proto::ActionStatus::InProgress,
            "2031-01-31",
        ))
        .await
        .expect("updated");

    let store = server.store().clone();
    let (events, intact) = tokio::task::spawn_blocking(move || {
        let page = store
            .audit_events(&AuditFilter::default(), 0, 10_000)
            .expect("audit");
        (page.events, store.verify_audit().expect("verify"))
    })
    .await
    .expect("audit task");
    assert!(intact.is_ok(), "{intact:?}");
    let of = |method: &str| -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e.method == method && e.outcome.starts_with("OK"))
            .map(|e| (e.principal.clone(), e.outcome.clone()))
            .collect()
    };
    let recorded_events = of("/marr.v1.Reviews/RecordReview");
    assert_eq!(recorded_events.len(), 2, "{recorded_events:?}");
    assert!(recorded_events[0].1.contains("review 1 revision 1"));
    assert!(recorded_events[1].1.contains("review 1 revision 2"));
    assert!(recorded_events.iter().all(|(who, _)| who == "inspector"));
    let correction_event = events
        .iter()
        .find(|e| e.outcome.contains("revision 2 recorded"))
        .expect("the correction");
    assert_eq!(correction_event.purpose, "Corrects the fieldwork dates");
    assert_eq!(
        correction_event.place.map(|p| p.to_string()),
        Some(NEWCASTLE.to_string())
    );
    let planned = of("/marr.v1.Reviews/PlanAction");
    let updated = of("/marr.v1.Reviews/UpdateAction");
    assert_eq!(planned.len(), 1);
    assert_eq!(updated.len(), 1);
    assert!(updated[0].1.contains("is in_progress"), "{updated:?}");
    assert_eq!(updated[0].0, format!("agency {NEWCASTLE}"));
}

#[tokio::test]
async fn a_backup_restores_every_revision_of_reviews_and_actions_and_the_overdue_watch() {
    let (server, connection) = TestServer::north_east().await;
    let now = time::OffsetDateTime::now_utc();
    let recorded = record(
        &connection.inspector,
        review(
            NEWCASTLE,
            now - time::Duration::hours(1),
            vec![finding(
                "modern_slavery",
                proto::Judgement::PriorityAction,
                &[NEWCASTLE],
            )],
        ),
    )
    .await
    .expect("recorded");
    let mut correction = recorded.clone();
    correction.note = "Adds the police to the agencies in scope".into();
    correction.agency_ids.push(NORTHUMBRIA.into());
    record(&connection.inspector, correction)
        .await
        .expect("corrected");
    let council = connection.agency(NEWCASTLE).client(ReviewsClient::new);
    let action = council
        .clone()
        .plan_action(plan(
            (recorded.id, 1, 1),
            "2031-01-31",
            "Modern slavery pathway",
        ))
        .await
        .expect("planned")
        .into_inner()
        .action
        .expect("action");
    council
        .clone()
        .update_action(update(
            &action,
            proto::ActionStatus::InProgress,
            "2031-02-28",
        ))
        .await
        .expect("updated");

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("marr.backup");
    let (summary, _) = marr::cli::backup::backup(&connection.admin, &file)
        .await
        .expect("backup");
    assert_eq!((summary.reviews, summary.actions), (2, 2), "{summary}");
    let restored_dir = dir.path().join("restored");
    let original = server.store().clone();
    let id = recorded.id;
    tokio::task::spawn_blocking(move || {
        let input = std::fs::File::open(&file).expect("the backup opens");
        marr::store::Store::restore(&restored_dir, input).expect("restored");
        let restored = marr::store::Store::open(&restored_dir).expect("the restored store opens");
        assert_eq!(
            restored.review_history(id).expect("history"),
            original.review_history(id).expect("history")
        );
        let key = marr::domain::review::ActionKey {
            recommendation: marr::domain::review::RecommendationRef {
                review: id,
                finding: 1,
                recommendation: 1,
            },
            number: 1,
        };
        assert_eq!(
            restored.action_history(&key).expect("history"),
            original.action_history(&key).expect("history")
        );
        // The overdue watch follows from the restored actions: verify finds nothing to say.
        assert_eq!(
            restored.verify_projections().expect("verify"),
            Vec::<String>::new()
        );
    })
    .await
    .expect("restore task");
}

#[tokio::test]
async fn listings_page_within_what_a_client_accepts_and_plans_and_periods_are_bounded() {
    let (_server, connection) = TestServer::north_east().await;
    let now = time::OffsetDateTime::now_utc();
    // Twenty long reviews: 200 findings of 600 characters each, about 2.4 MB of text in all.
    let long = "Partners do not yet share a single picture of risk ".repeat(12);
    let summary: String = long.chars().take(600).collect();
    for n in 0..20 {
        let mut big = review(
            NEWCASTLE,
            now - time::Duration::days(n + 1),
            (0..200)
                .map(|_| {
                    finding(
                        "information_sharing",
                        proto::Judgement::AreaForImprovement,
                        &[],
                    )
                })
                .collect(),
        );
        for finding in &mut big.findings {
            finding.summary = summary.clone();
        }
        record(&connection.inspector, big).await.expect("recorded");
    }
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = connection
            .public
            .open_data()
            .list_reviews(proto::ListReviewsRequest {
                after_review_id: after,
                page_size: 500,
                ..Default::default()
            })
            .await
            .expect("a page within the default 4 MiB")
            .into_inner();
        pages.push(page.reviews.len());
        if page.next_after_review_id == 0 {
            break;
        }
        after = page.next_after_review_id;
    }
    assert!(pages.len() > 1, "the text ends a page early: {pages:?}");
    assert_eq!(pages.iter().sum::<usize>(), 20);

    // Action plans page by whole reviews.
    let council = connection.agency(NEWCASTLE).client(ReviewsClient::new);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let recorded = record(
            &connection.inspector,
            review(
                NEWCASTLE,
                now - time::Duration::hours(1),
                vec![finding(
                    "neglect",
                    proto::Judgement::PriorityAction,
                    &[NEWCASTLE],
                )],
            ),
        )
        .await
        .expect("recorded");
        for _ in 0..2 {
            council
                .clone()
                .plan_action(plan((recorded.id, 1, 1), "2031-01-31", "Neglect audit"))
                .await
                .expect("planned");
        }
        ids.push(recorded.id);
    }
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = connection
            .public
            .open_data()
            .list_actions(proto::ListActionsRequest {
                after_review_id: after,
                page_size: 3,
                ..Default::default()
            })
            .await
            .expect("actions")
            .into_inner();
        assert_eq!(
            page.actions.len(),
            2,
            "one review's whole plan per page of 3"
        );
        seen.extend(page.actions.iter().map(|a| {
            let at = a.recommendation.expect("recommendation");
            (at.review_id, a.number)
        }));
        if page.next_after_review_id == 0 {
            break;
        }
        after = page.next_after_review_id;
    }
    let expected: Vec<(u64, u32)> = ids.iter().flat_map(|id| [(*id, 1), (*id, 2)]).collect();
    assert_eq!(seen, expected);

    // One recommendation holds at most 50 actions.
    let last = *ids.last().expect("a review");
    for _ in 2..50 {
        council
            .clone()
            .plan_action(plan((last, 1, 1), "2031-01-31", "Neglect audit"))
            .await
            .expect("planned");
    }
    let refused = council
        .clone()
        .plan_action(plan((last, 1, 1), "2031-01-31", "Neglect audit"))
        .await
        .expect_err("full");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(actions_of(&connection.public, last).await.len(), 50);

    // Lessons are drawn over five years at most.
    let refused = connection
        .public
        .open_data()
        .get_lessons(proto::GetLessonsRequest {
            area_code: ENGLAND.into(),
            from: "2000-01-01".into(),
            until: "2026-01-01".into(),
        })
        .await
        .expect_err("too long a period");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_of(&refused), "from");
}
