//! The web front in a real headless Chromium: an inspector signs in through the form, reads a
//! place, compares it with its statistical neighbours, follows a subject, lists risks, freezes a
//! snapshot and signs out, on a server with England's current geography, population and
//! neighbours. Then, with boundaries for maps and a release cut: anyone reads the published
//! figures, downloads a table, and reads the published reviews, a review's action plan and the
//! lessons across England; an inspector hovers over the place map, a board watches its alerts
//! arrive live and across a reload, and an agency sees who read its records. Every page
//! is screenshotted to `target/screenshots/`, checked with axe-core for serious and critical
//! accessibility violations, and watched for Content Security Policy violations.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::*;
use fantoccini::actions::InputSource;
use marr::cli::{boundaries, neighbours, population};
use marr::domain::AgencyKind;
use marr::proto;

/// The purpose the inspector gives for following a subject.
const PURPOSE: &str = "Joint targeted area inspection: neglect";

/// England's current geography, the ONS population and the DfE's neighbours, three agencies,
/// and records at Newcastle: subject 1 known to the council and the police, subject 2 to the
/// council alone.
async fn england() -> (TestServer, Connection) {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    marr::cli::places::import_tables(&connection, current_geography_tables())
        .await
        .expect("the current geography imports");
    population::import_tables(
        &connection.admin,
        population::read_tables(&[population_file(POPULATION_LA)]).expect("readable"),
    )
    .await
    .expect("the population imports");
    neighbours::import_tables(
        &connection.admin,
        neighbours::read_tables(&[neighbours_file(NEIGHBOURS_2025)]).expect("readable"),
    )
    .await
    .expect("the neighbours import");
    for (agency, kind, footprint) in [
        (NEWCASTLE, AgencyKind::ChildrenSocialCare, NEWCASTLE),
        (NORTHUMBRIA, AgencyKind::Police, NORTHUMBRIA),
        ("RTD", AgencyKind::Health, NORTH_EAST),
    ] {
        marr::cli::agencies::register(
            &connection,
            agency,
            kind,
            &format!("agency {agency}"),
            &[footprint.to_string()],
        )
        .await
        .expect("the agency registers");
    }
    let records = vec![
        rec(
            NEWCASTLE,
            "A-1",
            NEWCASTLE_WARD,
            1,
            proto::Severity::High,
            2,
        ),
        rec(NEWCASTLE, "A-2", NEWCASTLE, 2, proto::Severity::Critical, 3),
        rec(NEWCASTLE, "A-3", NEWCASTLE, 0, proto::Severity::Medium, 4),
        rec(
            NORTHUMBRIA,
            "P-1",
            NEWCASTLE_WARD,
            1,
            proto::Severity::High,
            1,
        ),
        rec("RTD", "H-1", NEWCASTLE, 3, proto::Severity::Low, 5),
    ];
    for answer in push_all(&connection, records).await {
        assert_eq!(
            answer.outcome,
            proto::Outcome::Accepted as i32,
            "{}",
            answer.reason
        );
    }
    (server, connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspector_reads_compares_follows_and_signs_out_in_a_real_browser() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let (server, connection) = england().await;
    let web = &server.web_url;

    // The start page and a missing page, as anyone sees them.
    browser.open(&format!("{web}/")).await;
    assert_eq!(browser.text("h1").await, "Multi-agency risk register");
    browser.check("start-signed-out").await;
    browser.open(&format!("{web}/no-such-page")).await;
    browser.check("not-found").await;

    // A wrong token first: the error summary shows, and the page is still accessible.
    browser.open(&format!("{web}/sign-in")).await;
    browser.check("sign-in").await;
    browser.fill("token", "not-a-token").await;
    browser.press("Sign in").await;
    assert_eq!(
        browser.text(".error-summary__title").await,
        "There is a problem"
    );
    assert_eq!(
        browser.text(".error-summary__list a").await,
        "Enter a token this register knows"
    );
    // Focus moves to the summary, so a keyboard or screen reader user starts at the problem.
    let focused = browser
        .client()
        .execute("return document.activeElement.className", vec![])
        .await
        .expect("the focused element");
    assert_eq!(focused, "error-summary");
    browser.check("sign-in-error").await;

    browser.fill("token", INSPECTOR).await;
    browser.press("Sign in").await;
    assert_eq!(browser.path().await, "/");
    assert!(
        browser
            .text(".lede")
            .await
            .contains("Signed in as inspector"),
        "the start page greets the inspector"
    );
    browser.check("start").await;

    // The place's headline figure is GetPlaceView's total for the same place.
    let view = connection
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: NEWCASTLE.into(),
            ..Default::default()
        })
        .await
        .expect("the place view")
        .into_inner()
        .view
        .expect("a view");
    assert_eq!(view.total_active, 5);
    browser.open(&format!("{web}/places/{NEWCASTLE}")).await;
    assert_eq!(browser.text("h1").await, "Newcastle upon Tyne");
    assert_eq!(
        browser.text(".summary-cards li:first-child .figure").await,
        view.total_active.to_string()
    );
    let wards = browser.texts("table tbody th[scope=row] a").await;
    assert!(
        wards.iter().any(|w| w == "Lemington"),
        "the child places list Lemington: {wards:?}"
    );
    browser.check("place").await;

    // A child place opens from its row.
    browser
        .click(&format!("a[href^='/places/{NEWCASTLE_WARD}']"))
        .await;
    assert_eq!(browser.text("h1").await, "Lemington");
    assert_eq!(
        browser.text(".summary-cards li:first-child .figure").await,
        "2",
        "the council's and the police's records at Lemington"
    );
    browser.check("ward").await;

    // The comparison lists Newcastle's statistical neighbours.
    browser
        .open(&format!(
            "{web}/places/{NEWCASTLE}/compare?rate_of=child_protection_plan"
        ))
        .await;
    let roles = browser.texts("table tbody td:first-of-type").await;
    assert_eq!(
        roles
            .iter()
            .filter(|r| *r == "Statistical neighbour")
            .count(),
        10,
        "{roles:?}"
    );
    browser.check("compare").await;

    // Following a subject with a purpose shows the trail and leaves the purpose in the chain.
    browser.open(&format!("{web}/subjects")).await;
    browser.check("subjects").await;
    browser.fill("subject_key", &subject(1)).await;
    browser.fill("purpose", PURPOSE).await;
    browser.press("Follow").await;
    let trail = browser.texts("table tbody tr").await;
    assert_eq!(trail.len(), 2, "the council's and the police's: {trail:?}");
    assert!(
        trail.iter().any(|row| row.contains("agency E23000007")),
        "{trail:?}"
    );
    browser.check("trail").await;
    let followed = connection
        .audit()
        .list_audit_events(proto::ListAuditEventsRequest {
            method: "FollowSubject".into(),
            ..Default::default()
        })
        .await
        .expect("the audit chain")
        .into_inner()
        .events;
    assert_eq!(followed.len(), 1, "{followed:?}");
    assert_eq!(followed[0].principal, "inspector");
    assert_eq!(followed[0].subject_key, subject(1));
    assert_eq!(followed[0].purpose, PURPOSE);

    // The risks under Newcastle, the latest written first.
    browser
        .open(&format!("{web}/places/{NEWCASTLE}/risks"))
        .await;
    let records = browser.texts("table tbody td:nth-child(2)").await;
    assert_eq!(records, ["H-1", "P-1", "A-3", "A-2", "A-1"]);
    // Subject keys and times wrap: the table stays within the page's column.
    let overflow = browser
        .client()
        .execute(
            "return document.querySelector('main table').getBoundingClientRect().right
               - document.querySelector('main').getBoundingClientRect().right",
            vec![],
        )
        .await
        .expect("the table's width");
    assert!(
        overflow.as_f64().is_some_and(|px| px <= 0.5),
        "the risks table runs {overflow}px past the page"
    );
    browser.check("risks").await;

    // A snapshot taken from the place page opens at its own address.
    browser.open(&format!("{web}/places/{NEWCASTLE}")).await;
    browser.fill("label", "Inspection of Newcastle").await;
    browser.press("Take a snapshot").await;
    assert!(
        browser.path().await.starts_with("/snapshots/"),
        "{}",
        browser.path().await
    );
    browser.check("snapshot").await;
    browser.open(&format!("{web}/snapshots")).await;
    let listed = browser.texts("main table tbody tr").await;
    assert!(
        listed.iter().any(|r| r.contains("Inspection of Newcastle")),
        "the snapshot is listed: {listed:?}"
    );
    browser.check("snapshots").await;

    // Lines of enquiry for Newcastle's next review, from a review of Middlesbrough, one of its
    // statistical neighbours.
    let title = "Joint targeted area inspection of Middlesbrough";
    let review = published_review(&connection, "E06000002", title).await;
    browser.open(&format!("{web}/places/{NEWCASTLE}")).await;
    browser
        .click(&format!("a[href='/places/{NEWCASTLE}/enquiries']"))
        .await;
    assert_eq!(
        browser.path().await,
        format!("/places/{NEWCASTLE}/enquiries")
    );
    let rows = browser.texts("main table tbody tr").await;
    assert!(
        rows.iter()
            .any(|r| r.contains("Middlesbrough") && r.contains(title)),
        "{rows:?}"
    );
    assert!(
        browser
            .texts(&format!("main a[href='/reviews/{review}#finding-1']"))
            .await
            .iter()
            .any(|link| link.contains(title)),
        "the evidence links to the finding"
    );
    browser.check("enquiries").await;

    // Signed out, the place page sends the browser to sign in.
    browser.press("Sign out").await;
    assert_eq!(browser.path().await, "/");
    browser.open(&format!("{web}/places/{NEWCASTLE}")).await;
    assert_eq!(browser.path().await, "/sign-in");
    assert_eq!(browser.text("h1").await, "Sign in");

    browser.close().await;
}

