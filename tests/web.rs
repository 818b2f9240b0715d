//! The web front over real HTTP against a real server: a page is allowed exactly when the
//! gRPC call it stands for is, within the same scopes, and leaves the same audit event;
//! sessions, forms and headers hold as a careless or hostile visitor would test them.

mod common;

use common::web::WebClient;
use common::*;
use marr::auth::policy;
use marr::domain::Role;
use marr::proto;

/// Who visits, with what token, and which places they may see.
struct Visitor {
    name: &'static str,
    token: Option<&'static str>,
    role: Role,
    places: &'static [&'static str],
}

const VISITORS: &[Visitor] = &[
    Visitor {
        name: "public",
        token: None,
        role: Role::Public,
        places: &[],
    },
    Visitor {
        name: "agency",
        token: Some("newcastle-token"),
        role: Role::Agency,
        places: &[],
    },
    Visitor {
        name: "inspector",
        token: Some(INSPECTOR),
        role: Role::Inspector,
        places: &[NEWCASTLE, GATESHEAD],
    },
    Visitor {
        name: "newcastle-inspector",
        token: Some(NEWCASTLE_INSPECTOR),
        role: Role::Inspector,
        places: &[NEWCASTLE],
    },
    Visitor {
        name: "board",
        token: Some(BOARD),
        role: Role::Board,
        places: &[NEWCASTLE, GATESHEAD],
    },
    Visitor {
        name: "gateshead-board",
        token: Some(GATESHEAD_BOARD),
        role: Role::Board,
        places: &[GATESHEAD],
    },
    Visitor {
        name: "admin",
        token: Some(ADMIN),
        role: Role::Admin,
        places: &[],
    },
];