/// Signs in through the form with this token, from the sign-in page.
async fn sign_in(browser: &Browser, web: &str, token: &str) {
    browser.open(&format!("{web}/sign-in")).await;
    browser.fill("token", token).await;
    browser.press("Sign in").await;
    assert_eq!(browser.path().await, "/", "{token} signs in");
}

/// Runs `script` in the page until it returns true, for at most `limit`; false if it never did.
async fn eventually(browser: &Browser, script: &str, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        let answer = browser
            .client()
            .execute(script, vec![])
            .await
            .unwrap_or(serde_json::Value::Bool(false));
        if answer == serde_json::Value::Bool(true) {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every alert sequence the alerts page shows, in the history table and the live list, in
/// the order shown, repeats and all.
async fn alerts_shown(browser: &Browser) -> Vec<u64> {
    let shown = browser
        .client()
        .execute(
            "const history = [...document.querySelectorAll('main table tbody tr')]
               .map(tr => tr.cells[0].textContent.trim()).filter(t => /^[0-9]+$/.test(t));
             const live = [...document.querySelectorAll('#live-alerts li')]
               .map(li => li.getAttribute('data-sequence'));
             return history.concat(live).map(Number);",
            vec![],
        )
        .await
        .expect("the alerts shown");
    shown
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_u64)
        .collect()
}

/// Waits until the alerts page is connected and shows the newest of `alerts`, then fails
/// unless it shows each alert the board may see exactly once (in the history or live).
async fn each_alert_once(browser: &Browser, connection: &Connection, alerts: &[u64]) {
    let newest = *alerts.last().expect("an alert");
    let arrived = format!(
        "return document.getElementById('live-status').textContent.startsWith('Connected')
           && [...document.querySelectorAll('main table tbody tr, #live-alerts li')]
             .some(e => e.getAttribute('data-sequence') === '{newest}'
               || (e.cells !== undefined && e.cells[0].textContent.trim() === '{newest}'))"
    );
    assert!(
        eventually(browser, &arrived, Duration::from_secs(10)).await,
        "alert {newest} shows on the page"
    );
    // Time for a repeat to arrive, were the stream to resume too early.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut shown = alerts_shown(browser).await;
    shown.sort_unstable();
    assert_eq!(
        shown,
        board_alerts(connection).await,
        "each of the board's alerts once"
    );
}

/// The sequences of every alert the board may see, from ListAlerts over gRPC.
async fn board_alerts(connection: &Connection) -> Vec<u64> {
    connection
        .alerts()
        .list_alerts(proto::ListAlertsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("the board lists its alerts")
        .into_inner()
        .alerts
        .iter()
        .map(|a| a.sequence)
        .collect()
}

/// Pushes one critical record of Newcastle's council and waits until the board may see the
/// alert it raises; the board's alerts after it.
async fn raise_critical(connection: &Connection, local_ref: &str, subject_n: u32) -> Vec<u64> {
    let before = board_alerts(connection).await.len();
    let answers = push_all(
        connection,
        vec![rec(
            NEWCASTLE,
            local_ref,
            NEWCASTLE,
            subject_n,
            proto::Severity::Critical,
            0,
        )],
    )
    .await;
    assert_eq!(answers[0].outcome, proto::Outcome::Accepted as i32);
    let started = Instant::now();
    loop {
        let alerts = board_alerts(connection).await;
        if alerts.len() > before {
            return alerts;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no alert raised for the critical record {local_ref}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bytes `marr export` writes for this table of the latest release.
async fn exported(server_url: &str, parent: &str, level: &str) -> String {
    let dir = tempfile::tempdir().expect("a directory");
    let out = dir.path().join("table.csv");
    let (url, path) = (server_url.to_string(), out.clone());
    let args = [
        "--parent".to_string(),
        parent.into(),
        "--level".into(),
        level.into(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_marr"))
            .args(["export", "--server", &url])
            .args(&args)
            .arg("--out")
            .arg(&path)
            .env_remove("MARR_TOKEN")
            .output()
            .expect("marr export runs")
    })
    .await
    .expect("the export finishes");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out).expect("the export reads")
}

const REVIEW_TITLE: &str = "Joint targeted area inspection of the front door in Newcastle";

/// Records a review of `place` published a week ago, with one action planned by Newcastle's
/// council that is past its due date; its id.
async fn published_review(connection: &Connection, place: &str, title: &str) -> u64 {
    let day = |days: i64| {
        let date = (time::OffsetDateTime::now_utc() + time::Duration::days(days)).date();
        format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        )
    };
    let review = proto::Review {
        kind: proto::ReviewKind::JointTargetedAreaInspection as i32,
        title: title.into(),
        place_code: place.into(),
        agency_ids: vec![NEWCASTLE.into(), NORTHUMBRIA.into()],
        fieldwork_start: day(-60),
        fieldwork_end: day(-50),
        published_at: Some(hours_ago(24 * 7)),
        findings: vec![
            proto::Finding {
                theme: "information_sharing".into(),
                judgement: proto::Judgement::PriorityAction as i32,
                summary: "Police and health do not pass on missing episodes in time.".into(),
                recommendations: vec![proto::Recommendation {
                    number: 0,
                    text: "Agree one shared way of passing on concerns the same day.".into(),
                    agency_id: NEWCASTLE.into(),
                }],
                number: 0,
            },
            proto::Finding {
                theme: "front_door".into(),
                judgement: proto::Judgement::Strength as i32,
                summary: "The front door answers quickly and well.".into(),
                recommendations: Vec::new(),
                number: 0,
            },
        ],
        ..Default::default()
    };
    let id = connection
        .inspector
        .client(proto::reviews_client::ReviewsClient::new)
        .record_review(proto::RecordReviewRequest {
            review: Some(review),
            expected_revision: 0,
        })
        .await
        .expect("the review is recorded")
        .into_inner()
        .review
        .expect("a review")
        .id;
    connection
        .agency(NEWCASTLE)
        .client(proto::reviews_client::ReviewsClient::new)
        .plan_action(proto::PlanActionRequest {
            recommendation: Some(proto::RecommendationRef {
                review_id: id,
                finding: 1,
                recommendation: 1,
            }),
            description: "Set up a daily call between police and health.".into(),
            owner: "Head of Children's Safeguarding".into(),
            due: day(-3),
            status: proto::ActionStatus::InProgress as i32,
            note: String::new(),
        })
        .await
        .expect("the action is planned");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_a_board_and_an_agency_read_figures_maps_alerts_and_access_in_a_real_browser() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    // The width the README's screenshots are taken at, and the top of each page.
    browser
        .client()
        .set_window_size(1100, 1000)
        .await
        .expect("the window resizes");
    let (server, connection) = england().await;
    let web = &server.web_url;
    // The shapes of the North East and its places, as published: the rest of the country would
    // only slow the import.
    let mut files = boundaries::read_files(&[boundaries_file(BOUNDARIES_TOPO)]).expect("readable");
    for file in &mut files {
        file.shapes.retain(|(code, shape)| {
            code == NORTH_EAST
                || shape.bounds().is_some_and(|b| {
                    (-2.8..=-0.6).contains(&b.min.lon_degrees())
                        && (-2.8..=-0.6).contains(&b.max.lon_degrees())
                        && (54.4..=55.9).contains(&b.min.lat_degrees())
                        && (54.4..=55.9).contains(&b.max.lat_degrees())
                })
        });
    }
    boundaries::import_files(&connection.admin, files)
        .await
        .expect("the boundaries import");
    let release = connection
        .admin
        .open_data()
        .cut_release(proto::CutReleaseRequest {})
        .await
        .expect("an administrator cuts a release")
        .into_inner()
        .release
        .expect("the release");
    // An inspector's read of the council's records, for the council's access page.
    connection
        .inspection()
        .follow_subject(proto::FollowSubjectRequest {
            subject_key: subject(1),
            purpose: PURPOSE.into(),
            ..Default::default()
        })
        .await
        .expect("the inspector follows subject 1");

    // Anyone: the releases, and the North East's upper-tier authorities in the latest.
    browser.open(&format!("{web}/releases")).await;
    let listed = browser.texts("main a[href^='/releases/']").await;
    assert!(
        listed
            .iter()
            .any(|l| l.contains(&release.number.to_string())),
        "release {} is listed: {listed:?}",
        release.number
    );
    browser.check("releases").await;
    browser
        .open(&format!(
            "{web}/releases/latest?parent={NORTH_EAST}&level=county"
        ))
        .await;
    let table = connection
        .public
        .open_data()
        .get_comparative_table(proto::GetComparativeTableRequest {
            parent_code: NORTH_EAST.into(),
            level: proto::PlaceLevel::County as i32,
            filter: None,
            release: 0,
        })
        .await
        .expect("the latest release's table")
        .into_inner();
    let rows = browser.texts("main table tbody tr").await;
    assert_eq!(rows.len(), table.rows.len(), "{rows:?}");
    let first = table.rows[0].place.as_ref().expect("a place");
    assert!(
        rows[0].contains(&first.name) && rows[0].contains(&first.code),
        "the first row is {} ({}): {}",
        first.name,
        first.code,
        rows[0]
    );
    let shaded = browser.texts(".map svg path[data-code]").await;
    assert_eq!(shaded.len(), rows.len(), "a shape on the map per row");
    browser.check("release").await;

    // The table's CSV, fetched by the page from its own link: the file `marr export` writes.
    let csv = browser
        .client()
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const link = [...document.querySelectorAll('a[href]')]
               .find(a => a.textContent.includes('Download this table'));
             fetch(link.href).then(r => r.text()).then(done, e => done('failed: ' + e));",
            vec![],
        )
        .await
        .expect("the CSV downloads");
    let csv = csv.as_str().unwrap_or_default();
    assert!(csv.starts_with("time_period,"), "{csv}");
    assert_eq!(csv, exported(&server.url, NORTH_EAST, "county").await);
    let places: std::collections::BTreeSet<&str> = table
        .rows
        .iter()
        .filter_map(|r| r.place.as_ref())
        .map(|p| p.code.as_str())
        .collect();
    for code in &places {
        assert!(csv.contains(code), "the CSV has a line for {code}");
    }

    // Anyone: the published reviews, one review with its action plan, and the lessons.
    let review = published_review(&connection, NEWCASTLE, REVIEW_TITLE).await;
    browser.open(&format!("{web}/reviews")).await;
    let listed = browser.texts("main table tbody tr").await;
    assert!(
        listed.iter().any(|l| l.contains(REVIEW_TITLE)),
        "{listed:?}"
    );
    browser.check("reviews").await;
    browser.open(&format!("{web}/reviews/{review}")).await;
    assert_eq!(browser.text("h1").await, REVIEW_TITLE);
    browser.check("review").await;
    browser.open(&format!("{web}/lessons")).await;
    let rows = browser.texts("main table tbody tr").await;
    assert!(
        rows.iter()
            .any(|r| r.contains("Information sharing between agencies")),
        "{rows:?}"
    );
    browser.check("lessons").await;

    // An inspector: hovering over a place on the region's map names it beside the map.
    sign_in(&browser, web, INSPECTOR).await;
    browser.open(&format!("{web}/places/{NORTH_EAST}")).await;
    // The map near the top of the window under its heading, its readout in view below it.
    browser
        .client()
        .execute(
            "document.querySelector('.map').parentNode.scrollIntoView({ block: 'start' });
             window.scrollBy(0, -90);",
            vec![],
        )
        .await
        .expect("the map scrolls into view");
    let path = browser
        .client()
        .find(fantoccini::Locator::Css(".map svg path[data-code]"))
        .await
        .expect("a place on the map");
    let title = browser
        .client()
        .execute(
            "return document.querySelector('.map svg path[data-code] title').textContent",
            vec![],
        )
        .await
        .expect("the place's title");
    let title = title.as_str().unwrap_or_default().to_string();
    assert!(title.contains(':'), "a name and its figure: {title}");
    let pointer = fantoccini::actions::MouseActions::new("mouse".into()).then(
        fantoccini::actions::PointerAction::MoveToElement {
            element: path,
            duration: None,
            x: 0.0,
            y: 0.0,
        },
    );
    browser
        .client()
        .perform_actions(pointer)
        .await
        .expect("the pointer moves");
    assert!(
        eventually(
            &browser,
            "return document.querySelector('.map-readout').textContent.length > 0",
            Duration::from_secs(5),
        )
        .await,
        "the readout names the place under the pointer"
    );
    let readout = browser.text(".map-readout").await;
    let hovered = browser
        .client()
        .execute(
            "const hovered = document.querySelector('.map svg path.hovered title');
             return hovered ? hovered.textContent : ''",
            vec![],
        )
        .await
        .expect("the hovered place");
    assert_eq!(Some(readout.as_str()), hovered.as_str());
    let in_view = browser
        .client()
        .execute(
            "const r = document.querySelector('.map-readout').getBoundingClientRect();
             return r.top >= 0 && r.bottom <= window.innerHeight",
            vec![],
        )
        .await
        .expect("the readout's place");
    assert_eq!(
        in_view,
        serde_json::Value::Bool(true),
        "the readout is in view"
    );
    assert!(
        readout
            .split(':')
            .next()
            .is_some_and(|name| !name.is_empty()),
        "{readout}"
    );
    browser.check("place-map").await;
    browser.press("Sign out").await;

    // A board: the history, then an alert arriving live.
    sign_in(&browser, web, BOARD).await;
    browser.open(&format!("{web}/alerts")).await;
    assert_eq!(
        alerts_shown(&browser).await,
        board_alerts(&connection).await
    );
    browser.check("alerts").await;
    let alerts = raise_critical(&connection, "A-10", 6).await;
    let newest = *alerts.last().expect("an alert");
    assert!(
        eventually(
            &browser,
            &format!("return document.querySelector('#live-alerts li[data-sequence=\"{newest}\"]') !== null"),
            Duration::from_secs(10),
        )
        .await,
        "alert {newest} arrives live"
    );
    browser.screenshot("alerts-live").await;

    // Another raised while the page reloads: afterwards each alert shows once, none missing.
    let (alerts, reloaded) = tokio::join!(
        raise_critical(&connection, "A-11", 7),
        browser.client().refresh()
    );
    reloaded.expect("the page reloads");
    each_alert_once(&browser, &connection, &alerts).await;

    // And one raised while the board is on another page, when it comes back in the same tab.
    browser.open(&format!("{web}/releases")).await;
    let alerts = raise_critical(&connection, "A-12", 8).await;
    browser.open(&format!("{web}/alerts")).await;
    each_alert_once(&browser, &connection, &alerts).await;
    browser.press("Sign out").await;

    // An agency: who read its records, with the purpose given.
    sign_in(&browser, web, agency_token(NEWCASTLE)).await;
    browser.open(&format!("{web}/records/access")).await;
    let reads = browser.texts("main table tbody tr").await;
    assert!(
        reads
            .iter()
            .any(|r| r.contains("inspector") && r.contains("FollowSubject") && r.contains(PURPOSE)),
        "the inspector's read with its purpose: {reads:?}"
    );
    browser.check("access").await;
    browser.open(&format!("{web}/records")).await;
    let own = browser.texts("main table tbody tr").await;
    assert!(
        !own.is_empty() && own.iter().all(|r| !r.contains("No records")),
        "the agency's own records: {own:?}"
    );
    browser.check("records").await;

    browser.close().await;
}