/// One page, the gRPC method it stands for, and the place it concerns (empty: the page is
/// about the caller's own area or agency, so only its role decides).
struct PageCase {
    method: &'static str,
    place: &'static str,
    /// GET path, or POST path with its form (the session's token is added).
    path: String,
    form: Option<Vec<(&'static str, String)>>,
}

fn pages(snapshot_in_newcastle: u64) -> Vec<PageCase> {
    let mut cases = Vec::new();
    for place in [NEWCASTLE, GATESHEAD] {
        cases.push(PageCase {
            method: "/marr.v1.Inspection/GetPlaceView",
            place,
            path: format!("/places/{place}"),
            form: None,
        });
        cases.push(PageCase {
            method: "/marr.v1.Inspection/ComparePlaces",
            place,
            path: format!("/places/{place}/compare?rate_of=child_protection_plan"),
            form: None,
        });
        cases.push(PageCase {
            method: "/marr.v1.Inspection/ListRisks",
            place,
            path: format!("/places/{place}/risks"),
            form: None,
        });
        cases.push(PageCase {
            method: "/marr.v1.Inspection/GetLinesOfEnquiry",
            place,
            path: format!("/places/{place}/enquiries"),
            form: None,
        });
        cases.push(PageCase {
            method: "/marr.v1.Inspection/CreateSnapshot",
            place,
            path: "/snapshots".into(),
            form: Some(vec![
                ("place_code", place.to_string()),
                ("label", "Joint inspection, spring".into()),
            ]),
        });
    }
    cases.push(PageCase {
        method: "/marr.v1.Inspection/GetSnapshot",
        place: NEWCASTLE,
        path: format!("/snapshots/{snapshot_in_newcastle}"),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.Alerts/ListAlerts",
        place: "",
        path: "/alerts".into(),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.Audit/ListAccessToMyRecords",
        place: "",
        path: "/records/access".into(),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.RiskRegister/GetRecord",
        place: "",
        path: "/records".into(),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.Inspection/GetSnapshot",
        place: "",
        path: "/snapshots".into(),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.OpenData/ListReleases",
        place: "",
        path: "/releases".into(),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.OpenData/ListReviews",
        place: "",
        path: "/reviews".into(),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.OpenData/GetReview",
        place: "",
        path: format!("/reviews/{NEWCASTLE_REVIEW}"),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.OpenData/GetLessons",
        place: "",
        path: "/lessons".into(),
        form: None,
    });
    cases.push(PageCase {
        method: "/marr.v1.Inspection/FollowSubject",
        place: NEWCASTLE,
        path: "/subjects".into(),
        form: Some(vec![
            ("subject_key", subject(1)),
            ("purpose", "Joint targeted area inspection: neglect".into()),
        ]),
    });
    cases
}

/// The published review of Newcastle every populated server holds: the first recorded.
const NEWCASTLE_REVIEW: u64 = 1;
const NEWCASTLE_REVIEW_TITLE: &str = "Partnership review of the front door in Newcastle";
/// A finding summary a careless or hostile inspector might write; it must come back escaped.
const HOSTILE_SUMMARY: &str = "<script>alert(1)</script> The front door answers quickly.";

/// Today in UTC moved by `days`, as a review's date field holds it.
fn date_in(days: i64) -> String {
    let date = (time::OffsetDateTime::now_utc() + time::Duration::days(days)).date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// A finding; a judgement other than a strength carries one recommendation to Newcastle's
/// council.
fn finding(theme: &str, judgement: proto::Judgement, summary: &str) -> proto::Finding {
    let recommendations = (judgement != proto::Judgement::Strength)
        .then(|| proto::Recommendation {
            number: 0,
            text: "Agree one shared way of passing on concerns the same day.".into(),
            agency_id: NEWCASTLE.into(),
        })
        .into_iter()
        .collect();
    proto::Finding {
        number: 0,
        theme: theme.into(),
        judgement: judgement as i32,
        summary: summary.into(),
        recommendations,
    }
}

fn reviews_client(
    connection: &marr::cli::Connection,
) -> proto::reviews_client::ReviewsClient<marr::cli::Authenticated> {
    connection.client(proto::reviews_client::ReviewsClient::new)
}

/// Records a review of `place` as the inspector, published `published_in_days` days from now
/// (negative: already published), with Newcastle's council in scope; the review as stored.
async fn record_review(
    connection: &Connection,
    title: &str,
    place: &str,
    published_in_days: i64,
    findings: Vec<proto::Finding>,
) -> proto::Review {
    let review = proto::Review {
        kind: proto::ReviewKind::JointTargetedAreaInspection as i32,
        title: title.into(),
        place_code: place.into(),
        agency_ids: vec![NEWCASTLE.into()],
        fieldwork_start: date_in(-60),
        fieldwork_end: date_in(-50),
        published_at: Some(hours_ago(-24 * published_in_days)),
        findings,
        ..Default::default()
    };
    reviews_client(&connection.inspector)
        .record_review(proto::RecordReviewRequest {
            review: Some(review),
            expected_revision: 0,
        })
        .await
        .expect("the review is recorded")
        .into_inner()
        .review
        .expect("a review")
}

/// The North East with records in Newcastle and Gateshead, one snapshot of Newcastle, and a
/// published review of Newcastle, so every page has something to show.
async fn populated() -> (TestServer, Connection, u64) {
    let (server, connection) = TestServer::north_east().await;
    let records = vec![
        rec(
            NEWCASTLE,
            "w-1",
            NEWCASTLE_WARD,
            1,
            proto::Severity::High,
            2,
        ),
        rec(
            NEWCASTLE,
            "w-2",
            NEWCASTLE_WARD,
            2,
            proto::Severity::Critical,
            3,
        ),
        rec("RTD", "w-3", GATESHEAD_WARD, 1, proto::Severity::Medium, 4),
    ];
    for record in records {
        connection
            .agency(&record.agency_id.clone())
            .risk_register()
            .submit_record(proto::SubmitRecordRequest {
                record: Some(record),
            })
            .await
            .expect("record accepted");
    }
    let snapshot = connection
        .inspection()
        .create_snapshot(proto::CreateSnapshotRequest {
            place_code: NEWCASTLE.into(),
            filter: None,
            label: "Before the inspection".into(),
        })
        .await
        .expect("snapshot")
        .into_inner()
        .snapshot
        .expect("a snapshot")
        .id;
    let review = record_review(
        &connection,
        NEWCASTLE_REVIEW_TITLE,
        NEWCASTLE,
        -7,
        vec![
            finding(
                "information_sharing",
                proto::Judgement::PriorityAction,
                "Police and health do not pass on missing episodes in time.",
            ),
            finding("front_door", proto::Judgement::Strength, HOSTILE_SUMMARY),
        ],
    )
    .await;
    assert_eq!(review.id, NEWCASTLE_REVIEW);
    (server, connection, snapshot)
}

async fn audit_events(connection: &Connection, method: &str) -> Vec<proto::AuditEvent> {
    connection
        .audit()
        .list_audit_events(proto::ListAuditEventsRequest {
            method: method.into(),
            ..Default::default()
        })
        .await
        .expect("admin reads the chain")
        .into_inner()
        .events
}

#[tokio::test]
async fn every_page_is_allowed_exactly_when_its_call_is_and_within_the_same_places() {
    let (server, connection, snapshot) = populated().await;
    let mut checked = 0;
    for visitor in VISITORS {
        let mut client = match visitor.token {
            Some(token) => WebClient::signed_in(&server.web_url, token).await,
            None => WebClient::new(&server.web_url),
        };
        let csrf = client.form_token().await;
        for page in pages(snapshot) {
            let rule = policy::rule_for(page.method).expect("every page's method has a rule");
            let answer = match &page.form {
                None => client.get(&page.path).await,
                Some(form) => {
                    let mut fields: Vec<(&str, &str)> =
                        form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    fields.push(("csrf", &csrf));
                    client.post(&page.path, &fields).await
                }
            };
            let what = format!("{} {} {}", visitor.name, page.method, page.path);
            if !rule.admits(visitor.role) {
                if visitor.role == Role::Public {
                    assert_eq!(answer.status, 303, "{what}: sent to sign in");
                    assert_eq!(answer.location(), Some("/sign-in"), "{what}");
                } else {
                    assert_eq!(answer.status, 403, "{what}: refused by role");
                }
            } else if !page.place.is_empty() && !visitor.places.contains(&page.place) {
                // An out-of-scope snapshot is answered as if it did not exist.
                let expected = if page.method.ends_with("GetSnapshot") {
                    404
                } else {
                    403
                };
                assert_eq!(answer.status, expected, "{what}: refused by scope");
                assert!(
                    !answer.text().contains("Joint inspection")
                        && !answer.text().contains("Before the inspection"),
                    "{what}: nothing of the place is shown"
                );
            } else {
                assert!(
                    [200, 303].contains(&answer.status),
                    "{what}: allowed, got {} {}",
                    answer.status,
                    answer.text()
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, VISITORS.len() * pages(snapshot).len());

    // Record-level pages leave the call's own event, under the call's method, with what was
    // read; refusals are recorded as the call's would be.
    let trails = audit_events(&connection, "/marr.v1.Inspection/FollowSubject").await;
    let allowed: Vec<_> = trails.iter().filter(|e| e.outcome == "OK").collect();
    assert_eq!(
        allowed.len(),
        2,
        "the two inspectors who may see Newcastle followed the subject"
    );
    for event in &allowed {
        assert_eq!(event.purpose, "Joint targeted area inspection: neglect");
        assert_eq!(event.subject_key, subject(1));
    }
    let newcastle_only = allowed
        .iter()
        .find(|e| e.principal == "newcastle-inspector")
        .expect("the Newcastle inspector's read");
    assert_eq!(
        newcastle_only.records.len(),
        1,
        "its trail holds only the Newcastle record, not the Gateshead one"
    );
    let refused: Vec<_> = trails.iter().filter(|e| e.outcome != "OK").collect();
    assert!(
        refused
            .iter()
            .any(|e| e.principal == "board" && e.outcome.starts_with("PermissionDenied")),
        "a board's refused trail is recorded: {refused:?}"
    );
    let listings = audit_events(&connection, "/marr.v1.Inspection/ListRisks").await;
    assert!(
        listings.iter().any(|e| e.principal == "newcastle-inspector"
            && e.outcome == "OK"
            && e.place_code == NEWCASTLE
            && e.records.len() == 2),
        "the risks page records the records it listed: {listings:?}"
    );
}

#[tokio::test]
async fn the_place_page_shows_the_figures_the_call_gives() {
    let (server, connection, _) = populated().await;
    let view = connection
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: NEWCASTLE.into(),
            ..Default::default()
        })
        .await
        .expect("view")
        .into_inner()
        .view
        .expect("a view");
    let mut client = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    let page = client.get(&format!("/places/{NEWCASTLE}")).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("Newcastle upon Tyne"), "{text}");
    assert!(
        text.contains(&format!("{} active risks", view.total_active)),
        "{text}"
    );
    let critical: u64 = view
        .by_severity
        .iter()
        .filter(|s| s.severity == proto::Severity::Critical as i32)
        .map(|s| s.active)
        .sum();
    assert!(critical > 0);
    assert!(text.contains(&format!("{critical} critical")), "{text}");
}

#[tokio::test]
async fn a_session_is_a_fresh_random_httponly_strict_cookie_ended_on_the_server_at_sign_out() {
    let (server, _connection, _) = populated().await;
    let mut client = WebClient::new(&server.web_url);
    let planted = "0".repeat(64);
    client
        .cookies
        .insert("marr-session".into(), planted.clone());
    let answer = client.sign_in(INSPECTOR).await;
    assert_eq!(answer.status, 303);
    let cookie = answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("marr-session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let id = client.cookies["marr-session"].clone();
    assert_ne!(id, planted, "a planted id is never the one signed in");
    assert_eq!(id.len(), 64);

    let mut second = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    assert_ne!(
        second.cookies["marr-session"], id,
        "each sign-in has its own id"
    );
    assert_eq!(
        second.get(&format!("/places/{NEWCASTLE}")).await.status,
        200
    );

    let csrf = client.form_token().await;
    let out = client.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    // The old id, replayed, is no longer a session.
    let mut replay = WebClient::new(&server.web_url);
    replay.cookies.insert("marr-session".into(), id);
    let page = replay.get(&format!("/places/{NEWCASTLE}")).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/sign-in"));
    // The other session goes on.
    assert_eq!(
        second.get(&format!("/places/{NEWCASTLE}")).await.status,
        200
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_recorded_and_makes_no_session() {
    let (server, connection, _) = populated().await;
    let mut client = WebClient::new(&server.web_url);
    let answer = client.sign_in("not-a-token").await;
    assert_eq!(answer.status, 401);
    assert!(answer.text().contains("There is a problem"));
    assert!(!client.cookies.contains_key("marr-session"));
    let events = audit_events(&connection, "/marr.web/SignIn").await;
    assert!(
        events
            .iter()
            .any(|e| e.outcome.starts_with("Unauthenticated")
                && e.principal.contains("unidentified")),
        "{events:?}"
    );

    // A sign-in posted without the form's own token is refused too, token or not.
    let mut forged = WebClient::new(&server.web_url);
    let answer = forged
        .post("/sign-in", &[("csrf", "forged"), ("token", INSPECTOR)])
        .await;
    assert_eq!(answer.status, 403);
    assert!(!forged.cookies.contains_key("marr-session"));
}

#[tokio::test]
async fn a_form_without_the_session_token_is_refused_and_changes_nothing() {
    let (server, connection, snapshot) = populated().await;
    let mut client = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    for csrf in ["", "0123", &"f".repeat(64)] {
        let answer = client
            .post(
                "/snapshots",
                &[
                    ("csrf", csrf),
                    ("place_code", NEWCASTLE),
                    ("label", "Forged"),
                ],
            )
            .await;
        assert_eq!(answer.status, 403, "token {csrf:?}");
    }
    let next = connection
        .inspection()
        .get_snapshot(proto::GetSnapshotRequest { id: snapshot + 1 })
        .await
        .expect_err("no snapshot was made");
    assert_eq!(next.code(), tonic::Code::NotFound);

    // With the session's token the same form works, and the snapshot is shown.
    let csrf = client.form_token().await;
    let answer = client
        .post(
            "/snapshots",
            &[
                ("csrf", &csrf),
                ("place_code", NEWCASTLE),
                ("label", "Joint inspection"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303);
    let location = answer.location().expect("to the snapshot").to_string();
    assert_eq!(location, format!("/snapshots/{}", snapshot + 1));
    let page = client.get(&location).await;
    assert!(page.text().contains("Joint inspection"), "{}", page.text());
}

#[tokio::test]
async fn every_page_carries_the_content_security_policy_and_is_not_cached() {
    let (server, _connection, snapshot) = populated().await;
    let mut client = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    let mut paths: Vec<String> = pages(snapshot)
        .into_iter()
        .filter(|p| p.form.is_none())
        .map(|p| p.path)
        .collect();
    paths.extend([
        "/".into(),
        "/sign-in".into(),
        "/no-such-page".into(),
        "/subjects".into(),
    ]);
    for path in paths {
        let page = client.get(&path).await;
        let header = |name: &str| {
            page.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            header("content-security-policy"),
            marr::web::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert!(
            !header("content-security-policy").contains("unsafe"),
            "{path}"
        );
        assert_eq!(header("cache-control"), "no-store", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert!(!page.body.contains("<script>"), "{path}: no inline script");
        assert!(!page.body.contains(" style=\""), "{path}: no inline style");
    }
}

#[tokio::test]
async fn what_a_visitor_types_comes_back_escaped_and_refusals_name_the_field() {
    let (server, _connection, _) = populated().await;
    let mut client = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    let csrf = client.form_token().await;
    let hostile = "<script>alert(1)</script>";
    let answer = client
        .post(
            "/subjects",
            &[
                ("csrf", &csrf),
                ("subject_key", hostile),
                ("purpose", "Joint inspection"),
            ],
        )
        .await;
    assert_eq!(answer.status, 400);
    assert!(!answer.body.contains(hostile), "escaped");
    assert!(answer.text().contains("subject_key"), "{}", answer.text());

    let answer = client
        .get(&format!("/places/{NEWCASTLE}?client_group={hostile}"))
        .await;
    assert_eq!(answer.status, 400);
    assert!(!answer.body.contains(hostile));
    assert!(answer.text().contains("client_group"), "{}", answer.text());
}

#[tokio::test]
async fn the_place_page_trend_gives_each_month_end_total_from_the_log() {
    use std::sync::{Arc, Mutex};
    let now = Arc::new(Mutex::new(time::macros::datetime!(2026-03-10 12:00 UTC)));
    let reading = Arc::clone(&now);
    let options = marr::store::StoreOptions {
        clock: Arc::new(move || *reading.lock().expect("clock")),
        ..Default::default()
    };
    let (server, connection) = TestServer::north_east_with(options).await;
    let submit = |local_ref: &'static str| {
        let connection = &connection;
        async move {
            connection
                .agency(NEWCASTLE)
                .risk_register()
                .submit_record(proto::SubmitRecordRequest {
                    record: Some(rec(
                        NEWCASTLE,
                        local_ref,
                        NEWCASTLE_WARD,
                        0,
                        proto::Severity::High,
                        2,
                    )),
                })
                .await
                .expect("accepted");
        }
    };
    submit("m-1").await;
    submit("m-2").await;
    *now.lock().expect("clock") = time::macros::datetime!(2026-05-10 12:00 UTC);
    for local_ref in ["m-3", "m-4", "m-5"] {
        submit(local_ref).await;
    }
    *now.lock().expect("clock") = time::macros::datetime!(2026-07-05 12:00 UTC);
    let mut client = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    // The first visit does not wait for the month ends: it says they are being worked out,
    // and a later one shows them.
    let first = client.get(&format!("/places/{NEWCASTLE}")).await;
    assert_eq!(first.status, 200);
    assert!(
        first.text().contains("being worked out"),
        "{}",
        first.text()
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = client.get(&format!("/places/{NEWCASTLE}")).await.text();
        if !text.contains("being worked out") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the trend is worked out"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for (month, total) in [
        ("2025-08", 0),
        ("2026-02", 0),
        ("2026-03", 2),
        ("2026-04", 2),
        ("2026-05", 5),
        ("2026-06", 5),
        ("2026-07", 5),
    ] {
        assert!(
            text.contains(&format!("{month} {total} ")),
            "{month} ends with {total}: {text}"
        );
    }
    assert!(!text.contains("2025-07 "), "twelve months only");
}

/// Reads server-sent events from `path` until `wanted` alert events have come, and gives
/// their ids and data.
async fn alert_events(
    server: &TestServer,
    client: &WebClient,
    path: &str,
    last_event_id: Option<&str>,
    wanted: usize,
) -> Vec<(u64, String)> {
    let http = reqwest::Client::new();
    let mut request = http
        .get(format!("{}{path}", server.web_url))
        .header(reqwest::header::COOKIE, client.cookie_header());
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let mut response = request.send().await.expect("the stream opens");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut text = String::new();
    let mut alerts = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while alerts.len() < wanted {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("alerts arrive in time")
            .expect("the stream reads")
            .expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                event
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_string())
            };
            if field("event").as_deref() == Some("alert") {
                let id = field("id").and_then(|id| id.parse().ok()).expect("an id");
                alerts.push((id, field("data").unwrap_or_default()));
            }
        }
    }
    alerts
}

#[tokio::test]
async fn a_board_watches_its_alerts_live_and_resumes_after_the_last_id_without_gap_or_repeat() {
    let (server, connection, _) = populated().await;
    let board = WebClient::signed_in(&server.web_url, BOARD).await;
    // The critical Newcastle record raised an alert already: the catch-up brings it.
    let first = alert_events(&server, &board, "/alerts/live?after=0", None, 1).await;
    assert!(first[0].1.contains(NEWCASTLE_WARD), "{first:?}");
    assert!(
        first[0].1.contains("\"severity\":\"Critical\""),
        "{first:?}"
    );

    // A new critical record while the board is away; resuming after the last id brings it,
    // and only it.
    connection
        .agency("RTD")
        .risk_register()
        .submit_record(proto::SubmitRecordRequest {
            record: Some(rec(
                "RTD",
                "g-9",
                GATESHEAD_WARD,
                3,
                proto::Severity::Critical,
                1,
            )),
        })
        .await
        .expect("accepted");
    let resumed = alert_events(
        &server,
        &board,
        "/alerts/live?after=0",
        Some(&first.last().expect("an alert").0.to_string()),
        1,
    )
    .await;
    assert!(resumed[0].0 > first[0].0, "no repeat: {resumed:?}");
    assert!(resumed[0].1.contains(GATESHEAD_WARD), "{resumed:?}");

    // A board whose area is Gateshead sees only Gateshead's alert, never Newcastle's.
    let gateshead = WebClient::signed_in(&server.web_url, GATESHEAD_BOARD).await;
    let theirs = alert_events(&server, &gateshead, "/alerts/live?after=0", None, 1).await;
    assert!(theirs[0].1.contains(GATESHEAD_WARD), "{theirs:?}");
    let mut page = WebClient::signed_in(&server.web_url, GATESHEAD_BOARD).await;
    let history = page.get("/alerts").await;
    assert_eq!(history.status, 200);
    assert!(
        history.text().contains(GATESHEAD_WARD),
        "{}",
        history.text()
    );
    assert!(
        !history.text().contains(NEWCASTLE_WARD),
        "{}",
        history.text()
    );

    // Each stream opened is a watch in the audit chain.
    let watches = audit_events(&connection, "/marr.v1.Alerts/Watch").await;
    assert_eq!(
        watches.iter().filter(|e| e.outcome == "OK").count(),
        3,
        "{watches:?}"
    );
}

#[tokio::test]
async fn an_agency_sees_who_read_its_records_and_why() {
    let (server, _connection, _) = populated().await;
    let mut inspector = WebClient::signed_in(&server.web_url, NEWCASTLE_INSPECTOR).await;
    let csrf = inspector.form_token().await;
    let trail = inspector
        .post(
            "/subjects",
            &[
                ("csrf", &csrf),
                ("subject_key", &subject(2)),
                ("purpose", "Joint targeted area inspection: neglect"),
            ],
        )
        .await;
    assert_eq!(trail.status, 200);
    let mut agency = WebClient::signed_in(&server.web_url, "newcastle-token").await;
    let page = agency.get("/records/access").await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("newcastle-inspector"), "{text}");
    assert!(text.contains("FollowSubject"), "{text}");
    assert!(
        text.contains("Joint targeted area inspection: neglect"),
        "{text}"
    );
    assert!(text.contains("w-2"), "the record read is named: {text}");

    // Another agency's page does not show reads of Newcastle's records.
    let mut police = WebClient::signed_in(&server.web_url, "northumbria-token").await;
    let page = police.get("/records/access").await;
    assert!(!page.text().contains("w-2"), "{}", page.text());
}

#[tokio::test]
async fn the_snapshot_list_holds_only_snapshots_of_the_inspectors_places() {
    let (server, _connection, _) = populated().await;
    let mut national = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    let csrf = national.form_token().await;
    let made = national
        .post(
            "/snapshots",
            &[
                ("csrf", &csrf),
                ("place_code", GATESHEAD),
                ("label", "Gateshead joint inspection"),
            ],
        )
        .await;
    assert_eq!(made.status, 303);
    let all = national.get("/snapshots").await.text();
    assert!(all.contains("Gateshead joint inspection"), "{all}");
    assert!(all.contains("Before the inspection"), "{all}");

    let mut local = WebClient::signed_in(&server.web_url, NEWCASTLE_INSPECTOR).await;
    let theirs = local.get("/snapshots").await;
    assert_eq!(theirs.status, 200);
    assert!(
        theirs.text().contains("Before the inspection"),
        "{}",
        theirs.text()
    );
    assert!(
        !theirs.text().contains("Gateshead joint inspection"),
        "{}",
        theirs.text()
    );
}

#[tokio::test]
async fn live_alert_streams_are_limited_per_principal_and_a_closed_one_frees_its_place() {
    let text = format!(
        "{}[limits]\nmax_concurrent_calls = 8\ncalls_per_second = 1000\nburst = 1000\n",
        principals_toml()
    );
    let config: marr::config::Config = toml::from_str(&text).expect("config");
    let server = TestServer::start_with_config(Default::default(), config).await;
    let board = WebClient::signed_in(&server.web_url, BOARD).await;
    let http = reqwest::Client::new();
    let open = || {
        http.get(format!("{}/alerts/live?after=0", server.web_url))
            .header(reqwest::header::COOKIE, board.cookie_header())
            .send()
    };
    // A quarter of the server's calls in progress, as for gRPC streams: two here.
    let first = open().await.expect("opens");
    let second = open().await.expect("opens");
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open().await.expect("answers");
    assert_eq!(third.status().as_u16(), 429);
    assert!(
        third
            .text()
            .await
            .expect("page")
            .contains("live alert streams open")
    );

    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let again = open().await.expect("answers");
        if again.status().as_u16() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed stream frees its place"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(second);
}

#[tokio::test]
async fn pages_are_limited_per_principal_like_calls_and_the_refusal_is_recorded() {
    let text = format!(
        "{}[limits]\ncalls_per_second = 1\nburst = 3\n",
        principals_toml()
    );
    let config: marr::config::Config = toml::from_str(&text).expect("config");
    // No geography: each page is admitted, then answers that the place is unknown.
    let server = TestServer::start_with_config(Default::default(), config).await;
    let mut inspector = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(inspector.get(&format!("/places/{NEWCASTLE}")).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 404);
    // Refusals past the per-address limit are tallied and written as one aggregated event.
    tokio::time::sleep(marr::app::trail::TALLY_FLUSH_EVERY + std::time::Duration::from_secs(1))
        .await;
    let connection = server.connect().await;
    let refused = audit_events(&connection, "/marr.v1.Inspection/GetPlaceView").await;
    assert!(
        refused
            .iter()
            .any(|e| e.principal == "inspector" && e.outcome.starts_with("ResourceExhausted")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_agency_pages_through_its_own_records_only_and_each_page_is_a_recorded_read() {
    let (server, connection) = TestServer::north_east().await;
    for n in 0..7 {
        for agency in [NEWCASTLE, "RTD"] {
            let place = if agency == NEWCASTLE {
                NEWCASTLE_WARD
            } else {
                GATESHEAD_WARD
            };
            connection
                .agency(agency)
                .risk_register()
                .submit_record(proto::SubmitRecordRequest {
                    record: Some(rec(
                        agency,
                        &format!("own-{n}"),
                        place,
                        0,
                        proto::Severity::Low,
                        2,
                    )),
                })
                .await
                .expect("accepted");
        }
    }
    let mut agency = WebClient::signed_in(&server.web_url, "newcastle-token").await;
    let mut seen = Vec::new();
    let mut path = "/records?page_size=3".to_string();
    let mut pages = 0;
    loop {
        let page = agency.get(&path).await;
        assert_eq!(page.status, 200);
        pages += 1;
        let text = page.text();
        seen.extend((0..7).filter(|n| text.contains(&format!("own-{n} "))));
        assert!(
            !text.contains(GATESHEAD_WARD),
            "another agency's record: {text}"
        );
        match page.body.split("href=\"").find_map(|rest| {
            rest.strip_prefix("/records?after=")
                .and_then(|r| r.split('"').next())
                .map(|rest| format!("/records?after={}", rest.replace("&#38;", "&")))
        }) {
            Some(next) => path = next,
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..7).collect::<Vec<_>>(),
        "every own record listed once"
    );
    assert_eq!(pages, 3, "seven records, three to a page");
    let reads = audit_events(&connection, "/marr.v1.RiskRegister/GetRecord").await;
    let listed: usize = reads
        .iter()
        .filter(|e| e.principal.contains(NEWCASTLE) && e.outcome == "OK")
        .map(|e| e.records.len())
        .sum();
    assert_eq!(listed, 7, "{reads:?}");
}

#[tokio::test]
async fn a_review_is_listed_once_published_and_before_then_only_inspectors_in_scope_see_it() {
    let (server, connection, _) = populated().await;
    let title = "Gateshead partnership self-assessment ahead of its publication";
    let unpublished = record_review(
        &connection,
        title,
        GATESHEAD,
        30,
        vec![finding(
            "early_help",
            proto::Judgement::AreaForImprovement,
            "Early help plans are not reviewed often enough.",
        )],
    )
    .await;
    assert!(!unpublished.published);

    let mut public = WebClient::new(&server.web_url);
    let listing = public.get("/reviews").await;
    assert_eq!(listing.status, 200);
    let text = listing.text();
    assert!(text.contains(NEWCASTLE_REVIEW_TITLE), "{text}");
    assert!(
        text.contains("Joint targeted area inspection Newcastle upon Tyne"),
        "kind and place: {text}"
    );
    assert!(!text.contains(title), "not yet published: {text}");
    let page = public.get(&format!("/reviews/{}", unpublished.id)).await;
    assert_eq!(page.status, 404, "answered as if it did not exist");
    assert!(!page.text().contains(title));
    let page = public.get(&format!("/reviews/{NEWCASTLE_REVIEW}")).await;
    assert_eq!(page.status, 200);

    // An inspector whose places do not cover Gateshead is answered as the public is.
    let mut newcastle = WebClient::signed_in(&server.web_url, NEWCASTLE_INSPECTOR).await;
    let page = newcastle.get(&format!("/reviews/{}", unpublished.id)).await;
    assert_eq!(page.status, 404);
    let page = newcastle.get("/reviews?unpublished=yes").await;
    assert_eq!(page.status, 200);
    assert!(!page.text().contains(title));

    let mut inspector = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    let page = inspector.get(&format!("/reviews/{}", unpublished.id)).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains(title));
    assert!(page.text().contains("Not yet published"), "{}", page.text());
    let page = inspector.get("/reviews").await;
    assert!(!page.text().contains(title), "only when asked for");
    assert!(
        page.body.contains("name=\"unpublished\""),
        "the box is offered"
    );
    let page = inspector.get("/reviews?unpublished=yes").await;
    let text = page.text();
    assert!(text.contains(title), "{text}");
    assert!(text.contains("Not yet published publishes on"), "{text}");

    // Only inspectors may ask for unpublished reviews, and nobody else is offered the box.
    let mut board = WebClient::signed_in(&server.web_url, BOARD).await;
    assert!(
        !board
            .get("/reviews")
            .await
            .body
            .contains("name=\"unpublished\"")
    );
    assert_eq!(board.get("/reviews?unpublished=yes").await.status, 403);

    // Filters: by place, kind and theme.
    let page = public.get(&format!("/reviews?place={GATESHEAD}")).await;
    assert!(!page.text().contains(NEWCASTLE_REVIEW_TITLE));
    let page = public.get("/reviews?theme=early_help").await;
    assert!(!page.text().contains(NEWCASTLE_REVIEW_TITLE));
    let page = public.get("/reviews?theme=front_door").await;
    assert!(page.text().contains(NEWCASTLE_REVIEW_TITLE));
    let page = public.get("/reviews?kind=corporate_peer_review").await;
    assert!(!page.text().contains(NEWCASTLE_REVIEW_TITLE));
    let page = public.get("/reviews?theme=no_such_theme").await;
    assert_eq!(page.status, 400);
    assert!(page.text().contains("theme"), "{}", page.text());
}

#[tokio::test]
async fn a_review_shows_its_findings_escaped_its_action_plan_and_its_revisions() {
    let (server, connection, _) = populated().await;
    let action = reviews_client(connection.agency(NEWCASTLE))
        .plan_action(proto::PlanActionRequest {
            recommendation: Some(proto::RecommendationRef {
                review_id: NEWCASTLE_REVIEW,
                finding: 1,
                recommendation: 1,
            }),
            description: "Set up a daily call between police and health.".into(),
            owner: "Head of Children's Safeguarding".into(),
            due: date_in(-3),
            status: proto::ActionStatus::InProgress as i32,
            note: String::new(),
        })
        .await
        .expect("the action is planned")
        .into_inner()
        .action
        .expect("an action");
    assert!(action.overdue);

    let mut public = WebClient::new(&server.web_url);
    let page = public.get(&format!("/reviews/{NEWCASTLE_REVIEW}")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(!page.body.contains("<script>alert"), "escaped");
    assert!(
        page.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "shown as written: {}",
        page.body
    );
    let text = page.text();
    for expected in [
        "Finding 1: Information sharing between agencies Priority action",
        "Police and health do not pass on missing episodes in time.",
        "Finding 2: The front door (contact, referral and triage) Strength",
        "Agree one shared way of passing on concerns the same day. Accountable: agency E08000021",
        "Agencies in scope agency E08000021",
        "Set up a daily call between police and health.",
        "Head of Children",
        "In progress Overdue",
        "Revision 1 of 1",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    assert!(
        !page.body.contains(&format!("href=\"/places/{NEWCASTLE}\"")),
        "the public cannot open the place page, so it is not linked"
    );
    let mut inspector = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    let page = inspector.get(&format!("/reviews/{NEWCASTLE_REVIEW}")).await;
    assert!(page.body.contains(&format!("href=\"/places/{NEWCASTLE}\"")));

    // A correction is a new revision; the earlier one stays readable.
    let review = connection
        .public
        .open_data()
        .get_review(proto::GetReviewRequest {
            review_id: NEWCASTLE_REVIEW,
            revision: 0,
        })
        .await
        .expect("published")
        .into_inner()
        .review
        .expect("a review");
    let corrected = proto::Review {
        title: "Partnership review of the front door in Newcastle, corrected".into(),
        note: "The title names the review as published.".into(),
        ..review
    };
    reviews_client(&connection.inspector)
        .record_review(proto::RecordReviewRequest {
            review: Some(corrected),
            expected_revision: 1,
        })
        .await
        .expect("the correction is recorded");
    let page = public.get(&format!("/reviews/{NEWCASTLE_REVIEW}")).await;
    let text = page.text();
    assert!(text.contains("Revision 2 of 2"), "{text}");
    assert!(
        text.contains("Correction The title names the review as published."),
        "{text}"
    );
    assert!(
        page.body
            .contains(&format!("href=\"/reviews/{NEWCASTLE_REVIEW}?revision=1\""))
    );
    let page = public
        .get(&format!("/reviews/{NEWCASTLE_REVIEW}?revision=1"))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Revision 1 of 2"));
    assert!(!page.text().contains("corrected"));
}

#[tokio::test]
async fn lessons_count_each_themes_findings_by_judgement_and_name_them() {
    let (server, connection, _) = populated().await;
    let gateshead = record_review(
        &connection,
        "Gateshead practice review of information sharing",
        GATESHEAD,
        -3,
        vec![finding(
            "information_sharing",
            proto::Judgement::AreaForImprovement,
            "Health visitors are not told of police call-outs.",
        )],
    )
    .await;
    // A review not yet published is not counted.
    record_review(
        &connection,
        "Hartlepool review ahead of its publication",
        HARTLEPOOL,
        10,
        vec![finding(
            "information_sharing",
            proto::Judgement::PriorityAction,
            "Schools are not told of police call-outs.",
        )],
    )
    .await;

    let mut public = WebClient::new(&server.web_url);
    for path in ["/lessons", &format!("/lessons?area={NORTH_EAST}")] {
        let page = public.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        let text = page.text();
        // Theme, strengths, areas for improvement, priority actions, total, previous, change.
        assert!(
            text.contains("Information sharing between agencies 0 1 1 2 0 New"),
            "{path}: {text}"
        );
        assert!(
            text.contains("The front door (contact, referral and triage) 1 0 0 1 0 New"),
            "{path}: {text}"
        );
        assert!(text.contains("2 reviews published"), "{path}: {text}");
        assert!(text.contains("3 findings"), "{path}: {text}");
        // Each count names its findings.
        assert!(
            page.body
                .contains(&format!("href=\"/reviews/{NEWCASTLE_REVIEW}#finding-1\"")),
            "{path}"
        );
        assert!(
            page.body
                .contains(&format!("href=\"/reviews/{}#finding-1\"", gateshead.id)),
            "{path}"
        );
    }
    let page = public.get("/lessons").await;
    assert!(
        page.text().contains("North East"),
        "the regions to choose from"
    );

    // The listing puts the newest first.
    let text = public.get("/reviews").await.text();
    let newer = text
        .find(&gateshead.title)
        .expect("the Gateshead review is listed");
    let older = text
        .find(NEWCASTLE_REVIEW_TITLE)
        .expect("the Newcastle review is listed");
    assert!(newer < older, "newest first: {text}");

    // A period before both reviews holds nothing; a malformed date names its field.
    let page = public
        .get(&format!(
            "/lessons?from={}&until={}",
            date_in(-400),
            date_in(-200)
        ))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("was published in this period"),
        "{}",
        page.text()
    );
    let page = public.get("/lessons?until=next-week").await;
    assert_eq!(page.status, 400);
    assert!(page.text().contains("until"), "{}", page.text());
}

#[tokio::test]
async fn lines_of_enquiry_name_a_neighbours_review_and_are_refused_outside_a_boards_places() {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    marr::cli::places::import_tables(&connection, current_geography_tables())
        .await
        .expect("the current geography imports");
    marr::cli::neighbours::import_tables(
        &connection.admin,
        marr::cli::neighbours::read_tables(&[neighbours_file(NEIGHBOURS_2025)]).expect("readable"),
    )
    .await
    .expect("the neighbours import");
    marr::cli::agencies::register(
        &connection,
        NEWCASTLE,
        marr::domain::AgencyKind::ChildrenSocialCare,
        &format!("agency {NEWCASTLE}"),
        &[NEWCASTLE.to_string()],
    )
    .await
    .expect("the agency registers");
    // Middlesbrough is one of Newcastle's statistical neighbours.
    const MIDDLESBROUGH: &str = "E06000002";
    let title = "Joint targeted area inspection of Middlesbrough";
    record_review(
        &connection,
        title,
        MIDDLESBROUGH,
        -7,
        vec![finding(
            "information_sharing",
            proto::Judgement::PriorityAction,
            "Police and schools do not share concerns in time.",
        )],
    )
    .await;

    let mut inspector = WebClient::signed_in(&server.web_url, INSPECTOR).await;
    let place = inspector.get(&format!("/places/{NEWCASTLE}")).await;
    assert!(
        place
            .body
            .contains(&format!("href=\"/places/{NEWCASTLE}/enquiries\"")),
        "the place page links to its lines of enquiry"
    );
    let page = inspector
        .get(&format!("/places/{NEWCASTLE}/enquiries"))
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(
        text.contains("1. Information sharing between agencies"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Statistical neighbour: Middlesbrough {title}")),
        "{text}"
    );
    assert!(text.contains("Priority action"), "{text}");
    assert!(page.body.contains("href=\"/reviews/1#finding-1\""));
    assert!(
        text.contains("Covered by the place's own recent reviews"),
        "{text}"
    );

    let mut board = WebClient::signed_in(&server.web_url, BOARD).await;
    assert_eq!(
        board
            .get(&format!("/places/{NEWCASTLE}/enquiries"))
            .await
            .status,
        200
    );
    let mut outside = WebClient::signed_in(&server.web_url, GATESHEAD_BOARD).await;
    let page = outside.get(&format!("/places/{NEWCASTLE}/enquiries")).await;
    assert_eq!(page.status, 403);
    assert!(!page.text().contains(title));
}
